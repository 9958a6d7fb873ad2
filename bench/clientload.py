"""Scenario (g)'s workload through one API client, in a process of its own:

    python -m bench.clientload CLIENT NAMESPACE COUNT

prints one JSON object: per phase the latencies, wall time and CPU, and the RSS before the
client was imported, after, and after the workload. Before the first RSS reading nothing but
the standard library and yaml is loaded (every client needs them), so what comes after is
the client's. The namespace holds the ConfigMaps `bench.apiclients` describes and one named
`patched-CLIENT`, which only this client patches and watches.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import ssl  # noqa: F401  (every client loads ssl and yaml: they belong to the baseline)
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import yaml  # noqa: F401

from bench.apiclients import LISTED, Client
from bench.proc import memory_mb

# name -> (module under bench.apiclients, opener): each module imports only its library.
CLIENTS = {
    "initpipeline": ("operator_kube", "open_client"),
    "kubernetes_asyncio": ("official", "open_typed"),
    "kubernetes_asyncio-dicts": ("official", "open_dicts"),
    "lightkube": ("lightkube_async", "open_client"),
    "aiohttp-bare": ("bare_aiohttp", "open_client"),
    "httpx2-bare": ("bare_httpx", "open_client"),
}
GET_NAME = "listed-000"  # one of the LISTED ConfigMaps
IN_FLIGHT = 10


def patched(client: str) -> str:
    """The ConfigMap only `client` patches and watches (a DNS subdomain)."""
    return f"patched-{client.replace('_', '-')}"


def _rss() -> float:
    return memory_mb("self")[0]


async def _one_by_one(count: int, call: Callable[[int], Awaitable[Any]]) -> dict[str, Any]:
    latencies = []
    cpu, start = time.process_time(), time.monotonic()
    for i in range(count):
        sent = time.monotonic()
        await call(i)
        latencies.append(time.monotonic() - sent)
    return {
        "latencies": latencies,
        "seconds": time.monotonic() - start,
        "cpu": time.process_time() - cpu,
    }


async def _in_flight(count: int, call: Callable[[int], Awaitable[Any]]) -> dict[str, Any]:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> None:
        async with gate:
            await call(i)

    cpu, start = time.process_time(), time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    return {"seconds": time.monotonic() - start, "cpu": time.process_time() - cpu}


async def workload(client: Client, name: str, count: int) -> dict[str, dict[str, Any]]:
    """GETs one by one, GETs IN_FLIGHT at a time, LISTs, PATCHes, then one watch from before
    the PATCHes that receives their `count` events."""
    await client.get(GET_NAME)  # connections and credentials, not measured
    if await client.list() != LISTED:
        raise RuntimeError(f"a LIST did not return the {LISTED} ConfigMaps")
    phases = {
        "get": await _one_by_one(count, lambda _i: client.get(GET_NAME)),
        "get_in_flight": await _in_flight(count, lambda _i: client.get(GET_NAME)),
        "list": await _one_by_one(count, lambda _i: client.list()),
    }
    since = await client.patch(name, "start")
    phases["patch"] = await _one_by_one(count, lambda i: client.patch(name, str(i)))
    phases["watch"] = await _one_by_one(1, lambda _i: client.watch(name, since, count))
    return phases


async def _run(client_name: str, namespace: str, count: int, opener: Any) -> dict[str, Any]:
    client = await opener(namespace)
    try:
        return await workload(client, patched(client_name), count)
    finally:
        await client.close()


def main(argv: list[str]) -> None:
    client_name, namespace, count = argv[0], argv[1], int(argv[2])
    module_name, opener_name = CLIENTS[client_name]
    base = _rss()
    module = importlib.import_module(f"bench.apiclients.{module_name}")
    imported = _rss()
    phases = asyncio.run(_run(client_name, namespace, count, getattr(module, opener_name)))
    used, peak = memory_mb("self")
    result = {
        "client": client_name,
        "count": count,
        "phases": phases,
        "rss": {"base": base, "imported": imported, "used": used, "peak": peak},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
