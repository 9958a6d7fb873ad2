"""The Ready verdict: whether the pipeline is Ready, why (the STATUS column), and whether a
user must act (Stalled).

Ready (reason in `Reason`): True with Running when readyReplicas >= replicas under
restartPolicy Always (also for replicas 0), with Succeeded when every current Pod Succeeded
under Never/OnFailure (a Pod that merely runs is not enough there). Otherwise False with,
first match wins: UnsupportedCluster, InvalidSpec, Suspended, PodCreationFailed,
StepFailed/WaitTimeout/DeadlineExceeded (the start-up deadline stopped the Pod at that
step), PodFailed (a main container failed the Pod), Pending (no Pod / not
scheduled / replicas missing), WaitingForDependency, Initializing (also for image pull
errors: "step 3/6 site: ErrImagePull: ..."), Running (all steps done, main containers not
ready; names a failing container).

Stalled (a user must act): UnsupportedCluster, InvalidSpec, PodCreationFailed; a failed
non-sidecar step under Never; a Failed Pod under Never/OnFailure (under Always the operator
replaces it); DeadlineExceeded. With spec.retries, a failed attempt is Stalled only when it
was the last one ("...; attempt 3/3, no retries left"); before, the message says
"...; retrying (attempt 2/3)". Reconciling: neither Ready nor Stalled (Suspended only while
Pods are still being deleted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from initpipeline import messages
from initpipeline.fields import as_mapping, as_str
from initpipeline.render import once_job_name
from initpipeline.rollout import available
from initpipeline.spec import Pipeline, PipelineSpec, Step, StepType
from initpipeline.status.kubelet import StepView
from initpipeline.status.pods import PodView, container_problem, pod_condition
from initpipeline.status.states import Reason
from initpipeline.status.text import MAX_CONDITION_MESSAGE, one_line


@dataclass(frozen=True)
class Problems:
    """Outcomes that stop a pipeline before or instead of its Pods; each makes Stalled True.

    invalid_spec: the spec cannot be rendered (message naming the field).
    creation_error: the API server refused a Pod (its message).
    unsupported_cluster: the cluster is too old (message naming the version).
    """

    invalid_spec: str | None = None
    creation_error: str | None = None
    unsupported_cluster: str | None = None


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reason: Reason
    message: str
    stalled: bool = False
    reconciling: bool = True

    def __post_init__(self) -> None:
        if self.ready or self.stalled:
            object.__setattr__(self, "reconciling", False)


_WHAT: Final[Mapping[StepType, str]] = {
    StepType.WAIT_FOR: "waiting for {n} targets",
    StepType.DOWNLOAD: "downloading {step.download.url}",
    StepType.COPY_ASSETS: "copying {step.copy_assets.from_}",
    StepType.PREPARE_VOLUME: "preparing volume {step.prepare_volume.volume}",
    StepType.RENDER_CONFIG: "rendering {step.render_config.volume}/{step.render_config.path}",
    StepType.RUN: "running {image}",
    StepType.SIDECAR: "starting sidecar {image}",
}


def _what(step: Step) -> str:
    """What a step does, for `step 3/6 site: copying /dist`."""
    image = (step.run or step.sidecar or {}).get("image", "")
    return _WHAT[step.type].format(step=step, image=image, n=len(step.targets))


def _failure_message(label: str, step: Step, view: StepView, waiting_on: Sequence[str]) -> str:
    if view.reason == Reason.DEADLINE_EXCEEDED:
        text = f"{label}: {view.message}"
    elif view.reason == Reason.WAIT_TIMEOUT:
        timeout = messages.parse_wait_timeout(view.message)
        if timeout is not None:
            text = f"{label}: {messages.timed_out(timeout)}"
        else:  # no termination message a script writes: say what was last seen
            after = f" after {step.timeout_seconds}s" if step.timeout_seconds else ""
            unmet = view.message or "; ".join(waiting_on)
            text = f"{label}: timed out{after}" + (f" waiting for {unmet}" if unmet else "")
    elif view.exit_code is None:  # a Job that failed without a container's exit code
        text = f"{label}: {view.reason}" + (f": {view.message}" if view.message else "")
    else:
        text = f"{label}: exit code {view.exit_code} ({view.reason})"
        if detail := messages.failure_detail(view.reason, view.message):
            text += f": {detail}"
    if view.restart_count:
        text += f" (restarted {view.restart_count} times)"
    return text


def _progress_verdict(
    pipeline: Pipeline, pod: PodView, index: int, waiting_on: Sequence[str]
) -> Verdict:
    steps = pipeline.spec.steps
    step, view = steps[index], pod.steps[index]
    label = f"step {index + 1}/{len(steps)} {step.name}"
    if view.problem:
        detail = f"{view.reason}: {view.message}" if view.message else str(view.reason)
        return Verdict(False, Reason.INITIALIZING, f"{label}: {detail}")
    if step.type is StepType.WAIT_FOR:
        what = "waiting for " + "; ".join(waiting_on) if waiting_on else _what(step)
        return Verdict(False, Reason.WAITING_FOR_DEPENDENCY, f"{label}: {what}")
    what = _what(step)
    if step.is_once:
        what += f" in job {once_job_name(pipeline, step)}"
    if view.restart_count:
        what += f" (restart {view.restart_count})"
    return Verdict(False, Reason.INITIALIZING, f"{label}: {what}")


def verdict(
    pipeline: Pipeline,
    current: Sequence[PodView],
    others: int,
    rep: PodView | None,
    waiting_on: Sequence[str],
) -> Verdict:
    """The verdict from the current Pods (`rep` the least advanced, `others` the Pods of
    other revisions or being deleted) and what the representative's wait step waits on."""
    spec = pipeline.spec
    replicas = spec.replicas
    run_to_completion = spec.restart_policy != "Always"
    if spec.replicas == 0:
        return Verdict(True, Reason.RUNNING, "spec.replicas is 0: no pods wanted")

    if rep is not None and (failed := rep.failed) is not None:
        reason, message = _step_failure(pipeline, rep, failed, waiting_on)
        if spec.steps[failed].is_once:
            # Its Job failed for good (backoffLimit): nothing retries it, whatever the Pods'
            # restartPolicy or spec.retries; deleting the Job or changing the spec does.
            return Verdict(False, reason, message, stalled=True)
        # Final: nobody retries. The kubelet retries under Always/OnFailure (sidecars always);
        # the operator replaces a Failed Pod under Always, and keeps it under Never/OnFailure
        # (spec.retries: replaces it with a new attempt while retries are left). A Pod whose
        # start-up deadline fired is stopped under every policy.
        final = (
            rep.deadline_exceeded
            or (rep.phase == "Failed" and run_to_completion)
            or (spec.restart_policy == "Never" and spec.steps[failed].type is not StepType.SIDECAR)
        )
        if final:
            message, final = _after_failure(spec, rep, message)
        return Verdict(False, reason, message, stalled=final)

    for pod in current:
        if pod.phase == "Failed":
            message = _pod_failure(pod)
            if not run_to_completion:
                return Verdict(False, Reason.POD_FAILED, f"{message}; replacing it")
            message, final = _after_failure(spec, pod, message)
            return Verdict(False, Reason.POD_FAILED, message, stalled=final)

    ready = sum(pod.ready for pod in current)
    succeeded = sum(pod.phase == "Succeeded" for pod in current)
    if not run_to_completion and ready >= replicas:
        return Verdict(True, Reason.RUNNING, f"{ready}/{replicas} pods ready")
    if run_to_completion and succeeded >= replicas and succeeded == len(current):
        return Verdict(True, Reason.SUCCEEDED, f"all {succeeded} pods succeeded")

    if rep is None:
        message = "waiting for the pod to be created"
        if others:
            message += f" ({others} old pod{'s' if others > 1 else ''} still terminating)"
        return Verdict(False, Reason.PENDING, message)
    if not rep.scheduled and rep.phase == "Pending":
        scheduled = pod_condition(rep.raw, "PodScheduled")
        detail = one_line(scheduled.get("message"), MAX_CONDITION_MESSAGE)
        return Verdict(
            False,
            Reason.PENDING,
            f"pod {rep.name} is not scheduled" + (f": {detail}" if detail else " yet"),
        )
    if (index := rep.current) is not None:
        return _progress_verdict(pipeline, rep, index, waiting_on)
    if len(current) < replicas:
        created = f"{len(current)}/{replicas} pods created"
        if others:  # a rollout (or a scale-down) makes room first
            plural = "s" if others > 1 else ""
            return Verdict(False, Reason.PENDING, f"{created}; {others} old pod{plural} left")
        return Verdict(False, Reason.PENDING, f"{created}; creating the rest")

    steps_done = f"all {len(spec.steps)} steps done"
    if run_to_completion:
        message = f"{steps_done}; {succeeded}/{replicas} pods succeeded"
    else:
        message = f"{steps_done}; {ready}/{replicas} pods ready"
    unready = next((pod for pod in current if not pod.ready), rep)
    detail = container_problem(unready.raw) or (
        "" if run_to_completion else one_line(pod_condition(unready.raw, "Ready").get("message"))
    )
    return Verdict(False, Reason.RUNNING, f"{message}; {detail}" if detail else message)


