"""lightkube's public `AsyncClient` (httpx2) with its typed models."""

from __future__ import annotations

from lightkube import AsyncClient
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import PatchType

from bench.apiclients import LISTED_LABEL, PAGE, WATCH_SECONDS, state, take


class Lightkube:
    def __init__(self, namespace: str) -> None:
        self.client = AsyncClient(namespace=namespace)
        self.namespace = namespace

    async def get(self, name: str) -> None:
        await self.client.get(ConfigMap, name, namespace=self.namespace)

    async def list(self) -> int:
        items = self.client.list(
            ConfigMap, namespace=self.namespace, labels={LISTED_LABEL: "true"}, chunk_size=PAGE
        )
        return len([item async for item in items])

    async def patch(self, name: str, value: str) -> str:
        patched = await self.client.patch(
            ConfigMap, name, state(value), namespace=self.namespace, patch_type=PatchType.MERGE
        )
        return str(patched.metadata.resourceVersion)

    async def watch(self, name: str, since: str, count: int) -> None:
        events = self.client.watch(
            ConfigMap,
            namespace=self.namespace,
            fields={"metadata.name": name},
            resource_version=since,
            server_timeout=WATCH_SECONDS,
        )
        try:
            await take(events, count)
        finally:
            await events.aclose()

    async def close(self) -> None:
        await self.client.close()


async def open_client(namespace: str) -> Lightkube:
    return Lightkube(namespace)
