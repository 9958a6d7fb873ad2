"""`status.retriesStatus` and `status.attempt`: the failed attempts spec.retries replaced,
as Tekton's TaskRun keeps them, and the attempt the pipeline is on.

An attempt is one Pod of a replica (`revisions.attempt_of`). When it fails and retries are
left, `plan` creates the next one and keeps the failed Pod for its logs; from then on the
failed Pod is `replaced` (`pods.current_pods`) and its entry here records what it did: its
steps as `steps[]` showed them, when its Pod was created and when it ended, and the reason
and message the Ready condition gave its failure (`verdict.attempt_failure`).

Entries are `{replica, attempt, podName, revision, createdAt, finishedAt, reason, message,
steps}` (empty fields left out), oldest first. An entry is kept after its Pod is deleted,
for as long as the spec revision (`revision`, the spec hash) is the current one; at most
MAX_ENTRIES, the newest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

from initpipeline.fields import as_int, as_mapping, as_str, parse_time, timestamp
from initpipeline.render import spec_hash
from initpipeline.revisions import replica_of
from initpipeline.spec import Pipeline
from initpipeline.status.kubelet import step_entry
from initpipeline.status.pods import PodView
from initpipeline.status.text import shorten
from initpipeline.status.verdict import attempt_failure

FIELD: Final = "retriesStatus"
MAX_ENTRIES: Final = 20


def attempt(pipeline: Pipeline, rep: PodView | None) -> str:
    """`status.attempt`, the ATTEMPT column: the representative Pod's attempt of all the
    spec allows ("2/4"); "" without spec.retries or without a Pod."""
    if pipeline.spec.retries is None or rep is None:
        return ""
    return f"{rep.attempt}/{pipeline.spec.attempts}"


def _ended(pipeline: Pipeline, pod: PodView) -> str | None:
    """When the Pod's last container ended (steps and main containers); for a Pod whose
    start-up deadline fired before any container ended, when the deadline fell."""
    times = [view.finished_at for view in pod.steps if view.finished_at]
    for entry in as_mapping(pod.raw.get("status")).get("containerStatuses") or ():
        terminated = as_mapping(as_mapping(as_mapping(entry).get("state")).get("terminated"))
        if finished := as_str(terminated.get("finishedAt")):
            times.append(finished)
    if times:
        return max(times)  # RFC 3339 in UTC: text order is time order
    created = parse_time(as_mapping(pod.raw.get("metadata")).get("creationTimestamp"))
    seconds = pipeline.spec.active_deadline_seconds
    if pod.deadline_exceeded and created is not None and seconds is not None:
        return timestamp(created + timedelta(seconds=seconds))
    return None


def _entry(pipeline: Pipeline, pod: PodView, revision: str) -> dict[str, Any] | None:
    replica = replica_of(pod.raw)
    if not replica.isdigit():
        return None
    reason, message = attempt_failure(pipeline, pod)
    entry: dict[str, Any] = {
        "replica": int(replica),
        "attempt": pod.attempt,
        "podName": pod.name,
        "revision": revision,
        "createdAt": as_str(as_mapping(pod.raw.get("metadata")).get("creationTimestamp")),
        "finishedAt": _ended(pipeline, pod),
        "reason": reason.value,
        "message": shorten(message),
        "steps": [
            step_entry(step, view)
            for step, view in zip(pipeline.spec.steps, pod.steps, strict=True)
        ],
    }
    return {key: value for key, value in entry.items() if value is not None}


def _key(entry: Mapping[str, Any]) -> tuple[int, int] | None:
    replica, number = as_int(entry.get("replica")), as_int(entry.get("attempt"))
    return None if replica is None or number is None else (replica, number)


def retries_status(
    pipeline: Pipeline,
    replaced: Sequence[PodView],
    previous: Mapping[str, Any] | None,
    revision: str | None = None,
) -> list[dict[str, Any]]:
    """The new `retriesStatus`: an entry for each replaced attempt seen now, and the previous
    entries of this revision (default: the spec's hash) whose Pods are gone."""
    revision = revision or spec_hash(pipeline.spec)
    found: dict[tuple[int, int], dict[str, Any]] = {}
    for raw in as_mapping(previous).get(FIELD) or ():
        entry = as_mapping(raw)
        key = _key(entry)
        if key is not None and entry.get("revision") == revision:
            found[key] = dict(entry)
    for pod in replaced:
        new = _entry(pipeline, pod, revision)
        if new is not None:
            found[(new["replica"], new["attempt"])] = new
    ordered = sorted(found.values(), key=lambda e: (str(e.get("createdAt", "")), _key(e)))
    return ordered[-MAX_ENTRIES:]


def unparsed(previous: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The record of a pipeline whose spec does not parse: kept as it was."""
    return [dict(as_mapping(entry)) for entry in as_mapping(previous).get(FIELD) or ()]
