"""Which Pods belong to a pipeline's current spec revision, and which attempt of its replica
each is: the rules `plan` acts on and `status` reports on, so both count the same Pods."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from initpipeline.fields import as_mapping
from initpipeline.names import ATTEMPT_LABEL, PIPELINE_LABEL, REPLICA_LABEL, SPEC_HASH_LABEL
from initpipeline.spec import Pipeline


def _labels(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(as_mapping(pod.get("metadata")).get("labels"))


def is_current(pipeline: Pipeline, pod: Mapping[str, Any], current_hash: str | None) -> bool:
    """A Pod of this pipeline's current spec revision (any revision when `current_hash` is
    None) that is not on its way out.

    Current: labelled SPEC_HASH_LABEL == `current_hash`, PIPELINE_LABEL this pipeline (or
    unset), no deletionTimestamp.
    """
    labels = _labels(pod)
    owner = labels.get(PIPELINE_LABEL)
    return (
        (current_hash is None or labels.get(SPEC_HASH_LABEL) == current_hash)
        and owner in (None, pipeline.name)
        and not as_mapping(pod.get("metadata")).get("deletionTimestamp")
    )


def revision_of(pod: Mapping[str, Any]) -> str:
    """The spec revision the Pod was made from (SPEC_HASH_LABEL), "" when unlabelled."""
    return str(_labels(pod).get(SPEC_HASH_LABEL, ""))


def attempt_of(pod: Mapping[str, Any]) -> int:
    """Which attempt of its replica the Pod is (ATTEMPT_LABEL; 1 when absent or not a
    positive number)."""
    value = str(_labels(pod).get(ATTEMPT_LABEL, ""))
    return int(value) if value.isdigit() and int(value) > 0 else 1


def replica_of(pod: Mapping[str, Any]) -> str:
    """The replica index the Pod stands for (REPLICA_LABEL), "" when unlabelled."""
    return str(_labels(pod).get(REPLICA_LABEL, ""))


def superseded(pods: Iterable[Mapping[str, Any]]) -> set[str]:
    """Names of the Pods (not being deleted) that a later attempt of the same replica and
    spec revision replaced: failed attempts kept for their logs (spec.retries)."""
    latest: dict[tuple[Any, Any, str], int] = {}
    live = [pod for pod in pods if not as_mapping(pod.get("metadata")).get("deletionTimestamp")]
    for pod in live:
        slot = _slot(pod)
        latest[slot] = max(latest.get(slot, 0), attempt_of(pod))
    return {
        str(as_mapping(pod.get("metadata")).get("name"))
        for pod in live
        if attempt_of(pod) < latest[_slot(pod)]
    }


def _slot(pod: Mapping[str, Any]) -> tuple[Any, Any, str]:
    labels = _labels(pod)
    return labels.get(PIPELINE_LABEL), labels.get(SPEC_HASH_LABEL), replica_of(pod)
