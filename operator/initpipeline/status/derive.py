"""The InitPipeline `status`, derived from the pipeline and its Pods by pure functions.

Nothing here does I/O. The operator lists the Pods, runs its API-side wait checks and reads
the wait containers' logs (`wait_report`), then calls `derive_status` (or `unparsed_status`
when the spec does not parse), patches the result when `status_changed` says so, and posts
the `step_events` between the old and the new status on the CR.

What a user sees, and the rules behind it:

- Current Pods: labelled SPEC_HASH_LABEL == the current hash, not being deleted. Pods of an
  older spec and Pods being deleted are ignored for steps, counts and `pods[]`; while no
  current Pod exists, the Ready message mentions them ("1 old pod still terminating").
- `steps[]`, `progress` and `currentStep` describe the least advanced current Pod: a Pod
  with a failed step first (it cannot progress until retried), then the fewest finished
  steps, then not Ready, then by name. With no current Pod every step is Pending and
  `currentStep` is "". A step is finished when it Succeeded; a sidecar once it started.
- Kubelet states: waiting -> Pending (kubelet reason and message kept: PodInitializing,
  ErrImagePull, ...); running -> Running (a sidecar: Ready when ready); terminated 0 ->
  Succeeded; terminated != 0, or waiting after a failed run (CrashLoopBackOff) -> Failed
  with the last exit code, reason and message. A wait step exiting WAIT_TIMEOUT_EXIT_CODE
  fails with reason WaitTimeout. A sidecar stopped with its finished Pod is Succeeded,
  whatever its exit code, also while the Pod is still Running because the kubelet is
  stopping the sidecars after the main containers ended for good (Never/OnFailure).
  The tools container in front of the first copyAssets step is reported as that step.
- Step messages are one line: the last non-empty line of the termination (or kubelet)
  message without gRPC's "rpc error: code = X desc = " prefix, at most MAX_MESSAGE
  characters (longer ones lose their middle, so the cause at the end stays).
- `waitingOn` only on a wait step that is the current step and Pending/Running: the
  operator's API-side findings, then the Pod's own last `waiting:` report.
- Ready (reason in `Reason`): True with Running when readyReplicas >= replicas under
  restartPolicy Always (also for replicas 0), with Succeeded when every current Pod
  Succeeded under Never/OnFailure (a Pod that merely runs is not enough there).
  Otherwise False with, first match wins: UnsupportedCluster, InvalidSpec, Suspended,
  PodCreationFailed, StepFailed/WaitTimeout, PodFailed (a main container failed the Pod),
  Pending (no Pod / not scheduled / replicas missing), WaitingForDependency, Initializing
  (also for image pull errors: "step 3/6 site: ErrImagePull: ..."), Running (all steps
  done, main containers not ready; names a failing container).
- Stalled (a user must act): UnsupportedCluster, InvalidSpec, PodCreationFailed; a failed
  non-sidecar step under Never; a Failed Pod under Never/OnFailure (under Always the
  operator replaces it). Reconciling: neither Ready nor Stalled (Suspended only while Pods
  are still being deleted). The True one of the three carries the reason and message;
  the others carry the same reason and an empty message.
- `lastTransitionTime` is kept from the previous status unless the condition's status
  flips. Same input, equal dict: `now` only stamps flips.
- Every top-level key is always present (a JSON merge patch of the dict replaces every
  field); step entries leave out empty fields; nothing is ever None.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from initpipeline.names import (
    PIPELINE_LABEL,
    SPEC_HASH_LABEL,
    TOOLS_CONTAINER,
    WAIT_TIMEOUT_EXIT_CODE,
)
from initpipeline.spec import Pipeline, Step, StepType

MAX_MESSAGE: Final = 256  # one step message, one waitingOn entry
MAX_CONDITION_MESSAGE: Final = 1024
MAX_WAITING_ON: Final = 20

# Kubelet waiting reasons that mean "about to start", not a problem worth reporting.
_STARTING: Final = frozenset({"PodInitializing", "ContainerCreating"})
_RPC_PREFIX: Final = re.compile(r"^rpc error: code = \w+ desc = ")


class StepState(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    READY = "Ready"  # sidecars only
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Reason(enum.StrEnum):
    """Reasons of the Ready condition (and of Reconciling/Stalled, which mirror it)."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    SUSPENDED = "Suspended"
    INVALID_SPEC = "InvalidSpec"
    UNSUPPORTED_CLUSTER = "UnsupportedCluster"
    POD_CREATION_FAILED = "PodCreationFailed"
    PENDING = "Pending"
    WAITING_FOR_DEPENDENCY = "WaitingForDependency"
    INITIALIZING = "Initializing"
    STEP_FAILED = "StepFailed"
    WAIT_TIMEOUT = "WaitTimeout"
    POD_FAILED = "PodFailed"  # a main container failed the Pod (restartPolicy Never/OnFailure)


