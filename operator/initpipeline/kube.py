"""The one module that talks to the Kubernetes API server (Kopf's own watches aside).

Objects are plain JSON dicts, as the API server sends them. Expected outcomes are values,
not exceptions: a missing object is None, a create that finds the object already there
returns None, a delete of a missing object returns False. That makes every write idempotent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
from lightkube.config import client_adapter
from lightkube.config.kubeconfig import KubeConfig

log = logging.getLogger(__name__)

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
FIELD_MANAGER = "initpipeline"


class ApiError(Exception):
    """An API answer that is not an expected outcome."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


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
    return ApiError(
        response.status_code,
        body.get("reason", response.reason_phrase),
        body.get("message", response.text[:500]),
    )


class Kube:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._discovered: dict[tuple[str, str], Resource | None] = dict(_KNOWN)

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster service account, else KUBECONFIG, else ~/.kube/config."""
        config = KubeConfig.from_env().get()
        if config is None:
            raise ApiError(0, "NoConfig", "no current context in the kubeconfig")
        params = client_adapter.ConnectionParams(timeout=httpx.Timeout(30.0))
        return cls(client_adapter.AsyncClient(config, params))

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> httpx.Response:
        content = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if content is not None else None
        return await self._http.request(
            method, path, params=params, content=content, headers=headers
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

    async def list(self, path: str, label_selector: str = "") -> tuple[list[Obj], str]:
        """Items and the list's resourceVersion (to start a watch from)."""
        params = {"labelSelector": label_selector} if label_selector else {}
        response = await self._request("GET", path, params=params)
        if response.status_code != 200:
            raise _error(response)
        body = response.json()
        return body.get("items", []), body["metadata"].get("resourceVersion", "")

    async def watch(
        self,
        path: str,
        resource_version: str,
        label_selector: str = "",
        seconds: int = 300,
        field_selector: str = "",
    ) -> AsyncIterator[tuple[str, Obj]]:
        """(event type, object) pairs until the server ends the watch; bookmarks skipped.
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
        async with self._http.stream(
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
                if kind != "BOOKMARK":
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

    async def delete(self, path: str, uid: str | None = None) -> bool:
        """False when the object was already gone (or replaced: the uid precondition)."""
        body = {"preconditions": {"uid": uid}} if uid else None
        response = await self._request("DELETE", path, body=body)
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

    def __init__(self, http: httpx.AsyncClient, may_write: Callable[[], bool]) -> None:
        super().__init__(http)
        self._may_write = may_write

    @classmethod
    def around(cls, kube: Kube, may_write: Callable[[], bool]) -> FencedKube:
        """`kube`'s connection, fenced."""
        return cls(kube._http, may_write)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> httpx.Response:
        if method != "GET" and not self._may_write():
            raise ApiError(0, "NotLeader", f"{method} {path}: leadership may have passed")
        return await super()._request(
            method, path, params=params, body=body, content_type=content_type
        )
