"""API-side wait targets, judged from objects shaped as the API server returns them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from initpipeline.cache import dependencies_of
from initpipeline.deps import (
    Answer,
    Obj,
    Review,
    Watched,
    api_waiting,
    ready_endpoints,
    review_for,
    target_object,
    target_objects,
    watches_for,
)
from initpipeline.messages import access_refused
from initpipeline.render import spec_hash
from initpipeline.spec import Pipeline, parse_pipeline
from initpipeline.status.held import carry_forward

pytestmark = pytest.mark.unit

SERVICES = Watched("v1", "Service", "shop")
SLICES = Watched("discovery.k8s.io/v1", "EndpointSlice", "shop")
JOBS = Watched("batch/v1", "Job", "shop")
CERTS = Watched("cert-manager.io/v1", "Certificate", "shop")


class FakeObjects:
    """The watch cache's view, filled by the test."""

    def __init__(self, served: dict[Watched, bool], objects: dict[Watched, list[Obj]]) -> None:
        self._served = served
        self._objects = objects

    def served(self, watched: Watched) -> bool | None:
        return self._served.get(watched)

    def get(self, watched: Watched, name: str) -> Obj | None:
        return next(
            (o for o in self._objects.get(watched, []) if o["metadata"]["name"] == name), None
        )

    def select(self, watched: Watched, label: str, value: str) -> Sequence[Obj]:
        return [
            o
            for o in self._objects.get(watched, [])
            if o["metadata"].get("labels", {}).get(label) == value
        ]


class FakeAccess:
    """Answers to access reviews, filled by the test; records what was asked."""

    def __init__(
        self, answers: dict[Review, Answer] | None = None, namespaces: tuple[str, ...] = ()
    ) -> None:
        self.answers = answers or {}
        self.namespaces = namespaces
        self.asked: list[Review] = []

    def watches(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces

    def answer(self, review: Review) -> Answer | None:
        self.asked.append(review)
        return self.answers.get(review)


def pipeline(*targets: dict[str, Any], image: str = "app:1", **pod_spec: Any) -> Pipeline:
    return parse_pipeline(
        {
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "steps": [{"name": "deps", "waitFor": list(targets)}],
                "template": {"spec": {"containers": [{"name": "app", "image": image}], **pod_spec}},
            },
        }
    )


