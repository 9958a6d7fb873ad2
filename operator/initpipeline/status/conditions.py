"""The Ready, Reconciling and Stalled conditions (metav1.Condition shape) of a verdict.

The True one of the three carries the reason and message; the others carry the same reason
and an empty message (Ready always carries the message). `lastTransitionTime` is kept from
the previous status unless the condition's status flips, so the same input gives an equal
dict: `now` only stamps flips.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from initpipeline.fields import find_condition, timestamp
from initpipeline.status.states import ConditionType
from initpipeline.status.text import shorten
from initpipeline.status.verdict import Verdict


def conditions(
    verdict: Verdict, previous: Mapping[str, Any] | None, generation: int, now: datetime
) -> list[dict[str, Any]]:
    message = shorten(verdict.message)
    wanted = (
        (ConditionType.READY, verdict.ready, message),
        (ConditionType.RECONCILING, verdict.reconciling, message if verdict.reconciling else ""),
        (ConditionType.STALLED, verdict.stalled, message if verdict.stalled else ""),
    )
    result = []
    for kind, holds, text in wanted:
        status = "True" if holds else "False"
        old = find_condition(previous, kind.value) or {}
        kept = old.get("status") == status and isinstance(old.get("lastTransitionTime"), str)
        result.append(
            {
                "type": kind.value,
                "status": status,
                "reason": verdict.reason.value,
                "message": text,
                "observedGeneration": generation,
                "lastTransitionTime": old["lastTransitionTime"] if kept else timestamp(now),
            }
        )
    return result
