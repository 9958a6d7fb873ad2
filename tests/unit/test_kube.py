"""The API module against a fake transport: throttled requests are sent again after the
server's Retry-After, lists paginate, and failures are told apart (transient or refused)."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest

from initpipeline import kube as kube_module
from initpipeline.cache import DependencyCache
from initpipeline.deps import Watched
from initpipeline.kube import ApiError, Kube, transient

pytestmark = pytest.mark.unit


def fake(answers: list[httpx.Response], sent: list[httpx.Request]) -> Kube:
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answers.pop(0)

    return Kube(httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="https://api"))


def status(code: int, reason: str, **headers: str) -> httpx.Response:
    body = {"kind": "Status", "code": code, "reason": reason, "message": reason.lower()}
    return httpx.Response(code, json=body, headers=headers)


async def test_a_throttled_create_is_sent_again_after_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(kube_module.asyncio, "sleep", sleep)
    sent: list[httpx.Request] = []
    created = httpx.Response(201, json={"metadata": {"name": "p"}})
    kube = fake([status(429, "TooManyRequests", **{"Retry-After": "2"}), created], sent)
    assert await kube.create("/api/v1/namespaces/ns/pods", {"metadata": {"name": "p"}})
    assert [r.method for r in sent] == ["POST", "POST"] and slept == [2.0]


async def test_still_throttled_after_the_retries_is_a_transient_error_with_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def sleep(seconds: float) -> None:
        pass

    monkeypatch.setattr(kube_module.asyncio, "sleep", sleep)
    sent: list[httpx.Request] = []
    throttled = [status(429, "TooManyRequests", **{"Retry-After": "5"}) for _ in range(4)]
    kube = fake(throttled, sent)
    with pytest.raises(ApiError) as raised:
        await kube.create("/api/v1/namespaces/ns/pods", {"metadata": {}})
    assert raised.value.retry_after == 5 and transient(raised.value)
    assert len(sent) == kube_module.THROTTLE_RETRIES + 1


async def test_a_list_follows_continue_tokens() -> None:
    sent: list[httpx.Request] = []

    def page(names: list[str], token: str) -> httpx.Response:
        items = [{"metadata": {"name": n}} for n in names]
        return httpx.Response(
            200, json={"items": items, "metadata": {"continue": token, "resourceVersion": "42"}}
        )

    kube = fake([page(["a", "b"], "t1"), page(["c"], "")], sent)
    items, version = await kube.list("/api/v1/pods", label_selector="x", page_size=2)
    assert [i["metadata"]["name"] for i in items] == ["a", "b", "c"] and version == "42"
    assert sent[0].url.params["limit"] == "2" and "continue" not in sent[0].url.params
    assert sent[1].url.params["continue"] == "t1" and sent[1].url.params["labelSelector"] == "x"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ApiError(429, "TooManyRequests", ""), True),
        (ApiError(500, "InternalError", ""), True),
        (ApiError(503, "ServiceUnavailable", ""), True),
        (ApiError(504, "GatewayTimeout", ""), True),
        (ApiError(403, "Forbidden", "", retry_after=1), True),  # the server says: later
        (ApiError(0, "NotLeader", ""), True),
        (httpx.ConnectError("refused"), True),
        (httpx.PoolTimeout("pool"), True),
        (TimeoutError(), True),
        (ApiError(400, "BadRequest", ""), False),
        (ApiError(403, "Forbidden", ""), False),
        (ApiError(404, "NotFound", ""), False),
        (ApiError(409, "Conflict", ""), False),
        (ApiError(422, "Invalid", ""), False),
        (ValueError("a bug"), False),
    ],
    ids=repr,
)
def test_transient_or_refused(error: BaseException, expected: bool) -> None:
    assert transient(error) is expected


class Recorded(DependencyCache):
    """Records which informers would start and stop (no API behind it)."""

    def __init__(self, cluster_wide: bool) -> None:
        super().__init__(None, cluster_wide, lambda dependency: None)  # type: ignore[arg-type]
        self.started: list[Any] = []
        self.stopped: list[Any] = []

    def _start(self, scope: Any) -> None:
        self.started.append(scope)
        self._informers[scope] = None  # type: ignore[assignment]

    def _stop(self, scope: Any) -> None:
        self.stopped.append(scope)
        self._informers.pop(scope, None)
        self._users.pop(scope, None)


def test_cluster_wide_one_informer_per_kind_whatever_the_namespaces() -> None:
    cache = Recorded(cluster_wide=True)
    for i in range(200):
        cache.use(("ns", f"p{i}"), {Watched("v1", "Service", f"ns-{i}")})
    assert cache.started == [("v1", "Service", "")]


def test_per_namespace_informers_stop_when_no_pipeline_needs_them() -> None:
    cache = Recorded(cluster_wide=False)
    a, b = Watched("batch/v1", "Job", "a"), Watched("batch/v1", "Job", "b")
    cache.use("p1", {a})
    cache.use("p2", {a, b})
    cache.use("p2", {b})
    assert cache.stopped == []  # p1 still needs a
    cache.release("p1")
    assert cache.stopped == [("batch/v1", "Job", "a")]
    cache.release("p2")
    assert cache.stopped == [("batch/v1", "Job", "a"), ("batch/v1", "Job", "b")]
