"""One step as the kubelet reports its container: `initContainerStatuses[]` -> StepView.

- waiting -> Pending (kubelet reason and message kept: PodInitializing, ErrImagePull, ...);
  running -> Running (a sidecar: Ready when ready); terminated 0 -> Succeeded;
  terminated != 0, or waiting after a failed run (CrashLoopBackOff) -> Failed with the last
  exit code, reason and message.
- A wait step exiting WAIT_TIMEOUT_EXIT_CODE fails with reason WaitTimeout; a download
  whose sha256 differs fails with reason ChecksumMismatch (read from its termination
  message by `messages`).
- A sidecar stopped with its finished Pod is Succeeded, whatever its exit code, also while
  the Pod is still Running because the kubelet is stopping the sidecars after the main
  containers ended for good (Never/OnFailure).
- The tools container in front of the first copyAssets step is reported as that step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from initpipeline import messages
from initpipeline.fields import as_int, as_mapping, as_str
from initpipeline.names import TOOLS_CONTAINER, WAIT_TIMEOUT_EXIT_CODE
from initpipeline.spec import Step, StepType
from initpipeline.status.states import Reason, StepState
from initpipeline.status.text import one_line

# Kubelet waiting reasons that mean "about to start", not a problem worth reporting.
STARTING: Final = frozenset({"PodInitializing", "ContainerCreating"})


@dataclass(frozen=True)
class StepView:
    state: StepState = StepState.PENDING
    finished: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    restart_count: int | None = None
    reason: str | None = None
    message: str | None = None
    mode: str | None = None  # copyAssets steps: Copy or Mount (`AssetsMode`)

    @property
    def problem(self) -> bool:
        """A Pending step that the kubelet cannot start (ErrImagePull, ...)."""
        return self.state is StepState.PENDING and self.reason not in (None, *STARTING)


def _failure(step: Step, terminated: Mapping[str, Any], restarts: int | None) -> StepView:
    code = as_int(terminated.get("exitCode"))
    reason = as_str(terminated.get("reason")) or "Error"
    if step.type is StepType.WAIT_FOR and code == WAIT_TIMEOUT_EXIT_CODE:
        reason = Reason.WAIT_TIMEOUT.value
    else:
        reason = messages.termination_reason(as_str(terminated.get("message"))) or reason
    return StepView(
        state=StepState.FAILED,
        started_at=as_str(terminated.get("startedAt")),
        finished_at=as_str(terminated.get("finishedAt")),
        exit_code=code,
        restart_count=restarts,
        reason=reason,
        message=one_line(terminated.get("message")) or None,
    )


def step_view(
    step: Step, status: Mapping[str, Any] | None, pod_phase: str, finishing: bool = False
) -> StepView:
    """Map one kubelet container status (initContainerStatuses[]) to a step.

    finishing: the Pod's main containers are done for good, so the kubelet is stopping its
    sidecars (the phase is still Running until they are stopped).
    """
    if status is None:
        return StepView()
    restarts = as_int(status.get("restartCount")) or 0
    state = as_mapping(status.get("state"))
    last = as_mapping(as_mapping(status.get("lastState")).get("terminated"))
    sidecar = step.type is StepType.SIDECAR
    terminal_pod = finishing or pod_phase in ("Succeeded", "Failed")

    if running := as_mapping(state.get("running")):
        started_at = as_str(running.get("startedAt"))
        if sidecar and status.get("ready") is True:
            return StepView(StepState.READY, True, started_at, restart_count=restarts)
        finished = sidecar and (status.get("started") is True or pod_phase == "Succeeded")
        return StepView(StepState.RUNNING, finished, started_at, restart_count=restarts)

    if terminated := as_mapping(state.get("terminated")):
        code = as_int(terminated.get("exitCode"))
        if code == 0 or (sidecar and terminal_pod):
            # A sidecar stopped together with its finished Pod did its job, whatever its code.
            return StepView(
                StepState.SUCCEEDED,
                True,
                started_at=as_str(terminated.get("startedAt")),
                finished_at=as_str(terminated.get("finishedAt")),
                exit_code=code,
                restart_count=restarts,
                reason=as_str(terminated.get("reason")) or "Completed",
                message=one_line(terminated.get("message")) or None,
            )
        return _failure(step, terminated, restarts)

    if sidecar and pod_phase == "Succeeded":
        return StepView(StepState.SUCCEEDED, True, restart_count=restarts)
    if last and as_int(last.get("exitCode")) != 0:
        # CrashLoopBackOff (or about to restart): the last run failed, the kubelet retries.
        return _failure(step, last, restarts)
    waiting = as_mapping(state.get("waiting"))
    return StepView(
        restart_count=restarts,
        reason=as_str(waiting.get("reason")),
        message=one_line(waiting.get("message")) or None,
    )


def with_tools(own: StepView, tools: StepView) -> StepView:
    """The copyAssets step as seen through the tools container that runs in front of it."""
    if own.state is not StepState.PENDING or tools.state is StepState.SUCCEEDED:
        return own
    if tools.state is StepState.PENDING and not tools.problem:
        return own
    if tools.state is StepState.FAILED:
        detail = f"{TOOLS_CONTAINER}: {tools.message}" if tools.message else TOOLS_CONTAINER
        return replace(tools, message=one_line(detail))
    return replace(tools, finished=False)


def step_entry(step: Step, view: StepView, waiting_on: Sequence[str] = ()) -> dict[str, Any]:
    """The step's entry in `status.steps[]` (and in a `retriesStatus[]` entry's steps):
    empty fields left out."""
    entry: dict[str, Any] = {
        "name": step.name,
        "type": step.type.value,
        "state": view.state.value,
        "mode": view.mode,
        "startedAt": view.started_at,
        "finishedAt": view.finished_at,
        "exitCode": view.exit_code,
        "restartCount": view.restart_count,
        "reason": view.reason,
        "message": view.message,
        "waitingOn": list(waiting_on),
    }
    return {key: value for key, value in entry.items() if value not in (None, "", [])}