class ConditionType(enum.StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


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
class StepEvent:
    """An Event to post on the InitPipeline for one step transition."""

    type: str  # "Normal" | "Warning"
    reason: str  # StepStarted | StepSucceeded | StepReady | StepFailed | WaitTimeout
    message: str


# --------------------------------------------------------------------------- text helpers


def one_line(text: object, limit: int = MAX_MESSAGE) -> str:
    """The last non-empty line of `text`, shortened in the middle to `limit` characters."""
    if not isinstance(text, str):
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = _RPC_PREFIX.sub("", lines[-1])
    if len(line) <= limit:
        return line
    head = (limit - 1) // 3
    tail = limit - 1 - head
    return f"{line[:head]}…{line[-tail:]}"


def _shorten(text: str, limit: int = MAX_CONDITION_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with whole seconds and a 'Z', as Kubernetes writes times."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# --------------------------------------------------------------------------- container states


@dataclass(frozen=True)
class _StepView:
    state: StepState = StepState.PENDING
    finished: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    restart_count: int | None = None
    reason: str | None = None
    message: str | None = None

    @property
    def problem(self) -> bool:
        """A Pending step that the kubelet cannot start (ErrImagePull, ...)."""
        return self.state is StepState.PENDING and self.reason not in (None, *_STARTING)


def _failure(step: Step, terminated: Mapping[str, Any], restarts: int | None) -> _StepView:
    code = _int(terminated.get("exitCode"))
    reason = _str(terminated.get("reason")) or "Error"
    if step.type is StepType.WAIT_FOR and code == WAIT_TIMEOUT_EXIT_CODE:
        reason = Reason.WAIT_TIMEOUT.value
    return _StepView(
        state=StepState.FAILED,
        started_at=_str(terminated.get("startedAt")),
        finished_at=_str(terminated.get("finishedAt")),
        exit_code=code,
        restart_count=restarts,
        reason=reason,
        message=one_line(terminated.get("message")) or None,
    )


def _step_view(
    step: Step, status: Mapping[str, Any] | None, pod_phase: str, finishing: bool = False
) -> _StepView:
    """Map one kubelet container status (initContainerStatuses[]) to a step.

    finishing: the Pod's main containers are done for good, so the kubelet is stopping its
    sidecars (the phase is still Running until they are stopped).
    """
    if status is None:
        return _StepView()
    restarts = _int(status.get("restartCount")) or 0
    state = _mapping(status.get("state"))
    last = _mapping(_mapping(status.get("lastState")).get("terminated"))
    sidecar = step.type is StepType.SIDECAR
    terminal_pod = finishing or pod_phase in ("Succeeded", "Failed")

    if running := _mapping(state.get("running")):
        started_at = _str(running.get("startedAt"))
        if sidecar and status.get("ready") is True:
            return _StepView(StepState.READY, True, started_at, restart_count=restarts)
        finished = sidecar and (status.get("started") is True or pod_phase == "Succeeded")
        return _StepView(StepState.RUNNING, finished, started_at, restart_count=restarts)

    if terminated := _mapping(state.get("terminated")):
        code = _int(terminated.get("exitCode"))
        if code == 0 or (sidecar and terminal_pod):
            # A sidecar stopped together with its finished Pod did its job, whatever its code.
            return _StepView(
                StepState.SUCCEEDED,
                True,
                started_at=_str(terminated.get("startedAt")),
                finished_at=_str(terminated.get("finishedAt")),
                exit_code=code,
                restart_count=restarts,
                reason=_str(terminated.get("reason")) or "Completed",
                message=one_line(terminated.get("message")) or None,
            )
        return _failure(step, terminated, restarts)

    if sidecar and pod_phase == "Succeeded":
        return _StepView(StepState.SUCCEEDED, True, restart_count=restarts)
    if last and _int(last.get("exitCode")) != 0:
        # CrashLoopBackOff (or about to restart): the last run failed, the kubelet retries.
        return _failure(step, last, restarts)
    waiting = _mapping(state.get("waiting"))
    return _StepView(
        restart_count=restarts,
        reason=_str(waiting.get("reason")),
        message=one_line(waiting.get("message")) or None,
    )


def _with_tools(own: _StepView, tools: _StepView) -> _StepView:
    """The copyAssets step as seen through the tools container that runs in front of it."""
    if own.state is not StepState.PENDING or tools.state is StepState.SUCCEEDED:
        return own
    if tools.state is StepState.PENDING and not tools.problem:
        return own
    if tools.state is StepState.FAILED:
        detail = f"{TOOLS_CONTAINER}: {tools.message}" if tools.message else TOOLS_CONTAINER
        return replace(tools, message=one_line(detail))
    return replace(tools, finished=False)


# --------------------------------------------------------------------------- Pods


def _condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in _mapping(pod.get("status")).get("conditions") or ():
        if _mapping(condition).get("type") == kind:
            return _mapping(condition)
    return {}


@dataclass(frozen=True)
class _PodView:
    name: str
    phase: str
    ready: bool
    scheduled: bool
    steps: tuple[_StepView, ...]
    restarts: int
    raw: Mapping[str, Any]

    @property
    def finished(self) -> int:
        return sum(view.finished for view in self.steps)

    @property
    def current(self) -> int | None:
        """Index of the first unfinished step, None when all are finished."""
        return next((i for i, view in enumerate(self.steps) if not view.finished), None)

    @property
    def failed(self) -> int | None:
        return next(
            (i for i, view in enumerate(self.steps) if view.state is StepState.FAILED), None
        )

    def rank(self) -> tuple[bool, int, bool, str]:
        """Sort key: the least advanced Pod first."""
        return (self.failed is None, self.finished, self.ready, self.name)


def _main_containers_done(pod: Mapping[str, Any]) -> bool:
    """Every main container terminated and none will be restarted: the Pod is finishing
    (the kubelet then stops the sidecars, which may exit non-zero, e.g. 137 or 143)."""
    policy = _mapping(pod.get("spec")).get("restartPolicy") or "Always"
    entries = [_mapping(e) for e in _mapping(pod.get("status")).get("containerStatuses") or ()]
    ended = [_mapping(_mapping(e.get("state")).get("terminated")) for e in entries]
    if not entries or not all(ended) or policy == "Always":
        return False
    return policy == "Never" or all(_int(t.get("exitCode")) == 0 for t in ended)


def _pod_view(pipeline: Pipeline, pod: Mapping[str, Any]) -> _PodView:
    status = _mapping(pod.get("status"))
    phase = _str(status.get("phase")) or "Pending"
    finishing = _main_containers_done(pod)
    statuses = {
        _mapping(entry).get("name"): _mapping(entry)
        for entry in status.get("initContainerStatuses") or ()
    }
    tools = statuses.get(TOOLS_CONTAINER)
    first_copy = next((s.name for s in pipeline.spec.steps if s.type is StepType.COPY_ASSETS), None)
    views = []
    for step in pipeline.spec.steps:
        view = _step_view(step, statuses.get(step.name), phase, finishing)
        if step.name == first_copy and tools is not None:
            view = _with_tools(view, _step_view(step, tools, phase))
        views.append(view)
    restarts = sum(
        _int(_mapping(entry).get("restartCount")) or 0
        for key in ("initContainerStatuses", "containerStatuses")
        for entry in status.get(key) or ()
    )
    return _PodView(
        name=_str(_mapping(pod.get("metadata")).get("name")) or "",
        phase=phase,
        ready=_condition(pod, "Ready").get("status") == "True",
        scheduled=_condition(pod, "PodScheduled").get("status") == "True",
        steps=tuple(views),
        restarts=restarts,
        raw=pod,
    )


def is_current(pipeline: Pipeline, pod: Mapping[str, Any], current_hash: str | None) -> bool:
    """A Pod of this pipeline's current spec revision (any revision when `current_hash` is
    None) that is not on its way out."""
    metadata = _mapping(pod.get("metadata"))
    labels = _mapping(metadata.get("labels"))
    owner = labels.get(PIPELINE_LABEL)
    return (
        (current_hash is None or labels.get(SPEC_HASH_LABEL) == current_hash)
        and owner in (None, pipeline.name)
        and not metadata.get("deletionTimestamp")
    )


def _container_problem(pod: Mapping[str, Any]) -> str:
    """The first main container that is failing or cannot start, as one short line."""
    for entry in _mapping(pod.get("status")).get("containerStatuses") or ():
        entry = _mapping(entry)
        name = entry.get("name")
        state = _mapping(entry.get("state"))
        waiting = _mapping(state.get("waiting"))
        terminated = _mapping(state.get("terminated"))
        last = _mapping(_mapping(entry.get("lastState")).get("terminated"))
        if waiting.get("reason") == "CrashLoopBackOff" and last:
            detail = f"exit code {last.get('exitCode')}, restarted {entry.get('restartCount', 0)}"
            message = one_line(last.get("message"))
            return f"container {name}: CrashLoopBackOff ({detail})" + (
                f": {message}" if message else ""
            )
        if waiting and waiting.get("reason") not in _STARTING:
            message = one_line(waiting.get("message"))
            return f"container {name}: {waiting.get('reason')}" + (
                f": {message}" if message else ""
            )
        if terminated and _int(terminated.get("exitCode")) not in (0, None):
            message = one_line(terminated.get("message"))
            return (
                f"container {name}: exit code {terminated.get('exitCode')} "
                f"({terminated.get('reason') or 'Error'})" + (f": {message}" if message else "")
            )
    return ""


# --------------------------------------------------------------------------- verdict


@dataclass(frozen=True)
class _Verdict:
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
    StepType.RUN: "running {image}",
    StepType.SIDECAR: "starting sidecar {image}",
}


def _what(step: Step) -> str:
    """What a step does, for `step 3/6 site: copying /dist`."""
    image = (step.run or step.sidecar or {}).get("image", "")
    return _WHAT[step.type].format(step=step, image=image, n=len(step.targets))


def _failure_message(label: str, step: Step, view: _StepView, waiting_on: Sequence[str]) -> str:
    if view.reason == Reason.WAIT_TIMEOUT:
        if view.message and view.message.lower().startswith("timed out"):
            text = f"{label}: {view.message}"
        else:
            after = f" after {step.timeout_seconds}s" if step.timeout_seconds else ""
            unmet = view.message or "; ".join(waiting_on)
            text = f"{label}: timed out{after}" + (f" waiting for {unmet}" if unmet else "")
    else:
        text = f"{label}: exit code {view.exit_code} ({view.reason})"
        if view.message:
            text += f": {view.message}"
    if view.restart_count:
        text += f" (restarted {view.restart_count} times)"
    return text


def _progress_verdict(
    pipeline: Pipeline, pod: _PodView, index: int, waiting_on: Sequence[str]
) -> _Verdict:
    steps = pipeline.spec.steps
    step, view = steps[index], pod.steps[index]
    label = f"step {index + 1}/{len(steps)} {step.name}"
    if view.problem:
        detail = f"{view.reason}: {view.message}" if view.message else str(view.reason)
        return _Verdict(False, Reason.INITIALIZING, f"{label}: {detail}")
    if step.type is StepType.WAIT_FOR:
        what = "waiting for " + "; ".join(waiting_on) if waiting_on else _what(step)
        return _Verdict(False, Reason.WAITING_FOR_DEPENDENCY, f"{label}: {what}")
    what = _what(step)
    if view.restart_count:
        what += f" (restart {view.restart_count})"
    return _Verdict(False, Reason.INITIALIZING, f"{label}: {what}")


def _verdict(
    pipeline: Pipeline,
    current: Sequence[_PodView],
    others: int,
    rep: _PodView | None,
    waiting_on: Sequence[str],
) -> _Verdict:
    spec = pipeline.spec
    replicas = spec.replicas
    run_to_completion = spec.restart_policy != "Always"
    if spec.replicas == 0:
        return _Verdict(True, Reason.RUNNING, "spec.replicas is 0: no pods wanted")

    if rep is not None and (failed := rep.failed) is not None:
        step, view = spec.steps[failed], rep.steps[failed]
        reason = Reason.WAIT_TIMEOUT if view.reason == Reason.WAIT_TIMEOUT else Reason.STEP_FAILED
        label = f"step {failed + 1}/{len(spec.steps)} {step.name}"
        # Final: nobody retries. The kubelet retries under Always/OnFailure (sidecars always);
        # the operator replaces a Failed Pod under Always, and keeps it under Never/OnFailure.
        final = (rep.phase == "Failed" and run_to_completion) or (
            spec.restart_policy == "Never" and step.type is not StepType.SIDECAR
        )
        return _Verdict(
            False, reason, _failure_message(label, step, view, waiting_on), stalled=final
        )

    for pod in current:
        if pod.phase == "Failed":
            status = _mapping(pod.raw.get("status"))
            # The kubelet's own verdict (Evicted, DeadlineExceeded ...) says most; else the
            # container that failed.
            said = ": ".join(
                part
                for part in (_str(status.get("reason")), one_line(status.get("message")))
                if part
            )
            detail = said or _container_problem(pod.raw)
            message = f"pod {pod.name} failed" + (f": {detail}" if detail else "")
            if not run_to_completion:
                message += "; replacing it"
            return _Verdict(False, Reason.POD_FAILED, message, stalled=run_to_completion)

    ready = sum(pod.ready for pod in current)
    succeeded = sum(pod.phase == "Succeeded" for pod in current)
    if not run_to_completion and ready >= replicas:
        return _Verdict(True, Reason.RUNNING, f"{ready}/{replicas} pods ready")
    if run_to_completion and succeeded >= replicas and succeeded == len(current):
        return _Verdict(True, Reason.SUCCEEDED, f"all {succeeded} pods succeeded")

    if rep is None:
        message = "waiting for the pod to be created"
        if others:
            message += f" ({others} old pod{'s' if others > 1 else ''} still terminating)"
        return _Verdict(False, Reason.PENDING, message)
    if not rep.scheduled and rep.phase == "Pending":
        scheduled = _condition(rep.raw, "PodScheduled")
        detail = one_line(scheduled.get("message"), MAX_CONDITION_MESSAGE)
        return _Verdict(
            False,
            Reason.PENDING,
            f"pod {rep.name} is not scheduled" + (f": {detail}" if detail else " yet"),
        )
    if (index := rep.current) is not None:
        return _progress_verdict(pipeline, rep, index, waiting_on)
    if len(current) < replicas:
        return _Verdict(
            False, Reason.PENDING, f"{len(current)}/{replicas} pods created; creating the rest"
        )

    steps_done = f"all {len(spec.steps)} steps done"
    if run_to_completion:
        message = f"{steps_done}; {succeeded}/{replicas} pods succeeded"
    else:
        message = f"{steps_done}; {ready}/{replicas} pods ready"
    unready = next((pod for pod in current if not pod.ready), rep)
    detail = _container_problem(unready.raw) or (
        "" if run_to_completion else one_line(_condition(unready.raw, "Ready").get("message"))
    )
    return _Verdict(False, Reason.RUNNING, f"{message}; {detail}" if detail else message)


# --------------------------------------------------------------------------- status


def _conditions(
    verdict: _Verdict, previous: Mapping[str, Any] | None, generation: int, now: datetime
) -> list[dict[str, Any]]:
    before = {
        _mapping(c).get("type"): _mapping(c)
        for c in _mapping(previous).get("conditions") or ()
        if isinstance(c, Mapping)
    }
    message = _shorten(verdict.message)
    wanted = (
        (ConditionType.READY, verdict.ready, message),
        (ConditionType.RECONCILING, verdict.reconciling, message if verdict.reconciling else ""),
        (ConditionType.STALLED, verdict.stalled, message if verdict.stalled else ""),
    )
    conditions = []
    for kind, holds, text in wanted:
        status = "True" if holds else "False"
        old = before.get(kind.value, {})
        kept = old.get("status") == status and isinstance(old.get("lastTransitionTime"), str)
        conditions.append(
            {
                "type": kind.value,
                "status": status,
                "reason": verdict.reason.value,
                "message": text,
                "observedGeneration": generation,
                "lastTransitionTime": old["lastTransitionTime"] if kept else timestamp(now),
            }
        )
    return conditions


def _step_entry(step: Step, view: _StepView, waiting_on: Sequence[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": step.name,
        "type": step.type.value,
        "state": view.state.value,
        "startedAt": view.started_at,
        "finishedAt": view.finished_at,
        "exitCode": view.exit_code,
        "restartCount": view.restart_count,
        "reason": view.reason,
        "message": view.message,
        "waitingOn": list(waiting_on),
    }
    return {key: value for key, value in entry.items() if value not in (None, "", [])}


_WAITING_PREFIX: Final = "waiting:"


def wait_report(log: str) -> str | None:
    """The last round of `waiting: <target>: <why>` lines in the tail of a wait container's log.

    Only the trailing run of `waiting:` lines counts (any other line, e.g. `ok: ...`, ends a
    run); within it a target seen again starts a new round, so only the latest line per
    target remains. The target is the text before the first ": " (as `Target.describe()`
    writes it). Returns the lines joined by newlines, or None when the log has none.
    """
    run: list[str] = []
    for line in log.splitlines():
        line = line.strip()
        if line.startswith(_WAITING_PREFIX):
            run.append(line)
        elif line:
            run = []
    round_: dict[str, str] = {}
    for line in run:
        key = line[len(_WAITING_PREFIX) :].strip().split(": ", 1)[0]
        if key in round_:
            round_ = {}
        round_[key] = line
    lines = list(round_.values())[-MAX_WAITING_ON:]
    return "\n".join(lines) if lines else None


def _report_lines(text: str | None) -> list[str]:
    lines = []
    for line in (text or "").splitlines():
        line = line.strip()
        line = line[len(_WAITING_PREFIX) :].strip() if line.startswith(_WAITING_PREFIX) else line
        if line:
            lines.append(one_line(line))
    return lines


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))[:MAX_WAITING_ON]


