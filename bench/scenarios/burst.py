"""(a) A burst of N pipelines against the floor: the same rendered Pods posted by hand.

Pods are unschedulable (a scheduler name nobody serves), so only the control plane and the
operator work. Per size:

1. floor: the Pods `render` makes for the N pipelines, posted straight to the API server
   (`concurrency` requests in flight); create->Pod is the Pod's ADDED event on a watch minus
   the moment its POST was sent; the N POSTs' wall time is "creation time".
2. the same N InitPipelines posted with no operator watching: CR creation time without it.
3. the operator (a separate process, watching that namespace only) and the same N
   InitPipelines: create->Pod is the Pod's ADDED event minus the moment the CR's create
   returned; CPU (utime+stime of the process) from just before the burst until every
   pipeline has its Pod in status and the process is quiet again (AFTER_BURST_SECONDS at
   most); RSS (and its peak) then;
   over the same window, the time the process was runnable but waited for a CPU (schedstat):
   on a shared machine, what held it back besides its own work.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench import operator
from bench.common import (
    PIPELINE_LABEL,
    SHARD_LABEL,
    Watcher,
    namespaces,
    pipeline,
    rendered_pods,
    run_steps,
)
from bench.context import Context
from bench.kube import PIPELINES, PODS, Obj
from bench.report import Row, Table, at_most, ratio_at_most
from bench.stats import percentile


@dataclass
class Burst:
    latencies: list[float]  # create -> Pod, per object, seconds
    created_in: float  # wall time of the N creates
    all_pods_in: float  # first create sent -> last Pod seen
    missing: int

    @property
    def throughput(self) -> float:
        done = len(self.latencies)
        return done / self.all_pods_in if self.all_pods_in > 0 else math.nan


def bodies(count: int, shards: int = 0) -> list[Obj]:
    """`count` pipelines; with `shards`, labelled for shards s0 .. s<shards-1> in turn."""
    made = [pipeline(f"p{i:05d}", run_steps(2)) for i in range(count)]
    for i, body in enumerate(made if shards else ()):
        body["metadata"]["labels"][SHARD_LABEL] = f"s{i % shards}"
    return made


async def post_all(
    ctx: Context, namespace: str, kind: str, objs: list[Obj]
) -> tuple[dict[str, float], dict[str, float]]:
    """POST every object; (sent, returned) monotonic times by name."""
    sent: dict[str, float] = {}
    returned: dict[str, float] = {}
    resource = PIPELINES if kind == "pipeline" else PODS

    async def one(obj: Obj) -> None:
        name = obj["metadata"]["name"]
        sent[name] = time.monotonic()
        await ctx.kube.create(resource, namespace, obj)
        returned[name] = time.monotonic()

    await ctx.kube.bounded((one(o) for o in objs), ctx.concurrency)
    return sent, returned


# The burst's CPU ends this long after every status lists its Pod, at the latest: by then
# N pipelines in progress resync every 10 s, a steady cost of their own that may keep the
# process above `quiet`'s threshold for good (1000 unscheduled ones: 10 % of a core).
AFTER_BURST_SECONDS = 10.0


def _timeout(count: int) -> float:
    return 120 + count * 0.2


async def floor(ctx: Context, namespace: str, count: int) -> Burst:
    pods = [pod for body in bodies(count) for pod in rendered_pods(body, namespace)]
    watcher = await Watcher(ctx.kube, PODS, namespace).start()
    try:
        start = time.monotonic()
        sent, returned = await post_all(ctx, namespace, "pod", pods)
        created_in = max(returned.values()) - start
        await watcher.wait_for(set(sent), _timeout(count))
        seen = watcher.seen
        latencies = [seen[n] - sent[n] for n in sent if n in seen]
        last = max(seen.values(), default=math.nan)
        return Burst(latencies, created_in, last - start, count - len(latencies))
    finally:
        await watcher.stop()


async def bare_creation(ctx: Context, namespace: str, count: int) -> float:
    start = time.monotonic()
    _sent, returned = await post_all(ctx, namespace, "pipeline", bodies(count))
    return max(returned.values()) - start


def _has_pod_status(obj: Obj) -> bool:
    return bool((obj.get("status") or {}).get("pods"))


async def quiet(op: operator.Operator, within: float, threshold: float = 0.05) -> None:
    """Until the process used less than `threshold` of a core over the last 2 s."""
    deadline = time.monotonic() + within
    last = op.cpu()
    while time.monotonic() < deadline:
        await asyncio.sleep(2)
        now = op.cpu()
        if now - last < 2 * threshold:
            return
        last = now


@dataclass
class OperatorBurst(Burst):
    status_in: float  # first create sent -> last pipeline with its Pod in status
    cpu: float  # of every operator process
    run_queue: float  # runnable, waiting for a CPU
    rss: float  # of the largest process
    peak_rss: float
    errors: int
    total_rss: float = math.nan  # of every process


async def with_operator(
    ctx: Context, namespace: str, posted: list[Obj], selectors: Sequence[str] = ("",)
) -> OperatorBurst:
    """The burst of `posted` pipelines with one operator process per shard selector (""
    for one operator following every pipeline)."""
    count = len(posted)
    with contextlib.ExitStack() as stack:
        ops = [
            stack.enter_context(
                operator.running(
                    [namespace],
                    ctx.operator_log(f"burst-{count}-{len(selectors)}-{i}"),
                    INITPIPELINE_SHARD_SELECTOR=selector,
                )
            )
            for i, selector in enumerate(selectors)
        ]
        await asyncio.sleep(3)
        await asyncio.gather(*(quiet(op, 30) for op in ops))
        pods = await Watcher(ctx.kube, PODS, namespace).start()
        crs = await Watcher(ctx.kube, PIPELINES, namespace, _has_pod_status).start()
        try:
            cpu0, queue0 = _cpu(ops)
            start = time.monotonic()
            _sent, returned = await post_all(ctx, namespace, "pipeline", posted)
            created_in = max(returned.values()) - start
            await pods.wait_for(count, _timeout(count))
            await crs.wait_for(set(returned), _timeout(count))
            await asyncio.gather(*(quiet(op, AFTER_BURST_SECONDS) for op in ops))
            cpu1, queue1 = _cpu(ops)
            cpu, run_queue = cpu1 - cpu0, queue1 - queue0
            memory = [op.memory() for op in ops]
            rss, peak = max(m[0] for m in memory), max(m[1] for m in memory)
            by_pipeline = {
                pod_pipeline_name(pods.objects[name]): t for name, t in pods.seen.items()
            }
            latencies = [by_pipeline[n] - returned[n] for n in returned if n in by_pipeline]
            last_pod = max(pods.seen.values(), default=math.nan)
            last_status = max(crs.seen.values(), default=math.nan)
            return OperatorBurst(
                latencies,
                created_in,
                last_pod - start,
                count - len(latencies),
                last_status - start,
                cpu,
                run_queue,
                rss,
                peak,
                sum(len(op.errors()) for op in ops),
                sum(m[0] for m in memory),
            )
        finally:
            await pods.stop()
            await crs.stop()


def _cpu(ops: list[operator.Operator]) -> tuple[float, float]:
    """CPU seconds used, and seconds spent runnable waiting for a CPU, by all `ops`."""
    return sum(op.cpu() for op in ops), sum(op.run_queue() for op in ops)


def pod_pipeline_name(pod: Obj) -> str:
    return str(pod["metadata"]["labels"][PIPELINE_LABEL])


async def run(ctx: Context) -> None:
    for count in ctx.sizes:
        ctx.log(f"(a) burst of {count}: floor")
        async with namespaces(ctx.kube, "bench-floor", "bench-bare") as (floor_ns, bare_ns):
            base = await floor(ctx, floor_ns, count)
            ctx.log(f"(a) burst of {count}: CRs without an operator")
            bare = await bare_creation(ctx, bare_ns, count)
        ctx.log(f"(a) burst of {count}: with the operator")
        async with namespaces(ctx.kube, "bench-burst") as (ns,):
            op = await with_operator(ctx, ns, bodies(count))
        ctx.tables.append(table(count, base, bare, op, ctx.concurrency))


def table(count: int, base: Burst, bare: float, op: OperatorBurst, concurrency: int) -> Table:
    t = Table(f"(a) burst of {count} pipelines", "floor (Pods posted by hand)")
    p99_target = at_most(0.3, "p99 <= 300 ms in a burst of 1000") if count >= 1000 else None
    t.add(Row("create->Pod p50", percentile(op.latencies, 50), percentile(base.latencies, 50), "s"))
    t.add(
        Row(
            "create->Pod p99",
            percentile(op.latencies, 99),
            percentile(base.latencies, 99),
            "s",
            p99_target,
        )
    )
    t.add(Row("throughput, pipelines/s to their Pods", op.throughput, base.throughput, "/s"))
    t.add(Row("all Pods exist after", op.all_pods_in, base.all_pods_in, "s"))
    t.add(Row("every status lists its Pod after", op.status_in, math.nan, "s"))
    t.add(
        Row(
            "CR creation time, operator running",
            op.created_in,
            bare,
            "s",
            ratio_at_most(1.5, "<= 1.5x without it"),
            note="baseline: the same CRs, no operator",
        )
    )
    t.add(Row("Pod creation time (floor's own POSTs)", base.created_in, math.nan, "s"))
    per = op.cpu / count
    t.add(Row("operator CPU for the burst", op.cpu, math.nan, "s"))
    t.add(Row("operator CPU per pipeline", per, math.nan, "s", at_most(0.010, "<= 10 ms")))
    t.add(
        Row(
            "operator waiting for a CPU (run queue)",
            op.run_queue,
            math.nan,
            "s",
            note="runnable but not running: the machine's other work",
        )
    )
    rss_target = None
    if count == 1000:
        rss_target = at_most(150, "<= 150 MB at 1000")
    t.add(Row("operator RSS after the burst", op.rss, math.nan, "MB", rss_target))
    t.add(Row("operator peak RSS (VmHWM)", op.peak_rss, math.nan, "MB", rss_target))
    t.notes.append(
        f"{concurrency} creates in flight; floor latency from the POST sent, operator latency "
        "from the CR create returned, both to the Pod's ADDED event on a watch"
    )
    if op.missing or base.missing:
        t.notes.append(f"missing Pods: operator {op.missing}, floor {base.missing}")
    if op.errors:
        t.notes.append(f"operator log: {op.errors} error lines")
    return t
