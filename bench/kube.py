"""A small async client of the API server (aiohttp, the admin kubeconfig) for the benchmarks.

It counts every request it sends by (verb, resource, subresource), so that scenario (c) can
take the benchmark's own requests out of the API server's counters. Watches yield
`(arrival time, event type, object)`; the arrival time is `time.monotonic()` when the line
was read, which is what every latency here is measured with.
"""

from __future__ import annotations

import asyncio
import collections
import json
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.kubeconfig import server_and_tls

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = "initpipeline-bench"
# How long a request is tried again while the API server does not answer.
OUTAGE_SECONDS = 120.0


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, text: str) -> None:
        super().__init__(f"{method} {path}: {status} {text[:300]}")
        self.status = status


@dataclass(frozen=True)
class Resource:
    """A resource's collection path: group ('' = core), version, plural, namespaced."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
PODS = Resource("", "v1", "pods")
SERVICES = Resource("", "v1", "services")
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices")
JOBS = Resource("batch", "v1", "jobs")
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles")
ROLEBINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings")
PIPELINES = Resource("initpipeline.io", "v1alpha1", "initpipelines")


def _verb(method: str, name: str | None, watch: bool) -> str:
    """The verb label the API server's metrics use for such a request."""
    if watch:
        return "WATCH"
    if method == "GET":
        return "GET" if name else "LIST"
    return method


@dataclass
class Kube:
    """Requests to one API server; `sent` counts them as (verb, resource, subresource)."""

    server: str
    ssl_context: ssl.SSLContext
    session: aiohttp.ClientSession | None = None
    sent: collections.Counter[tuple[str, str, str]] = field(default_factory=collections.Counter)
    outages: int = 0  # requests sent again because the API server did not answer

    @classmethod
    def from_kubeconfig(cls, path: str | None = None) -> Kube:
        server, ctx = server_and_tls(path)
        return cls(server=server, ssl_context=ctx)

    async def __aenter__(self) -> Kube:
        connector = aiohttp.TCPConnector(ssl=self.ssl_context, limit=200)
        self.session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    def _count(self, method: str, res: Resource | None, name: str | None, sub: str) -> None:
        plural = res.plural if res else ""
        self.sent[(_verb(method, name, False), plural, sub)] += 1

    async def request(
        self,
        method: str,
        res: Resource,
        namespace: str | None = None,
        name: str | None = None,
        sub: str = "",
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        ok_missing: bool = False,
    ) -> Obj:
        assert self.session is not None, "use `async with Kube...`"
        path = res.path(namespace, name, sub)
        self._count(method, res, name, sub)
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        deadline = time.monotonic() + OUTAGE_SECONDS
        retried = False
        while True:
            try:
                async with self.session.request(
                    method, self.server + path, data=data, headers=headers, params=params
                ) as response:
                    text = await response.text()
            except (aiohttp.ClientConnectionError, TimeoutError):
                # The shared cluster's API server restarts now and then: wait it out.
                if time.monotonic() > deadline:
                    raise
                self.outages += 1
                retried = True
                await asyncio.sleep(1)
                continue
            if response.status in (429, 503) and time.monotonic() < deadline:
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            if response.status == 404 and ok_missing:
                return {}
            if response.status == 409 and method == "POST" and retried:
                return {}  # the create had landed before the connection broke
            if response.status >= 400:
                raise ApiError(response.status, method, path, text)
            result: Obj = json.loads(text) if text else {}
            return result

    async def create(self, res: Resource, namespace: str | None, obj: Obj) -> Obj:
        return await self.request("POST", res, namespace, body=obj)

    async def get(self, res: Resource, namespace: str | None, name: str) -> Obj:
        return await self.request("GET", res, namespace, name, ok_missing=True)

    async def list_all(
        self, res: Resource, namespace: str | None = None, **params: str
    ) -> list[Obj]:
        items: list[Obj] = []
        cont = ""
        while True:
            query = {**params, "limit": "500", **({"continue": cont} if cont else {})}
            page = await self.request("GET", res, namespace, params=query)
            items.extend(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue") or ""
            if not cont:
                return items

    async def patch(
        self, res: Resource, namespace: str | None, name: str, body: Obj, sub: str = ""
    ) -> Obj:
        return await self.request(
            "PATCH", res, namespace, name, sub, body=body, content_type=MERGE_PATCH
        )

    async def delete(self, res: Resource, namespace: str | None, name: str) -> None:
        await self.request("DELETE", res, namespace, name, ok_missing=True)

    async def raw(self, path: str) -> str:
        """GET a non-resource path (e.g. /metrics) as text."""
        assert self.session is not None
        self.sent[("GET", "", path.strip("/"))] += 1
        deadline = time.monotonic() + OUTAGE_SECONDS
        while True:
            try:
                async with self.session.get(self.server + path) as response:
                    return await response.text()
            except (aiohttp.ClientConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)

    async def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        resource_version: str = "",
        **params: str,
    ) -> AsyncIterator[tuple[float, str, Obj]]:
        """(arrival monotonic time, type, object) for each event, from `resource_version`
        (empty: the current state as ADDED events first, then changes)."""
        assert self.session is not None
        self.sent[("WATCH", res.plural, "")] += 1
        query = {"watch": "1", "allowWatchBookmarks": "false", **params}
        if resource_version:
            query["resourceVersion"] = resource_version
        url = self.server + res.path(namespace)
        async with self.session.get(url, params=query) as response:
            if response.status >= 400:
                raise ApiError(response.status, "WATCH", url, await response.text())
            async for line in response.content:
                now = time.monotonic()
                if line.strip():
                    event = json.loads(line)
                    yield now, event["type"], event["object"]

    async def bounded(self, jobs: Iterable[Any], limit: int = 20) -> list[Any]:
        """Await the coroutines in `jobs`, at most `limit` at once, results in order."""
        gate = asyncio.Semaphore(limit)

        async def one(job: Any) -> Any:
            async with gate:
                return await job

        return list(await asyncio.gather(*(one(j) for j in jobs)))
