"""The fault tier (marker `chaos`): what the operator does when things go wrong.

On the local cluster (it restarts the cluster's own components), with the operator as a child
process watching the test's namespace. Each scenario prints what it did, then checks what the
users rely on: every pipeline converges to the right status, exactly the right Pods exist
(none duplicated at any moment, orphaned or missing), no pipeline was ever Stalled by a
transient error, and, recorded by a watch, no status went backwards. The random moments come
from INITPIPELINE_CHAOS_SEED (default 1), so a failing run can be replayed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.convergence import (
    backwards,
    history,
    most_live_pods_per_replica,
    pods_by_pipeline,
    stalled,
    started_over,
    wait_all_ready,
)
from tests.helpers import (
    REPO,
    Kubectl,
    OperatorProcess,
    Stream,
    eventually,
    get,
    operator_process,
    token_kubeconfig,
)

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

SEED = int(os.environ.get("INITPIPELINE_CHAOS_SEED", "1"))
BUSYBOX = "docker.io/library/busybox:1.36.1-musl"
CLUSTER = str(REPO / "hack" / "cluster.sh")


def pipeline(name: str, wait_for: str | None = "dep") -> dict[str, Any]:
    """A wait on Service `wait_for` (if any), then a short run step, then the app."""
    steps: list[dict[str, Any]] = [
        {"name": "work", "run": {"image": BUSYBOX, "command": ["sh", "-c", "echo done"]}}
    ]
    if wait_for:
        steps.insert(0, {"name": "wait-dep", "waitFor": [{"service": wait_for}]})
    return {
        "apiVersion": "initpipeline.io/v1alpha1",
        "kind": "InitPipeline",
        "metadata": {"name": name},
        "spec": {
            "steps": steps,
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "app",
                            "image": BUSYBOX,
                            "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
                        }
                    ],
                }
            },
        },
    }


DEP_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "dep"},
    "spec": {"selector": {"app": "dep"}, "ports": [{"port": 80, "targetPort": 8080}]},
}
DEP_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "dep", "labels": {"app": "dep"}},
    "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "httpd",
                "image": "localhost/initpipeline/httpd:1",
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            }
        ],
    },
}


def apply(kubectl: Kubectl, namespace: str, *objects: dict[str, Any]) -> None:
    batch = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(batch))


def restart(*components: str, flags: str | None = None) -> float:
    """Restart cluster components (with extra API-server flags, if given); seconds taken."""
    env = dict(os.environ)
    if flags is not None:
        env["INITPIPELINE_APISERVER_FLAGS"] = flags
    started = time.monotonic()
    done = subprocess.run([CLUSTER, "restart", *components], env=env, capture_output=True)
    assert done.returncode == 0, f"restart {' '.join(components)} failed:\n{done.stderr.decode()}"
    return time.monotonic() - started


@dataclass
class World:
    """The test's namespace, recorded by watches from before the first object exists."""

    kubectl: Kubectl
    namespace: str
    pods: Stream
    pipelines: Stream

    def check(self, count: int, disrupted: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """Everything converged and nothing went wrong on the way; the pipelines."""
        started = time.monotonic()
        items = wait_all_ready(self.kubectl, self.namespace, count)
        print(f"all {count} pipelines Ready after {time.monotonic() - started:.1f}s more")
        names = sorted(p["metadata"]["name"] for p in items)
        assert pods_by_pipeline(self.kubectl, self.namespace, items) == names
        assert most_live_pods_per_replica(self.pods.events) == 1, "a Pod was duplicated"
        assert stalled(self.pipelines.events) == []
        pods = self.pods.events
        if restarted := started_over(pods):
            print(f"the kubelet started the Pods of {sorted(restarted)} over (a new sandbox)")
        went_back = backwards(self.pipelines.events, disrupted | restarted)
        assert went_back == [], "\n\n".join(
            [*went_back]
            + [history(self.pipelines.events, pods, line.split(":")[0]) for line in went_back]
        )
        return items


@pytest.fixture
def world(
    kubectl: Kubectl, kubectl_argv: list[str], namespace: str, cluster_level: Any
) -> Iterator[World]:
    if not cluster_level.local:
        pytest.skip("restarts the local cluster's components (hack/cluster.sh)")
    pods = Stream(kubectl_argv, namespace, "pods")
    pipelines = Stream(kubectl_argv, namespace, "initpipelines")
    try:
        yield World(kubectl, namespace, pods, pipelines)
    finally:
        pods.stop()
        pipelines.stop()


def scoped(
    kubeconfig: str, log: Path, namespace: str, **env: str
) -> contextlib.AbstractContextManager[OperatorProcess]:
    return operator_process(kubeconfig, log, INITPIPELINE_NAMESPACES=namespace, **env)


def no_tracebacks(operator: OperatorProcess) -> None:
    assert "Traceback" not in operator.text(), operator.text()[-4000:]


def test_the_operator_sigkilled_at_random_moments(
    world: World, kubeconfig: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    count, kills = 50, 10
    apply(
        world.kubectl, world.namespace, DEP_SERVICE, *(pipeline(f"p-{i:02d}") for i in range(count))
    )
    moments = []
    for kill in range(kills):
        with scoped(kubeconfig, tmp_path / f"operator-{kill}.log", world.namespace) as operator:
            moment = rng.uniform(0.2, 4.0)
            time.sleep(moment)  # the random moment of the kill, not a wait for anything
            operator.process.kill()
            operator.process.wait()
            moments.append(moment)
        if kill == kills // 2:
            apply(world.kubectl, world.namespace, DEP_POD)
    print(
        f"SIGKILLed the operator {kills} times, {', '.join(f'{m:.1f}' for m in moments)}s "
        f"after each start (seed {SEED}), {count} pipelines in progress"
    )
    with scoped(kubeconfig, tmp_path / "operator-last.log", world.namespace) as operator:
        world.check(count)
        no_tracebacks(operator)


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_a_restart_mid_pipeline(
    world: World, kubeconfig: str, tmp_path: Path, component: str
) -> None:
    count = 20
    with scoped(kubeconfig, tmp_path / "operator.log", world.namespace) as operator:
        apply(
            world.kubectl,
            world.namespace,
            DEP_SERVICE,
            *(pipeline(f"p-{i:02d}") for i in range(count)),
        )
        # Mid-pipeline: the first Pods exist and wait; the dependency comes up as it restarts.
        eventually(lambda: get(world.kubectl, world.namespace, "pods")["items"])
        apply(world.kubectl, world.namespace, DEP_POD)
        seconds = restart(component)
        print(f"restarted {component} mid-pipeline ({seconds:.1f}s)")
        world.check(count)
        assert operator.alive()
        no_tracebacks(operator)


def restart_api_server(flags: str) -> float:
    """Restart kube-apiserver with `flags`, then the scheduler and the controller-manager, so
    that the gap is the operator's alone. Those two are refused ("forbidden") while the new
    API server's authorizer warms up and then back off for a minute or more, and across a gap
    with compaction the scheduler's cache was seen corrupted ("Pod updated on a different node
    than previously added to"), leaving every new Pod unscheduled for minutes."""
    return restart("kube-apiserver", "kube-scheduler", "kube-controller-manager", flags=flags)


@pytest.fixture
def compacting() -> Iterator[None]:
    """The API server compacts etcd every 5 s for the test, then as usual again."""
    restart_api_server("--etcd-compaction-interval=5s")
    try:
        yield
    finally:
        restart_api_server("")


def watch_expired(kubectl: Kubectl, namespace: str, version: str) -> bool:
    """A watch from `version` is answered 410 Gone: the gap cannot be replayed."""
    url = f"/api/v1/namespaces/{namespace}/pods?watch=1&resourceVersion={version}&timeoutSeconds=1"
    proc = kubectl("get", "--raw", url, check=False)
    return '"code":410' in proc.stdout.replace(" ", "") or "410" in proc.stderr


def test_a_watch_gap_with_compaction(
    world: World, kubeconfig: str, tmp_path: Path, compacting: None
) -> None:
    with scoped(kubeconfig, tmp_path / "operator.log", world.namespace) as operator:
        apply(world.kubectl, world.namespace, pipeline("kept", None), pipeline("gone", None))
        wait_all_ready(world.kubectl, world.namespace, 2)
        pods_url = f"/api/v1/namespaces/{world.namespace}/pods"  # kubectl's own List has no RV
        version = json.loads(world.kubectl("get", "--raw", pods_url).stdout)["metadata"][
            "resourceVersion"
        ]
        operator.process.send_signal(signal.SIGSTOP)
        restart_api_server("--etcd-compaction-interval=5s")
        world.kubectl(
            "delete",
            "pods",
            "-l",
            "initpipeline.io/pipeline=kept",
            "--wait",
            namespace=world.namespace,
        )
        world.kubectl("delete", "initpipeline", "gone", "--wait", namespace=world.namespace)
        apply(world.kubectl, world.namespace, pipeline("new", None))
        eventually(lambda: watch_expired(world.kubectl, world.namespace, version), timeout=60)
        operator.process.send_signal(signal.SIGCONT)
        print(
            "operator stopped across an API-server restart; deleted a Pod and a pipeline,"
            " created a pipeline; a watch from before answered 410; operator resumed"
        )
        try:
            items = world.check(2, disrupted=frozenset({"kept"}))
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- operator log\n{operator.text()[-6000:]}") from None
        assert sorted(p["metadata"]["name"] for p in items) == ["kept", "new"]
        # The deleted pipeline is forgotten: the gauge counts the two that exist.
        eventually(lambda: sum(operator.metric("initpipeline_pipelines").values()) == 2)
        no_tracebacks(operator)


# --------------------------------------------------------------------------- throttling

THROTTLED_ACCOUNT = "throttled-operator"


def throttling(namespace: str) -> list[dict[str, Any]]:
    """The operator's account in `namespace` with the single-namespace overlay's rules, and an
    API Priority and Fairness level of its own that answers 429 at once when its few seats
    (ceil(600 x 1 / ~246) = 3, no borrowing) are taken: the API server throttling exactly this
    client, while the kubelet, the controllers and the test are served as usual."""
    role = yaml.safe_load((REPO / "deploy/overlays/single-namespace/role.yaml").read_text())
    name = f"initpipeline-chaos-{namespace}"
    account = {"name": THROTTLED_ACCOUNT, "namespace": namespace}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": THROTTLED_ACCOUNT}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": THROTTLED_ACCOUNT},
            "rules": role["rules"],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": THROTTLED_ACCOUNT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                        "name": THROTTLED_ACCOUNT},
            "subjects": [{"kind": "ServiceAccount", **account}],
        },
        {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "PriorityLevelConfiguration",
            "metadata": {"name": name},
            "spec": {
                "type": "Limited",
                "limited": {
                    "nominalConcurrencyShares": 1,
                    "lendablePercent": 0,
                    "borrowingLimitPercent": 0,
                    "limitResponse": {"type": "Reject"},
                },
            },
        },
        {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": name},
            "spec": {
                "priorityLevelConfiguration": {"name": name},
                "matchingPrecedence": 500,  # before the built-in service-accounts (9000)
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [
                    {
                        "subjects": [{"kind": "ServiceAccount", "serviceAccount": account}],
                        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"],
                                           "resources": ["*"], "namespaces": ["*"],
                                           "clusterScope": True}],
                        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                    }
                ],
            },
        },
    ]  # fmt: skip


