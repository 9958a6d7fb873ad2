"""`initpipeline describe`: one pipeline drawn, exactly, from fixed inputs and a fixed now."""

# ruff: noqa: E501  (the expected lines are as wide as what the terminal shows)

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from initpipeline.describe import describe, duration

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 10, 1, 0, tzinfo=UTC)
IMAGE = "docker.io/library/busybox:1.36.1-musl"


def condition(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-11-25T10:00:00Z",
    }


PIPELINE: dict[str, Any] = {
    "apiVersion": "initpipeline.io/v1alpha1",
    "kind": "InitPipeline",
    "metadata": {"name": "api", "namespace": "shop", "uid": "u-api"},
    "spec": {
        "steps": [
            {"name": "wait-db", "waitFor": [{"tcp": "db:5432"}]},
            {"name": "migrate", "run": {"image": IMAGE}},
            {"name": "warm", "run": {"image": IMAGE}},
        ],
        "template": {"spec": {"containers": [{"name": "app", "image": IMAGE}]}},
    },
}

RUNNING_STATUS: dict[str, Any] = {
    "ready": "0/1",
    "progress": "1/3",
    "currentStep": "migrate",
    "message": "running step migrate",
    "pods": [
        {"name": "api-abc12-0", "phase": "Pending", "ready": False,
         "currentStep": "migrate", "restarts": 0},
    ],
    "steps": [
        {"name": "wait-db", "type": "WaitFor", "state": "Succeeded", "exitCode": 0,
         "startedAt": "2026-11-25T10:00:02Z", "finishedAt": "2026-11-25T10:00:32Z",
         "message": "db:5432 reachable after 30s"},
        {"name": "migrate", "type": "Run", "state": "Running",
         "startedAt": "2026-11-25T10:00:33Z"},
        {"name": "warm", "type": "Run", "state": "Pending"},
    ],
    "conditions": [
        condition("Ready", "False", "Initializing", "running step migrate"),
        condition("Reconciling", "True", "Initializing", "running step migrate"),
        condition("Stalled", "False", "Initializing"),
    ],
}  # fmt: skip

POD: dict[str, Any] = {
    "metadata": {
        "name": "api-abc12-0",
        "uid": "u-pod",
        "creationTimestamp": "2026-11-25T10:00:00Z",
    },
    "spec": {"nodeName": "node-1"},
    "status": {"phase": "Pending"},
}


def event(reason: str, message: str, at: str, kind: str = "InitPipeline", name: str = "api",
          count: int = 1, type_: str = "Normal") -> dict[str, Any]:  # fmt: skip
    return {
        "metadata": {"name": f"{name}.{reason}"},
        "involvedObject": {"kind": kind, "name": name},
        "type": type_,
        "reason": reason,
        "message": message,
        "lastTimestamp": at,
        "count": count,
    }


EVENTS = [
    event("StepStarted", "step migrate started", "2026-11-25T10:00:34Z"),
    event("Scheduled", "Successfully assigned shop/api-abc12-0 to node-1",
          "2026-11-25T10:00:01Z", kind="Pod", name="api-abc12-0"),
    event("StepSucceeded", "step wait-db succeeded", "2026-11-25T10:00:33Z", count=2),
]  # fmt: skip


def with_status(status: dict[str, Any] | None) -> dict[str, Any]:
    body = copy.deepcopy(PIPELINE)
    if status is not None:
        body["status"] = copy.deepcopy(status)
    return body


def test_a_running_step_is_drawn_up_to_now_on_the_shared_axis() -> None:
    lines = describe(with_status(RUNNING_STATUS), [POD], EVENTS, NOW, width=20)
    assert lines == [
        "InitPipeline shop/api",
        "Status:  Initializing: running step migrate",
        "Ready:   0/1 pods, 1/3 steps, on step migrate",
        "",
        "Pods:",
        "  NAME         PHASE    READY  STEP     RESTARTS  AGE    NODE",
        "  api-abc12-0  Pending  false  migrate  0         1m00s  node-1",
        "",
        "Steps:",
        "  STEP     STATE      START  DURATION  0s        30s    1m00s  OUTCOME",
        "  wait-db  Succeeded  +2s    30s       | ==========         |  db:5432 reachable after 30s",
        "  migrate  Running    +33s   27s       |           -------->|",
        "  warm     Pending    -      -         |                    |",
        "",
        "Conditions:",
        "  TYPE         STATUS  REASON        AGE    MESSAGE",
        "  Ready        False   Initializing  1m00s  running step migrate",
        "  Reconciling  True    Initializing  1m00s  running step migrate",
        "  Stalled      False   Initializing  1m00s",
        "",
        "Events:",
        "  LAST SEEN  TYPE    REASON         OBJECT            MESSAGE",
        "  59s        Normal  Scheduled      pod/api-abc12-0   Successfully assigned shop/api-abc12-0 to node-1",
        "  27s (x2)   Normal  StepSucceeded  initpipeline/api  step wait-db succeeded",
        "  26s        Normal  StepStarted    initpipeline/api  step migrate started",
    ]  # fmt: skip


