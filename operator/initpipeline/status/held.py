"""`status.heldTargets`: the API-side targets that held for a spec revision, and stay held.

A `job` target is a one-shot event: once the Job has completed for the pipeline's current
spec revision (its spec hash), the target stays met for that revision, also after the Job is
gone (`ttlSecondsAfterFinished`, a cleanup) or has been replaced. So a Pod re-created later
(deleted, evicted, scaled up) is not left waiting for a Job that will never come back.
`service` and `resource` targets are states, re-checked for every Pod, as init containers
re-check on every start; they are not recorded.

The record is one entry per step and target, `{step, target, revision, heldAt}`: `target` is
the target's label (`job migrate`, as `Target.describe()` writes it), `revision` the spec
hash it last held for. `carry_forward` (the writer, called by `derive_status`) keeps the
previous entries of targets that are still in the spec, renews an entry when the target
holds for a new revision, and adds the targets that hold now; `held_revision` (the reader,
called by `deps`) says for which revision a target last held. An entry of an older revision
is kept: `deps` tells a Job that is gone since it completed for it (`messages.job_gone`)
from one never seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from initpipeline import messages
from initpipeline.fields import as_mapping, as_str, timestamp
from initpipeline.render import spec_hash, step_targets
from initpipeline.spec import Pipeline, Step, Target, TargetKind

FIELD: Final = "heldTargets"
# Kinds whose holding is an event, not a state: they stay held for the revision.
STICKY: Final = frozenset({TargetKind.JOB})

Key = tuple[str, str]  # step name, target label


def _recorded(previous: Mapping[str, Any] | None) -> dict[Key, dict[str, str]]:
    """The previous record, by (step, target); entries that are not well-formed are skipped."""
    found: dict[Key, dict[str, str]] = {}
    for raw in as_mapping(previous).get(FIELD) or ():
        entry = as_mapping(raw)
        fields = {name: as_str(entry.get(name)) for name in ("step", "target", "revision")}
        step, target, revision = fields["step"], fields["target"], fields["revision"]
        if step and target and revision:
            held_at = as_str(entry.get("heldAt"))
            found[(step, target)] = {"step": step, "target": target, "revision": revision}
            if held_at:
                found[(step, target)]["heldAt"] = held_at
    return found


def held_revision(previous: Mapping[str, Any] | None, step: str, label: str) -> str | None:
    """The spec revision for which this target of this step last held, if recorded."""
    entry = _recorded(previous).get((step, label))
    return entry["revision"] if entry else None


def _sticky_targets(pipeline: Pipeline) -> Iterator[tuple[Step, Target]]:
    for step in pipeline.spec.steps:
        for target in step_targets(pipeline, step):
            if target.kind in STICKY:
                yield step, target


def carry_forward(
    pipeline: Pipeline,
    api_waiting: Mapping[str, Sequence[str]],
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> list[dict[str, str]]:
    """The new `heldTargets`, in spec order.

    A sticky target holds now when its step is in `api_waiting` (the operator judged it)
    and no finding names it. Its entry keeps its `heldAt` while the revision is the same.
    """
    revision = spec_hash(pipeline.spec)
    before = _recorded(previous)
    record: dict[Key, dict[str, str]] = {}
    for step, target in _sticky_targets(pipeline):
        key = (step.name, target.describe())
        if key in record:
            continue
        old = before.get(key)
        findings = api_waiting.get(step.name)
        unmet = {messages.finding_label(entry) for entry in findings or ()}
        holds = findings is not None and key[1] not in unmet
        if holds and (old is None or old["revision"] != revision):
            record[key] = {
                "step": key[0],
                "target": key[1],
                "revision": revision,
                "heldAt": timestamp(now),
            }
        elif old is not None:
            record[key] = old
    return list(record.values())


def unparsed(previous: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The record of a pipeline whose spec does not parse: kept as it was."""
    return list(_recorded(previous).values())