def _assemble(
    *,
    name: str,
    generation: int,
    replicas: int,
    ready_replicas: int,
    steps: list[dict[str, Any]],
    finished: int,
    current_step: str,
    pods: list[dict[str, Any]],
    verdict: _Verdict,
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    conditions = _conditions(verdict, previous, generation, now)
    return {
        "observedGeneration": generation,
        "replicas": replicas,
        "readyReplicas": ready_replicas,
        "ready": f"{ready_replicas}/{replicas}",
        "selector": f"{PIPELINE_LABEL}={name}",
        "progress": f"{finished}/{len(steps)}",
        "currentStep": current_step,
        "message": conditions[0]["message"],
        "pods": pods,
        "steps": steps,
        "conditions": conditions,
    }


def _overruling(problems: Problems, suspend: bool, pods_left: int) -> _Verdict | None:
    """The verdict when something other than the Pods decides the outcome."""
    if problems.unsupported_cluster is not None:
        return _Verdict(
            False, Reason.UNSUPPORTED_CLUSTER, problems.unsupported_cluster, stalled=True
        )
    if problems.invalid_spec is not None:
        return _Verdict(False, Reason.INVALID_SPEC, problems.invalid_spec, stalled=True)
    if suspend:
        if not pods_left:
            return _Verdict(False, Reason.SUSPENDED, "spec.suspend is true", reconciling=False)
        plural = "s" if pods_left > 1 else ""
        message = f"spec.suspend is true: deleting {pods_left} pod{plural}"
        return _Verdict(False, Reason.SUSPENDED, message)
    if problems.creation_error is not None:
        return _Verdict(False, Reason.POD_CREATION_FAILED, problems.creation_error, stalled=True)
    return None


def derive_status(
    pipeline: Pipeline,
    pods: Sequence[Mapping[str, Any]],
    api_waiting: Mapping[str, Sequence[str]],
    previous: Mapping[str, Any] | None,
    now: datetime,
    current_hash: str | None = None,
    wait_reports: Mapping[tuple[str, str], str] | None = None,
    *,
    problems: Problems | None = None,
) -> dict[str, Any]:
    """The whole `status` of an InitPipeline.

    pods: the Pods of this pipeline as the API returns them. With `current_hash`, only those
      labelled SPEC_HASH_LABEL == current_hash count; with None, all given Pods do (the
      caller filtered them). Pods being deleted never count.
    api_waiting: step name -> the operator's unmet API-side targets of that wait step,
      already formatted (`service mydb: no ready endpoints`); [] or absent when none.
    previous: the CR's current `status` (or None): conditions keep their lastTransitionTime.
    now: when the status is derived; only used for conditions that flip.
    wait_reports: (pod name, step name) -> `wait_report()` of that wait container's log.
    problems: outcomes decided outside the Pods (invalid spec, refused Pod, old cluster).
    """
    problems = problems or Problems()
    spec = pipeline.spec
    steps = spec.steps
    pending = [_step_entry(step, _StepView(), ()) for step in steps]
    overruled = _overruling(problems, spec.suspend, len(pods))
    if overruled is not None and (problems.invalid_spec is not None or spec.suspend):
        # No Pod of this spec can exist (or should): report none.
        return _assemble(
            name=pipeline.name,
            generation=pipeline.generation,
            replicas=spec.replicas,
            ready_replicas=0,
            steps=pending,
            finished=0,
            current_step="",
            pods=[],
            verdict=overruled,
            previous=previous,
            now=now,
        )

    current = sorted(
        (_pod_view(pipeline, pod) for pod in pods if is_current(pipeline, pod, current_hash)),
        key=lambda view: view.name,
    )
    others = len(pods) - len(current)
    rep = min(current, key=_PodView.rank) if current else None
    reports = wait_reports or {}

    def waiting_on(pod: _PodView, index: int | None) -> list[str]:
        if index is None or steps[index].type is not StepType.WAIT_FOR:
            return []
        if pod.steps[index].state not in (StepState.PENDING, StepState.RUNNING):
            return []
        name = steps[index].name
        return _unique([*api_waiting.get(name, ()), *_report_lines(reports.get((pod.name, name)))])

    if rep is None:
        entries, finished, current_step, rep_waiting = pending, 0, "", []
    else:
        index = rep.current
        rep_waiting = waiting_on(rep, index)
        entries = [
            _step_entry(step, view, rep_waiting if i == index else ())
            for i, (step, view) in enumerate(zip(steps, rep.steps, strict=True))
        ]
        finished = rep.finished
        current_step = steps[index].name if index is not None else ""
    if rep is not None and rep.failed is not None and steps[rep.failed].type is StepType.WAIT_FOR:
        # A timed-out step without a termination message: name what it was still waiting for.
        rep_waiting = _unique(
            [
                *api_waiting.get(steps[rep.failed].name, ()),
                *_previous_waiting(previous, steps[rep.failed].name),
            ]
        )

    pod_entries = [
        {
            "name": pod.name,
            "phase": pod.phase,
            "ready": pod.ready,
            "currentStep": steps[pod.current].name if pod.current is not None else "",
            "restarts": pod.restarts,
        }
        for pod in current
    ]
    verdict = overruled or _verdict(pipeline, current, others, rep, rep_waiting)
    return _assemble(
        name=pipeline.name,
        generation=pipeline.generation,
        replicas=spec.replicas,
        ready_replicas=sum(pod.ready for pod in current),
        steps=entries,
        finished=finished,
        current_step=current_step,
        pods=pod_entries,
        verdict=verdict,
        previous=previous,
        now=now,
    )


def _previous_waiting(previous: Mapping[str, Any] | None, name: str) -> list[str]:
    for entry in _mapping(previous).get("steps") or ():
        entry = _mapping(entry)
        if entry.get("name") == name:
            return [str(item) for item in entry.get("waitingOn") or ()]
    return []


def unparsed_status(
    body: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    now: datetime,
    problems: Problems,
) -> dict[str, Any]:
    """The status of a CR whose spec does not parse (problems.invalid_spec says why).

    No step is known for sure, so `steps` and `pods` are empty and `progress` is "0/0".
    """
    generation = _int(_mapping(body.get("metadata")).get("generation")) or 0
    raw = _int(_mapping(body.get("spec")).get("replicas", 1))
    replicas = raw if raw is not None and raw >= 0 else 1
    verdict = _overruling(problems, False, 0) or _Verdict(
        False, Reason.INVALID_SPEC, "the spec cannot be parsed", stalled=True
    )
    return _assemble(
        name=str(_mapping(body.get("metadata")).get("name", "")),
        generation=generation,
        replicas=replicas,
        ready_replicas=0,
        steps=[],
        finished=0,
        current_step="",
        pods=[],
        verdict=verdict,
        previous=previous,
        now=now,
    )


def status_changed(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    """True when patching `current` would change what the CR shows.

    Keys of `previous` that this module does not write (e.g. Kopf's own `status.kopf`) are
    ignored.
    """
    before = _mapping(previous)
    return any(before.get(key) != value for key, value in current.items())


# --------------------------------------------------------------------------- events


def _seconds(start: object, end: object) -> int | None:
    try:
        began = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        ended = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return None
    return int((ended - began).total_seconds())


def step_events(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[StepEvent]:
    """Events for the step transitions between two statuses, in spec order.

    A step missing from `previous` counts as Pending, so the first status after a Pod starts
    reports what already happened, and re-deriving an unchanged status reports nothing. A
    step that fails again after a restart (restartCount rose) is reported again.
    """
    before = {
        _mapping(entry).get("name"): _mapping(entry)
        for entry in _mapping(previous).get("steps") or ()
    }
    steps = [_mapping(entry) for entry in current.get("steps") or ()]
    events = []
    for index, entry in enumerate(steps):
        old = before.get(entry.get("name"), {})
        state, old_state = entry.get("state"), old.get("state", StepState.PENDING.value)
        more_restarts = (_int(entry.get("restartCount")) or 0) > (
            _int(old.get("restartCount")) or 0
        )
        if state == old_state and not (state == StepState.FAILED and more_restarts):
            continue
        sidecar = entry.get("type") == StepType.SIDECAR.value
        label = f"{'Sidecar' if sidecar else 'Step'} {index + 1}/{len(steps)} {entry.get('name')}"
        detail = f": {entry['message']}" if entry.get("message") else ""
        if state == StepState.RUNNING:
            events.append(StepEvent("Normal", "StepStarted", f"{label} started"))
        elif state == StepState.READY:
            events.append(StepEvent("Normal", "StepReady", f"{label} is ready"))
        elif state == StepState.SUCCEEDED:
            took = _seconds(entry.get("startedAt"), entry.get("finishedAt"))
            after = f" after {took}s" if took is not None else ""
            events.append(StepEvent("Normal", "StepSucceeded", f"{label} succeeded{after}{detail}"))
        elif state == StepState.FAILED and entry.get("reason") == Reason.WAIT_TIMEOUT:
            events.append(StepEvent("Warning", "WaitTimeout", f"{label} timed out{detail}"))
        elif state == StepState.FAILED:
            code = f"exit code {entry.get('exitCode')} ({entry.get('reason')})"
            restarts = _int(entry.get("restartCount")) or 0
            again = f", restart {restarts}" if restarts else ""
            events.append(
                StepEvent("Warning", "StepFailed", f"{label} failed: {code}{again}{detail}")
            )
    return events
