"""spec.retries and spec.activeDeadlineSeconds against a real API server, the operator in
this process. No node: the Pods stay unscheduled (or are bound to a node that does not
exist) and their statuses are written the way the kubelet writes them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from tests.helpers import Kubectl, eventually, get, operator_running, pods, status
from tests.integration.test_operator import (
    PIPELINE,
    _init_status,
    apply,
    condition,
    name_of,
    set_pod_status,
    table,
)

pytestmark = pytest.mark.integration

ATTEMPT_LABEL = "initpipeline.io/attempt"


def pipeline(**spec: Any) -> dict[str, Any]:
    """test_operator's pipeline (wait-db, then fetch; its Pods never scheduled) as a one-off
    Pod: restartPolicy Never."""
    body: dict[str, Any] = yaml.safe_load(PIPELINE)
    body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    body["spec"].update(spec)
    return body


@pytest.fixture
def operator(kubeconfig: str, namespace: str) -> Iterator[None]:
    """The operator for this namespace, with a resync of 10 minutes: a pipeline is looked at
    again only on an event or at a deadline it asked for."""
    with operator_running(
        kubeconfig, namespace, INITPIPELINE_NAMESPACES=namespace, INITPIPELINE_RESYNC_SECONDS="600"
    ):
        yield


def ended(code: int, started: str, finished: str, message: str = "") -> dict[str, Any]:
    """A container state: terminated with `code`."""
    reason = "Completed" if code == 0 else "Error"
    state = {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished}
    return {"terminated": {**state, **({"message": message} if message else {})}}


WAITED = ended(0, "2026-11-25T10:00:01Z", "2026-11-25T10:00:03Z")


def failed(*steps: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """The kubelet's report of a Never Pod that failed, its steps in these states."""
    return {
        "phase": "Failed",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "initContainerStatuses": [_init_status(name, state) for name, state in steps],
    }


NOT_FOUND = "wget: server returned error: HTTP/1.1 404 Not Found"
FETCH_FAILED = failed(
    ("wait-db", WAITED),
    ("fetch", ended(1, "2026-11-25T10:00:04Z", "2026-11-25T10:00:05Z", NOT_FOUND)),
)
WAIT_TIMED_OUT = failed(
    (
        "wait-db",
        ended(
            124,
            "2026-11-25T10:01:01Z",
            "2026-11-25T10:01:06Z",
            "WaitTimeout: mydb:5432 not met after 5s: connection refused",
        ),
    )
)


def attempt_pod(kubectl: Kubectl, namespace: str, attempt: int) -> dict[str, Any] | None:
    """The Pod of replica 0's `attempt` (the first has no attempt label)."""
    for pod in pods(kubectl, namespace):
        if pod["metadata"]["labels"].get(ATTEMPT_LABEL, "1") == str(attempt):
            return pod
    return None


def ready(st: dict[str, Any]) -> tuple[str, str, str]:
    """(Ready reason, Ready message, Stalled status)."""
    found = condition(st, "Ready")
    return (
        found.get("reason", ""),
        found.get("message", ""),
        condition(st, "Stalled").get("status", ""),
    )


def test_failed_pods_are_replaced_until_the_retries_run_out(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, namespace, pipeline(retries=2))
    first = eventually(lambda: attempt_pod(kubectl, namespace, 1))
    set_pod_status(kubectl, namespace, name_of(first), FETCH_FAILED)

    second = eventually(lambda: attempt_pod(kubectl, namespace, 2))
    assert name_of(second) == f"{name_of(first)}-retry1"
    st = eventually(lambda: (s := status(kubectl, namespace)).get("retriesStatus") and s)
    assert st["attempt"] == "2/3"
    assert [p["name"] for p in st["pods"]] == [name_of(second)]
    [entry] = st["retriesStatus"]
    assert {k: v for k, v in entry.items() if k not in ("steps", "revision", "createdAt")} == {
        "replica": 0,
        "attempt": 1,
        "podName": name_of(first),
        "finishedAt": "2026-11-25T10:00:05Z",
        "reason": "StepFailed",
        "message": f"step 2/2 fetch: exit code 1 (Error): {NOT_FOUND}",
    }
    assert entry["createdAt"] == first["metadata"]["creationTimestamp"]
    assert [(s["name"], s["state"], s.get("exitCode")) for s in entry["steps"]] == [
        ("wait-db", "Succeeded", 0),
        ("fetch", "Failed", 1),
    ]
    [row] = table(kubectl("get", "ipl", namespace=namespace).stdout)
    assert list(row) == ["NAME", "READY", "STEPS", "STATUS", "CURRENT", "ATTEMPT", "AGE"]
    assert (row["STATUS"], row["CURRENT"], row["ATTEMPT"]) == ("Pending", "wait-db", "2/3")
    assert name_of(first) in [name_of(p) for p in pods(kubectl, namespace)]  # kept for its logs

    set_pod_status(kubectl, namespace, name_of(second), FETCH_FAILED)
    third = eventually(lambda: attempt_pod(kubectl, namespace, 3))
    set_pod_status(kubectl, namespace, name_of(third), WAIT_TIMED_OUT)

    st = eventually(lambda: (s := status(kubectl, namespace)) and ready(s)[2] == "True" and s)
    assert ready(st) == (
        "WaitTimeout",  # the last attempt's reason
        "step 1/2 wait-db: timed out after 5s waiting for mydb:5432 "
        "(last error: connection refused); attempt 3/3, no retries left",
        "True",
    )
    assert [(e["attempt"], e["podName"]) for e in st["retriesStatus"]] == [
        (1, name_of(first)),
        (2, name_of(second)),
    ]
    assert sorted(name_of(p) for p in pods(kubectl, namespace)) == sorted(
        name_of(p) for p in (first, second, third)
    )  # no fourth attempt
    [row] = table(kubectl("get", "ipl", namespace=namespace).stdout)
    assert (row["STATUS"], row["ATTEMPT"]) == ("WaitTimeout", "3/3")
    events = get(kubectl, namespace, "events", "--field-selector", "involvedObject.name=web")
    retrying = sorted(e["message"] for e in events["items"] if e["reason"] == "Retrying")
    assert retrying == [
        f"pod {name_of(pod)} (attempt {n}) failed and was replaced: "
        f"step 2/2 fetch: exit code 1 (Error): {NOT_FOUND}"
        for n, pod in ((1, first), (2, second))
    ]