def service(name: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.7"}}


def endpoint_slice(service_name: str, *ready: bool | None) -> Obj:
    endpoints = [
        {"addresses": [f"10.88.0.{i + 2}"], "conditions": {} if r is None else {"ready": r}}
        for i, r in enumerate(ready)
    ]
    return {
        "metadata": {
            "name": f"{service_name}-abcde",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
    }


def job(name: str, *conditions: tuple[str, str]) -> Obj:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": t, "status": s} for t, s in conditions]},
    }


def test_ready_endpoints_counts_unset_ready_as_ready() -> None:
    assert ready_endpoints([endpoint_slice("db", True, False, None)]) == 2
    assert ready_endpoints([{"metadata": {"name": "x"}, "endpoints": None}]) == 0


def test_watches_cover_services_jobs_and_resources_in_their_namespaces() -> None:
    p = pipeline(
        {"service": "db"},
        {"service": "infra/cache"},
        {"job": "migrate"},
        {"resource": {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "tls"}},
        {"tcp": "db:5432"},
    )
    assert watches_for(p) == {
        SERVICES,
        SLICES,
        Watched("v1", "Service", "infra"),
        Watched("discovery.k8s.io/v1", "EndpointSlice", "infra"),
        JOBS,
        CERTS,
    }


def test_dependencies_are_the_objects_each_target_reads_by_the_name_it_is_known_by() -> None:
    p = pipeline(
        {"service": "db"},
        {"service": "infra/cache"},
        {"job": "migrate"},
        {"job": "ops/backup"},
        {"resource": {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "tls"}},
        {
            "resource": {
                "apiVersion": "cert-manager.io/v1",
                "kind": "Certificate",
                "name": "edge",
                "namespace": "infra",
            }
        },
        {"tcp": "db:5432"},
        {"dns": "db"},
    )
    assert dependencies_of(p) == {
        (SERVICES, "db"),
        (SLICES, "db"),  # EndpointSlices are known by their Service's name
        (Watched("v1", "Service", "infra"), "cache"),
        (Watched("discovery.k8s.io/v1", "EndpointSlice", "infra"), "cache"),
        (JOBS, "migrate"),
        (Watched("batch/v1", "Job", "ops"), "backup"),
        (CERTS, "tls"),
        (Watched("cert-manager.io/v1", "Certificate", "infra"), "edge"),
    }
    # The object a target is checked against comes first; in-Pod targets read none.
    for target in p.spec.steps[0].targets:
        objects = target_objects(target, "shop")
        assert (objects[0] if objects else None) == target_object(target, "shop")
    assert watches_for(p) == {watched for watched, _ in dependencies_of(p)}


def test_in_pod_targets_need_no_release() -> None:
    assert api_waiting(pipeline({"tcp": "db:5432"}, {"dns": "db"}), FakeObjects({}, {})) == {}


def test_service_waits_for_existence_then_ready_endpoints() -> None:
    p = pipeline({"service": "mydb", "port": 5432})
    known = {SERVICES: True, SLICES: True}
    assert api_waiting(p, FakeObjects({}, {})) == {
        "deps": ["service mydb port 5432: not checked yet"]
    }
    absent = FakeObjects(known, {})
    assert api_waiting(p, absent) == {"deps": ["service mydb port 5432: service does not exist"]}
    not_ready = FakeObjects(
        known, {SERVICES: [service("mydb")], SLICES: [endpoint_slice("mydb", False)]}
    )
    assert api_waiting(p, not_ready) == {"deps": ["service mydb port 5432: no ready endpoints"]}
    other = FakeObjects(
        known, {SERVICES: [service("mydb")], SLICES: [endpoint_slice("other", True)]}
    )
    assert api_waiting(p, other) == {"deps": ["service mydb port 5432: no ready endpoints"]}
    ready = FakeObjects(
        known, {SERVICES: [service("mydb")], SLICES: [endpoint_slice("mydb", True)]}
    )
    assert api_waiting(p, ready) == {"deps": []}


def test_job_must_be_complete_and_a_failed_job_says_so() -> None:
    p = pipeline({"job": "migrate"})
    running = FakeObjects({JOBS: True}, {JOBS: [job("migrate")]})
    assert api_waiting(p, running) == {"deps": ["job migrate: job not complete"]}
    failed = FakeObjects({JOBS: True}, {JOBS: [job("migrate", ("Failed", "True"))]})
    assert api_waiting(p, failed) == {"deps": ["job migrate: job failed ()"]}
    done = FakeObjects({JOBS: True}, {JOBS: [job("migrate", ("Complete", "True"))]})
    assert api_waiting(p, done) == {"deps": []}


def test_resource_condition_and_unserved_kind() -> None:
    p = pipeline(
        {"resource": {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "tls"}}
    )
    unserved = FakeObjects({CERTS: False}, {})
    assert api_waiting(p, unserved) == {
        "deps": [
            "Certificate tls (Ready): "
            "cert-manager.io/v1 Certificate is not served by the API server"
        ]
    }
    cert: Obj = {
        "metadata": {"name": "tls"},
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Issuing"}]},
    }
    assert api_waiting(p, FakeObjects({CERTS: True}, {CERTS: [cert]})) == {
        "deps": ["Certificate tls (Ready): Ready is False Issuing"]
    }
    cert["status"]["conditions"][0]["status"] = "True"
    assert api_waiting(p, FakeObjects({CERTS: True}, {CERTS: [cert]})) == {"deps": []}


def test_every_unmet_target_is_listed() -> None:
    p = pipeline({"service": "a"}, {"service": "b"}, {"job": "c"})
    objects = FakeObjects({SERVICES: True, SLICES: True, JOBS: True}, {SERVICES: [service("a")]})
    assert api_waiting(p, objects) == {
        "deps": [
            "service a: no ready endpoints",
            "service b: service does not exist",
            "job c: job does not exist",
        ]
    }


# --------------------------------------------------------------------------- held for a revision

NOW = datetime(2026, 12, 2, 8, 0, 0, tzinfo=UTC)
DONE = FakeObjects({JOBS: True}, {JOBS: [job("migrate", ("Complete", "True"))]})
GONE = FakeObjects({JOBS: True}, {})


def test_a_job_that_completed_for_this_revision_stays_held_once_it_is_deleted() -> None:
    """The issue's scenario: the Job completes, ttlSecondsAfterFinished deletes it, the
    pipeline's Pod is re-created: its wait step must not wait for the Job again."""
    p = pipeline({"job": "migrate"}, {"service": "db"})
    objects = FakeObjects({**DONE._served, SERVICES: True, SLICES: True}, DONE._objects)
    waiting = api_waiting(p, objects)
    assert waiting == {"deps": ["service db: service does not exist"]}
    record = carry_forward(p, waiting, None, NOW)
    assert record == [
        {
            "step": "deps",
            "target": "job migrate",
            "revision": spec_hash(p.spec),
            "heldAt": "2026-12-02T08:00:00Z",
        }
    ]
    previous = {"heldTargets": record}
    gone = FakeObjects({JOBS: True, SERVICES: True, SLICES: True}, {})
    assert api_waiting(p, gone, previous=previous) == {
        "deps": ["service db: service does not exist"]
    }
    assert api_waiting(p, gone) == {
        "deps": ["job migrate: job does not exist", "service db: service does not exist"]
    }
    # Carried forward unchanged (heldAt too) while it stays held.
    assert carry_forward(p, api_waiting(p, gone, previous=previous), previous, NOW) == record


def test_a_job_gone_since_it_completed_for_an_earlier_revision_is_told_apart() -> None:
    old = pipeline({"job": "migrate"})
    record = carry_forward(old, api_waiting(old, DONE), None, NOW)
    new = pipeline({"job": "migrate"}, image="app:2")
    assert spec_hash(new.spec) != spec_hash(old.spec)
    previous = {"heldTargets": record}
    assert api_waiting(new, GONE, previous=previous) == {
        "deps": [
            f"job migrate: job is gone: it completed for an earlier spec revision "
            f"({spec_hash(old.spec)})"
        ]
    }
    assert api_waiting(new, GONE) == {"deps": ["job migrate: job does not exist"]}
    # The old revision's entry is kept until the Job holds for the new one.
    assert carry_forward(new, api_waiting(new, GONE, previous=previous), previous, NOW) == record
    renewed = carry_forward(new, api_waiting(new, DONE, previous=previous), previous, NOW)
    assert [entry["revision"] for entry in renewed] == [spec_hash(new.spec)]


def test_an_unjudged_or_unmet_job_is_not_recorded() -> None:
    p = pipeline({"job": "migrate"})
    assert carry_forward(p, {}, None, NOW) == []
    assert carry_forward(p, api_waiting(p, FakeObjects({}, {})), None, NOW) == []
    assert carry_forward(p, api_waiting(p, GONE), None, NOW) == []
    running = FakeObjects({JOBS: True}, {JOBS: [job("migrate")]})
    assert carry_forward(p, api_waiting(p, running), None, NOW) == []


# --------------------------------------------------------------------------- tenancy

TENANT_B = Watched("v1", "Service", "tenant-b")
TENANT_B_SLICES = Watched("discovery.k8s.io/v1", "EndpointSlice", "tenant-b")
PRIVATE_DB = Review("shop", "default", "v1", "Service", "tenant-b", "private-db")
NOTHING = Review("shop", "default", "v1", "Service", "tenant-b", "nothing")
REFUSED = Answer(False, access_refused("shop/default", "get", "services", "tenant-b"))


def tenant_b(*services: str) -> FakeObjects:
    return FakeObjects(
        {TENANT_B: True, TENANT_B_SLICES: True},
        {TENANT_B: [service(name) for name in services]},
    )


def test_same_namespace_service_and_job_targets_need_no_review() -> None:
    p = pipeline({"service": "db"}, {"job": "migrate"}, {"service": "shop/cache"})
    assert [review_for(p, target) for target in p.spec.steps[0].targets] == [None, None, None]
    access = FakeAccess()
    objects = FakeObjects({SERVICES: True, SLICES: True, JOBS: True}, {})
    assert api_waiting(p, objects, access) == api_waiting(p, objects)
    assert access.asked == []


def test_a_refused_cross_namespace_target_never_tells_whether_it_exists() -> None:
    """The issue's oracle: tenant-b/private-db exists without endpoints, tenant-b/nothing does
    not; refused, both read the same."""
    p = pipeline({"service": "tenant-b/private-db"}, {"service": "tenant-b/nothing"})
    objects = tenant_b("private-db")
    assert api_waiting(p, objects) == {
        "deps": [
            "service tenant-b/private-db: no ready endpoints",
            "service tenant-b/nothing: service does not exist",
        ]
    }
    refused = FakeAccess({PRIVATE_DB: REFUSED, NOTHING: REFUSED})
    assert api_waiting(p, objects, refused) == {
        "deps": [
            "service tenant-b/private-db: not checked: serviceaccount shop/default may not get "
            "services in tenant-b",
            "service tenant-b/nothing: not checked: serviceaccount shop/default may not get "
            "services in tenant-b",
        ]
    }
    assert refused.asked == [PRIVATE_DB, NOTHING]
    pending = FakeAccess()
    assert api_waiting(p, objects, pending) == {
        "deps": [
            "service tenant-b/private-db: not checked yet",
            "service tenant-b/nothing: not checked yet",
        ]
    }
    allowed = FakeAccess({PRIVATE_DB: Answer(True), NOTHING: Answer(True)})
    assert api_waiting(p, objects, allowed) == api_waiting(p, objects)


def test_a_refused_target_holds_back_its_step() -> None:
    p = pipeline({"service": "tenant-b/private-db"})
    ready = FakeObjects(
        {TENANT_B: True, TENANT_B_SLICES: True},
        {TENANT_B: [service("private-db")], TENANT_B_SLICES: [endpoint_slice("private-db", True)]},
    )
    assert api_waiting(p, ready, FakeAccess({PRIVATE_DB: Answer(True)})) == {"deps": []}
    assert api_waiting(p, ready, FakeAccess({PRIVATE_DB: REFUSED})) != {"deps": []}


def test_every_resource_target_is_reviewed_for_the_pods_service_account() -> None:
    secret_like = {"apiVersion": "v1", "kind": "Secret", "name": "db-password"}
    p = pipeline({"resource": secret_like}, {"job": "other/seed"}, serviceAccountName="web-sa")
    assert [review_for(p, target) for target in p.spec.steps[0].targets] == [
        Review("shop", "web-sa", "v1", "Secret", "shop", "db-password"),
        Review("shop", "web-sa", "batch/v1", "Job", "other", "seed"),
    ]
    why = access_refused("shop/web-sa", "get", "secrets", "shop")
    secret = Review("shop", "web-sa", "v1", "Secret", "shop", "db-password")
    access = FakeAccess({secret: Answer(False, why)})
    assert api_waiting(p, FakeObjects({}, {}), access)["deps"][0] == (
        "Secret db-password (Ready): not checked: serviceaccount shop/web-sa may not get "
        "secrets in shop"
    )


def test_a_target_in_a_namespace_the_operator_does_not_watch_says_so() -> None:
    p = pipeline({"service": "tenant-b/private-db"}, {"service": "db"})
    access = FakeAccess(namespaces=("shop",))
    assert api_waiting(p, FakeObjects({SERVICES: True, SLICES: True}, {}), access) == {
        "deps": [
            "service tenant-b/private-db: not checked: the operator does not watch namespace "
            "tenant-b (INITPIPELINE_NAMESPACES)",
            "service db: service does not exist",
        ]
    }
    assert access.asked == []
    assert watches_for(p, access) == {SERVICES, SLICES}
