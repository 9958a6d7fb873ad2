"""`python -m bench [scenario ...]`: run the scenarios, print and save their tables.

Scenarios: a (burst), b (status lag), c (API requests), d (wait step exit, the script's part),
dn (wait step exit on the node, every target kind), e (whole pipeline against a hand-written
Pod, on the node), f (idle cost), g (API clients compared), h (2 shards against 1).
Environment:
  BENCH_SCENARIOS   comma-separated scenarios (default: all; arguments win)
  BENCH_SIZES       burst sizes for (a) (default 1,100,1000)
  BENCH_CONCURRENCY creates in flight (default 10)
  BENCH_OPERATOR_ENV settings for the operator, e.g. "INITPIPELINE_WORKERS=16" (the shell's
                    own INITPIPELINE_* variables are not passed on)
  BENCH_LAG_SIZE, BENCH_IDLE_SIZE, BENCH_IDLE_SECONDS, BENCH_LIFECYCLE_SIZE, BENCH_LAG_SAMPLE,
  BENCH_WHOLE_ROUNDS, BENCH_NOTICED_ROUNDS, BENCH_CLIENTS, BENCH_CLIENTS_COUNT,
  BENCH_CLIENTS_ROUNDS, BENCH_SHARDS_SIZE
                    see each scenario's module
  KUBECONFIG        default /tmp/initpipeline-cluster/kubeconfig
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.context import Context
from bench.kube import Kube
from bench.report import document, markdown
from bench.scenarios import (
    burst,
    clients,
    idle,
    lag,
    noticed,
    noticed_node,
    requests,
    shards,
    whole,
)

SCENARIOS: dict[str, Callable[[Context], Awaitable[None]]] = {
    "a": burst.run,
    "b": lag.run,
    "c": requests.run,
    "d": noticed.run,
    "dn": noticed_node.run,
    "e": whole.run,
    "f": idle.run,
    "g": clients.run,
    "h": shards.run,
}
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cores = os.cpu_count()
    return f"{platform.node()}, {cores} cores, Python {platform.python_version()}"


async def main_async(chosen: list[str], sizes: list[int], concurrency: int) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="initpipeline-bench-"))
    started = datetime.datetime.now(datetime.UTC)
    failed: list[str] = []
    async with Kube.from_kubeconfig() as kube:
        ctx = Context(kube, sizes, workdir, concurrency)
        ctx.log(f"scenarios {','.join(chosen)}, sizes {sizes}; operator logs in {workdir}")
        for name in chosen:
            before = len(ctx.tables)
            try:
                await SCENARIOS[name](ctx)
            except Exception as error:  # one scenario failing does not lose the others
                ctx.log(f"scenario {name} failed: {error!r}")
                failed.append(f"{name}: {error!r}")
            for table in ctx.tables[before:]:
                print("\n" + markdown(table), flush=True)
    header = [
        f"Run {started:%Y-%m-%d %H:%M} UTC on {machine()}; scenarios {','.join(chosen)}, "
        f"sizes {','.join(map(str, sizes))}, {concurrency} creates in flight.",
        *(f"Failed: {f}" for f in failed),
        *(
            [
                f"The API server did not answer {kube.outages} times (restarts on the shared "
                "cluster); those requests were sent again."
            ]
            if kube.outages
            else []
        ),
    ]
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{started:%Y-%m-%dT%H%M%S}.md"
    out.write_text(document("InitPipeline benchmarks", header, ctx.tables))
    print(f"\nwritten to {out}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios", nargs="*", help="a b c d dn e f g h (default: BENCH_SCENARIOS or all)"
    )
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "1,100,1000"))
    parser.add_argument(
        "--concurrency", type=int, default=int(os.environ.get("BENCH_CONCURRENCY", "10"))
    )
    args = parser.parse_args(argv)
    chosen = args.scenarios or [
        s for s in os.environ.get("BENCH_SCENARIOS", ",".join(SCENARIOS)).split(",") if s
    ]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}: choose from {', '.join(SCENARIOS)}")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    return asyncio.run(main_async(chosen, sizes, args.concurrency))


if __name__ == "__main__":
    sys.exit(main())