def rejected(kubectl: Kubectl, flow_schema: str) -> int:
    """Requests of `flow_schema` the API server answered 429, from its metrics."""
    total = 0
    for line in kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if line.startswith("apiserver_flowcontrol_rejected_requests_total{") and (
            f'flow_schema="{flow_schema}"' in line
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_the_api_server_answering_429_during_a_burst(
    world: World, kubeconfig: str, tmp_path: Path
) -> None:
    count = 50
    objects = throttling(world.namespace)
    flow_schema = objects[-1]["metadata"]["name"]
    apply(world.kubectl, world.namespace, *objects)
    try:
        as_operator = token_kubeconfig(
            world.kubectl, kubeconfig, tmp_path / "kubeconfig", THROTTLED_ACCOUNT, world.namespace
        )
        before = rejected(world.kubectl, flow_schema)
        with scoped(
            as_operator, tmp_path / "operator.log", world.namespace, INITPIPELINE_WORKERS="8"
        ) as operator:
            apply(
                world.kubectl,
                world.namespace,
                DEP_SERVICE,
                DEP_POD,
                *(pipeline(f"p-{i:02d}") for i in range(count)),
            )
            world.check(count)
            refused = rejected(world.kubectl, flow_schema) - before
            print(
                f"the API server answered the operator 429 {refused} times during a burst of "
                f"{count} pipelines (its own priority level: 3 seats, reject when full)"
            )
            assert refused > 0, "the burst was never throttled: the scenario tested nothing"
            assert operator.alive()
            no_tracebacks(operator)
    finally:
        for obj in objects[-2:]:
            kind, name = obj["kind"].lower(), obj["metadata"]["name"]
            world.kubectl("delete", kind, name, "--ignore-not-found", check=False)
