"""Which API-side wait targets hold: pure functions over objects the operator watches.

Tenancy: a target outside the pipeline's namespace, and every `resource` target, is checked
only when the Pods' ServiceAccount may `get` that object (`review_for` asks, an `Access`
answers: `access.AccessReviews`, SubjectAccessReviews). Until then, or when refused, the
finding says so and nothing about the object, so the status is no oracle on other tenants'
objects. A target in a namespace the operator does not watch (INITPIPELINE_NAMESPACES) says
that. Same-namespace `service` and `job` targets need no review: they are the tenant's own.

Job targets that held for the current spec revision stay held (`status.held`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from initpipeline import messages
from initpipeline.fields import condition_true, find_condition
from initpipeline.render import operator_released, spec_hash, step_targets
from initpipeline.spec import ObjectRef, Pipeline, Step, Target, TargetKind
from initpipeline.status.held import held_revision

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


def watches_for(pipeline: Pipeline, access: Access | None = None) -> set[Watched]:
    """The kinds and namespaces whose changes can release one of the pipeline's steps
    (with `access`: only in namespaces the operator watches)."""
    watched = {
        kind
        for step in pipeline.spec.steps
        for target in step_targets(pipeline, step)
        for kind, _ in target_objects(target, pipeline.namespace)
    }
    if access is not None:
        watched = {w for w in watched if access.watches(w.namespace)}
    return watched


# --------------------------------------------------------------------------- tenancy


@dataclass(frozen=True, order=True)
class Review:
    """May the ServiceAccount `sa_namespace/sa_name` `verb` this object? `namespace` is the
    target's, as `Watched` has it (`AccessReviews` drops it for a cluster-scoped kind)."""

    sa_namespace: str
    sa_name: str
    api_version: str
    kind: str
    namespace: str
    name: str
    verb: str = "get"

    @property
    def service_account(self) -> str:
        return f"{self.sa_namespace}/{self.sa_name}"

    @property
    def watched(self) -> Watched:
        """The watch whose changes matter to the same pipelines as this answer."""
        return Watched(self.api_version, self.kind, self.namespace)


@dataclass(frozen=True)
class Answer:
    """A review's answer; when not allowed, `why` is the finding (`messages`)."""

    allowed: bool
    why: str = ""


class Access(Protocol):
    """Who may have which target checked (`access.AccessReviews`)."""

    def watches(self, namespace: str) -> bool:
        """False for a namespace outside INITPIPELINE_NAMESPACES."""

    def answer(self, review: Review) -> Answer | None:
        """The (cached) answer; None while not known yet (then it is being asked)."""


def service_account(pipeline: Pipeline) -> str:
    """The Pods' ServiceAccount: the template's serviceAccountName, else `default`."""
    pod_spec = pipeline.spec.template.get("spec") or {}
    name = pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount")
    return name if isinstance(name, str) and name else "default"


def target_objects(target: Target, namespace: str) -> list[tuple[Watched, str]]:
    """Every object an API-side target reads (its kind and namespace, and the name pipelines
    know it by), the one it is checked against (`target_object`) first: a service target
    also reads the Service's EndpointSlices, known by the Service's name
    (SERVICE_NAME_LABEL, as `cache.known_as` has it). [] for in-Pod targets."""
    if target.kind is TargetKind.SERVICE:
        ref, services, slices = _service(target, namespace)
        return [(services, ref.name), (slices, ref.name)]
    if target.kind is TargetKind.JOB:
        ref, jobs = _job(target, namespace)
        return [(jobs, ref.name)]
    if target.kind is TargetKind.RESOURCE:
        assert target.resource is not None
        return [(_resource(target, namespace), target.resource.name)]
    return []


def target_object(target: Target, namespace: str) -> tuple[Watched, str] | None:
    """The object an API-side target is checked against (its kind and namespace, its name);
    None for in-Pod targets."""
    objects = target_objects(target, namespace)
    return objects[0] if objects else None


def review_for(pipeline: Pipeline, target: Target) -> Review | None:
    """The question to ask before checking `target`, or None when it needs none: in-Pod
    targets, and service and job targets in the pipeline's own namespace."""
    found = target_object(target, pipeline.namespace)
    if found is None:
        return None
    watched, name = found
    if target.kind is not TargetKind.RESOURCE and watched.namespace == pipeline.namespace:
        return None
    return Review(
        pipeline.namespace,
        service_account(pipeline),
        watched.api_version,
        watched.kind,
        watched.namespace,
        name,
    )


def refusal(pipeline: Pipeline, target: Target, access: Access) -> str | None:
    """Why the operator does not check `target` for this pipeline (a finding's why), or None
    when it may."""
    found = target_object(target, pipeline.namespace)
    if found is None:
        return None
    if not access.watches(found[0].namespace):
        return messages.not_watched(found[0].namespace)
    review = review_for(pipeline, target)
    if review is None:
        return None
    answer = access.answer(review)
    if answer is None:
        return messages.NOT_CHECKED_YET
    return None if answer.allowed else answer.why or messages.NOT_CHECKED_YET


