"""(c) API requests per pipeline lifecycle, by verb and resource, from the API server's
`apiserver_request_total` (it has no user-agent label: requests are counted by verb,
resource and subresource, and the benchmark's own requests, which it counts itself, are
taken out).

Lifecycle of N pipelines (BENCH_LIFECYCLE_SIZE, default 20) with two `run` steps: create,
Pod, first step done, second step done, Ready (statuses written as the kubelet would),
delete, until the Pods are gone. The floor is the same lifecycle of the rendered Pods posted
by hand, no operator: what the API server saw then is everyone else's (controllers, other
sessions on the shared cluster) over that time. Operator CPU per lifecycle comes along.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench import apimetrics, operator
from bench.common import (
    Watcher,
    init_names,
    namespaces,
    pipeline,
    ready_reason,
    ready_status,
    rendered_pods,
    run_steps,
    step_state,
    steps_status,
)
from bench.context import Context, env_int
from bench.kube import PIPELINES, PODS, Obj
from bench.report import Row, Table, at_most
from bench.scenarios.burst import post_all, quiet

RESOURCES = (
    "pods",
    "initpipelines",
    "events",
    "services",
    "endpointslices",
    "jobs",
    "subjectaccessreviews",
)
Counts = dict[apimetrics.Key, int]


async def counted(ctx: Context, work: Callable[[], Awaitable[None]]) -> tuple[Counts, float]:
    """The API server's requests to RESOURCES while `work` runs, minus ours; its duration."""
    before = apimetrics.request_counts(await ctx.kube.raw("/metrics"))
    mine = ctx.kube.sent.copy()
    start = time.monotonic()
    await work()
    elapsed = time.monotonic() - start
    after = apimetrics.request_counts(await ctx.kube.raw("/metrics"))
    own = dict(ctx.kube.sent - mine)
    return apimetrics.only(apimetrics.delta(before, after, [own]), RESOURCES), elapsed


async def write_all(
    ctx: Context, namespace: str, pods: list[Obj], body: Callable[[Obj], Obj]
) -> None:
    async def one(pod: Obj) -> None:
        await ctx.kube.patch(PODS, namespace, pod["metadata"]["name"], body(pod), "status")

    await ctx.kube.bounded((one(p) for p in pods), ctx.concurrency)


async def gone(ctx: Context, namespace: str, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not await ctx.kube.list_all(PODS, namespace):
            return
        await asyncio.sleep(0.5)


def _is_ready(obj: Obj) -> bool:
    return ready_reason(obj) == "True/Running"


async def lifecycle(ctx: Context, namespace: str, count: int) -> None:
    bodies = [pipeline(f"p{i:05d}", run_steps(2)) for i in range(count)]
    crs = await Watcher(ctx.kube, PIPELINES, namespace).start()
    pods = await Watcher(ctx.kube, PODS, namespace).start()
    try:
        await post_all(ctx, namespace, "pipeline", bodies)
        await pods.wait_for(count, 120)
        listed = list(pods.objects.values())
        stages: list[tuple[Callable[[Obj], Obj], Callable[[Obj], bool]]] = [
            (lambda p: steps_status(init_names(p), 1), lambda o: step_state(o, 0) == "Succeeded"),
            (lambda p: steps_status(init_names(p), 2), lambda o: step_state(o, 1) == "Succeeded"),
            (lambda p: ready_status(init_names(p), ["app"]), _is_ready),
        ]  # fmt: skip
        for body, done in stages:
            crs.seen.clear()
            crs.match = done
            await write_all(ctx, namespace, listed, body)
            await crs.wait_for(count, 120)
        for obj in bodies:
            await ctx.kube.delete(PIPELINES, namespace, obj["metadata"]["name"])
        await gone(ctx, namespace)
    finally:
        await crs.stop()
        await pods.stop()


async def floor(ctx: Context, namespace: str, count: int) -> None:
    bodies = [pipeline(f"p{i:05d}", run_steps(2)) for i in range(count)]
    pods = [p for body in bodies for p in rendered_pods(body, namespace)]
    await post_all(ctx, namespace, "pod", pods)
    for make in (
        lambda p: steps_status(init_names(p), 1),
        lambda p: steps_status(init_names(p), 2),
        lambda p: ready_status(init_names(p), ["app"]),
    ):
        await write_all(ctx, namespace, pods, make)
        await asyncio.sleep(0.5)
    for pod in pods:
        await ctx.kube.delete(PODS, namespace, pod["metadata"]["name"])
    await gone(ctx, namespace)


def _label(key: apimetrics.Key) -> str:
    verb, resource, sub = key
    return f"{verb} {resource}" + (f"/{sub}" if sub else "")


async def run(ctx: Context) -> None:
    count = env_int("BENCH_LIFECYCLE_SIZE", 20)
    ctx.log(f"(c) API requests per lifecycle, {count} pipelines")
    async with namespaces(ctx.kube, "bench-req-floor") as (ns,):
        base, base_time = await counted(ctx, lambda: floor(ctx, ns, count))
    async with namespaces(ctx.kube, "bench-req") as (ns,):
        with operator.running([ns], ctx.operator_log(f"requests-{count}")) as op:
            await asyncio.sleep(3)
            await quiet(op, 30)
            cpu0 = op.cpu()
            seen, seen_time = await counted(ctx, lambda: lifecycle(ctx, ns, count))
            await quiet(op, 30)
            cpu = op.cpu() - cpu0
    t = Table(
        f"(c) API requests per pipeline lifecycle ({count} pipelines)",
        "floor (the Pods by hand)",
    )
    for key in sorted(set(seen) | set(base)):
        t.add(Row(_label(key), seen.get(key, 0) / count, base.get(key, 0) / count))
    t.add(Row("all of the above", sum(seen.values()) / count, sum(base.values()) / count))
    t.add(
        Row(
            "operator CPU per lifecycle", cpu / count, float("nan"), "s", at_most(0.010, "<= 10 ms")
        )
    )
    t.notes.append(
        f"lifecycle {seen_time:.1f} s, floor {base_time:.1f} s; counts are every client's on "
        "the shared API server (the garbage collector, other sessions), the bench's excepted; "
        "WATCH counts when a watch ends"
    )
    ctx.tables.append(t)
