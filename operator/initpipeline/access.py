"""May the Pods' ServiceAccount read a wait target? SubjectAccessReviews, cached and paced.

`deps.review_for` says which targets need a review (another namespace's `service` or `job`,
every `resource`) and `deps.refusal` turns the answers into findings; this module asks the
API server. `AccessReviews.answer` never waits: it returns the cached answer (a stale one while
it is asked again) or None, and asks in the background; when an answer arrives or changes it
calls `on_change((watched, name))` with the target's kind, namespace and name (the
controller's dependency key), so the pipelines that depend on it are looked at again. The
calls are rate-limited (a token bucket) and bounded in number at once, so a burst of
pipelines never floods the API server, and no reconcile waits for another's review.

Which review: with every namespace watched, a SubjectAccessReview (the operator's ClusterRole
grants `create` on `subjectaccessreviews`); with INITPIPELINE_NAMESPACES, a
LocalSubjectAccessReview in the target's namespace (a Role there grants `create` on
`localsubjectaccessreviews`), so the operator needs no cluster-wide right.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from initpipeline import messages
from initpipeline.deps import Answer, Review, Watched
from initpipeline.kube import ApiError, Resource

log = logging.getLogger(__name__)

AUTHORIZATION: Final = "authorization.k8s.io/v1"
SUBJECT_ACCESS_REVIEWS: Final = f"/apis/{AUTHORIZATION}/subjectaccessreviews"
# How long an answer is used before it is asked again (kube-apiserver's webhook authorizer
# caches allowed answers longer than refusals, too): a refusal lifted by a new RoleBinding
# is seen within REFUSED_TTL.
ALLOWED_TTL: Final = 60.0
REFUSED_TTL: Final = 10.0
# A review that failed is asked again after 1, 2, 4 ... up to this many seconds.
MAX_ERROR_BACKOFF: Final = 60.0
RATE: Final = 10.0  # reviews per second, on average
BURST: Final = 20  # reviews at once after a quiet time
CONCURRENCY: Final = 4  # reviews in flight at once
MAX_ENTRIES: Final = 4096  # expired answers are dropped beyond this many


def local_reviews_path(namespace: str) -> str:
    return f"/apis/{AUTHORIZATION}/namespaces/{namespace}/localsubjectaccessreviews"


def resource_label(resource: Resource) -> str:
    """`services`, `jobs.batch`, `certificates.cert-manager.io` (as kubectl names them)."""
    group = resource.api_version.rpartition("/")[0]
    return f"{resource.plural}.{group}" if group else resource.plural


def review_body(review: Review, resource: Resource, local: bool) -> dict[str, Any]:
    """The (Local)SubjectAccessReview asking whether the ServiceAccount may `review.verb`
    the object, with the groups the API server gives that account's tokens."""
    group, _, version = resource.api_version.rpartition("/")
    attributes = {
        "group": group,
        "version": version,
        "resource": resource.plural,
        "verb": review.verb,
        "name": review.name,
    }
    if resource.namespaced:
        attributes["namespace"] = review.namespace
    body: dict[str, Any] = {
        "apiVersion": AUTHORIZATION,
        "kind": "LocalSubjectAccessReview" if local else "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{review.sa_namespace}:{review.sa_name}",
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{review.sa_namespace}",
                "system:authenticated",
            ],
            "resourceAttributes": attributes,
        },
    }
    if local:
        body["metadata"] = {"namespace": review.namespace}
    return body


def read_answer(review: Review, resource: Resource, answered: dict[str, Any] | None) -> Answer:
    """The API server's answer (its `status.allowed`) as deps reads it."""
    status = (answered or {}).get("status") or {}
    if status.get("allowed") is True:
        return Answer(True)
    namespace = review.namespace if resource.namespaced else ""
    return Answer(
        False,
        messages.access_refused(
            review.service_account, review.verb, resource_label(resource), namespace
        ),
    )


class Api(Protocol):
    """What AccessReviews needs of `kube.Kube`."""

    async def discover(self, api_version: str, kind: str) -> Resource | None: ...

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any] | None: ...


class RateLimiter:
    """A token bucket: `rate` per second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def reserve(self) -> float:
        """Take a token; the seconds to wait before using it (0 when one was there)."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate


