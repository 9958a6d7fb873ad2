"""Which Pods belong to a pipeline's current spec revision: the rule `plan` acts on and
`status` reports on, so both count the same Pods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from initpipeline.fields import as_mapping
from initpipeline.names import PIPELINE_LABEL, SPEC_HASH_LABEL
from initpipeline.spec import Pipeline


def is_current(pipeline: Pipeline, pod: Mapping[str, Any], current_hash: str | None) -> bool:
    """A Pod of this pipeline's current spec revision (any revision when `current_hash` is
    None) that is not on its way out.

    Current: labelled SPEC_HASH_LABEL == `current_hash`, PIPELINE_LABEL this pipeline (or
    unset), no deletionTimestamp.
    """
    metadata = as_mapping(pod.get("metadata"))
    labels = as_mapping(metadata.get("labels"))
    owner = labels.get(PIPELINE_LABEL)
    return (
        (current_hash is None or labels.get(SPEC_HASH_LABEL) == current_hash)
        and owner in (None, pipeline.name)
        and not metadata.get("deletionTimestamp")
    )
