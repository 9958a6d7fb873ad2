"""The operator as a platform team runs it: two replicas of its image, from deploy/base.

Runs only with INITPIPELINE_TEST_OPERATOR=deployment (tests/deployment.py). The failover tests
put 20 pipelines in progress, take the leader away three ways (its container SIGKILLed, its
Pod deleted, the Deployment rolled), then let the pipelines' dependency come up, and check
what users rely on: a standby took over (the time is printed, never asserted), every pipeline
converged, no Pod was duplicated or orphaned at any moment, and, from the API server's audit
log, every write came from the replica that held the Lease at the time.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests import deployment
from tests.convergence import most_live_pods_per_replica, pods_by_pipeline, wait_all_ready
from tests.deployment import (
    APP_TEMPLATE,
    CONTAINER_SECURITY,
    NAMESPACE,
    RESTRICTED,
    Deployed,
    Write,
    audit_writes,
)
from tests.helpers import Kubectl, Stream, eventually, get

pytestmark = [pytest.mark.e2e, pytest.mark.deployment]

PIPELINES = 20


def raw(kubectl: Kubectl, pod: str, port: int, path: str) -> str:
    """GET `path` on the operator Pod's `port`, through the API server's Pod proxy."""
    url = f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}:{port}/proxy{path}"
    return kubectl("get", "--raw", url).stdout


def metric(text: str, name: str) -> float:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    assert len(values) == 1, f"{name} appears {len(values)} times in the metrics"
    return values[0]


def test_every_replica_runs_restricted_answers_its_probes_and_one_leads(
    deployed_operator: Deployed, kubectl: Kubectl
) -> None:
    labels = get(kubectl, None, "namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = deployed_operator.pods()
    assert len(pods) == 2
    leader = deployed_operator.wait_ready()
    leading = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", name
        (container,) = pod["spec"]["containers"]
        assert pod["spec"]["serviceAccountName"] == "initpipeline-operator"
        # In-cluster config: the ServiceAccount token, no kubeconfig.
        assert "KUBECONFIG" not in {e["name"] for e in container.get("env", [])}
        assert json.loads(raw(kubectl, name, 8080, "/healthz")) == {"status": "ok"}
        leading[name] = metric(raw(kubectl, name, 9090, "/metrics"), "initpipeline_leader")
    assert leading == {p["metadata"]["name"]: float(p["metadata"]["name"] == leader) for p in pods}
    # The Lease was written from inside the Pod: HTTPS to the `kubernetes` Service works.
    lease = deployed_operator.lease()
    # the identity: the Pod's name and 8 hex digits unique to the process
    assert re.fullmatch(rf"{re.escape(leader)}_[0-9a-f]{{8}}", lease["holderIdentity"]), lease
    assert lease["leaseDurationSeconds"] == 15


# --------------------------------------------------------------------------- failover


def pipeline(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "initpipeline.io/v1alpha1",
        "kind": "InitPipeline",
        "metadata": {"name": name},
        "spec": {
            "steps": [{"name": "wait-backend", "waitFor": [{"service": "backend"}]}],
            "template": APP_TEMPLATE,
        },
    }


BACKEND_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "backend"},
    "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80, "targetPort": 8080}]},
}
BACKEND_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "backend", "labels": {"app": "backend"}},
    "spec": {
        "securityContext": RESTRICTED,
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "httpd",
                "image": "localhost/initpipeline/httpd:1",
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                "securityContext": CONTAINER_SECURITY,
            }
        ],
    },
}


def writes_by_non_leaders(writes: list[Write], since: str) -> list[Write]:
    """Writes since `since` that did not come from the Lease's holder of the moment: the
    holder is whoever last wrote the Lease successfully (a takeover or a renewal; a release
    keeps it its own)."""
    holder, wrong = "", []
    for write in writes:
        if write.resource == "leases":
            if write.code < 300:
                holder = write.pod
        elif write.at >= since and write.pod != holder:
            wrong.append(write)
    return wrong


def kill_container(pod: dict[str, Any]) -> None:
    """SIGKILL the Pod's container through the local node's containerd."""
    (status,) = pod["status"]["containerStatuses"]
    container_id = status["containerID"].removeprefix("containerd://")
    socket = deployment.CLUSTER_DIR / "containerd" / "containerd.sock"
    subprocess.run(
        [
            deployment.ctr(),
            "--address",
            str(socket),
            "-n",
            "k8s.io",
            "tasks",
            "kill",
            "--signal",
            "KILL",
            container_id,
        ],
        check=True,
        capture_output=True,
    )


def measure_takeover(operator: Deployed, old: str) -> tuple[str, float]:
    """The new leader (another Pod than `old`) and the seconds until it held the Lease."""
    started = time.monotonic()

    def new_leader() -> str | None:
        holder = operator.leader()
        return holder if holder and holder != old else None

    new = eventually(new_leader, timeout=90, interval=0.1)
    return new, time.monotonic() - started


class LeaseSampler:
    """The Lease's holder, sampled as fast as kubectl answers, until stopped."""

    def __init__(self, operator: Deployed) -> None:
        self.samples: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(operator,), daemon=True)
        self._thread.start()

    def _run(self, operator: Deployed) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), operator.leader()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def longest_without_leader(self) -> float:
        """The longest stretch during which nobody held the Lease (released, not yet taken)."""
        longest, since = 0.0, None
        for at, holder in self.samples:
            if not holder and since is None:
                since = at
            elif holder and since is not None:
                longest, since = max(longest, at - since), None
        return longest


