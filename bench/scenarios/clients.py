"""(g) API clients: the same workload through the operator's API module and the clients it
could use instead, each in a process of its own (`bench.clientload`), so that CPU and RSS
are the client's alone.

Clients (BENCH_CLIENTS, comma-separated, default all): `initpipeline` (the operator's
`initpipeline.kube.Kube`, httpx2), `kubernetes_asyncio` (the official client's async form,
aiohttp, typed models), `kubernetes_asyncio-dicts` (the same without its models:
`_preload_content=False`, JSON decoded to dicts as the operator's modules want them),
`lightkube` (its public AsyncClient, httpx2, typed models) and the floors, bare
`aiohttp-bare` and `httpx2-bare` request loops. Workload (BENCH_CLIENTS_COUNT = N, default
300): N GETs of one ConfigMap one by one, N GETs 10 in flight, N LISTs of 100 ConfigMaps in
pages of 50, N merge patches of a ConfigMap's `data.state`, and one watch from before the
patches that receives their N events. BENCH_CLIENTS_ROUNDS rounds (default 5), the clients
interleaved (each round starts one client further on); the figures are each client's
medians over its rounds. Only ConfigMaps, in a namespace of the scenario's own.

kubernetes_asyncio is not a dependency of the operator: it comes from the `bench` dependency
group, installed with the project into a virtualenv of the scenario's own (`uv sync --group
bench`), so the project's environment (where Kopf picks its login by what is installed)
stays as the image has it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from bench.apiclients import LISTED, LISTED_LABEL, PAGE
from bench.clientload import CLIENTS, patched
from bench.common import namespaces
from bench.context import Context, env_int
from bench.kube import Resource
from bench.kubeconfig import kubeconfig_path
from bench.operator import REPO
from bench.report import Grid, number
from bench.stats import percentile, ratio

CONFIGMAPS = Resource("", "v1", "configmaps")
# Each client's HTTP library, bare: what the client adds is measured against it.
FLOOR = {
    "initpipeline": "httpx2-bare",
    "lightkube": "httpx2-bare",
    "kubernetes_asyncio": "aiohttp-bare",
    "kubernetes_asyncio-dicts": "aiohttp-bare",
}
PAGES = -(-LISTED // PAGE)  # requests per LIST
RUN_SECONDS = 600.0

Figures = dict[str, float]


def interleaved(clients: list[str], rounds: int) -> list[list[str]]:
    """Each round runs every client once, starting one client further on than the last."""
    k = len(clients)
    return [clients[r % k :] + clients[: r % k] for r in range(rounds)]


def figures(raw: dict[str, Any]) -> Figures:
    """One run's figures from `bench.clientload`'s output: latencies in seconds, rates per
    second, CPU seconds per 1000 requests (per 1000 events for the watch), RSS in MB."""
    count = raw["count"]
    phases, rss = raw["phases"], raw["rss"]
    requests = {"get": count, "get_in_flight": count, "list": count * PAGES, "patch": count}
    out: Figures = {}
    for phase in ("get", "list", "patch"):
        out[f"{phase}_p50"] = percentile(phases[phase]["latencies"], 50)
        out[f"{phase}_p99"] = percentile(phases[phase]["latencies"], 99)
        out[f"{phase}_cpu"] = phases[phase]["cpu"] / requests[phase] * 1000
    out["get_in_flight_rate"] = count / phases["get_in_flight"]["seconds"]
    out["watch_rate"] = count / phases["watch"]["seconds"]
    out["watch_cpu"] = phases["watch"]["cpu"] / count * 1000
    out["all_cpu"] = sum(phases[p]["cpu"] for p in requests) / sum(requests.values()) * 1000
    out["rss_import"] = rss["imported"] - rss["base"]
    out["rss_used"] = rss["used"] - rss["base"]
    return out


def medians(runs: list[Figures]) -> Figures:
    """Each figure's median over the runs."""
    return {key: percentile([run[key] for run in runs], 50) for key in runs[0]} if runs else {}


def _ms(p50: float, p99: float) -> str:
    return f"{number(p50 * 1000)} / {number(p99 * 1000)} ms"


