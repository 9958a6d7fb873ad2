"""The liveness endpoint, served by the operator's event loop from the moment it starts.

Kopf's own endpoint (`kopf.operator(liveness_endpoint=...)`) is a root task that starts only
once every startup handler has returned, and a standby waits for the Lease inside the startup
handler: its probe would fail and the kubelet would restart it again and again. This one
answers from the start and, served by the same event loop as the handlers, stops answering
when that loop is stuck, which is all Kopf's endpoint tells (the operator has no probe
handlers).
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import AsyncIterator

from aiohttp import web


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@contextlib.asynccontextmanager
async def serving(endpoint: str) -> AsyncIterator[None]:
    """Serve `endpoint` (http://host:port/path) while the block runs; "" serves nothing."""
    if not endpoint:
        yield
        return
    parts = urllib.parse.urlsplit(endpoint)
    app = web.Application()
    app.add_routes([web.get(parts.path or "/", _healthz)])
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, parts.hostname, parts.port).start()
        yield
    finally:
        await runner.cleanup()
