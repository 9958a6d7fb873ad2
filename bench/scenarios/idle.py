"""(f) Idle cost: operator CPU per minute with N Ready and with N waiting pipelines.

Each state gets its own operator process and namespace; the baseline is the same operator
with no pipeline at all, over the same window (BENCH_IDLE_SECONDS, default 60), in this run.
Ready pipelines: their unscheduled Pods get a Ready, Running status written as the kubelet
would. Waiting pipelines wait on a Service that does not exist (an API-side target) and a
TCP port; their wait container is written as running, so every pass reads its log, as for a
real waiting Pod. API requests per second over the window come from the API server's
`apiserver_request_total` (everyone's requests to those resources, the benchmark's excepted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bench import apimetrics, operator
from bench.common import (
    Watcher,
    init_names,
    namespaces,
    pipeline,
    ready_reason,
    ready_status,
    run_steps,
    steps_status,
)
from bench.context import Context, env_float, env_int
from bench.kube import PIPELINES, PODS, Obj
from bench.report import Row, Table, at_most
from bench.scenarios.burst import post_all, quiet

RESOURCES = ("pods", "initpipelines", "events", "services", "endpointslices")


def waiting_steps() -> list[Obj]:
    return [{"name": "wait", "waitFor": [{"service": "missing"}, {"tcp": "missing:5432"}]}]


async def window(ctx: Context, op: operator.Operator, seconds: float) -> tuple[float, float]:
    """(CPU seconds per minute, API requests per second to RESOURCES) over `seconds`."""
    before = apimetrics.request_counts(await ctx.kube.raw("/metrics"))
    mine = ctx.kube.sent.copy()
    cpu0, t0 = op.cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, elapsed = op.cpu() - cpu0, time.monotonic() - t0
    after = apimetrics.request_counts(await ctx.kube.raw("/metrics"))
    own = ctx.kube.sent - mine
    rest = apimetrics.only(apimetrics.delta(before, after, [dict(own)]), RESOURCES)
    return cpu * 60 / elapsed, sum(rest.values()) / elapsed


async def settle(
    ctx: Context, namespace: str, count: int, steps: list[Obj], write: Callable[[Obj], Obj],
    reason: str,
) -> None:  # fmt: skip
    """N pipelines, their Pods' statuses written, until every pipeline reads `reason`."""
    crs = await Watcher(
        ctx.kube, PIPELINES, namespace, lambda o: ready_reason(o).endswith("/" + reason)
    ).start()
    pods = await Watcher(ctx.kube, PODS, namespace).start()
    try:
        await post_all(ctx, namespace, "pipeline", [
            pipeline(f"p{i:05d}", steps) for i in range(count)
        ])  # fmt: skip
        await pods.wait_for(count, 120 + count * 0.2)

        async def one(pod: Obj) -> None:
            await ctx.kube.patch(PODS, namespace, pod["metadata"]["name"], write(pod), "status")

        await ctx.kube.bounded((one(p) for p in list(pods.objects.values())), ctx.concurrency)
        if not await crs.wait_for(count, 120 + count * 0.2):
            raise RuntimeError(f"only {len(crs.seen)} of {count} pipelines read {reason}")
    finally:
        await crs.stop()
        await pods.stop()


async def run(ctx: Context) -> None:
    count = env_int("BENCH_IDLE_SIZE", min(max(ctx.sizes), 1000))
    seconds = env_float("BENCH_IDLE_SECONDS", 60)
    results: dict[str, tuple[float, float, float]] = {}
    states: list[tuple[str, list[Obj], Callable[[Obj], Obj], str]] = [
        ("none", [], lambda p: p, ""),
        ("Ready", run_steps(2), lambda p: ready_status(init_names(p), ["app"]), "Running"),
        ("waiting", waiting_steps(), lambda p: steps_status(init_names(p), 0),
         "WaitingForDependency"),
    ]  # fmt: skip
    for state, steps, write, reason in states:
        ctx.log(f"(f) idle cost: {count if steps else 0} pipelines, {state}")
        async with namespaces(ctx.kube, "bench-idle") as (ns,):
            with operator.running([ns], ctx.operator_log(f"idle-{state}-{count}")) as op:
                if steps:
                    await settle(ctx, ns, count, steps, write, reason)
                await asyncio.sleep(5)
                await quiet(op, 60)
                per_minute, requests = await window(ctx, op, seconds)
                results[state] = (per_minute, requests, op.memory()[0])
    t = Table(f"(f) idle cost at {count} pipelines", "no pipeline")
    base_cpu, base_req, base_rss = results["none"]
    for state in ("Ready", "waiting"):
        cpu, req, rss = results[state]
        target = at_most(0.05 * 60, "<= 5 % of a core (3 s/min)") if state == "waiting" else None
        t.add(Row(f"{state}: operator CPU per minute", cpu, base_cpu, "s", target))
        t.add(Row(f"{state}: API requests/s (pods, ipl, events, svc, eps)", req, base_req))
        t.add(Row(f"{state}: operator RSS", rss, base_rss, "MB"))
    t.notes.append(f"window {seconds:.0f} s after the pipelines settled; CPU from /proc/<pid>/stat")
    t.notes.append("API requests include everyone's on a shared API server, the bench's excepted")
    ctx.tables.append(t)
