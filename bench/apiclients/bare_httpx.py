"""The floor under the operator's API module and lightkube: a bare httpx2 request loop."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx2 as httpx

from bench.apiclients import MERGE_PATCH, Bare, checked
from bench.kubeconfig import server_and_tls


class BareHttpx(Bare):
    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        server, tls = server_and_tls()
        self.client = httpx.AsyncClient(base_url=server, verify=tls)

    async def _call(
        self, method: str, path: str, params: dict[str, str] | None = None, body: bytes = b""
    ) -> Any:
        headers = {"Content-Type": MERGE_PATCH} if body else None
        response = await self.client.request(
            method, path, params=params, content=body or None, headers=headers
        )
        return checked(response.status_code, response.content)

    async def _lines(self, path: str, params: dict[str, str]) -> AsyncGenerator[str, None]:
        async with self.client.stream("GET", path, params=params, timeout=None) as response:
            if response.status_code >= 400:
                checked(response.status_code, await response.aread())
            async for line in response.aiter_lines():
                yield line

    async def close(self) -> None:
        await self.client.aclose()


async def open_client(namespace: str) -> BareHttpx:
    return BareHttpx(namespace)
