"""`initpipeline describe`: one pipeline at a glance, as `tkn taskrun describe` shows a run.

Pure: the InitPipeline, its Pods and the Events about them (as the API returns them) and
"now" -> lines of text. Each step is a bar on a time axis shared by all steps (a Gantt
line), from the first Pod's creation (so time spent unscheduled shows) to now, or to the last
step's end once every step has ended. The steps are the status's: those of the least
advanced current Pod (`status.pods` lists every one). Colour (ANSI) only when asked for;
the characters are the same without it, so plain output says the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from initpipeline import messages
from initpipeline.fields import (
    as_int,
    as_mapping,
    as_str,
    find_condition,
    seconds_between,
    timestamp,
)
from initpipeline.spec import KIND, InvalidSpec, parse_pipeline
from initpipeline.status import ConditionType, StepState
from initpipeline.table import columns

BAR_WIDTH: Final = 40
MAX_EVENTS: Final = 10

# Bar characters and ANSI colours per step state; a running bar ends in a head (`>`).
_BAR: Final = {
    StepState.SUCCEEDED.value: ("=", "32"),
    StepState.READY.value: ("=", "32"),
    StepState.RUNNING.value: ("-", "33"),
    StepState.FAILED.value: ("x", "31"),
}
_ENDED: Final = (StepState.SUCCEEDED.value, StepState.FAILED.value)


def _paint(text: str, colour: str | None, on: bool) -> str:
    """`text` with its non-blank middle in colour (padding stays outside the codes)."""
    core = text.strip()
    if not (on and colour and core):
        return text
    start = text.index(core)
    return f"{text[:start]}\x1b[{colour}m{core}\x1b[0m{text[start + len(core) :]}"


def duration(seconds: float | None) -> str:
    """`12s`, `2m05s`, `1h02m`, `3d4h` (kubectl's ages, a little finer); `-` when unknown."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    minutes, secs = divmod(whole, 60)
    hours, mins = divmod(minutes, 60)
    days, hrs = divmod(hours, 24)
    if whole < 60:
        return f"{secs}s"
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    if hours < 24:
        return f"{hours}h{mins:02d}m"
    return f"{days}d{hrs}h"


class _Clock:
    """Times as seconds before `now` (Kubernetes timestamps are whole seconds)."""

    def __init__(self, now: datetime) -> None:
        self._now = timestamp(now)

    def ago(self, moment: object) -> float | None:
        return seconds_between(moment, self._now) if isinstance(moment, str) else None


def _steps(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The status's steps; before the operator wrote any, the spec's, all Pending."""
    recorded = [as_mapping(entry) for entry in as_mapping(body.get("status")).get("steps") or ()]
    if recorded:
        return recorded
    try:
        pipeline = parse_pipeline(dict(body))
    except InvalidSpec:
        return []
    return [{"name": s.name, "type": s.type.value} for s in pipeline.spec.steps]


def _outcome(entry: Mapping[str, Any]) -> str:
    state = entry.get("state")
    reason, message = as_str(entry.get("reason")), as_str(entry.get("message"))
    code = as_int(entry.get("exitCode"))
    failed = state == StepState.FAILED.value and code is not None
    head = " ".join(part for part in (f"exit {code}" if failed else "", reason or "") if part)
    detail = messages.failure_detail(reason, message) if state in _ENDED else message or ""
    text = f"{head}: {detail}" if head and detail else head or detail
    restarts = as_int(entry.get("restartCount"))
    return f"{text} ({restarts} restarts)" if restarts else text


class _Axis:
    """Seconds since the origin -> columns of a bar `width` wide."""

    def __init__(self, origin: float, end: float, width: int) -> None:
        self.origin = origin  # seconds before now
        self.span = max(origin - end, 1.0)
        self.width = width

    def column(self, ago: float) -> int:
        return min(self.width, max(0, round((self.origin - ago) / self.span * self.width)))

    def header(self) -> str:
        cells = [" "] * (self.width + 2)
        labels = ((0, "0s"), (self.width // 2, duration(self.span / 2)))
        for at, label in (*labels, (self.width + 2 - len(end := duration(self.span)), end)):
            cells[at : at + len(label)] = label
        return "".join(cells)

    def bar(self, started: float | None, ended: float | None, state: str) -> str:
        char, _ = _BAR.get(state, (" ", None))
        if started is None or char == " ":
            return "|" + " " * self.width + "|"
        first = self.column(started)
        last = max(first + 1, self.column(ended if ended is not None else 0.0))
        body = char * (last - first)
        if state == StepState.RUNNING.value:
            body = body[:-1] + ">"
        return "|" + " " * first + body + " " * (self.width - last) + "|"


def _step_lines(
    steps: Sequence[Mapping[str, Any]],
    origin: float | None,
    clock: _Clock,
    colour: bool,
    width: int,
) -> list[str]:
    if not steps:
        return ["Steps: none (the spec does not parse)"]
    times = [
        (clock.ago(entry.get("startedAt")), clock.ago(entry.get("finishedAt"))) for entry in steps
    ]
    starts = [started for started, _ in times if started is not None]
    if origin is None and starts:
        origin = max(starts)
    states = [entry.get("state") for entry in steps]
    # Nothing more will happen on the axis once no step runs and none is left to run (all
    # ended, or the rest stays Pending behind a failure).
    still = StepState.RUNNING.value in states or (
        StepState.FAILED.value not in states and not all(state in _ENDED for state in states)
    )
    ends = [ended for _, ended in times if ended is not None]
    axis = None
    if origin is not None:
        axis = _Axis(max([origin, *starts]), 0.0 if still or not ends else min(ends), width)
    rows: list[tuple[str, ...]] = [("STEP", "STATE", "START", "DURATION")]
    rows[0] += (axis.header(), "OUTCOME") if axis else ("OUTCOME",)
    for entry, (started, ended) in zip(steps, times, strict=True):
        state = str(entry.get("state") or StepState.PENDING.value)
        took = None if started is None else started - (ended if ended is not None else 0.0)
        row: tuple[str, ...] = (
            str(entry.get("name", "")),
            state,
            "-" if started is None or axis is None else f"+{duration(axis.origin - started)}",
            duration(took),
        )
        bar = (axis.bar(started, ended, state),) if axis else ()
        rows.append((*row, *bar, _outcome(entry)))

    def paint(row: int, column: int, cell: str) -> str:
        if row == 0 or column not in (1, 4) or (axis is None and column == 4):
            return cell
        code = _BAR.get(rows[row][1], (" ", None))[1]
        if column == 1:
            return _paint(cell, code, colour)
        return "|" + _paint(cell[1:-1], code, colour) + "|"

    return ["Steps:", *columns(rows, paint, indent="  ")]


def _pod_lines(
    pods: Sequence[Mapping[str, Any]], status: Mapping[str, Any], clock: _Clock
) -> list[str]:
    if not pods:
        return ["Pods: none"]
    reported = {
        as_mapping(entry).get("name"): as_mapping(entry) for entry in status.get("pods") or ()
    }
    rows = [("NAME", "PHASE", "READY", "STEP", "RESTARTS", "AGE", "NODE")]
    for pod in sorted(pods, key=lambda p: str(as_mapping(p.get("metadata")).get("name"))):
        meta = as_mapping(pod.get("metadata"))
        seen = reported.get(meta.get("name"), {})
        rows.append(
            (
                str(meta.get("name", "")),
                "Terminating"
                if meta.get("deletionTimestamp")
                else str(as_mapping(pod.get("status")).get("phase") or "Unknown"),
                "-" if "ready" not in seen else str(bool(seen["ready"])).lower(),
                str(seen.get("currentStep") or "-"),
                str(seen.get("restarts", "-")),
                duration(clock.ago(meta.get("creationTimestamp"))),
                str(as_mapping(pod.get("spec")).get("nodeName") or "-"),
            )
        )
    return ["Pods:", *columns(rows, indent="  ")]


def _attempt_lines(status: Mapping[str, Any], clock: _Clock) -> list[str]:
    """The failed attempts spec.retries replaced (status.retriesStatus), oldest first, under
    the attempt now running; nothing without retries."""
    failed = [as_mapping(entry) for entry in status.get("retriesStatus") or ()]
    if not failed:
        return []
    rows: list[tuple[str, ...]] = [("ATTEMPT", "POD", "REASON", "DURATION", "ENDED", "MESSAGE")]
    for entry in failed:
        took = seconds_between(entry.get("createdAt"), entry.get("finishedAt"))
        ended = clock.ago(entry.get("finishedAt"))
        row = (
            entry.get("attempt"),
            entry.get("podName"),
            entry.get("reason"),
            duration(took),
            "-" if ended is None else f"{duration(ended)} ago",
            entry.get("message"),
        )
        rows.append(tuple(str(cell or "") for cell in row))
    return [f"Attempts: now {status.get('attempt', '-')}, failed:", *columns(rows, indent="  ")]


def _condition_lines(status: Mapping[str, Any], clock: _Clock) -> list[str]:
    found = [as_mapping(c) for c in status.get("conditions") or ()]
    if not found:
        return ["Conditions: none"]
    rows: list[tuple[str, ...]] = [("TYPE", "STATUS", "REASON", "AGE", "MESSAGE")]
    for c in found:
        age = duration(clock.ago(c.get("lastTransitionTime")))
        row = (c.get("type"), c.get("status"), c.get("reason"), age, c.get("message") or "")
        rows.append(tuple(str(cell or "") for cell in row))
    return ["Conditions:", *columns(rows, indent="  ")]


def _event_time(event: Mapping[str, Any]) -> object:
    meta = as_mapping(event.get("metadata"))
    return (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or meta.get("creationTimestamp")
    )


def _event_lines(events: Sequence[Mapping[str, Any]], clock: _Clock) -> list[str]:
    if not events:
        return ["Events: none"]
    ordered = sorted(events, key=lambda e: -(clock.ago(_event_time(e)) or 0.0))[-MAX_EVENTS:]
    rows: list[tuple[str, ...]] = [("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE")]
    for event in ordered:
        involved = as_mapping(event.get("involvedObject"))
        count = as_int(event.get("count")) or 1
        seen = duration(clock.ago(_event_time(event))) + (f" (x{count})" if count > 1 else "")
        about = f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
        row = (seen, event.get("type"), event.get("reason"), about, event.get("message"))
        rows.append(tuple(str(cell or "") for cell in row))
    return ["Events:", *columns(rows, indent="  ")]


def describe(
    body: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    colour: bool = False,
    width: int = BAR_WIDTH,
) -> list[str]:
    """The lines `initpipeline describe` prints for one pipeline."""
    clock = _Clock(now)
    meta = as_mapping(body.get("metadata"))
    status = as_mapping(body.get("status"))
    lines = [f"{KIND} {meta.get('namespace', '')}/{meta.get('name', '')}"]
    ready = find_condition(status, ConditionType.READY.value)
    if ready is None:
        lines.append("Status:  not reported yet (the operator has not written one)")
    else:
        message = ready.get("message") or status.get("message") or ""
        lines.append(f"Status:  {ready.get('reason', '')}" + (f": {message}" if message else ""))
        lines.append(
            f"Ready:   {status.get('ready', '-')} pods, {status.get('progress', '-')} steps"
            + (f", on step {status['currentStep']}" if status.get("currentStep") else "")
        )
    current = [p for p in pods if not as_mapping(p.get("metadata")).get("deletionTimestamp")]
    created = [clock.ago(as_mapping(p.get("metadata")).get("creationTimestamp")) for p in current]
    origin = max((ago for ago in created if ago is not None), default=None)
    steps = _steps(body)
    lines += ["", *_pod_lines(pods, status, clock)]
    lines += ["", *_step_lines(steps, origin, clock, colour, width)]
    waiting = [
        f"  {entry.get('name')}: {item}" for entry in steps for item in entry.get("waitingOn") or ()
    ]
    if waiting:
        lines += ["", "Waiting on:", *waiting]
    if attempts := _attempt_lines(status, clock):
        lines += ["", *attempts]
    lines += ["", *_condition_lines(status, clock)]
    lines += ["", *_event_lines(events, clock)]
    return lines
