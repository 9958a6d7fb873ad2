"""(d), the script's part: dependency ready -> the generated wait script exits, run by busybox
`sh` on this host (no kubelet in between), for the in-Pod target kinds, early in a wait and
after a long one.

Each round starts, at once, one generated wait script and one hand-written seed-style loop
(`until CHECK; do sleep 2; done`, the articles' shape: the baseline) per kind and phase, each
on a dependency of its own; the dependency comes up BENCH_NOTICED_EARLY (default 1) or
BENCH_NOTICED_LATE (default 20) seconds later, and the figure is the script's exit minus
that moment. BENCH_NOTICED_ROUNDS rounds (default 5). Then the cost of waiting: the CPU
one generated script and one seed-style loop use while a tcp target stays down for
BENCH_NOTICED_IDLE seconds (default 20), one after the other, nothing else running. dns is
left out: the host's resolver and /etc/hosts are not the benchmark's to change. What the
kubelet adds on a node (its status relist, about a second) is not in these figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.context import Context, env_float, env_int
from bench.report import Row, Table, at_most
from bench.stats import percentile
from initpipeline import scripts
from initpipeline.spec import Step

KINDS = ("tcp", "http", "file", "command")


class Listener:
    """A port nobody listens on until `open()`; then every connection gets an HTTP 200."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: asyncio.Server | None = None

    async def open(self) -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                await asyncio.wait_for(reader.read(1024), 2)
                writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
            writer.close()

        self._server = await asyncio.start_server(answer, "127.0.0.1", self.port)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


@dataclass
class Case:
    """One script waiting on one dependency of its own."""

    kind: str
    phase: str
    generated: bool
    script: str
    flip: Callable[[], Any]  # makes the dependency ready (sync or a coroutine)
    listener: Listener | None = None


def _case(kind: str, phase: str, generated: bool, scratch: Path) -> Case:
    flag = scratch / f"{kind}-{phase}-{generated}"
    listener = Listener() if kind in ("tcp", "http") else None
    url = f"http://127.0.0.1:{listener.port}/" if listener else ""
    target: dict[str, Any] = {
        "tcp": {"tcp": f"127.0.0.1:{listener.port if listener else 0}"},
        "http": {"http": url},
        "file": {"file": str(flag)},
        "command": {"command": ["test", "-e", str(flag)]},
    }[kind]
    check = {
        "tcp": f"nc -w 3 127.0.0.1 {listener.port if listener else 0} -e true </dev/null",
        "http": f"wget -q -O /dev/null {url}",
        "file": f"[ -e {flag} ]",
        "command": f"test -e {flag}",
    }[kind]
    if generated:
        step = Step.model_validate({"name": "deps", "waitFor": [target]})
        script = scripts.wait_script(step, termination_log=str(scratch / f"{flag.name}.tlog"))
    else:
        script = f"until {check} 2>/dev/null; do sleep 2; done\n"
    flip: Callable[[], Any] = listener.open if listener else flag.touch
    return Case(kind, phase, generated, script, flip, listener)


async def _one(case: Case, applets: Path, busybox: str, after: float) -> float:
    """Seconds from the dependency coming up to the script's exit."""
    proc = await asyncio.create_subprocess_exec(
        busybox, "sh", "-c", case.script,
        env={"PATH": str(applets), "HOME": "/"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(after)
    ready = time.monotonic()
    flipped = case.flip()
    if asyncio.iscoroutine(flipped):
        await flipped
    try:
        await asyncio.wait_for(proc.wait(), 60)
    finally:
        if case.listener:
            case.listener.close()
        if proc.returncode is None:
            proc.kill()
    return time.monotonic() - ready


async def _cpu_while_waiting(case: Case, applets: Path, busybox: str, seconds: float) -> float:
    """CPU seconds the script and every process it ran used in a wait of `seconds` (it ends
    when its dependency comes up, so each process is waited for and counted)."""

    def used() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    before = used()
    await _one(case, applets, busybox, seconds)
    return used() - before


def _applets(workdir: Path, busybox: str) -> Path:
    applets = workdir / "busybox-bin"
    applets.mkdir(exist_ok=True)
    for name in ("sh", "nc", "wget", "test", "sleep", "date", "kill", "timeout", "sed", "tail",
                 "cut", "cat", "printf"):  # fmt: skip
        link = applets / name
        if not link.exists():
            link.symlink_to(busybox)
    return applets


def add_rows(
    table: Table,
    kinds: tuple[str, ...],
    phases: dict[str, float],
    seen: dict[tuple[str, str, bool], list[float]],
) -> None:
    """One row per kind and phase: the generated wait's p99 (by `seen[kind, phase, True]`)
    against the loop by hand's (`False`; none for a kind without one), target p99 <= 1 s."""
    target = at_most(1.0, "p99 <= 1 s")
    for kind in kinds:
        for phase, after in phases.items():
            ours = seen[(kind, phase, True)]
            table.add(
                Row(
                    f"{kind}, ready after {after:g} s, p99",
                    percentile(ours, 99),
                    percentile(seen.get((kind, phase, False), []), 99),
                    "s",
                    target,
                    note=f"p50 {percentile(ours, 50):.2f} s",
                )
            )


async def run(ctx: Context) -> None:
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RuntimeError("busybox is missing (apt-get install busybox-static)")
    phases = {
        "early": env_float("BENCH_NOTICED_EARLY", 1),
        "late": env_float("BENCH_NOTICED_LATE", 20),
    }
    rounds = env_int("BENCH_NOTICED_ROUNDS", 5)
    applets = _applets(ctx.workdir, busybox)
    seen: dict[tuple[str, str, bool], list[float]] = {}
    for number in range(rounds):
        scratch = ctx.workdir / f"noticed-{number}"
        scratch.mkdir()
        cases = [
            _case(kind, phase, generated, scratch)
            for kind in KINDS
            for phase in phases
            for generated in (True, False)
        ]
        times = await asyncio.gather(
            *(_one(case, applets, busybox, phases[case.phase]) for case in cases)
        )
        for case, took in zip(cases, times, strict=True):
            seen.setdefault((case.kind, case.phase, case.generated), []).append(took)
        ctx.log(f"noticed: round {number + 1}/{rounds} done")
    table = Table(
        f"(d) dependency ready -> wait script exits, busybox sh on this host, {rounds} rounds",
        "seed-style loop (sleep 2)",
    )
    add_rows(table, KINDS, phases, seen)
    idle = env_float("BENCH_NOTICED_IDLE", 20)
    scratch = ctx.workdir / "noticed-idle"
    scratch.mkdir()
    ours, theirs = [
        await _cpu_while_waiting(_case("tcp", "idle", generated, scratch), applets, busybox, idle)
        for generated in (True, False)
    ]
    table.add(
        Row(
            "CPU of one waiting tcp check, per minute",
            ours * 60 / idle,
            theirs * 60 / idle,
            "s",
            note=f"{ours * 100 / idle:.2f} % of a core",
        )
    )
    table.notes.append("without the kubelet: on a node its status relist adds up to about 1 s")
    ctx.tables.append(table)