def rolling_out(
    spec: PipelineSpec, outcome: Verdict, current: Sequence[PodView], old: int
) -> Verdict:
    """While Pods of an older revision are left (`old`) and the pipeline is not Ready, the
    message starts with `rolling out N/R`: N of the R replicas are of the current revision
    and available (`rollout.available`)."""
    if outcome.ready or not old:
        return outcome
    run_to_completion = spec.restart_policy != "Always"
    done = sum(available(pod.raw, run_to_completion) for pod in current)
    return replace(outcome, message=f"rolling out {done}/{spec.replicas}; {outcome.message}")


def _step_failure(
    pipeline: Pipeline, pod: PodView, failed: int, waiting_on: Sequence[str]
) -> tuple[Reason, str]:
    """The Ready reason and message of the Pod's failed step `failed`."""
    steps = pipeline.spec.steps
    step, view = steps[failed], pod.steps[failed]
    reason = _STEP_REASONS.get(str(view.reason), Reason.STEP_FAILED)
    label = f"step {failed + 1}/{len(steps)} {step.name}"
    return reason, _failure_message(label, step, view, waiting_on)


_STEP_REASONS: Final[Mapping[str, Reason]] = {
    Reason.WAIT_TIMEOUT.value: Reason.WAIT_TIMEOUT,
    Reason.DEADLINE_EXCEEDED.value: Reason.DEADLINE_EXCEEDED,
}


