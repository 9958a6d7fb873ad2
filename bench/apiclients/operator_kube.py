"""The operator's own API module: `initpipeline.kube.Kube` (httpx2, lightkube's KubeConfig)."""

from __future__ import annotations

from bench.apiclients import LISTED_LABEL, PAGE, state, take
from initpipeline.kube import Kube


class OperatorKube:
    def __init__(self, namespace: str) -> None:
        self.kube = Kube.from_environment()
        self.path = f"/api/v1/namespaces/{namespace}/configmaps"

    async def get(self, name: str) -> None:
        if await self.kube.get(f"{self.path}/{name}") is None:
            raise LookupError(name)

    async def list(self) -> int:
        items, _version = await self.kube.list(self.path, f"{LISTED_LABEL}=true", PAGE)
        return len(items)

    async def patch(self, name: str, value: str) -> str:
        patched = await self.kube.merge_patch(f"{self.path}/{name}", state(value))
        if patched is None:
            raise LookupError(name)
        return str(patched["metadata"]["resourceVersion"])

    async def watch(self, name: str, since: str, count: int) -> None:
        events = self.kube.watch(self.path, since, field_selector=f"metadata.name={name}")
        try:
            await take(events, count)
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    async def close(self) -> None:
        await self.kube.close()


async def open_client(namespace: str) -> OperatorKube:
    return OperatorKube(namespace)
