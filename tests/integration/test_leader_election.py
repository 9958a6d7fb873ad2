"""Leader election between `initpipeline run` processes on one Lease of the real API server.

Each replica is a child process as the container runs it, with election on and short
timings (lease 3 s, renew deadline 2 s, retry 0.5 s), watching only the test's namespace, the
Lease in that namespace. Who leads is read from the Lease and from each replica's
`initpipeline_leader` gauge. Takeover times are printed (`pytest -s`), not asserted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.helpers import Kubectl, eventually, free_port, get, http_get, log_messages, pods

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LEASE = "initpipeline-operator"
DURATION = "INITPIPELINE_LEASE_DURATION_SECONDS"
TIMING = {
    DURATION: "3",
    "INITPIPELINE_RENEW_DEADLINE_SECONDS": "2",
    "INITPIPELINE_RETRY_PERIOD_SECONDS": "0.5",
}
PIPELINE = """
apiVersion: initpipeline.io/v1alpha1
kind: InitPipeline
metadata:
  name: web
spec:
  replicas: 2
  steps:
    - name: first
      run: {image: docker.io/library/busybox:1.36.1-musl, command: ["true"]}
  template:
    spec:
      # No scheduler serves this name: the Pods stay Pending, nothing but the operator acts.
      schedulerName: initpipeline-tests-unscheduled
      containers:
        - name: app
          image: docker.io/library/busybox:1.36.1-musl
          command: ["sleep", "3600"]
"""


def micro(stamp: str) -> datetime:
    """A Lease's MicroTime (both writers ran on this machine's clock)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@dataclass
class Replica:
    pod: str
    process: subprocess.Popen[bytes]
    log: Path
    liveness_url: str
    metrics_url: str

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def messages(self) -> list[str]:
        return log_messages(self.text())

    def leader_gauge(self) -> float | None:
        code, text = http_get(self.metrics_url)
        for line in text.splitlines() if code == 200 else ():
            if line.startswith("initpipeline_leader "):
                return float(line.split()[1])
        return None

    def exited(self) -> int | None:
        return self.process.poll()


Start = Callable[[str], Replica]


@pytest.fixture
def replicas(kubeconfig: str, namespace: str, tmp_path: Path) -> Iterator[Start]:
    """start(pod) runs one more replica; all are stopped (SIGTERM) at the end."""
    started: list[Replica] = []

    def start(pod: str) -> Replica:
        liveness, metrics = free_port(), free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("INITPIPELINE_")},
            "KUBECONFIG": kubeconfig,
            "PYTHONUNBUFFERED": "1",
            "INITPIPELINE_NAMESPACES": namespace,
            "INITPIPELINE_LIVENESS_ENDPOINT": f"http://127.0.0.1:{liveness}/healthz",
            "INITPIPELINE_METRICS_PORT": str(metrics),
            "INITPIPELINE_RESYNC_SECONDS": "2",
            "INITPIPELINE_LEADER_ELECTION": "true",
            "INITPIPELINE_POD_NAME": pod,
            "INITPIPELINE_POD_NAMESPACE": namespace,
            **TIMING,
        }
        log = tmp_path / f"{pod}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "initpipeline.cli", "run"],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
            )  # fmt: skip
        replica = Replica(
            pod,
            process,
            log,
            f"http://127.0.0.1:{liveness}/healthz",
            f"http://127.0.0.1:{metrics}/metrics",
        )
        started.append(replica)
        return replica

    yield start
    for replica in started:
        if replica.exited() is None:
            replica.process.send_signal(signal.SIGTERM)
    for replica in started:
        try:
            replica.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait()


