"""The fault tier's checks on what watches recorded: a status that went backwards, a Pod that
the kubelet started over (its pipeline's status rightly goes back with it)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.convergence import backwards, history, started_over

pytestmark = pytest.mark.unit

DONE = {"terminated": {"exitCode": 0, "reason": "Completed"}}
RUNNING = {"running": {"startedAt": "2026-12-06T08:00:00Z"}}
WAITING = {"waiting": {"reason": "PodInitializing"}}


def pod(version: int, *states: dict[str, Any], uid: str = "uid-1") -> tuple[str, dict[str, Any]]:
    return (
        "MODIFIED",
        {
            "metadata": {
                "name": "p-a1b2c-0",
                "uid": uid,
                "resourceVersion": str(version),
                "labels": {"initpipeline.io/pipeline": "p"},
            },
            "status": {
                "initContainerStatuses": [
                    {"name": f"step-{n}", "state": state, "restartCount": 0}
                    for n, state in enumerate(states)
                ]
            },
        },
    )


def pipeline(version: int, progress: str, ready: bool = False) -> tuple[str, dict[str, Any]]:
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    return (
        "MODIFIED",
        {
            "metadata": {"name": "p", "generation": 1, "resourceVersion": str(version)},
            "status": {
                "observedGeneration": 1,
                "progress": progress,
                "conditions": [condition],
                "steps": [{"name": "wait-dep", "state": "Succeeded"}],
            },
        },
    )


def test_fewer_steps_done_than_before_is_a_status_gone_backwards() -> None:
    events = [pipeline(1, "1/2"), pipeline(2, "2/2", ready=True), pipeline(3, "0/2")]
    assert backwards(events) == ["p: 0/2 ready=False after 2"]
    assert backwards(events, frozenset({"p"})) == []


def test_a_pod_whose_init_containers_ran_again_started_over() -> None:
    pods = [pod(1, RUNNING, WAITING), pod(2, DONE, DONE), pod(3, RUNNING, WAITING)]
    assert started_over(pods) == {"p"}


def test_a_pod_that_only_moves_on_or_is_replaced_did_not_start_over() -> None:
    moving_on = [pod(1, WAITING, WAITING), pod(2, RUNNING, WAITING), pod(3, DONE, RUNNING)]
    assert started_over(moving_on) == frozenset()
    # A new Pod (another uid) starts from nothing: that is not this Pod starting over.
    replaced = [
        pod(1, DONE, DONE),
        ("DELETED", pod(2, DONE, DONE)[1]),
        pod(3, WAITING, WAITING, uid="uid-2"),
    ]
    assert started_over(replaced) == frozenset()


def test_the_history_interleaves_statuses_and_pods_by_resource_version() -> None:
    pipelines = [pipeline(2, "1/2"), pipeline(4, "0/2")]
    pods = [pod(1, DONE, RUNNING), pod(3, RUNNING, WAITING)]
    assert history(pipelines, pods, "p").splitlines() == [
        "1 pod MODIFIED p-a1b2c-0 uid=uid-1 step-0=terminated/0 step-1=running/0",
        "2 pipeline MODIFIED 1/2 wait-dep=Succeeded",
        "3 pod MODIFIED p-a1b2c-0 uid=uid-1 step-0=running/0 step-1=waiting/0",
        "4 pipeline MODIFIED 0/2 wait-dep=Succeeded",
    ]
