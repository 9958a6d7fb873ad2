"""Access reviews of wait targets: the review bodies, the answers, the cache and the pacing,
against a fake API (tests/integration/test_tenancy.py asks the real one)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from initpipeline.access import (
    SUBJECT_ACCESS_REVIEWS,
    AccessReviews,
    RateLimiter,
    local_reviews_path,
    read_answer,
    review_body,
)
from initpipeline.deps import Answer, Review, Watched, api_waiting
from initpipeline.kube import JOBS, SERVICES, ApiError, Resource
from initpipeline.spec import parse_pipeline

pytestmark = pytest.mark.unit

PRIVATE_DB = Review("tenant-a", "default", "v1", "Service", "tenant-b", "private-db")
NODES = Resource("v1", "Node", "nodes", namespaced=False)
DEPLOYMENTS = Resource("apps/v1", "Deployment", "deployments", namespaced=True)
REFUSED_TEXT = "not checked: serviceaccount tenant-a/default may not get services in tenant-b"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeApi:
    """Discovery and review answers, set by the test; records the reviews sent."""

    def __init__(self, allowed: bool = False) -> None:
        self.allowed = allowed
        self.error: ApiError | None = None
        self.kinds = {("v1", "Service"): SERVICES, ("batch/v1", "Job"): JOBS, ("v1", "Node"): NODES}
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.gate: asyncio.Event | None = None

    async def discover(self, api_version: str, kind: str) -> Resource | None:
        return self.kinds.get((api_version, kind))

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any] | None:
        self.sent.append((path, obj))
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return {**obj, "status": {"allowed": self.allowed}}


def reviews(
    api: FakeApi, clock: Clock, **kwargs: Any
) -> tuple[AccessReviews, list[tuple[Watched, str]]]:
    changed: list[tuple[Watched, str]] = []
    return AccessReviews(api, changed.append, clock=clock, **kwargs), changed


# --------------------------------------------------------------------------- pure parts


def test_a_subject_access_review_asks_for_the_service_account_and_its_groups() -> None:
    assert review_body(PRIVATE_DB, SERVICES, local=False) == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "system:serviceaccount:tenant-a:default",
            "groups": [
                "system:serviceaccounts",
                "system:serviceaccounts:tenant-a",
                "system:authenticated",
            ],
            "resourceAttributes": {
                "group": "",
                "version": "v1",
                "resource": "services",
                "verb": "get",
                "name": "private-db",
                "namespace": "tenant-b",
            },
        },
    }


def test_a_local_review_lives_in_the_targets_namespace() -> None:
    review = Review("apps", "web", "apps/v1", "Deployment", "apps", "api")
    body = review_body(review, DEPLOYMENTS, local=True)
    assert body["kind"] == "LocalSubjectAccessReview"
    assert body["metadata"] == {"namespace": "apps"}
    assert body["spec"]["resourceAttributes"]["group"] == "apps"
    assert body["spec"]["resourceAttributes"]["namespace"] == "apps"
    assert local_reviews_path("apps") == (
        "/apis/authorization.k8s.io/v1/namespaces/apps/localsubjectaccessreviews"
    )


def test_a_cluster_scoped_kind_is_asked_without_a_namespace() -> None:
    review = Review("tenant-a", "default", "v1", "Node", "tenant-a", "node-1")
    assert "namespace" not in review_body(review, NODES, local=False)["spec"]["resourceAttributes"]
    assert read_answer(review, NODES, {"status": {"allowed": False}}) == Answer(
        False, "not checked: serviceaccount tenant-a/default may not get nodes"
    )


def test_answers_name_the_account_verb_resource_and_namespace() -> None:
    assert read_answer(PRIVATE_DB, SERVICES, {"status": {"allowed": True}}) == Answer(True)
    assert read_answer(PRIVATE_DB, SERVICES, {"status": {"allowed": False}}) == Answer(
        False, REFUSED_TEXT
    )
    assert read_answer(PRIVATE_DB, SERVICES, {"status": {}}).allowed is False
    assert read_answer(PRIVATE_DB, SERVICES, None).allowed is False
    job = Review("tenant-a", "default", "batch/v1", "Job", "tenant-b", "migrate")
    assert read_answer(job, JOBS, {}).why == (
        "not checked: serviceaccount tenant-a/default may not get jobs.batch in tenant-b"
    )


def test_the_rate_limiter_lets_a_burst_through_then_paces() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=2, clock=clock)
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]
    clock.now += 10
    assert limiter.reserve() == 0.0


# --------------------------------------------------------------------------- AccessReviews


async def test_the_first_answer_is_asked_in_the_background_then_cached() -> None:
    api, clock = FakeApi(allowed=False), Clock()
    access, changed = reviews(api, clock)
    assert access.answer(PRIVATE_DB) is None
    assert await access.ask(PRIVATE_DB) == Answer(False, REFUSED_TEXT)
    assert access.answer(PRIVATE_DB) == Answer(False, REFUSED_TEXT)
    assert [path for path, _ in api.sent] == [SUBJECT_ACCESS_REVIEWS]
    assert changed == [(Watched("v1", "Service", "tenant-b"), "private-db")]


async def test_one_request_per_review_at_a_time() -> None:
    api, clock = FakeApi(allowed=True), Clock()
    api.gate = asyncio.Event()
    access, _ = reviews(api, clock)
    assert access.answer(PRIVATE_DB) is None
    asks = [asyncio.ensure_future(access.ask(PRIVATE_DB)) for _ in range(5)]
    assert access.answer(PRIVATE_DB) is None
    api.gate.set()
    assert await asyncio.gather(*asks) == [Answer(True)] * 5
    assert len(api.sent) == 1


async def test_an_expired_answer_is_used_while_it_is_asked_again() -> None:
    api, clock = FakeApi(allowed=False), Clock()
    access, changed = reviews(api, clock, refused_ttl=10.0, allowed_ttl=60.0)
    await access.ask(PRIVATE_DB)
    clock.now += 9
    assert access.answer(PRIVATE_DB) == Answer(False, REFUSED_TEXT)
    assert len(api.sent) == 1
    clock.now += 1
    api.allowed = True  # a RoleBinding was added
    assert access.answer(PRIVATE_DB) == Answer(False, REFUSED_TEXT)  # stale, being refreshed
    assert await access.ask(PRIVATE_DB) == Answer(True)
    assert len(api.sent) == 2
    assert changed == [(Watched("v1", "Service", "tenant-b"), "private-db")] * 2
    clock.now += 59
    assert access.answer(PRIVATE_DB) == Answer(True)
    assert len(api.sent) == 2


async def test_a_failed_review_fails_closed_and_backs_off() -> None:
    api, clock = FakeApi(allowed=True), Clock()
    api.error = ApiError(403, "Forbidden", "cannot create subjectaccessreviews")
    access, _ = reviews(api, clock)
    failed = Answer(False, "not checked: the access review failed (403 Forbidden)")
    assert await access.ask(PRIVATE_DB) == failed
    clock.now += 1
    assert await access.ask(PRIVATE_DB) == failed
    clock.now += 1  # the second failure waits 2 s
    assert await access.ask(PRIVATE_DB) == failed
    assert len(api.sent) == 2
    api.error = None
    clock.now += 1
    assert await access.ask(PRIVATE_DB) == Answer(True)


async def test_with_watched_namespaces_reviews_are_local_and_cluster_scoped_kinds_refused() -> None:
    api, clock = FakeApi(allowed=True), Clock()
    access, _ = reviews(api, clock, namespaces=("tenant-a", "tenant-b"))
    assert access.watches("tenant-b") and not access.watches("tenant-c")
    assert await access.ask(PRIVATE_DB) == Answer(True)
    assert api.sent[0][0] == local_reviews_path("tenant-b")
    node = Review("tenant-a", "default", "v1", "Node", "tenant-a", "node-1")
    assert await access.ask(node) == Answer(
        False,
        "not checked: nodes are cluster-scoped and the operator watches only some namespaces "
        "(INITPIPELINE_NAMESPACES)",
    )
    assert len(api.sent) == 1


async def test_a_kind_that_is_not_served_is_not_reviewed() -> None:
    api, clock = FakeApi(allowed=True), Clock()
    access, _ = reviews(api, clock)
    cert = Review("tenant-a", "default", "cert-manager.io/v1", "Certificate", "tenant-a", "tls")
    assert await access.ask(cert) == Answer(
        False, "cert-manager.io/v1 Certificate is not served by the API server"
    )
    assert api.sent == []


async def test_deps_reads_the_answers_of_access_reviews() -> None:
    pipeline = parse_pipeline(
        {
            "metadata": {"name": "web", "namespace": "tenant-a"},
            "spec": {
                "steps": [{"name": "deps", "waitFor": [{"service": "tenant-b/private-db"}]}],
                "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
            },
        }
    )
    access, _ = reviews(FakeApi(allowed=False), Clock())

    class Nothing:
        def served(self, watched: Watched) -> bool | None:
            return True

        def get(self, watched: Watched, name: str) -> None:
            return None

        def select(self, watched: Watched, label: str, value: str) -> list[Any]:
            return []

    assert api_waiting(pipeline, Nothing(), access) == {
        "deps": ["service tenant-b/private-db: not checked yet"]
    }
    await access.ask(PRIVATE_DB)
    assert api_waiting(pipeline, Nothing(), access) == {
        "deps": [f"service tenant-b/private-db: {REFUSED_TEXT}"]
    }
    await access.close()