def lease(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    """The Lease's spec ({} before it exists)."""
    found = kubectl("get", "lease", LEASE, "-o", "json", namespace=namespace, check=False)
    if found.returncode:
        return {}
    spec: dict[str, Any] = json.loads(found.stdout)["spec"]
    return spec


def write_lease(kubectl: Kubectl, namespace: str, spec: dict[str, Any]) -> None:
    """Write the Lease's spec as another candidate would (a merge patch: no version race)."""
    patch = json.dumps({"spec": spec})
    kubectl("patch", "lease", LEASE, "--type=merge", "-p", patch, namespace=namespace)


def holder(kubectl: Kubectl, namespace: str) -> str:
    return str(lease(kubectl, namespace).get("holderIdentity") or "")


def leads(kubectl: Kubectl, namespace: str, replica: Replica) -> bool:
    assert replica.exited() is None, replica.text()[-3000:]
    return holder(kubectl, namespace).startswith(f"{replica.pod}_")


def stands_by(replica: Replica) -> bool:
    """Up (its liveness answers although it waits in Kopf's startup), and not leading."""
    assert replica.exited() is None, replica.text()[-3000:]
    held = re.compile(rf"The Lease \S+/{LEASE} is held by '[^']+'")
    return (
        http_get(replica.liveness_url)[0] == 200
        and replica.leader_gauge() == 0
        and any(held.fullmatch(message) for message in replica.messages())
    )


def takeover(kubectl: Kubectl, namespace: str, replica: Replica, since: float) -> float:
    eventually(lambda: leads(kubectl, namespace, replica), timeout=60, interval=0.05)
    return time.monotonic() - since


def test_one_replica_leads_and_a_release_hands_over_at_once(
    replicas: Start, kubectl: Kubectl, namespace: str
) -> None:
    a = replicas("a")
    eventually(lambda: leads(kubectl, namespace, a) and a.leader_gauge() == 1)
    b = replicas("b")
    eventually(lambda: stands_by(b))
    assert leads(kubectl, namespace, a), "a standby took the Lease of a live leader"
    first = lease(kubectl, namespace)
    assert first["leaseDurationSeconds"] == int(TIMING[DURATION])
    assert "acquireTime" in first and "renewTime" in first

    kubectl("apply", "-f", "-", namespace=namespace, input=PIPELINE)
    eventually(lambda: len(pods(kubectl, namespace)) == 2)

    since = time.monotonic()
    a.process.send_signal(signal.SIGTERM)  # a rolling update's old Pod
    seconds = takeover(kubectl, namespace, b, since)
    print(f"\ntakeover after a graceful stop (SIGTERM, Lease released): {seconds:.2f}s")
    assert a.process.wait(timeout=30) == 0
    assert f"Released the Lease {namespace}/{LEASE}" in a.messages()
    after = lease(kubectl, namespace)
    assert after["leaseTransitions"] == first["leaseTransitions"] + 1
    assert after["acquireTime"] != first["acquireTime"]
    eventually(lambda: b.leader_gauge() == 1)

    # The new leader carries on from the same Pods: no duplicates.
    kubectl("scale", "initpipeline", "web", "--replicas=3", namespace=namespace)
    eventually(lambda: len(pods(kubectl, namespace)) == 3)
    assert len({p["metadata"]["name"] for p in pods(kubectl, namespace)}) == 3


def test_a_killed_leader_is_replaced_once_its_lease_expires(
    replicas: Start, kubectl: Kubectl, namespace: str
) -> None:
    a = replicas("a")
    eventually(lambda: leads(kubectl, namespace, a))
    b = replicas("b")
    eventually(lambda: stands_by(b))
    since = time.monotonic()
    a.process.send_signal(signal.SIGKILL)  # no release: b must wait the lease out
    assert a.process.wait(timeout=30) == -signal.SIGKILL
    last_renewal = lease(kubectl, namespace)["renewTime"]
    seconds = takeover(kubectl, namespace, b, since)
    taken = lease(kubectl, namespace)
    unrenewed = (micro(taken["acquireTime"]) - micro(last_renewal)).total_seconds()
    print(
        f"\ntakeover after SIGKILL of the leader: {seconds:.2f}s after the kill, "
        f"{unrenewed:.2f}s after its last renewal (lease {TIMING[DURATION]} s)"
    )
    assert taken["leaseTransitions"] == 1


def test_a_standby_writes_nothing_and_stops_cleanly(
    replicas: Start, kubectl: Kubectl, namespace: str
) -> None:
    """The Lease is held by the test (a leader that never reconciles): the replica stands by
    with a pipeline waiting, creates no Pod, writes no status and posts no event. (Another
    operator watching every namespace of the cluster at the same time, as a concurrent test
    session's would, writes there and fails this test; CI runs one session.)"""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    held = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": LEASE},
        "spec": {
            "holderIdentity": "someone-else",
            "leaseDurationSeconds": 3600,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 7,
        },
    }
    kubectl("create", "-f", "-", namespace=namespace, input=yaml.safe_dump(held))
    kubectl("apply", "-f", "-", namespace=namespace, input=PIPELINE)
    b = replicas("b")
    eventually(lambda: stands_by(b))
    # A leader makes the Pods within a second (see below); give the standby longer than that.
    time.sleep(3)
    assert pods(kubectl, namespace) == []
    pipeline = get(kubectl, namespace, "initpipeline", "web")
    assert "status" not in pipeline
    managers = {entry["manager"] for entry in pipeline["metadata"].get("managedFields", [])}
    assert "initpipeline" not in managers
    assert get(kubectl, namespace, "events")["items"] == []
    assert holder(kubectl, namespace) == "someone-else"

    # The holder releases, as a leader does on SIGTERM: the standby leads and reconciles.
    since = time.monotonic()
    write_lease(kubectl, namespace, {"holderIdentity": "", "leaseDurationSeconds": 1})
    seconds = takeover(kubectl, namespace, b, since)
    eventually(lambda: len(pods(kubectl, namespace)) == 2)
    created = time.monotonic() - since
    print(f"\nreleased Lease taken after {seconds:.2f}s; the pipeline's Pods after {created:.2f}s")
    assert lease(kubectl, namespace)["leaseTransitions"] == 8

    # A standby stopped while it waits (SIGTERM in Kopf's startup handler) exits 0, no write.
    c = replicas("c")
    eventually(lambda: stands_by(c))
    writes = lease(kubectl, namespace)
    c.process.send_signal(signal.SIGTERM)
    assert c.process.wait(timeout=30) == 0
    assert leads(kubectl, namespace, b)
    assert lease(kubectl, namespace)["leaseTransitions"] == writes["leaseTransitions"]


