"""The floor under kubernetes_asyncio (and Kopf): a bare aiohttp request loop."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from bench.apiclients import MERGE_PATCH, Bare, checked
from bench.kubeconfig import server_and_tls


class BareAiohttp(Bare):
    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        server, tls = server_and_tls()
        self.session = aiohttp.ClientSession(
            base_url=server, connector=aiohttp.TCPConnector(ssl=tls)
        )

    async def _call(
        self, method: str, path: str, params: dict[str, str] | None = None, body: bytes = b""
    ) -> Any:
        headers = {"Content-Type": MERGE_PATCH} if body else None
        async with self.session.request(
            method, path, params=params, data=body or None, headers=headers
        ) as response:
            return checked(response.status, await response.read())

    async def _lines(self, path: str, params: dict[str, str]) -> AsyncGenerator[bytes, None]:
        async with self.session.get(path, params=params) as response:
            if response.status >= 400:
                checked(response.status, await response.read())
            async for line in response.content:
                yield line

    async def close(self) -> None:
        await self.session.close()


async def open_client(namespace: str) -> BareAiohttp:
    return BareAiohttp(namespace)
