"""How many Pods of a pipeline's current spec revision to create, and which Pods of older
revisions to delete, in one pass: spec.strategy, decided as a Deployment decides it.

Pure: `plan.plan_pods` sorts the Pods and applies the answer. The numbers:

- RollingUpdate: surge and unavailable are maxSurge and maxUnavailable in Pods
  (`RollingUpdate.bounds`). Pods are created while the Pods that exist (every one, also
  those of older revisions and those being deleted, but not failed attempts kept for their
  logs) stay at most replicas + surge. Pods of older revisions are deleted while the
  available Pods stay at least replicas - unavailable: the unavailable ones first (they
  serve nothing), as long as the new revision's own unavailable Pods leave room, then
  available ones.
- Recreate: every Pod of an older revision is deleted at once; the new revision's Pods are
  created once none is left (also none being deleted).

Available: the Pod is Ready (every step done, its main containers ready), or, when the
pipeline runs to completion (restartPolicy Never/OnFailure), it Succeeded: its work is
done, as the Ready condition counts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from initpipeline.fields import as_mapping, find_condition
from initpipeline.spec import PipelineSpec

Pod = Mapping[str, Any]


def available(pod: Pod, run_to_completion: bool) -> bool:
    """The Pod serves (Ready), or has done its work (Succeeded, when the pipeline runs to
    completion)."""
    status = as_mapping(pod.get("status"))
    if run_to_completion and status.get("phase") == "Succeeded":
        return True
    return (find_condition(status, "Ready") or {}).get("status") == "True"


@dataclass(frozen=True)
class Replacement:
    """create: how many of the missing Pods of the current revision to create now (the
    lowest replica indexes first); delete: the Pods of older revisions to delete now."""

    create: int = 0
    delete: list[Pod] = field(default_factory=list)


def replace_pods(
    spec: PipelineSpec,
    *,
    missing: int,
    updated: Sequence[Pod],
    old: Sequence[Pod],
    leaving: int,
    old_leaving: int,
) -> Replacement:
    """One pass of the rollout.

    missing: Pods of the current revision wanted but not there (replicas, or retries).
    updated: the current revision's Pods that stand for a wanted replica, not being deleted.
    old: the Pods of older revisions that are not being deleted.
    leaving: the Pods being deleted, of any revision; old_leaving: those of older revisions.
    """
    replicas = 0 if spec.suspend else spec.replicas
    rolling = spec.strategy.rolling
    if rolling is None:  # Recreate
        waiting = bool(old) or old_leaving > 0
        return Replacement(0 if waiting else missing, list(old))
    surge, unavailable = rolling.bounds(replicas)
    run_to_completion = spec.restart_policy != "Always"
    total = len(updated) + len(old) + leaving
    create = max(0, min(missing, replicas + surge - total))
    new_available = sum(available(pod, run_to_completion) for pod in updated)
    new_unavailable = len(updated) + create - new_available
    min_available = replicas - unavailable
    room = len(updated) + create + len(old) - min_available - new_unavailable
    if room <= 0:
        return Replacement(create)
    serving = [pod for pod in old if available(pod, run_to_completion)]
    idle = [pod for pod in old if not available(pod, run_to_completion)]
    # Deleting an available Pod keeps at least min_available: room bounds the idle ones.
    keep_serving = new_available + len(serving) - min_available
    return Replacement(create, idle[:room] + serving[: max(0, keep_serving)])
