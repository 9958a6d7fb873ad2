"""What to do to the Pods of one pipeline: pure decisions from the spec and the Pods seen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from initpipeline.names import RELEASED_ANNOTATION
from initpipeline.render import pod_name, render_pod, spec_hash
from initpipeline.revisions import is_current
from initpipeline.spec import Pipeline

Pod = Mapping[str, Any]


@dataclass(frozen=True)
class PodPlan:
    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[Pod] = field(default_factory=list)


def _deleting(pod: Pod) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def current_pods(pipeline: Pipeline, pods: Sequence[Pod]) -> list[Pod]:
    """Pods of the current spec revision that are not on their way out."""
    revision = spec_hash(pipeline.spec)
    return [pod for pod in pods if is_current(pipeline, pod, revision)]


def plan_pods(pipeline: Pipeline, pods: Sequence[Pod], step_image: str) -> PodPlan:
    """Create the missing replicas, delete Pods of old revisions, extra replicas and, when
    the pipeline restarts its Pods (restartPolicy Always), Pods the node gave up on."""
    spec = pipeline.spec
    wanted = {} if spec.suspend else {pod_name(pipeline, i): i for i in range(spec.replicas)}
    keep_finished = spec.restart_policy != "Always"  # Never/OnFailure Pods run to completion
    plan = PodPlan()
    present = set()
    for pod in pods:
        name = pod["metadata"]["name"]
        present.add(name)
        if _deleting(pod):
            continue
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if name not in wanted or (finished and not keep_finished):
            plan.delete.append(pod)
    for name, index in wanted.items():
        if name not in present:
            plan.create.append(render_pod(pipeline, index, step_image))
    return plan


def released_steps(pod: Pod) -> list[str]:
    value = (pod["metadata"].get("annotations") or {}).get(RELEASED_ANNOTATION, "")
    return [name for name in value.split(",") if name]


def release_value(pipeline: Pipeline, pod: Pod, waiting: Mapping[str, Sequence[str]]) -> str | None:
    """The new value of the Pod's release annotation, or None when it stays as it is.

    A step is released once all its API-side targets hold, and stays released: the Pod
    may already have moved past it.
    """
    released = set(released_steps(pod))
    released.update(step for step, unmet in waiting.items() if not unmet)
    ordered = [step.name for step in pipeline.spec.steps if step.name in released]
    if set(ordered) == set(released_steps(pod)):
        return None
    return ",".join(ordered)