def ready_endpoints(slices: Sequence[Obj]) -> int:
    """Endpoints that can take traffic; an unset `ready` condition means ready."""
    return sum(
        1
        for endpoint_slice in slices
        for endpoint in endpoint_slice.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready") is not False
    )


def _service_unmet(target: Target, namespace: str, objects: Objects) -> str | None:
    ref, services, slices = _service(target, namespace)
    if objects.served(services) is None:
        return messages.NOT_CHECKED_YET
    if objects.get(services, ref.name) is None:
        return messages.SERVICE_MISSING
    count = ready_endpoints(objects.select(slices, SERVICE_NAME_LABEL, ref.name))
    return None if count else messages.NO_READY_ENDPOINTS


def _job_unmet(
    target: Target, namespace: str, objects: Objects, held_for: str | None, revision: str
) -> str | None:
    if held_for is not None and held_for == revision:
        return None  # completed for this revision: stays held (status.held)
    ref, jobs = _job(target, namespace)
    if objects.served(jobs) is None:
        return messages.NOT_CHECKED_YET
    job = objects.get(jobs, ref.name)
    if job is None:
        return messages.job_gone(held_for) if held_for else messages.JOB_MISSING
    if condition_true(job.get("status"), "Complete"):
        return None
    failed = find_condition(job.get("status"), "Failed")
    if failed and failed.get("status") == "True":
        return messages.job_failed(str(failed.get("reason", "")))
    return messages.JOB_NOT_COMPLETE


def _resource_unmet(target: Target, namespace: str, objects: Objects) -> str | None:
    assert target.resource is not None
    watched = _resource(target, namespace)
    served = objects.served(watched)
    if served is None:
        return messages.NOT_CHECKED_YET
    if not served:
        return messages.not_served(watched.api_version, watched.kind)
    obj = objects.get(watched, target.resource.name)
    if obj is None:
        return messages.OBJECT_MISSING
    condition = find_condition(obj.get("status"), target.resource.condition)
    if condition is None:
        return messages.no_condition(target.resource.condition)
    if condition.get("status") != "True":
        reason = condition.get("reason") or condition.get("message") or ""
        return messages.condition_not_true(
            target.resource.condition, condition.get("status"), reason
        )
    return None


def why_unmet(
    target: Target,
    namespace: str,
    objects: Objects,
    held_for: str | None = None,
    revision: str = "",
) -> str | None:
    """None when an API-side target holds, else a finding a user can act on.

    held_for: the spec revision this (job) target last held for (`status.held`); it holds
      without a look when that is `revision`, the current one.
    """
    if target.kind is TargetKind.SERVICE:
        why = _service_unmet(target, namespace, objects)
    elif target.kind is TargetKind.JOB:
        why = _job_unmet(target, namespace, objects, held_for, revision)
    elif target.kind is TargetKind.RESOURCE:
        why = _resource_unmet(target, namespace, objects)
    else:
        return None  # in-Pod targets are checked by the Pod itself
    return None if why is None else messages.finding(target.describe(), why)


def unmet_api_targets(
    pipeline: Pipeline,
    step: Step,
    objects: Objects,
    access: Access | None = None,
    previous: Mapping[str, Any] | None = None,
    revision: str | None = None,
) -> list[str]:
    """Findings for each API-side target of `step` that does not hold; [] when all hold.
    (revision: the pipeline's spec hash, if the caller has it.)"""
    revision = revision or spec_hash(pipeline.spec)
    reasons = []
    for target in step_targets(pipeline, step):
        refused = refusal(pipeline, target, access) if access is not None else None
        if refused is not None:
            reasons.append(messages.finding(target.describe(), refused))
            continue
        held_for = held_revision(previous, step.name, target.describe())
        reason = why_unmet(target, pipeline.namespace, objects, held_for, revision)
        if reason:
            reasons.append(reason)
    return reasons


def api_waiting(
    pipeline: Pipeline,
    objects: Objects,
    access: Access | None = None,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, list[str]]:
    """For every step the operator releases (a wait step with API-side targets, a `once`
    step waiting for its Job): what it still waits on ([] = release it).

    access: who may have which target checked (tenancy); None checks every target.
    previous: the pipeline's current `status`, whose `heldTargets` keeps Job targets that
      held for this spec revision held (`status.held`).
    """
    revision = spec_hash(pipeline.spec)
    return {
        step.name: unmet_api_targets(pipeline, step, objects, access, previous, revision)
        for step in pipeline.spec.steps
        if operator_released(pipeline, step)
    }
