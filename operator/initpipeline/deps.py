"""Which API-side wait targets hold: pure functions over objects the operator watches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from initpipeline.fields import condition_true, find_condition
from initpipeline.spec import ObjectRef, Pipeline, Step, Target, TargetKind

Obj = Mapping[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True, order=True)
class Watched:
    """One kind in one namespace that the operator keeps a watch on."""

    api_version: str
    kind: str
    namespace: str


class Objects(Protocol):
    """What the operator currently knows of the watched objects."""

    def served(self, watched: Watched) -> bool | None:
        """False when the API server does not serve the kind; None while not yet known."""

    def get(self, watched: Watched, name: str) -> Obj | None: ...

    def select(self, watched: Watched, label: str, value: str) -> Sequence[Obj]: ...


def _service(target: Target, namespace: str) -> tuple[ObjectRef, Watched, Watched]:
    assert target.service is not None
    ref = ObjectRef.parse(target.service, namespace)
    ns = ref.namespace or namespace
    return ref, Watched("v1", "Service", ns), Watched("discovery.k8s.io/v1", "EndpointSlice", ns)


def _job(target: Target, namespace: str) -> tuple[ObjectRef, Watched]:
    assert target.job is not None
    ref = ObjectRef.parse(target.job, namespace)
    return ref, Watched("batch/v1", "Job", ref.namespace or namespace)


def _resource(target: Target, namespace: str) -> Watched:
    assert target.resource is not None
    res = target.resource
    return Watched(res.api_version, res.kind, res.namespace or namespace)


def watches_for(pipeline: Pipeline) -> set[Watched]:
    """The kinds and namespaces whose changes can release one of the pipeline's steps."""
    watched: set[Watched] = set()
    for step in pipeline.spec.steps:
        for target in step.targets:
            if target.kind is TargetKind.SERVICE:
                watched.update(_service(target, pipeline.namespace)[1:])
            elif target.kind is TargetKind.JOB:
                watched.add(_job(target, pipeline.namespace)[1])
            elif target.kind is TargetKind.RESOURCE:
                watched.add(_resource(target, pipeline.namespace))
    return watched


def ready_endpoints(slices: Sequence[Obj]) -> int:
    """Endpoints that can take traffic; an unset `ready` condition means ready."""
    return sum(
        1
        for endpoint_slice in slices
        for endpoint in endpoint_slice.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready") is not False
    )


def why_unmet(target: Target, namespace: str, objects: Objects) -> str | None:
    """None when an API-side target holds, else a short reason a user can act on."""
    label = target.describe()
    if target.kind is TargetKind.SERVICE:
        ref, services, slices = _service(target, namespace)
        if objects.served(services) is None:
            return f"{label}: not checked yet"
        if objects.get(services, ref.name) is None:
            return f"{label}: service does not exist"
        count = ready_endpoints(objects.select(slices, SERVICE_NAME_LABEL, ref.name))
        return None if count else f"{label}: no ready endpoints"
    if target.kind is TargetKind.JOB:
        ref, jobs = _job(target, namespace)
        if objects.served(jobs) is None:
            return f"{label}: not checked yet"
        job = objects.get(jobs, ref.name)
        if job is None:
            return f"{label}: job does not exist"
        if condition_true(job.get("status"), "Complete"):
            return None
        failed = find_condition(job.get("status"), "Failed")
        if failed and failed.get("status") == "True":
            return f"{label}: job failed ({failed.get('reason', '')})"
        return f"{label}: job not complete"
    if target.kind is TargetKind.RESOURCE:
        assert target.resource is not None
        watched = _resource(target, namespace)
        served = objects.served(watched)
        if served is None:
            return f"{label}: not checked yet"
        if not served:
            return f"{label}: {watched.api_version} {watched.kind} is not served by the API server"
        obj = objects.get(watched, target.resource.name)
        if obj is None:
            return f"{label}: does not exist"
        condition = find_condition(obj.get("status"), target.resource.condition)
        if condition is None:
            return f"{label}: no {target.resource.condition} condition yet"
        if condition.get("status") != "True":
            reason = condition.get("reason") or condition.get("message") or ""
            return f"{label}: {target.resource.condition} is {condition.get('status')} {reason}"
        return None
    return None  # in-Pod targets are checked by the Pod itself


def unmet_api_targets(step: Step, namespace: str, objects: Objects) -> list[str]:
    """Reasons for each API-side target of `step` that does not hold; [] when all hold."""
    reasons = (why_unmet(target, namespace, objects) for target in step.targets)
    return [reason for reason in reasons if reason]


def api_waiting(pipeline: Pipeline, objects: Objects) -> dict[str, list[str]]:
    """For every wait step with API-side targets: what it still waits on ([] = release it)."""
    return {
        step.name: unmet_api_targets(step, pipeline.namespace, objects)
        for step in pipeline.spec.steps
        if step.has_operator_targets
    }
