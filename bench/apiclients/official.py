"""kubernetes_asyncio, the official client's async form (aiohttp): its typed models, as its
documentation uses it, and its plain-dict form (`_preload_content=False`, the JSON decoded
here), as an API module written against dicts would use it."""

from __future__ import annotations

import json
from typing import Any

from kubernetes_asyncio import client, config, watch

from bench.apiclients import LISTED_LABEL, MERGE_PATCH, PAGE, WATCH_SECONDS, state, take


class Typed:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    async def get(self, name: str) -> None:
        await self.core.read_namespaced_config_map(name, self.namespace)

    async def list(self) -> int:
        items: list[Any] = []
        token = None
        while True:
            page = await self.core.list_namespaced_config_map(
                self.namespace, label_selector=f"{LISTED_LABEL}=true", limit=PAGE, _continue=token
            )
            items.extend(page.items)
            token = page.metadata._continue
            if not token:
                return len(items)

    async def patch(self, name: str, value: str) -> str:
        patched = await self.core.patch_namespaced_config_map(
            name, self.namespace, state(value), _content_type=MERGE_PATCH
        )
        return str(patched.metadata.resource_version)

    async def watch(self, name: str, since: str, count: int) -> None:
        async with watch.Watch() as events:
            stream = events.stream(
                self.core.list_namespaced_config_map,
                self.namespace,
                field_selector=f"metadata.name={name}",
                resource_version=since,
                timeout_seconds=WATCH_SECONDS,
            )
            await take(stream, count)

    async def close(self) -> None:
        await self.api.close()


async def _decoded(response: Any) -> Any:
    """The body of an undecoded (`_preload_content=False`) aiohttp response, as dicts."""
    body = await response.read()
    if response.status >= 400:
        raise RuntimeError(f"{response.status}: {body[:300]!r}")
    return json.loads(body)


class Dicts(Typed):
    async def get(self, name: str) -> None:
        await _decoded(
            await self.core.read_namespaced_config_map(name, self.namespace, _preload_content=False)
        )

    async def list(self) -> int:
        items: list[Any] = []
        token = None
        while True:
            page = await _decoded(
                await self.core.list_namespaced_config_map(
                    self.namespace,
                    label_selector=f"{LISTED_LABEL}=true",
                    limit=PAGE,
                    _continue=token,
                    _preload_content=False,
                )
            )
            items.extend(page["items"])
            token = page["metadata"].get("continue")
            if not token:
                return len(items)

    async def patch(self, name: str, value: str) -> str:
        patched = await _decoded(
            await self.core.patch_namespaced_config_map(
                name,
                self.namespace,
                state(value),
                _content_type=MERGE_PATCH,
                _preload_content=False,
            )
        )
        return str(patched["metadata"]["resourceVersion"])

    async def watch(self, name: str, since: str, count: int) -> None:
        response = await self.core.list_namespaced_config_map(
            self.namespace,
            field_selector=f"metadata.name={name}",
            resource_version=since,
            timeout_seconds=WATCH_SECONDS,
            watch=True,
            _preload_content=False,
        )
        try:
            await take((json.loads(line) async for line in response.content if line.strip()), count)
        finally:
            response.close()


async def _api() -> client.ApiClient:
    await config.load_kube_config()
    return client.ApiClient()


async def open_typed(namespace: str) -> Typed:
    return Typed(await _api(), namespace)


async def open_dicts(namespace: str) -> Dicts:
    return Dicts(await _api(), namespace)