@pytest.fixture
def in_progress(
    kubectl: Kubectl, kubectl_argv: list[str], namespace: str
) -> Iterator[tuple[str, Stream]]:
    """20 pipelines just created, waiting on Service `backend` (no ready Pod behind it yet),
    with every Pod event of the namespace recorded; an audit timestamp to start from."""
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
    pods = Stream(kubectl_argv, namespace, "pods")
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(BACKEND_SERVICE))
    items = [pipeline(f"p-{i:02d}") for i in range(PIPELINES)]
    batch = {"apiVersion": "v1", "kind": "List", "items": items}
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(batch))
    try:
        yield since, pods
    finally:
        pods.stop()


def converge_and_check(
    kubectl: Kubectl, namespace: str, operator: Deployed, since: str, pods: Stream
) -> None:
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(BACKEND_POD))
    started = time.monotonic()
    pipelines = wait_all_ready(kubectl, namespace, PIPELINES)
    print(f"all {PIPELINES} pipelines Ready {time.monotonic() - started:.1f}s after the backend")
    names = sorted(p["metadata"]["name"] for p in pipelines)
    assert pods_by_pipeline(kubectl, namespace, pipelines) == names, "one Pod each, no orphan"
    assert most_live_pods_per_replica(pods.events) == 1, "a Pod was duplicated"
    writes = audit_writes()
    assert any(w.resource == "pods" and w.verb == "create" and w.at >= since for w in writes)
    assert writes_by_non_leaders(writes, since) == []
    operator.wait_ready()


def test_a_standby_takes_over_when_the_leaders_container_is_killed(
    deployed_operator: Deployed,
    kubectl: Kubectl,
    namespace: str,
    in_progress: tuple[str, Stream],
    cluster_level: Any,
) -> None:
    if not cluster_level.local:
        pytest.skip("SIGKILLs the container through the local node's containerd")
    leader = deployed_operator.wait_ready()
    pod = next(p for p in deployed_operator.pods() if p["metadata"]["name"] == leader)
    kill_container(pod)
    _, seconds = measure_takeover(deployed_operator, leader)
    print(f"failover after SIGKILL of the leader's container: {seconds:.1f}s (lease 15s)")
    converge_and_check(kubectl, namespace, deployed_operator, *in_progress)


def test_a_standby_takes_over_when_the_leader_pod_is_deleted(
    deployed_operator: Deployed, kubectl: Kubectl, namespace: str, in_progress: tuple[str, Stream]
) -> None:
    leader = deployed_operator.wait_ready()
    kubectl("delete", "pod", leader, "--wait=false", namespace=NAMESPACE)
    _, seconds = measure_takeover(deployed_operator, leader)
    print(f"failover after deleting the leader's Pod: {seconds:.1f}s")
    converge_and_check(kubectl, namespace, deployed_operator, *in_progress)


def test_a_rolling_update_hands_the_lease_over(
    deployed_operator: Deployed, kubectl: Kubectl, namespace: str, in_progress: tuple[str, Stream]
) -> None:
    deployed_operator.wait_ready()
    before = {p["metadata"]["name"] for p in deployed_operator.pods()}
    sampler = LeaseSampler(deployed_operator)
    try:
        kubectl("rollout", "restart", f"deployment/{deployment.DEPLOYMENT}", namespace=NAMESPACE)
        deployed_operator.wait_ready()
        # Both old replicas gone: whoever leads now is a Pod of the new ReplicaSet.
        eventually(lambda: not before & {p["metadata"]["name"] for p in deployed_operator.pods()})
        leader = deployed_operator.wait_ready()
    finally:
        sampler.stop()
    assert leader not in before
    holders = [h for _, h in sampler.samples]
    changes = sum(1 for a, b in itertools.pairwise(holders) if a != b and b)
    print(
        f"rolling update: the Lease changed hands {changes} times; the longest time without "
        f"a leader was {sampler.longest_without_leader():.1f}s ({len(holders)} samples)"
    )
    assert changes >= 1
    converge_and_check(kubectl, namespace, deployed_operator, *in_progress)
