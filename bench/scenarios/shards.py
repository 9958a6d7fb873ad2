"""(h) Shards: a burst of N pipelines (default 5000) handled by 2 shards against 1 operator.

The same N pipelines, labelled initpipeline.io/shard=s0 and s1 in turn, are posted twice, each
time into a fresh namespace: once with one operator process that follows every pipeline (the
baseline), once with two, each with INITPIPELINE_SHARD_SELECTOR for its label. The figures
are (a)'s: create->Pod, throughput, when every status lists its Pod, CPU of all processes,
RSS of the largest and of all. On one machine both shards share its cores with the API
server, so what the split buys there is bounded by the cores left over.

  BENCH_SHARDS_SIZE  pipelines per burst (default 5000)
"""

from __future__ import annotations

import math

from bench.common import SHARD_LABEL, namespaces
from bench.context import Context, env_int
from bench.report import Row, Table
from bench.scenarios.burst import OperatorBurst, bodies, with_operator
from bench.stats import percentile

SHARDS = 2


async def run(ctx: Context) -> None:
    count = env_int("BENCH_SHARDS_SIZE", 5000)
    posted = bodies(count, SHARDS)
    ctx.log(f"(h) burst of {count}: one operator")
    async with namespaces(ctx.kube, "bench-one") as (ns,):
        one = await with_operator(ctx, ns, posted)
    ctx.log(f"(h) burst of {count}: {SHARDS} shards")
    async with namespaces(ctx.kube, "bench-shards") as (ns,):
        selectors = [f"{SHARD_LABEL}=s{i}" for i in range(SHARDS)]
        sharded = await with_operator(ctx, ns, posted, selectors)
    ctx.tables.append(table(count, one, sharded))


def table(count: int, one: OperatorBurst, sharded: OperatorBurst) -> Table:
    t = Table(f"(h) burst of {count} pipelines: {SHARDS} shards", "one operator")
    for figure, value, baseline, unit in (
        ("create->Pod p50", percentile(sharded.latencies, 50), percentile(one.latencies, 50), "s"),
        ("create->Pod p99", percentile(sharded.latencies, 99), percentile(one.latencies, 99), "s"),
        ("throughput, pipelines/s to their Pods", sharded.throughput, one.throughput, "/s"),
        ("every status lists its Pod after", sharded.status_in, one.status_in, "s"),
        ("CR creation time", sharded.created_in, one.created_in, "s"),
        ("operator CPU, all processes", sharded.cpu, one.cpu, "s"),
        ("waiting for a CPU (run queue), all processes", sharded.run_queue, one.run_queue, "s"),
        ("RSS of the largest process", sharded.rss, one.rss, "MB"),
        ("RSS of all processes", sharded.total_rss, one.total_rss, "MB"),
    ):
        t.add(Row(figure, value, baseline, unit))
    missing = sharded.missing + one.missing
    if missing:
        t.notes.append(f"missing Pods: shards {sharded.missing}, one operator {one.missing}")
    if sharded.errors or one.errors:
        t.notes.append(f"operator logs: {sharded.errors + one.errors} error lines")
    if math.isnan(sharded.throughput):
        t.notes.append("the sharded burst did not complete")
    return t