@dataclass(frozen=True)
class _Cached:
    answer: Answer
    expires: float
    failures: int = 0  # consecutive failed reviews (error backoff)


class AccessReviews:
    """Answers to `deps.Review`s (the `deps.Access` protocol), asked of the API server."""

    def __init__(
        self,
        kube: Api,
        on_change: Callable[[tuple[Watched, str]], None] | None = None,
        *,
        namespaces: Sequence[str] = (),
        allowed_ttl: float = ALLOWED_TTL,
        refused_ttl: float = REFUSED_TTL,
        rate: float = RATE,
        burst: int = BURST,
        concurrency: int = CONCURRENCY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._on_change = on_change
        self._namespaces = frozenset(namespaces)
        self._allowed_ttl = allowed_ttl
        self._refused_ttl = refused_ttl
        self._clock = clock
        self._limiter = RateLimiter(rate, burst, clock)
        self._in_flight = asyncio.Semaphore(concurrency)
        self._cache: dict[Review, _Cached] = {}
        self._asking: dict[Review, asyncio.Task[Answer]] = {}
        self.calls = 0  # reviews sent to the API server (for tests and logs)

    def watches(self, namespace: str) -> bool:
        return not self._namespaces or namespace in self._namespaces

    def answer(self, review: Review) -> Answer | None:
        """The cached answer, asked again in the background once expired; None (and asked
        in the background) when there is none yet. Never waits."""
        cached = self._cache.get(review)
        if cached is None or cached.expires <= self._clock():
            self._ask_in_background(review)
        return cached.answer if cached is not None else None

    async def ask(self, review: Review) -> Answer:
        """The answer, from the cache while fresh, else asked now (one request per review at
        a time, paced by the rate limit)."""
        cached = self._cache.get(review)
        if cached is not None and cached.expires > self._clock():
            return cached.answer
        return await self._ask_in_background(review)

    async def close(self) -> None:
        tasks = list(self._asking.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._asking.clear()

    def _ask_in_background(self, review: Review) -> asyncio.Task[Answer]:
        task = self._asking.get(review)
        if task is None:
            task = asyncio.create_task(self._refresh(review), name=f"access review {review}")
            self._asking[review] = task
        return task

    async def _refresh(self, review: Review) -> Answer:
        try:
            before = self._cache.get(review)
            answer, ttl, failures = await self._review(review, before)
            self._store(review, _Cached(answer, self._clock() + ttl, failures))
        finally:
            self._asking.pop(review, None)
        if self._on_change is not None and (before is None or before.answer != answer):
            self._on_change((review.watched, review.name))
        return answer

    async def _review(self, review: Review, before: _Cached | None) -> tuple[Answer, float, int]:
        """The answer, how long to keep it, and the consecutive failures so far."""
        try:
            resource = await self._kube.discover(review.api_version, review.kind)
            if resource is None:
                why = messages.not_served(review.api_version, review.kind)
                return Answer(False, why), self._refused_ttl, 0
            if self._namespaces and not resource.namespaced:
                why = messages.cluster_scoped_not_watched(resource_label(resource))
                return Answer(False, why), self._refused_ttl, 0
            local = bool(self._namespaces)
            path = local_reviews_path(review.namespace) if local else SUBJECT_ACCESS_REVIEWS
            async with self._in_flight:
                delay = self._limiter.reserve()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing, not synchronisation
                self.calls += 1
                answered = await self._kube.create(path, review_body(review, resource, local))
        except Exception as error:  # API, transport or decoding errors: fail closed, retry
            failures = (before.failures if before is not None else 0) + 1
            detail = (
                f"{error.status} {error.reason}"
                if isinstance(error, ApiError)
                else type(error).__name__
            )
            log.warning("access review of %s failed (will retry): %s", review, error)
            backoff = min(2.0 ** (failures - 1), MAX_ERROR_BACKOFF)
            return Answer(False, messages.access_review_failed(detail)), backoff, failures
        answer = read_answer(review, resource, answered)
        return answer, self._allowed_ttl if answer.allowed else self._refused_ttl, 0

    def _store(self, review: Review, cached: _Cached) -> None:
        if len(self._cache) >= MAX_ENTRIES:
            now = self._clock()
            for key in [key for key, old in self._cache.items() if old.expires <= now]:
                del self._cache[key]
        self._cache[review] = cached
