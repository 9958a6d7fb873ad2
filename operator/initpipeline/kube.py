"""The one module that talks to the Kubernetes API server.

Objects are plain JSON dicts, as the API server sends them. Expected outcomes are values,
not exceptions: a missing object is None, a create that finds the object already there
returns None, a delete of a missing object returns False. That makes every write idempotent.
A throttled request (429, or 503 with Retry-After) is sent again after the delay the server
asks for, a few times; any other failure is an ApiError (or httpx's transport error), which
`transient()` tells apart from a real refusal. Watches have their own connection pool
(`connect.py`), so open watches never starve the requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx

from initpipeline import connect

log = logging.getLogger(__name__)

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
FIELD_MANAGER = "initpipeline"
# Items per page of a list (the API server's `limit`/`continue`).
PAGE_SIZE = 500
# A throttled request is sent again this many times, after the delay the server asks for
# (capped), before its 429 is returned to the caller (who backs off longer).
THROTTLE_RETRIES = 3
MAX_RETRY_AFTER_SECONDS = 10.0
# Answers that say "not now" rather than "no": the same request may succeed later.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ApiError(Exception):
    """An API answer that is not an expected outcome."""

    def __init__(
        self, status: int, reason: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


def transient(error: BaseException) -> bool:
    """Whether the same request may succeed later: throttling (429), the server's own trouble
    (5xx, 408, a Status with a retry hint), timeouts and lost connections. Everything else
    (400, 403, 404, 409, 422 ...) is the API server refusing the request as it stands."""
    if isinstance(error, ApiError):
        return (
            error.status in TRANSIENT_STATUSES
            or error.status > 500
            or error.retry_after is not None
            or error.reason == "NotLeader"  # fenced: no write until leadership is sure
        )
    return isinstance(error, httpx.TransportError | TimeoutError | OSError)


def retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header, in seconds (the API server sends whole seconds)."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API, found by discovery."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str = ""
    ) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [base]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


PODS = Resource("v1", "Pod", "pods", namespaced=True)
SERVICES = Resource("v1", "Service", "services", namespaced=True)
EVENTS = Resource("v1", "Event", "events", namespaced=True)
ENDPOINT_SLICES = Resource("discovery.k8s.io/v1", "EndpointSlice", "endpointslices", True)
JOBS = Resource("batch/v1", "Job", "jobs", namespaced=True)
LEASES = Resource("coordination.k8s.io/v1", "Lease", "leases", namespaced=True)
_KNOWN = {(r.api_version, r.kind): r for r in (PODS, SERVICES, EVENTS, ENDPOINT_SLICES, JOBS)}


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return ApiError(
        response.status_code,
        body.get("reason", response.reason_phrase),
        body.get("message", response.text[:500]),
        retry_after(response),
    )


@dataclass(frozen=True)
class Outgoing:
    """One request as sent (again, when throttled)."""

    method: str
    path: str
    params: Mapping[str, str] | None
    content: str | None
    headers: Mapping[str, str] | None


def _throttled(response: httpx.Response) -> bool:
    return response.status_code == 429 or (
        response.status_code == 503 and "Retry-After" in response.headers
    )


class Kube:
    def __init__(self, clients: connect.Clients | httpx.AsyncClient) -> None:
        if isinstance(clients, httpx.AsyncClient):  # one client for everything (tests)
            clients = connect.Clients(clients, clients)
        self._clients = clients
        self._http = clients.requests
        self._watch_http = clients.watches
        self._discovered: dict[tuple[str, str], Resource | None] = dict(_KNOWN)

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster service account, else KUBECONFIG, else ~/.kube/config."""
        try:
            return cls(connect.clients(connect.load()))
        except connect.ConfigurationError as error:
            raise ApiError(0, "NoConfig", str(error)) from None

    async def close(self) -> None:
        await self._clients.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> httpx.Response:
        """Send; a throttled answer is sent again after the server's Retry-After."""
        content = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if content is not None else None
        outgoing = Outgoing(method, path, params, content, headers)
        for _ in range(THROTTLE_RETRIES):
            response = await self._send(outgoing)
            if not _throttled(response):
                return response
            delay = min(retry_after(response) or 1.0, MAX_RETRY_AFTER_SECONDS)
            log.info(
                "%s %s throttled (%d), again in %gs", method, path, response.status_code, delay
            )
            await asyncio.sleep(delay)
        return await self._send(outgoing)

    async def _send(self, outgoing: Outgoing) -> httpx.Response:
        """One attempt."""
        return await self._http.request(
            outgoing.method,
            outgoing.path,
            params=outgoing.params,
            content=outgoing.content,
            headers=outgoing.headers,
        )

    async def server_version(self) -> tuple[int, int]:
        response = await self._request("GET", "/version")
        if response.status_code != 200:
            raise _error(response)
        info = response.json()
        minor = "".join(ch for ch in info.get("minor", "0") if ch.isdigit()) or "0"
        return int(info.get("major", "1")), int(minor)

    async def discover(self, api_version: str, kind: str) -> Resource | None:
        """The resource serving `kind`, or None if the API server does not serve it."""
        key = (api_version, kind)
        if key not in self._discovered or self._discovered[key] is None:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            response = await self._request("GET", base)
            found = None
            if response.status_code == 200:
                for entry in response.json().get("resources", []):
                    if entry.get("kind") == kind and "/" not in entry.get("name", ""):
                        found = Resource(api_version, kind, entry["name"], entry["namespaced"])
                        break
            elif response.status_code != 404:
                raise _error(response)
            self._discovered[key] = found
        return self._discovered[key]

    async def get(self, path: str) -> Obj | None:
        response = await self._request("GET", path)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _error(response)
        obj: Obj = response.json()
        return obj

    async def list(
        self,
        path: str,
        label_selector: str = "",
        page_size: int = PAGE_SIZE,
        field_selector: str = "",
    ) -> tuple[list[Obj], str]:
        """Items and the list's resourceVersion (to start a watch from), page by page
        (`limit`/`continue`). WatchExpired when the continue token expired: list again."""
        items: list[Obj] = []
        params = {"limit": str(page_size)}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        while True:
            response = await self._request("GET", path, params=params)
            if response.status_code == 410:
                raise WatchExpired(path)
            if response.status_code != 200:
                raise _error(response)
            body = response.json()
            items.extend(body.get("items") or [])
            meta = body.get("metadata") or {}
            if not meta.get("continue"):
                return items, meta.get("resourceVersion", "")
            params = {**params, "continue": meta["continue"]}

    async def watch(
        self,
        path: str,
        resource_version: str,
        label_selector: str = "",
        seconds: int = 300,
        field_selector: str = "",
        bookmarks: bool = False,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """(event type, object) pairs until the server ends the watch; BOOKMARKs (whose
        object carries only the resourceVersion to resume from) only when `bookmarks`.
        `field_selector="metadata.name=N"` watches one object: RBAC limited to N allows it."""
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        request_timeout = httpx.Timeout(30.0, read=seconds + 30.0)
        async with self._watch_http.stream(
            "GET", path, params=params, timeout=request_timeout
        ) as response:
            if response.status_code == 410:
                raise WatchExpired(path)
            if response.status_code != 200:
                await response.aread()
                raise _error(response)
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpired(path)
                    raise ApiError(
                        obj.get("code", 500), obj.get("reason", ""), obj.get("message", "")
                    )
                if kind != "BOOKMARK" or bookmarks:
                    yield kind, obj

    async def create(self, path: str, obj: Obj) -> Obj | None:
        """The created object, or None when one of that name exists already."""
        response = await self._request(
            "POST", path, body=obj, params={"fieldManager": FIELD_MANAGER}
        )
        if response.status_code == 409:
            return None
        if response.status_code not in (200, 201, 202):
            raise _error(response)
        created: Obj = response.json()
        return created

    async def replace(self, path: str, obj: Obj) -> Obj | None:
        """PUT: the new object, or None when it changed since `obj` was read (409: its
        metadata.resourceVersion is stale) or is gone (404)."""
        response = await self._request(
            "PUT", path, body=obj, params={"fieldManager": FIELD_MANAGER}
        )
        if response.status_code in (404, 409):
            return None
        if response.status_code != 200:
            raise _error(response)
        replaced: Obj = response.json()
        return replaced

    async def merge_patch(self, path: str, patch: Obj) -> Obj | None:
        """The patched object, or None when it is gone."""
        response = await self._request(
            "PATCH",
            path,
            body=patch,
            content_type=MERGE_PATCH,
            params={"fieldManager": FIELD_MANAGER},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _error(response)
        patched: Obj = response.json()
        return patched

    async def delete(self, path: str, uid: str | None = None, *, dependents: bool = False) -> bool:
        """False when the object was already gone (or replaced: the uid precondition).
        dependents: delete what it owns too (propagationPolicy Background); a Job's Pods
        are otherwise orphaned, batch/v1's default."""
        body: dict[str, Any] = {"preconditions": {"uid": uid}} if uid else {}
        if dependents:
            body["propagationPolicy"] = "Background"
        response = await self._request("DELETE", path, body=body or None)
        if response.status_code in (404, 409):
            return False
        if response.status_code not in (200, 202):
            raise _error(response)
        return True

    async def pod_log(self, namespace: str, pod: str, container: str, tail_lines: int) -> str:
        response = await self._request(
            "GET",
            PODS.path(namespace, pod, "log"),
            params={"container": container, "tailLines": str(tail_lines)},
        )
        if response.status_code in (204, 400, 404):  # no container (yet), or gone
            return ""
        if response.status_code != 200:
            raise _error(response)
        return response.text

    async def post_event(self, involved: Obj, type_: str, reason: str, message: str) -> None:
        metadata = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": "initpipeline-operator"},
            "reportingComponent": "initpipeline.io/operator",
            "reportingInstance": "initpipeline-operator",
        }
        await self.create(EVENTS.path(metadata["namespace"]), event)


class FencedKube(Kube):
    """A Kube that sends no write (nothing but GET) while `may_write()` is false.

    The leader's writes go through one: a process frozen (SIGSTOP, a stalled VM) past its
    renew deadline may no longer lead when it wakes, and its reconciles must not write before
    its renewal loop has noticed. A refused write is an ApiError like any other failed call.
    """

    def __init__(self, clients: connect.Clients, may_write: Callable[[], bool]) -> None:
        super().__init__(clients)
        self._may_write = may_write

    @classmethod
    def around(cls, kube: Kube, may_write: Callable[[], bool]) -> FencedKube:
        """`kube`'s connections, fenced."""
        return cls(kube._clients, may_write)

    async def _send(self, outgoing: Outgoing) -> httpx.Response:
        # Asked before every attempt: a retry after a throttled answer is a write too.
        if outgoing.method != "GET" and not self._may_write():
            raise ApiError(
                0, "NotLeader", f"{outgoing.method} {outgoing.path}: leadership may have passed"
            )
        return await super()._send(outgoing)