def test_colour_paints_the_state_and_the_bar_only() -> None:
    plain = describe(with_status(RUNNING_STATUS), [POD], EVENTS, NOW, width=20)
    coloured = describe(with_status(RUNNING_STATUS), [POD], EVENTS, NOW, width=20, colour=True)
    assert coloured[10:13] == [
        "  wait-db  \x1b[32mSucceeded\x1b[0m  +2s    30s       | \x1b[32m==========\x1b[0m         |"
        "  db:5432 reachable after 30s",
        "  migrate  \x1b[33mRunning\x1b[0m    +33s   27s       |           \x1b[33m-------->\x1b[0m|",
        "  warm     Pending    -      -         |                    |",
    ]  # fmt: skip
    assert [line for i, line in enumerate(coloured) if i not in (10, 11)] == [
        line for i, line in enumerate(plain) if i not in (10, 11)
    ]
    assert "\x1b" not in "".join(plain)


def test_a_failed_step_shows_its_exit_code_and_the_axis_ends_with_it() -> None:
    """Under restartPolicy Never nothing runs after a failed step: the axis stops there."""
    status = copy.deepcopy(RUNNING_STATUS)
    status["steps"][1] = {
        "name": "migrate", "type": "Run", "state": "Failed", "exitCode": 3, "reason": "Error",
        "message": "relation users exists", "startedAt": "2026-11-25T10:00:33Z",
        "finishedAt": "2026-11-25T10:00:42Z", "restartCount": 2,
    }  # fmt: skip
    status["conditions"][0] = condition("Ready", "False", "StepFailed", "step migrate failed")
    lines = describe(with_status(status), [POD], [], NOW, width=21)
    assert lines[1] == "Status:  StepFailed: step migrate failed"
    assert lines[9:13] == [
        "  STEP     STATE      START  DURATION  0s        21s       42s  OUTCOME",
        "  wait-db  Succeeded  +2s    30s       | ===============     |  db:5432 reachable after 30s",
        "  migrate  Failed     +33s   9s        |                xxxxx|  exit 3 Error: relation users exists (2 restarts)",
        "  warm     Pending    -      -         |                     |",
    ]  # fmt: skip
    assert lines[-1] == "Events: none"


def test_a_pipeline_without_status_lists_the_spec_steps_as_pending() -> None:
    lines = describe(with_status(None), [], [], NOW)
    assert lines == [
        "InitPipeline shop/api",
        "Status:  not reported yet (the operator has not written one)",
        "",
        "Pods: none",
        "",
        "Steps:",
        "  STEP     STATE    START  DURATION  OUTCOME",
        "  wait-db  Pending  -      -",
        "  migrate  Pending  -      -",
        "  warm     Pending  -      -",
        "",
        "Conditions: none",
        "",
        "Events: none",
    ]


def test_waiting_on_unknown_states_and_a_spec_that_does_not_parse() -> None:
    status = copy.deepcopy(RUNNING_STATUS)
    status["steps"] = [
        {"name": "wait-db", "type": "WaitFor", "state": "Running",
         "startedAt": "2026-11-25T10:00:30Z",
         "waitingOn": ["tcp db:5432: connection refused", "InitPipeline db (Ready): no Ready condition yet"]},
        {"name": "migrate", "type": "Run", "state": "Sleeping"},
    ]  # fmt: skip
    lines = describe(with_status(status), [], [], NOW, width=10)
    assert lines[6:15] == [
        "Steps:",
        "  STEP     STATE     START  DURATION  0s   15s 30s  OUTCOME",
        "  wait-db  Running   +0s    30s       |--------->|",
        "  migrate  Sleeping  -      -         |          |",
        "",
        "Waiting on:",
        "  wait-db: tcp db:5432: connection refused",
        "  wait-db: InitPipeline db (Ready): no Ready condition yet",
        "",
    ]
    broken = with_status(None)
    broken["spec"]["steps"] = "not a list"
    assert describe(broken, [], [], NOW) == [
        "InitPipeline shop/api",
        "Status:  not reported yet (the operator has not written one)",
        "",
        "Pods: none",
        "",
        "Steps: none (the spec does not parse)",
        "",
        "Conditions: none",
        "",
        "Events: none",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (-3, "0s"), (0, "0s"), (59.9, "59s"), (60, "1m00s"), (3599, "59m59s"),
     (3600, "1h00m"), (86399, "23h59m"), (90000, "1d1h")],
)  # fmt: skip
def test_duration(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_failed_attempts_are_listed_under_the_one_now_running() -> None:
    status = copy.deepcopy(RUNNING_STATUS)
    status["attempt"] = "2/3"
    status["retriesStatus"] = [
        {"replica": 0, "attempt": 1, "podName": "api-abc12-0", "revision": "abc12",
         "createdAt": "2026-11-25T09:59:00Z", "finishedAt": "2026-11-25T09:59:30Z",
         "reason": "DeadlineExceeded",
         "message": "step 1/3 wait-db: start-up not done within 30s of the pod's creation (spec.activeDeadlineSeconds)",
         "steps": []},
    ]  # fmt: skip
    lines = describe(with_status(status), [POD], [], NOW)
    start = lines.index("Attempts: now 2/3, failed:")
    assert lines[start : start + 4] == [
        "Attempts: now 2/3, failed:",
        "  ATTEMPT  POD          REASON            DURATION  ENDED      MESSAGE",
        "  1        api-abc12-0  DeadlineExceeded  30s       1m30s ago  step 1/3 wait-db: start-up not done within 30s of the pod's creation (spec.activeDeadlineSeconds)",
        "",
    ]
    assert not any(
        line.startswith("Attempts")
        for line in describe(with_status(RUNNING_STATUS), [POD], [], NOW)
    )
