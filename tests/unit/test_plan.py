"""What the operator does to a pipeline's Pods: the next attempt of a failed Pod while
spec.retries allows, and stopping a start-up past spec.activeDeadlineSeconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from initpipeline.names import (
    ATTEMPT_LABEL,
    DEADLINE_ANNOTATION,
    NUDGED_ANNOTATION,
    RELEASED_ANNOTATION,
)
from initpipeline.plan import (
    NUDGE_AFTER_SECONDS,
    Expiry,
    PodPlan,
    deadlines,
    nudge_value,
    plan_pods,
)
from initpipeline.render import pod_name, render_pod
from initpipeline.spec import Pipeline, parse_pipeline

pytestmark = pytest.mark.unit

IMAGE = "busybox"
CREATED = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


def pipeline(policy: str = "Never", **spec: Any) -> Pipeline:
    return parse_pipeline(
        {
            "metadata": {"namespace": "shop", "name": "migrate", "uid": "u1"},
            "spec": {
                "steps": [
                    {"name": "wait-db", "waitFor": [{"tcp": "db:5432"}]},
                    {"name": "schema", "run": {"image": "app:1", "command": ["migrate"]}},
                ],
                "template": {
                    "spec": {
                        "restartPolicy": policy,
                        "containers": [{"name": "app", "image": "app:1"}],
                    }
                },
                **spec,
            },
        }
    )


def pod(
    pipe: Pipeline, attempt: int = 1, phase: str = "Pending", index: int = 0, **status: Any
) -> dict[str, Any]:
    """The Pod the operator created for `attempt` of replica `index`, as the API returns it."""
    found = render_pod(pipe, index, IMAGE, attempt)
    found["metadata"]["uid"] = f"uid-{index}-{attempt}"
    found["metadata"]["resourceVersion"] = "7"
    found["metadata"]["creationTimestamp"] = "2026-11-25T10:00:00Z"
    found["status"] = {"phase": phase, **status}
    return found


def names(pods: list[Any]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


# --------------------------------------------------------------------------- retries


def test_a_failed_pod_with_retries_left_is_kept_and_followed_by_the_next_attempt() -> None:
    pipe = pipeline(retries=2)

    plan = plan_pods(pipe, [pod(pipe, 1, "Failed")], IMAGE)

    [retry] = plan.create
    assert retry["metadata"]["name"] == pod_name(pipe, 0) + "-retry1"
    assert retry["metadata"]["labels"][ATTEMPT_LABEL] == "2"
    assert plan.delete == []


def test_the_first_attempt_carries_no_attempt_label() -> None:
    pipe = pipeline(retries=2)

    [first] = plan_pods(pipe, [], IMAGE).create

    assert first["metadata"]["name"] == pod_name(pipe, 0)
    assert ATTEMPT_LABEL not in first["metadata"]["labels"]


def test_no_attempt_follows_the_last_one_nor_a_pod_that_succeeded() -> None:
    pipe = pipeline(retries=1)
    failed = [pod(pipe, 1, "Failed"), pod(pipe, 2, "Failed")]

    assert plan_pods(pipe, failed, IMAGE) == PodPlan()  # nothing to do
    assert plan_pods(pipe, [pod(pipe, 1, "Succeeded")], IMAGE).create == []
    assert plan_pods(pipeline(), [pod(pipe, 1, "Failed")], IMAGE).create == []  # no retries


def test_raising_retries_after_the_last_attempt_failed_starts_another() -> None:
    pipe = pipeline(retries=1)
    failed = [pod(pipe, 1, "Failed"), pod(pipe, 2, "Failed")]

    plan = plan_pods(pipeline(retries=2), failed, IMAGE)  # retries is outside the spec hash

    assert names(plan.create) == [pod_name(pipe, 0) + "-retry2"]


def test_a_deadline_ends_the_attempt_before_the_kubelet_stopped_the_pod() -> None:
    pipe = pipeline(retries=1, activeDeadlineSeconds=60)
    running = pod(pipe, 1, "Running")
    running["metadata"]["annotations"] = {DEADLINE_ANNOTATION: "wait-db"}

    assert names(plan_pods(pipe, [running], IMAGE).create) == [pod_name(pipe, 0) + "-retry1"]


def test_a_deleted_attempt_is_created_again_and_earlier_ones_stay() -> None:
    pipe = pipeline(retries=2)
    first = pod(pipe, 1, "Failed")

    plan = plan_pods(pipe, [first], IMAGE)  # attempt 2 was deleted: it is due again

    assert names(plan.create) == [pod_name(pipe, 0) + "-retry1"]
    gone = pod(pipe, 2, "Running")
    gone["metadata"]["deletionTimestamp"] = "2026-11-25T10:05:00Z"
    assert plan_pods(pipe, [first, gone], IMAGE).create == []  # not before it is gone


def test_a_spec_change_or_scaling_down_deletes_every_attempt() -> None:
    recreate = {"type": "Recreate"}
    old = pipeline(retries=2, strategy=recreate)
    attempts = [pod(old, 1, "Failed"), pod(old, 2, "Running")]
    new = pipeline(retries=2, activeDeadlineSeconds=5)  # outside the spec hash: same revision
    assert plan_pods(new, attempts, IMAGE).delete == []

    changed = parse_pipeline(
        {**_body(old), "spec": {**_body(old)["spec"], "template": _template("app:2")}}
    )
    plan = plan_pods(changed, attempts, IMAGE)
    assert names(plan.delete) == names(attempts)
    assert plan.create == []  # Recreate: once the old attempts are gone
    assert names(plan_pods(changed, [], IMAGE).create) == [pod_name(changed, 0)]

    scaled = pipeline(retries=2, replicas=0)
    assert names(plan_pods(scaled, attempts, IMAGE).delete) == names(attempts)


def test_a_rolling_spec_change_deletes_the_failed_attempt_first() -> None:
    old = pipeline(retries=2)  # the default strategy: RollingUpdate, 25% / 25%
    attempts = [pod(old, 1, "Failed"), pod(old, 2, "Running")]
    changed = parse_pipeline(
        {**_body(old), "spec": {**_body(old)["spec"], "template": _template("app:2")}}
    )
    # One replica: maxSurge 1, maxUnavailable 0. Two Pods exist (1 + 1): none is created;
    # the failed attempt serves nothing and goes first.
    plan = plan_pods(changed, attempts, IMAGE)
    assert (names(plan.delete), plan.create) == ([names(attempts)[0]], [])
    # Then the new Pod; the running attempt stays until the new one is available.
    plan = plan_pods(changed, attempts[1:], IMAGE)
    assert (plan.delete, names(plan.create)) == ([], [pod_name(changed, 0)])
    done = pod(changed, 1, "Succeeded")
    assert names(plan_pods(changed, [attempts[1], done], IMAGE).delete) == names(attempts[1:])


def _body(pipe: Pipeline) -> dict[str, Any]:
    return {
        "metadata": {"namespace": pipe.namespace, "name": pipe.name, "uid": pipe.uid},
        "spec": pipe.spec.model_dump(by_alias=True, exclude_none=True),
    }


def _template(image: str) -> dict[str, Any]:
    return {"spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": image}]}}


def test_under_always_a_failed_pod_is_replaced_unless_its_deadline_fired() -> None:
    pipe = pipeline("Always", activeDeadlineSeconds=60)
    evicted = pod(pipe, 1, "Failed")
    assert names(plan_pods(pipe, [evicted], IMAGE).delete) == names([evicted])

    evicted["metadata"]["annotations"] = {DEADLINE_ANNOTATION: "wait-db"}
    assert plan_pods(pipe, [evicted], IMAGE) == PodPlan()  # kept, not replaced


# --------------------------------------------------------------------------- deadlines


def test_a_start_up_within_its_deadline_is_looked_at_again_when_it_ends() -> None:
    pipe = pipeline(activeDeadlineSeconds=60)

    found = deadlines(pipe, [pod(pipe)], CREATED + timedelta(seconds=20))

    assert (found.expired, found.next_in) == ([], 40.0)
    assert deadlines(pipeline(), [pod(pipe)], CREATED).next_in is None  # no deadline


def _running_schema(pipe: Pipeline, node: str = "") -> dict[str, Any]:
    """A Pod whose wait-db step succeeded and whose schema step runs (on `node`)."""
    found = pod(pipe, phase="Pending", initContainerStatuses=[
        {"name": "wait-db", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
        {"name": "schema", "restartCount": 0, "state": {"running": {}}},
    ])  # fmt: skip
    if node:
        found["spec"]["nodeName"] = node
    return found


def test_a_scheduled_pod_past_its_deadline_gets_its_step_recorded_and_is_stopped() -> None:
    pipe = pipeline(activeDeadlineSeconds=60)
    late = _running_schema(pipe, "node-1")

    found = deadlines(pipe, [late], CREATED + timedelta(seconds=60))

    assert found == deadlines(pipe, [late], CREATED + timedelta(hours=1))
    assert found.expired == [
        Expiry(
            late,
            patch={
                "metadata": {
                    "resourceVersion": "7",
                    "annotations": {DEADLINE_ANNOTATION: "schema"},
                },
                "spec": {"activeDeadlineSeconds": 1},
            },
            unscheduled=None,
        )
    ]
    assert found.next_in is None


def test_an_unscheduled_pod_past_its_deadline_is_also_marked_failed() -> None:
    pipe = pipeline(activeDeadlineSeconds=60)

    [expiry] = deadlines(pipe, [pod(pipe)], CREATED + timedelta(seconds=61)).expired

    assert expiry.patch["metadata"]["annotations"] == {DEADLINE_ANNOTATION: "wait-db"}
    assert expiry.unscheduled == {
        "phase": "Failed",
        "reason": "DeadlineExceeded",
        "message": "start-up not done within 60s of the pod's creation "
        "(spec.activeDeadlineSeconds); no node had started it",
    }


def test_a_fired_deadline_is_enforced_until_the_pod_is_stopped() -> None:
    pipe = pipeline(activeDeadlineSeconds=60)
    fired = _running_schema(pipe, "node-1")
    fired["metadata"]["annotations"] = {DEADLINE_ANNOTATION: "schema"}
    later = CREATED + timedelta(seconds=90)
    # The annotation was written, the activeDeadlineSeconds not (yet): again, same step, also
    # once the deadline is gone from the spec.
    [again] = deadlines(pipeline(), [fired], later).expired
    assert again.patch["metadata"]["annotations"] == {DEADLINE_ANNOTATION: "schema"}

    fired["spec"]["activeDeadlineSeconds"] = 1  # the kubelet does the rest
    assert deadlines(pipe, [fired], later).expired == []
    fired["status"]["phase"] = "Failed"
    fired["spec"]["nodeName"] = ""
    assert deadlines(pipe, [fired], later).expired == []  # stopped


def test_the_deadline_does_not_bound_the_app_once_every_step_is_done() -> None:
    pipe = pipeline("Always", activeDeadlineSeconds=60)
    started = pod(pipe, phase="Running", initContainerStatuses=[
        {"name": name, "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}
        for name in ("wait-db", "schema")
    ])  # fmt: skip

    found = deadlines(pipe, [started], CREATED + timedelta(days=3))

    assert (found.expired, found.next_in) == ([], None)


# --------------------------------------------------------------------------- the release's nudge


def released_pod(released: str, state: str, nudged: str | None = None) -> dict[str, Any]:
    annotations = {RELEASED_ANNOTATION: released}
    if nudged is not None:
        annotations[NUDGED_ANNOTATION] = nudged
    return {
        "metadata": {"name": "migrate-a1-0", "annotations": annotations},
        "status": {"initContainerStatuses": [{"name": "wait-db", "state": {state: {}}}]},
    }


def test_a_released_step_still_running_a_while_later_is_nudged_once() -> None:
    pod = released_pod("wait-db", "running")
    assert nudge_value(pod, NUDGE_AFTER_SECONDS) == "wait-db"
    assert nudge_value(pod, None) == "wait-db"  # released by an operator since restarted
    assert nudge_value(released_pod("wait-db", "running", nudged="wait-db"), None) is None
    # a later release is nudged again, once
    assert nudge_value(released_pod("wait-db,wait-cache", "running", "wait-db"), 9.0) == (
        "wait-db,wait-cache"
    )


def test_no_nudge_right_after_the_release_nor_once_the_step_ended() -> None:
    assert nudge_value(released_pod("wait-db", "running"), NUDGE_AFTER_SECONDS / 2) is None
    assert nudge_value(released_pod("wait-db", "terminated"), 60.0) is None
    assert nudge_value(released_pod("other-step", "running"), 60.0) is None
    assert nudge_value({"metadata": {"name": "p"}, "status": {}}, 60.0) is None
