"""(b) Status lag: a Pod status written as the kubelet writes it (PATCH pods/status) -> the
InitPipeline's status reflecting it, both seen on watches.

N pipelines (BENCH_LAG_SIZE, default the largest size up to 1000) with two `run` steps get
their Pods (unscheduled) from the operator. Then:

- paced: K Pods (BENCH_LAG_SAMPLE, default 100), one status write every 100 ms, each saying
  the first step exited 0: lag = the CR event with `steps[0].state: Succeeded` minus the
  moment the PATCH was sent;
- burst: all N Pods at once (`concurrency` in flight), the second step exited 0: lag to
  `steps[1].state: Succeeded`.

The floor is the same write seen on a watch of the Pods (what any controller gets at best).
"""

from __future__ import annotations

import asyncio
import math
import time

from bench import operator
from bench.common import (
    PIPELINE_LABEL,
    Watcher,
    init_names,
    namespaces,
    pipeline,
    run_steps,
    step_state,
    steps_status,
)
from bench.context import Context, env_int
from bench.kube import PIPELINES, PODS, Obj
from bench.report import Row, Table, at_most
from bench.scenarios.burst import post_all, quiet
from bench.stats import percentile


def _terminated_init(obj: Obj, index: int) -> bool:
    statuses = (obj.get("status") or {}).get("initContainerStatuses") or []
    return len(statuses) > index and "terminated" in statuses[index].get("state", {})


async def populate(ctx: Context, namespace: str, count: int, op: operator.Operator) -> list[Obj]:
    """N two-step pipelines, until each has its Pod listed in its status; their Pods."""
    crs = await Watcher(
        ctx.kube, PIPELINES, namespace, lambda o: bool((o.get("status") or {}).get("pods"))
    ).start()
    try:
        bodies = [pipeline(f"p{i:05d}", run_steps(2)) for i in range(count)]
        await post_all(ctx, namespace, "pipeline", bodies)
        if not await crs.wait_for(count, 120 + count * 0.2):
            raise RuntimeError(f"only {len(crs.seen)} of {count} pipelines list their Pod")
    finally:
        await crs.stop()
    await quiet(op, 120)
    return await ctx.kube.list_all(PODS, namespace)


async def measure(
    ctx: Context, namespace: str, pods: list[Obj], step: int, pace: float
) -> tuple[list[float], list[float]]:
    """(operator lags, floor lags) for writing `step` done on each of `pods`."""
    pod_watch = await Watcher(
        ctx.kube, PODS, namespace, lambda o: _terminated_init(o, step)
    ).start()
    cr_watch = await Watcher(
        ctx.kube, PIPELINES, namespace, lambda o: step_state(o, step) == "Succeeded"
    ).start()
    sent: dict[str, float] = {}

    async def write(pod: Obj) -> None:
        name = pod["metadata"]["name"]
        sent[name] = time.monotonic()
        body = steps_status(init_names(pod), step + 1)
        await ctx.kube.patch(PODS, namespace, name, body, sub="status")

    try:
        if pace > 0:
            for pod in pods:
                await write(pod)
                await asyncio.sleep(pace)
        else:
            await ctx.kube.bounded((write(p) for p in pods), ctx.concurrency)
        owners = {p["metadata"]["name"]: p["metadata"]["labels"][PIPELINE_LABEL] for p in pods}
        await pod_watch.wait_for(set(sent), 60)
        await cr_watch.wait_for(set(owners.values()), 60 + len(pods) * 0.1)
        lags = [cr_watch.seen[owners[n]] - t for n, t in sent.items() if owners[n] in cr_watch.seen]
        floor = [pod_watch.seen[n] - t for n, t in sent.items() if n in pod_watch.seen]
        return lags, floor
    finally:
        await pod_watch.stop()
        await cr_watch.stop()


async def run(ctx: Context) -> None:
    count = env_int("BENCH_LAG_SIZE", min(max(ctx.sizes), 1000))
    sample = min(count, env_int("BENCH_LAG_SAMPLE", 100))
    ctx.log(f"(b) status lag at {count} pipelines")
    async with namespaces(ctx.kube, "bench-lag") as (ns,):
        with operator.running([ns], ctx.operator_log(f"lag-{count}")) as op:
            pods = await populate(ctx, ns, count, op)
            pods.sort(key=lambda p: p["metadata"]["name"])
            step = max(1, len(pods) // sample)
            paced, paced_floor = await measure(ctx, ns, pods[::step][:sample], 0, 0.1)
            await quiet(op, 60)
            burst, burst_floor = await measure(ctx, ns, pods, 1, 0)
            errors = len(op.errors())
    t = Table(f"(b) status lag at {count} pipelines", "floor (the Pod's own watch event)")
    target = at_most(0.5, "p99 <= 500 ms at 1000") if count >= 1000 else None
    for label, values, floor in (
        (f"paced, {sample} writes 100 ms apart", paced, paced_floor),
        (f"burst, all {len(pods)} at once", burst, burst_floor),
    ):
        t.add(Row(f"{label}: p50", percentile(values, 50), percentile(floor, 50), "s"))
        t.add(Row(f"{label}: p99", percentile(values, 99), percentile(floor, 99), "s", target))
        missing = (sample if label.startswith("paced") else len(pods)) - len(values)
        if missing:
            t.notes.append(f"{label}: {missing} pipelines never showed the step Succeeded")
    t.notes.append("lag from the PATCH pods/status sent to the InitPipeline's watch event")
    if errors:
        t.notes.append(f"operator log: {errors} error lines")
    if math.isnan(percentile(paced, 50)):
        t.notes.append("no lag measured")
    ctx.tables.append(t)
