"""The Events to post on the InitPipeline for the step transitions between two statuses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from initpipeline import messages
from initpipeline.fields import as_int, as_mapping, seconds_between
from initpipeline.spec import StepType
from initpipeline.status import retries
from initpipeline.status.states import Reason, StepState


@dataclass(frozen=True)
class StepEvent:
    """An Event to post on the InitPipeline for one step transition."""

    type: str  # "Normal" | "Warning"
    # StepStarted | StepSucceeded | StepReady | StepFailed | WaitTimeout | DeadlineExceeded |
    # Retrying
    reason: str
    message: str


def _timed_out(label: str, message: object) -> str:
    timeout = messages.parse_wait_timeout(message if isinstance(message, str) else None)
    if timeout is not None:
        return f"{label} {messages.timed_out(timeout)}"
    return f"{label} timed out" + (f": {message}" if message else "")


def step_events(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[StepEvent]:
    """Events for the step transitions between two statuses, in spec order.

    A step missing from `previous` counts as Pending, so the first status after a Pod starts
    reports what already happened, and re-deriving an unchanged status reports nothing. A
    step that fails again after a restart (restartCount rose) is reported again.
    """
    before = {
        as_mapping(entry).get("name"): as_mapping(entry)
        for entry in as_mapping(previous).get("steps") or ()
    }
    steps = [as_mapping(entry) for entry in current.get("steps") or ()]
    events = []
    for index, entry in enumerate(steps):
        old = before.get(entry.get("name"), {})
        state, old_state = entry.get("state"), old.get("state", StepState.PENDING.value)
        more_restarts = (as_int(entry.get("restartCount")) or 0) > (
            as_int(old.get("restartCount")) or 0
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
            took = seconds_between(entry.get("startedAt"), entry.get("finishedAt"))
            after = f" after {int(took)}s" if took is not None else ""
            events.append(StepEvent("Normal", "StepSucceeded", f"{label} succeeded{after}{detail}"))
        elif state == StepState.FAILED and entry.get("reason") == Reason.DEADLINE_EXCEEDED:
            events.append(
                StepEvent("Warning", "DeadlineExceeded", f"{label} stopped: {entry.get('message')}")
            )
        elif state == StepState.FAILED and entry.get("reason") == Reason.WAIT_TIMEOUT:
            events.append(
                StepEvent("Warning", "WaitTimeout", _timed_out(label, entry.get("message")))
            )
        elif state == StepState.FAILED:
            code = f"exit code {entry.get('exitCode')} ({entry.get('reason')})"
            restarts = as_int(entry.get("restartCount")) or 0
            again = f", restart {restarts}" if restarts else ""
            events.append(
                StepEvent("Warning", "StepFailed", f"{label} failed: {code}{again}{detail}")
            )
    return events + _retry_events(previous, current)


def _retry_events(
    previous: Mapping[str, Any] | None, current: Mapping[str, Any]
) -> list[StepEvent]:
    """A Retrying event for each failed attempt that a new one replaced since `previous`."""
    seen = {
        (as_mapping(entry).get("replica"), as_mapping(entry).get("attempt"))
        for entry in as_mapping(previous).get(retries.FIELD) or ()
    }
    return [
        StepEvent(
            "Warning",
            "Retrying",
            f"pod {entry.get('podName')} (attempt {entry.get('attempt')}) failed and was "
            f"replaced: {entry.get('message')}",
        )
        for entry in map(as_mapping, current.get(retries.FIELD) or ())
        if (entry.get("replica"), entry.get("attempt")) not in seen
    ]
