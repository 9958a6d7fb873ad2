"""The liveness endpoint answers while its block runs, and only then."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request

import pytest

from initpipeline import health

pytestmark = pytest.mark.unit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


async def test_the_endpoint_answers_on_its_path_while_serving() -> None:
    base = f"http://127.0.0.1:{free_port()}"
    async with health.serving(f"{base}/healthz"):
        code, body = await asyncio.to_thread(fetch, f"{base}/healthz")
        assert (code, json.loads(body)) == (200, {"status": "ok"})
        assert (await asyncio.to_thread(fetch, f"{base}/other"))[0] == 404
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(fetch, f"{base}/healthz")
