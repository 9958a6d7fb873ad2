"""A `once` run step as its Job reports it: the Job and its Pod -> StepView.

The step runs in a Job shared by the replicas (`render.render_job`); in every Pod it is a wait
for that Job. Its entry in `status.steps[]` is the Job's, in every Pod's view:

- no Job (not created yet, or deleted after it completed): the Pod's own view of the step;
- Complete -> Succeeded (startTime, completionTime, the container's exit code and
  termination message);
- Failed -> Failed, reason the Job's (BackoffLimitExceeded, DeadlineExceeded ...), the exit
  code and termination message of its failed container, else the condition's message;
- otherwise its Pod's container: running (or ended, the Job not judging it yet) -> Running;
  waiting on a problem (ErrImagePull ...)
  -> Pending with the kubelet's reason; else Pending (not scheduled, not started yet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from initpipeline.fields import as_int, as_mapping, as_str, find_condition
from initpipeline.render import once_job_name, once_steps
from initpipeline.spec import Pipeline, Step
from initpipeline.status.kubelet import StepView
from initpipeline.status.states import StepState
from initpipeline.status.text import one_line

Obj = Mapping[str, Any]


def once_views(
    pipeline: Pipeline, jobs: Sequence[Obj], job_pods: Sequence[Obj]
) -> dict[str, StepView]:
    """Step name -> its Job's view, for the `once` steps whose current Job is in `jobs`."""
    by_name = {as_mapping(job.get("metadata")).get("name"): job for job in jobs}
    views = {}
    for step in once_steps(pipeline):
        job = by_name.get(once_job_name(pipeline, step))
        if job is not None:
            views[step.name] = job_view(step, job, _pods_of(job, job_pods))
    return views


def _pods_of(job: Obj, pods: Sequence[Obj]) -> list[Obj]:
    """The Job's Pods (ownerReference by uid), the newest last."""
    uid = as_mapping(job.get("metadata")).get("uid")
    owned = [
        pod
        for pod in pods
        if any(
            as_mapping(ref).get("uid") == uid
            for ref in as_mapping(pod.get("metadata")).get("ownerReferences") or ()
        )
    ]
    return sorted(owned, key=_created)


def _created(pod: Obj) -> tuple[str, str]:
    meta = as_mapping(pod.get("metadata"))
    return str(meta.get("creationTimestamp", "")), str(meta.get("name", ""))


def _container(step: Step, pod: Obj | None) -> Mapping[str, Any]:
    """The state of the step's container in the Job's Pod ({} when not known)."""
    statuses = as_mapping(as_mapping(pod).get("status")).get("containerStatuses") or ()
    for entry in statuses:
        if as_mapping(entry).get("name") == step.name:
            return as_mapping(as_mapping(entry).get("state"))
    return {}


def job_view(step: Step, job: Obj, pods: Sequence[Obj]) -> StepView:
    """The step as its Job (and the Job's latest Pod) report it."""
    status = as_mapping(job.get("status"))
    started = as_str(status.get("startTime"))
    state = _container(step, pods[-1] if pods else None)
    terminated = as_mapping(state.get("terminated"))
    code = as_int(terminated.get("exitCode"))
    said = one_line(terminated.get("message")) or None
    complete = find_condition(status, "Complete") or {}
    if complete.get("status") == "True":
        return StepView(
            StepState.SUCCEEDED,
            True,
            started,
            as_str(status.get("completionTime")) or as_str(complete.get("lastTransitionTime")),
            exit_code=code,
            reason="Completed",
            message=said,
        )
    failed = find_condition(status, "Failed") or {}
    if failed.get("status") == "True":
        return StepView(
            StepState.FAILED,
            started_at=started,
            finished_at=as_str(failed.get("lastTransitionTime")),
            exit_code=code,
            reason=as_str(failed.get("reason")) or "Failed",
            message=said or one_line(failed.get("message")) or None,
        )
    if begun := as_mapping(state.get("running")) or terminated:
        # Ended but not judged yet: the Job's condition says how it went.
        return StepView(StepState.RUNNING, started_at=as_str(begun.get("startedAt")))
    waiting = as_mapping(state.get("waiting"))
    return StepView(
        reason=as_str(waiting.get("reason")), message=one_line(waiting.get("message")) or None
    )