def _pod_failure(pod: PodView) -> str:
    """`pod NAME failed: ...`: the kubelet's own verdict (Evicted, DeadlineExceeded ...) says
    most; else the container that failed."""
    status = as_mapping(pod.raw.get("status"))
    said = ": ".join(
        part for part in (as_str(status.get("reason")), one_line(status.get("message"))) if part
    )
    detail = said or container_problem(pod.raw)
    return f"pod {pod.name} failed" + (f": {detail}" if detail else "")


def attempt_failure(pipeline: Pipeline, pod: PodView) -> tuple[Reason, str]:
    """Why a Pod's attempt failed (a failed step, else the Pod's own failure): the reason
    and message the Ready condition gave it, without what comes next."""
    if pod.failed is not None:
        return _step_failure(pipeline, pod, pod.failed, ())
    return Reason.POD_FAILED, _pod_failure(pod)


def _after_failure(spec: PipelineSpec, pod: PodView, message: str) -> tuple[str, bool]:
    """The message of a Pod's failed attempt and whether it is final (Stalled): with
    spec.retries, a new attempt follows while retries are left."""
    if spec.retries is None:
        return message, True
    if pod.attempt < spec.attempts:
        return f"{message}; retrying (attempt {pod.attempt + 1}/{spec.attempts})", False
    return f"{message}; attempt {pod.attempt}/{spec.attempts}, no retries left", True


def overruling(problems: Problems, suspend: bool, pods_left: int) -> Verdict | None:
    """The verdict when something other than the Pods decides the outcome."""
    if problems.unsupported_cluster is not None:
        return Verdict(
            False, Reason.UNSUPPORTED_CLUSTER, problems.unsupported_cluster, stalled=True
        )
    if problems.invalid_spec is not None:
        return Verdict(False, Reason.INVALID_SPEC, problems.invalid_spec, stalled=True)
    if suspend:
        if not pods_left:
            return Verdict(False, Reason.SUSPENDED, "spec.suspend is true", reconciling=False)
        plural = "s" if pods_left > 1 else ""
        message = f"spec.suspend is true: deleting {pods_left} pod{plural}"
        return Verdict(False, Reason.SUSPENDED, message)
    if problems.creation_error is not None:
        return Verdict(False, Reason.POD_CREATION_FAILED, problems.creation_error, stalled=True)
    return None
