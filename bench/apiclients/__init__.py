"""Scenario (g)'s workload through each API client, one module per client library so that a
process loads only the one it measures (`bench.clientload`).

Each module's `open*(namespace)` returns an object with the same five coroutines:
  get(name)                 GET one ConfigMap, decoded as the client decodes it
  list()                    LIST the ConfigMaps labelled LISTED_LABEL, every page of PAGE
  patch(name, value)        merge patch {"data": {"state": value}}; the new resourceVersion
  watch(name, since, count) watch that ConfigMap from `since` until `count` events arrived
  close()
This module imports nothing but the standard library: its constants are read before the
client is imported.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Protocol

LISTED_LABEL = "bench.initpipeline.io/listed"
LISTED = 100  # ConfigMaps that each LIST returns
PAGE = 50  # items per page: each LIST is LISTED / PAGE requests
MERGE_PATCH = "application/merge-patch+json"
WATCH_SECONDS = 120  # the server ends a watch that has not seen its events by then


class Client(Protocol):
    async def get(self, name: str) -> None: ...

    async def list(self) -> int: ...

    async def patch(self, name: str, value: str) -> str: ...

    async def watch(self, name: str, since: str, count: int) -> None: ...

    async def close(self) -> None: ...


def state(value: str) -> dict[str, dict[str, str]]:
    """The merge patch every client sends: a status-like field of a ConfigMap."""
    return {"data": {"state": value}}


async def take(events: AsyncIterator[Any], count: int) -> None:
    """Until `count` events arrived; an error when the watch ends before."""
    seen = 0
    async for _event in events:
        seen += 1
        if seen == count:
            return
    raise RuntimeError(f"the watch ended after {seen} of {count} events")


class Bare:
    """A request loop with nothing between it and its HTTP library: paths built by hand, JSON
    decoded to dicts. Subclasses send (`_call`) and stream lines (`_lines`)."""

    def __init__(self, namespace: str) -> None:
        self.path = f"/api/v1/namespaces/{namespace}/configmaps"

    async def _call(
        self, method: str, path: str, params: dict[str, str] | None = None, body: bytes = b""
    ) -> Any:
        raise NotImplementedError

    def _lines(self, path: str, params: dict[str, str]) -> AsyncGenerator[str | bytes, None]:
        raise NotImplementedError

    async def get(self, name: str) -> None:
        await self._call("GET", f"{self.path}/{name}")

    async def list(self) -> int:
        params = {"labelSelector": f"{LISTED_LABEL}=true", "limit": str(PAGE)}
        items = 0
        while True:
            page = await self._call("GET", self.path, params)
            items += len(page["items"])
            token = page["metadata"].get("continue")
            if not token:
                return items
            params = {**params, "continue": token}

    async def patch(self, name: str, value: str) -> str:
        patched = await self._call("PATCH", f"{self.path}/{name}", None, _body(value))
        return str(patched["metadata"]["resourceVersion"])

    async def watch(self, name: str, since: str, count: int) -> None:
        params = {
            "watch": "true",
            "resourceVersion": since,
            "fieldSelector": f"metadata.name={name}",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        lines = self._lines(self.path, params)
        try:
            await take((json.loads(line) async for line in lines if line.strip()), count)
        finally:
            await lines.aclose()


def _body(value: str) -> bytes:
    return json.dumps(state(value)).encode()


def checked(status: int, body: bytes) -> Any:
    """The decoded body of a successful answer."""
    if status >= 400:
        raise RuntimeError(f"{status}: {body[:300]!r}")
    return json.loads(body)
