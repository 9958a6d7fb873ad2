"""What to do to the Pods of one pipeline: pure decisions from the spec and the Pods seen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from initpipeline.fields import as_mapping, parse_time
from initpipeline.names import (
    DEADLINE_ANNOTATION,
    NUDGED_ANNOTATION,
    RELEASED_ANNOTATION,
    SPEC_HASH_LABEL,
)
from initpipeline.render import (
    once_job_name,
    once_steps,
    pod_name,
    render_job,
    render_pod,
    spec_hash,
    step_targets,
)
from initpipeline.revisions import attempt_of, is_current, replica_of, revision_of
from initpipeline.rollout import replace_pods
from initpipeline.settings import DEFAULT_RENDER_IMAGE
from initpipeline.spec import SHARD_LABEL, Pipeline, PipelineSpec
from initpipeline.status.held import held_revision
from initpipeline.status.pods import current_pods as pod_views
from initpipeline.status.states import Reason
from initpipeline.status.text import deadline_exceeded

Pod = Mapping[str, Any]

# A released wait container still running this long after its release is nudged, once.
NUDGE_AFTER_SECONDS = 5.0


@dataclass(frozen=True)
class OwnWrites:
    """The Pods the operator created (name -> the API server's answer) and deleted (uids)
    that its cache may not show yet."""

    created: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)


def with_own_writes(
    pods: Sequence[dict[str, Any]], writes: OwnWrites, seen_version: int | None, now: str
) -> tuple[list[dict[str, Any]], OwnWrites]:
    """The Pods as the operator's own writes left them, and the writes the cache still lags
    behind. A rollout counts Pods: one decided on a cache that still shows a Pod it deleted
    (as live) or lacks one it created would delete or create one too many.

    A created Pod is added until the cache holds its name, or has seen a version at least
    the answer's (`seen_version`: it was created and is gone already); a deleted one is
    marked as being deleted (deletionTimestamp `now`) until the cache shows it so, or not
    at all."""
    names = {pod["metadata"]["name"] for pod in pods}
    created = {
        name: answer
        for name, answer in writes.created.items()
        if name not in names and not _seen(answer, seen_version)
    }
    live = {pod["metadata"].get("uid") for pod in pods if not _deleting(pod)}
    deleted = writes.deleted & live
    view = [
        {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": now}}
        if pod["metadata"].get("uid") in deleted
        else pod
        for pod in pods
    ]
    return [*view, *created.values()], OwnWrites(created, deleted)


def _seen(pod: Pod, seen_version: int | None) -> bool:
    version = str(as_mapping(pod.get("metadata")).get("resourceVersion", ""))
    return seen_version is not None and version.isdigit() and int(version) <= seen_version


@dataclass(frozen=True)
class PodPlan:
    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[Pod] = field(default_factory=list)


def _deleting(pod: Pod) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _annotations(pod: Pod) -> Mapping[str, Any]:
    return as_mapping(as_mapping(pod.get("metadata")).get("annotations"))


def attempt_failed(pod: Pod) -> bool:
    """The Pod's attempt is over and failed: phase Failed, or its start-up deadline fired
    (the kubelet may still be stopping it)."""
    phase = as_mapping(pod.get("status")).get("phase")
    return phase == "Failed" or DEADLINE_ANNOTATION in _annotations(pod)


def current_pods(pipeline: Pipeline, pods: Sequence[Pod]) -> list[Pod]:
    """Pods of the current spec revision that are not on their way out, nor replaced by a
    later attempt."""
    return [view.raw for view in pod_views(pipeline, pods, spec_hash(pipeline.spec)).current]


def owns(pipeline: Pipeline, pod: Pod) -> bool:
    owners = as_mapping(pod.get("metadata")).get("ownerReferences") or ()
    return any(owner.get("uid") == pipeline.uid for owner in owners)


def shard_handover(pipeline: Pipeline, pod: Pod) -> dict[str, Any] | None:
    """The merge patch that brings a Pod of this pipeline into the pipeline's shard, or None
    when it is in it. A Pod created before the pipeline moved to another shard (its
    SHARD_LABEL changed) still carries the old shard's label, which the new shard's operator
    does not follow: it only learns of the Pod when creating it again is refused."""
    labels = as_mapping(as_mapping(pod.get("metadata")).get("labels"))
    if labels.get(SHARD_LABEL, "") == pipeline.shard:
        return None
    return {"metadata": {"labels": {SHARD_LABEL: pipeline.shard or None}}}


def _next_attempt(spec: PipelineSpec, attempts: Sequence[Pod]) -> int:
    """The attempt replica should be at, from its Pods of the current revision that are not
    being deleted: the latest, or the one after it when it failed and retries are left."""
    if not attempts:
        return 1
    latest = max(attempts, key=attempt_of)
    number = attempt_of(latest)
    retrying = spec.retries is not None and spec.restart_policy == "Never"
    if retrying and number < spec.attempts and attempt_failed(latest):
        return number + 1
    return number


def plan_pods(
    pipeline: Pipeline,
    pods: Sequence[Pod],
    step_image: str,
    *,
    render_image: str = DEFAULT_RENDER_IMAGE,
    image_volumes: bool = False,
) -> PodPlan:
    """Create the missing replicas (the next attempt of a failed one while spec.retries
    allows) and replace the Pods of old revisions, both as spec.strategy allows in this pass
    (`rollout`); delete extra replicas and, when the pipeline restarts its Pods
    (restartPolicy Always), Pods the node gave up on. Failed attempts that a later one
    replaced are kept for their logs; so is a Pod whose start-up deadline fired."""
    spec = pipeline.spec
    revision = spec_hash(spec)
    wanted: dict[str, tuple[int, int]] = {}  # name -> (replica, attempt)
    kept: set[str] = set()  # earlier attempts of a wanted replica
    for index in range(0 if spec.suspend else spec.replicas):
        attempts = [
            pod
            for pod in pods
            if is_current(pipeline, pod, revision) and replica_of(pod) == str(index)
        ]
        attempt = _next_attempt(spec, attempts)
        wanted[pod_name(pipeline, index, attempt)] = (index, attempt)
        kept.update(pod["metadata"]["name"] for pod in attempts if attempt_of(pod) < attempt)
    keep_finished = spec.restart_policy != "Always"  # Never/OnFailure Pods run to completion
    delete: list[Pod] = []
    updated: list[Pod] = []
    old: list[Pod] = []
    leaving = old_leaving = 0
    present = set()
    for pod in pods:
        name = pod["metadata"]["name"]
        present.add(name)
        if _deleting(pod):
            leaving += 1
            old_leaving += revision_of(pod) != revision
        elif revision_of(pod) != revision:
            old.append(pod)
        elif name in kept:
            continue
        elif name not in wanted or (
            not keep_finished
            and as_mapping(pod.get("status")).get("phase") in ("Succeeded", "Failed")
            and DEADLINE_ANNOTATION not in _annotations(pod)
        ):
            delete.append(pod)
        else:
            updated.append(pod)
    missing = [name for name in wanted if name not in present]
    replacement = replace_pods(
        spec,
        missing=len(missing),
        updated=updated,
        old=old,
        leaving=leaving + len(delete),
        old_leaving=old_leaving,
    )
    return PodPlan(
        create=[
            render_pod(
                pipeline,
                wanted[name][0],
                step_image,
                wanted[name][1],
                render_image=render_image,
                image_volumes=image_volumes,
            )
            for name in missing[: replacement.create]
        ],
        delete=delete + replacement.delete,
    )


@dataclass(frozen=True)
class JobPlan:
    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[Mapping[str, Any]] = field(default_factory=list)


def plan_jobs(
    pipeline: Pipeline,
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Pod],
    previous: Mapping[str, Any] | None,
) -> JobPlan:
    """The Jobs of the `once` steps: `jobs` are the pipeline's (ONCE_LABEL), of any revision.

    A step's Job for the current revision is created once a current Pod has finished every
    step before it (so the Job starts after what the Pods wait for, as the step would in a
    Pod), unless it exists or its Job already completed for this revision
    (`status.heldTargets`: a Job deleted after it succeeded is not run again). Jobs of other
    revisions, and of steps that are no longer `once` steps, are deleted (with their Pods):
    the Pods of an old revision go too, and a migration of an old spec must not run on.
    Not created while suspended.
    """
    revision = spec_hash(pipeline.spec)
    wanted = {once_job_name(pipeline, step): step for step in once_steps(pipeline)}
    plan = JobPlan()
    present = set()
    for job in jobs:
        meta = as_mapping(job.get("metadata"))
        present.add(meta.get("name"))
        stale = as_mapping(meta.get("labels")).get(SPEC_HASH_LABEL) != revision
        if not _deleting(job) and (stale or meta.get("name") not in wanted):
            plan.delete.append(job)
    if pipeline.spec.suspend:
        return plan
    views = pod_views(pipeline, pods, revision).current
    for name, step in wanted.items():
        index = pipeline.spec.steps.index(step)
        label = step_targets(pipeline, step)[0].describe()
        if name in present or held_revision(previous, step.name, label) == revision:
            continue
        if any(all(v.finished for v in view.steps[:index]) for view in views):
            plan.create.append(render_job(pipeline, step))
    return plan


@dataclass(frozen=True)
class Expiry:
    """A Pod whose start-up outlived spec.activeDeadlineSeconds, and how to stop it.

    patch: a merge patch of the Pod: DEADLINE_ANNOTATION (the step it was on) and the Pod's
      own activeDeadlineSeconds set to 1, on which the kubelet stops it (phase Failed, reason
      DeadlineExceeded; the API server allows lowering it on a running Pod). With the
      resourceVersion the decision was made on: a Pod that changed meanwhile (finished its
      steps, re-created under the same name) is refused with 409 and looked at again.
    unscheduled: for a Pod no node has yet, the status to write as Failed (the scheduler
      ignores a failed Pod), else None. Written only if the Pod is still unscheduled (the
      caller sends it with the resourceVersion its patch answered).
    """

    pod: Pod
    patch: dict[str, Any]
    unscheduled: dict[str, Any] | None


@dataclass(frozen=True)
class Deadlines:
    expired: list[Expiry] = field(default_factory=list)
    # Seconds until the next start-up deadline of a current Pod; None: none pending.
    next_in: float | None = None


def deadlines(pipeline: Pipeline, pods: Sequence[Pod], now: datetime) -> Deadlines:
    """The current Pods whose start-up (from the Pod's creation until every step is done)
    outlived spec.activeDeadlineSeconds and are not stopped yet, and when the next one will.

    A Pod whose deadline fired stays expired (also if the spec's deadline is removed or
    raised later) until it is stopped: on a node, its activeDeadlineSeconds is 1; without
    one, its phase is Failed. Finished Pods, and Pods whose steps are all done, are left
    alone: the deadline does not bound the app's own run.
    """
    spec = pipeline.spec
    seconds = spec.active_deadline_seconds
    expired, waits = [], []
    for view in pod_views(pipeline, pods, spec_hash(spec)).current:
        pod = view.raw
        if view.phase in ("Succeeded", "Failed"):
            continue
        step = _annotations(pod).get(DEADLINE_ANNOTATION)
        if step is None:
            created = parse_time(as_mapping(pod.get("metadata")).get("creationTimestamp"))
            if seconds is None or view.current is None or created is None:
                continue
            left = seconds - (now - created).total_seconds()
            if left > 0:
                waits.append(left)
                continue
            step = spec.steps[view.current].name
        pod_spec = as_mapping(pod.get("spec"))
        scheduled = bool(pod_spec.get("nodeName"))
        if scheduled and pod_spec.get("activeDeadlineSeconds") == 1:
            continue  # the kubelet is stopping it
        metadata = as_mapping(pod.get("metadata"))
        patch = {
            "metadata": {
                "resourceVersion": metadata.get("resourceVersion"),
                "annotations": {DEADLINE_ANNOTATION: step},
            },
            "spec": {"activeDeadlineSeconds": 1},
        }
        unscheduled = None
        if not scheduled:
            message = f"{deadline_exceeded(seconds)}; no node had started it"
            unscheduled = {
                "phase": "Failed",
                "reason": Reason.DEADLINE_EXCEEDED.value,
                "message": message,
            }
        expired.append(Expiry(pod, patch, unscheduled))
    return Deadlines(expired, min(waits) if waits else None)


def released_steps(pod: Pod) -> list[str]:
    value = (pod["metadata"].get("annotations") or {}).get(RELEASED_ANNOTATION, "")
    return [name for name in value.split(",") if name]


def nudge_value(pod: Pod, released_for: float | None) -> str | None:
    """The value to write under NUDGED_ANNOTATION, or None: once per release value, when a
    released step's container still runs `released_for` seconds after the operator wrote
    the release (None: not known, e.g. written by an operator that has since restarted).

    A wait container notices its release within a second of the kubelet projecting it; one
    still running after NUDGE_AFTER_SECONDS may be waiting on its in-Pod checks, or on a
    projection the kubelet missed. One more Pod update, at most, settles the second case.
    """
    value = ",".join(released_steps(pod))
    if not value or _annotations(pod).get(NUDGED_ANNOTATION) == value:
        return None
    if released_for is not None and released_for < NUDGE_AFTER_SECONDS:
        return None
    released = set(released_steps(pod))
    statuses = as_mapping(pod.get("status")).get("initContainerStatuses") or []
    running = any(
        status.get("name") in released and "running" in as_mapping(status.get("state"))
        for status in statuses
        if isinstance(status, Mapping)
    )
    return value if running else None


def release_value(pipeline: Pipeline, pod: Pod, waiting: Mapping[str, Sequence[str]]) -> str | None:
    """The new value of the Pod's release annotation, or None when it stays as it is.

    A step is released once all its API-side targets hold, and stays released: the Pod
    may already have moved past it.
    """
    released = set(released_steps(pod))
    released.update(step for step, unmet in waiting.items() if not unmet)
    ordered = [step.name for step in pipeline.spec.steps if step.name in released]
    if set(ordered) == set(released_steps(pod)):
        return None
    return ",".join(ordered)