DEADLINE = "start-up not done within {}s of the pod's creation (spec.activeDeadlineSeconds)"


def test_the_deadline_fires_on_its_own_and_marks_an_unscheduled_pod_failed(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    # Nothing happens to the Pod after its creation: only the wake-up the operator asked
    # for at the deadline (the resync is 10 minutes) can fire it.
    apply(kubectl, namespace, pipeline(activeDeadlineSeconds=3))
    [pod] = eventually(lambda: pods(kubectl, namespace) or None)

    st = eventually(lambda: (s := status(kubectl, namespace)) and ready(s)[2] == "True" and s)
    assert ready(st) == ("DeadlineExceeded", f"step 1/2 wait-db: {DEADLINE.format(3)}", "True")
    assert st["steps"][0]["reason"] == "DeadlineExceeded"
    stopped = get(kubectl, namespace, "pod", name_of(pod))
    assert stopped["metadata"]["annotations"]["initpipeline.io/deadline-exceeded"] == "wait-db"
    assert stopped["spec"]["activeDeadlineSeconds"] == 1
    assert stopped["status"]["phase"] == "Failed"  # never to be scheduled
    assert stopped["status"]["reason"] == "DeadlineExceeded"
    assert stopped["status"]["message"] == f"{DEADLINE.format(3)}; no node had started it"
    assert [name_of(p) for p in pods(kubectl, namespace)] == [name_of(pod)]  # not replaced


def bind(kubectl: Kubectl, namespace: str, pod: str, node: str) -> None:
    """Place the Pod on `node` as the scheduler does (the binding subresource)."""
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
               "target": {"apiVersion": "v1", "kind": "Node", "name": node}}  # fmt: skip
    kubectl(
        "create", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}/binding", "-f", "-",
        input=json.dumps(binding),
    )  # fmt: skip


def test_a_scheduled_pod_past_its_deadline_is_left_to_the_kubelet_and_names_its_step(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    # Long enough for the test to place the Pod and move it to its second step first.
    apply(kubectl, namespace, pipeline(activeDeadlineSeconds=15))
    [pod] = eventually(lambda: pods(kubectl, namespace) or None)
    bind(kubectl, namespace, name_of(pod), "node-of-the-test")
    running = {"running": {"startedAt": "2026-11-25T10:00:04Z"}}
    kubelet = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "initContainerStatuses": [_init_status("wait-db", WAITED), _init_status("fetch", running)],
    }
    set_pod_status(kubectl, namespace, name_of(pod), kubelet)

    stopped = eventually(
        lambda: (
            (p := get(kubectl, namespace, "pod", name_of(pod)))["spec"].get("activeDeadlineSeconds")
            == 1
            and p
        ),
        timeout=90,
    )
    assert stopped["metadata"]["annotations"]["initpipeline.io/deadline-exceeded"] == "fetch"
    assert stopped["status"]["phase"] == "Pending"  # the kubelet's to stop, not the operator's
    st = eventually(lambda: (s := status(kubectl, namespace)) and ready(s)[2] == "True" and s)
    message = f"step 2/2 fetch: {DEADLINE.format(15)}"
    assert ready(st) == ("DeadlineExceeded", message, "True")

    # The kubelet stops it: the Pod Failed, fetch killed.
    killed = ended(137, "2026-11-25T10:00:04Z", "2026-11-25T10:00:16Z")
    kubelet["phase"] = "Failed"
    kubelet["reason"] = "DeadlineExceeded"
    kubelet["message"] = "Pod was active on the node longer than the specified deadline"
    kubelet["initContainerStatuses"][1] = _init_status("fetch", killed)
    set_pod_status(kubectl, namespace, name_of(pod), kubelet)
    st = eventually(
        lambda: (s := status(kubectl, namespace))["steps"][1].get("exitCode") == 137 and s
    )
    assert ready(st) == ("DeadlineExceeded", message, "True")
    assert st["steps"][1]["state"] == "Failed"


def test_a_deadline_ends_an_attempt_and_the_last_one_fails_the_pipeline(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, namespace, pipeline(activeDeadlineSeconds=3, retries=1))
    first = eventually(lambda: attempt_pod(kubectl, namespace, 1))
    second = eventually(lambda: attempt_pod(kubectl, namespace, 2), timeout=90)

    st = eventually(lambda: (s := status(kubectl, namespace)) and ready(s)[2] == "True" and s)
    assert ready(st) == (
        "DeadlineExceeded",
        f"step 1/2 wait-db: {DEADLINE.format(3)}; attempt 2/2, no retries left",
        "True",
    )
    [entry] = st["retriesStatus"]
    assert (entry["podName"], entry["reason"], entry["message"]) == (
        name_of(first),
        "DeadlineExceeded",
        f"step 1/2 wait-db: {DEADLINE.format(3)}",
    )
    assert sorted(name_of(p) for p in pods(kubectl, namespace)) == sorted(
        [name_of(first), name_of(second)]
    )