def grids(results: dict[str, Figures], count: int, rounds: int) -> list[Grid]:
    """The speed and the cost of each client (rows in the order given)."""
    title = f"(g) API clients, {count} of each request, medians of {rounds} rounds"
    speed = Grid(
        f"{title}: latency and throughput",
        [
            "client",
            "GET p50 / p99",
            "GETs, 10 in flight",
            f"LIST ({PAGES} pages of {PAGE}) p50 / p99",
            "PATCH p50 / p99",
            f"watch, {count} events",
        ],
    )
    cost = Grid(
        f"{title}: CPU seconds per 1000 requests, RSS",
        [
            "client",
            "GET",
            f"LIST page ({PAGE} items)",
            "merge PATCH",
            "watch event",
            "all requests",
            "vs its HTTP library bare",
            "RSS: import",
            "RSS: import + use",
        ],
    )
    for client, f in results.items():
        if not f:
            continue
        speed.rows.append(
            [
                client,
                _ms(f["get_p50"], f["get_p99"]),
                f"{number(f['get_in_flight_rate'])} req/s",
                _ms(f["list_p50"], f["list_p99"]),
                _ms(f["patch_p50"], f["patch_p99"]),
                f"{number(f['watch_rate'])} events/s",
            ]
        )
        floor = results.get(FLOOR.get(client, ""), {})
        times = ratio(f["all_cpu"], floor.get("all_cpu", float("nan")))
        cost.rows.append(
            [
                client,
                *(number(f[key]) for key in ("get_cpu", "list_cpu", "patch_cpu", "watch_cpu")),
                number(f["all_cpu"]),
                "" if math.isnan(times) else f"{times:.2f}x {FLOOR[client]}",
                number(f["rss_import"], "MB"),
                number(f["rss_used"], "MB"),
            ]
        )
    cost.notes.append(
        "CPU: the client's process (time.process_time) over each phase; all requests: GETs "
        "(one by one and 10 in flight), LIST pages and PATCHes. RSS: added to a process "
        "that has loaded the standard library and yaml, after the import and after the workload"
    )
    return [speed, cost]


async def _output(*command: str, env: dict[str, str] | None = None) -> str:
    """The command's stdout; its exit status and stderr in the error when it fails."""
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), RUN_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"{' '.join(command)}: no answer in {RUN_SECONDS:.0f} s") from None
    if process.returncode:
        tail = err.decode(errors="replace")[-1500:]
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}: {tail}")
    return out.decode()


async def bench_python(workdir: Path) -> str:
    """The python of a virtualenv of its own with the project and its `bench` group."""
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is needed to install the bench dependency group")
    venv = workdir / "bench-venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    await _output(uv, "sync", "--frozen", "--no-dev", "--group", "bench", "--quiet", env=env)
    return str(venv / "bin" / "python")


async def seed(ctx: Context, namespace: str, clients: list[str]) -> None:
    """The LISTED ConfigMaps (four keys each) and one to patch per client."""
    data = {f"key{i}": "v" * 64 for i in range(4)}
    listed = [
        {"metadata": {"name": f"listed-{i:03d}", "labels": {LISTED_LABEL: "true"}}, "data": data}
        for i in range(LISTED)
    ]
    own = [{"metadata": {"name": patched(c)}, "data": {"state": ""}} for c in clients]
    await ctx.kube.bounded(
        (ctx.kube.create(CONFIGMAPS, namespace, cm) for cm in listed + own), ctx.concurrency
    )


async def measure(python: str, client: str, namespace: str, count: int) -> Figures:
    env = {**os.environ, "KUBECONFIG": kubeconfig_path()}
    out = await _output(python, "-m", "bench.clientload", client, namespace, str(count), env=env)
    return figures(json.loads(out.strip().splitlines()[-1]))


async def run(ctx: Context) -> None:
    count = env_int("BENCH_CLIENTS_COUNT", 300)
    rounds = env_int("BENCH_CLIENTS_ROUNDS", 5)
    chosen = [c for c in os.environ.get("BENCH_CLIENTS", ",".join(CLIENTS)).split(",") if c]
    unknown = [c for c in chosen if c not in CLIENTS]
    if unknown:
        raise ValueError(f"unknown client(s) {unknown}: choose from {', '.join(CLIENTS)}")
    ctx.log(f"(g) API clients {','.join(chosen)}: {count} requests each, {rounds} rounds")
    python = await bench_python(ctx.workdir)
    runs: dict[str, list[Figures]] = {c: [] for c in chosen}
    failed: list[str] = []
    async with namespaces(ctx.kube, "bench-clients") as (ns,):
        await seed(ctx, ns, chosen)
        for number_, order in enumerate(interleaved(chosen, rounds), 1):
            for client in order:
                try:
                    runs[client].append(await measure(python, client, ns, count))
                except RuntimeError as error:  # one run failing does not lose the others
                    failed.append(f"{client}, round {number_}: {error}")
                    ctx.log(f"(g) {client} failed in round {number_}: {error}")
            ctx.log(f"(g) round {number_}/{rounds} done")
    tables = grids({c: medians(r) for c, r in runs.items()}, count, rounds)
    tables[-1].notes.extend(f"failed: {f}" for f in failed)
    ctx.tables.extend(tables)