def test_a_leader_whose_lease_is_taken_exits_at_once(
    replicas: Start, kubectl: Kubectl, namespace: str
) -> None:
    a = replicas("a")
    eventually(lambda: leads(kubectl, namespace, a))
    write_lease(kubectl, namespace, {"holderIdentity": "usurper"})  # as a clock-skewed rival
    assert a.process.wait(timeout=30) == 1
    assert f"Lost the Lease {namespace}/{LEASE}: it is held by 'usurper' now" in a.messages()
    assert holder(kubectl, namespace) == "usurper"  # not released: it was not ours any more


def test_a_failover_in_the_middle_of_creating_pods_duplicates_and_orphans_nothing(
    replicas: Start, kubectl: Kubectl, namespace: str
) -> None:
    """20 pipelines (40 Pods) applied at once; the leader is killed as it creates them."""
    names = [f"p{index:02d}" for index in range(20)]
    docs = []
    for name in names:
        doc = yaml.safe_load(PIPELINE)
        doc["metadata"]["name"] = name
        docs.append(doc)
    a = replicas("a")
    eventually(lambda: leads(kubectl, namespace, a))
    b = replicas("b")
    eventually(lambda: stands_by(b))
    kubectl("apply", "-f", "-", namespace=namespace, input=yaml.safe_dump_all(docs))
    since = time.monotonic()  # the leader is busy creating Pods right now
    a.process.send_signal(signal.SIGKILL)
    assert a.process.wait(timeout=30) == -signal.SIGKILL
    at_kill = len(pods(kubectl, namespace))
    seconds = takeover(kubectl, namespace, b, since)

    def converged() -> bool:
        items = get(kubectl, namespace, "initpipelines")["items"]
        return len(items) == 20 and all(
            (item.get("status") or {}).get("observedGeneration") == 1
            and len((item.get("status") or {}).get("pods", [])) == 2
            for item in items
        )

    eventually(converged, timeout=120)
    print(
        f"\nkilled with {at_kill}/40 Pods created; takeover {seconds:.2f}s, all 20 pipelines "
        f"reconciled {time.monotonic() - since:.2f}s after the kill"
    )
    uids = {
        i["metadata"]["name"]: i["metadata"]["uid"] for i in get(kubectl, namespace, "ipl")["items"]
    }
    owners = [
        (ref["name"], ref["uid"])
        for pod in pods(kubectl, namespace)
        for ref in pod["metadata"]["ownerReferences"]
    ]
    assert sorted(owners) == sorted((name, uids[name]) for name in names for _ in range(2))


def test_a_leader_frozen_past_its_lease_exits_on_waking_without_writing(
    replicas: Start, kubectl: Kubectl, namespace: str
) -> None:
    """SIGSTOP (a GC pause, a stalled VM): the standby takes over; on SIGCONT the old leader
    refuses its own writes (its renew deadline has passed) and exits."""
    a = replicas("a")
    eventually(lambda: leads(kubectl, namespace, a))
    b = replicas("b")
    eventually(lambda: stands_by(b))
    kubectl("apply", "-f", "-", namespace=namespace, input=PIPELINE)
    eventually(lambda: len(pods(kubectl, namespace)) == 2)
    a.process.send_signal(signal.SIGSTOP)
    try:
        since = time.monotonic()
        seconds = takeover(kubectl, namespace, b, since)
        # Work the frozen leader will see on waking: one more replica.
        kubectl("scale", "initpipeline", "web", "--replicas=3", namespace=namespace)
        eventually(lambda: len(pods(kubectl, namespace)) == 3)
    finally:
        a.process.send_signal(signal.SIGCONT)
    woke = time.monotonic()
    assert a.process.wait(timeout=30) == 1
    refused = [line for line in a.text().splitlines() if "leadership may have passed" in line]
    print(
        f"\nfrozen leader replaced after {seconds:.2f}s; on waking it exited after "
        f"{time.monotonic() - woke:.2f}s, {len(refused)} of its writes refused"
    )
    # Its renewal loop notices on waking that the deadline passed, or, had a renewal answered
    # after the freeze, that b holds the Lease now.
    lost = re.compile(
        rf"Lost the Lease {namespace}/{LEASE}: "
        r"(no renewal succeeded for 2s|it is held by 'b_[0-9a-f]{8}' now)"
    )
    [said] = [m for m in a.messages() if m.startswith("Lost the Lease ")]
    assert lost.fullmatch(said), said
    assert leads(kubectl, namespace, b)
    assert len(pods(kubectl, namespace)) == 3
