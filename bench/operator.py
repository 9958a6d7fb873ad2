"""The operator as a separate process (`python -m initpipeline.cli run`), its CPU and RSS."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.kubeconfig import kubeconfig_path
from bench.proc import cpu_seconds, memory_mb, run_queue_seconds

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Operator:
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        self.check()
        return cpu_seconds(self.pid)

    def run_queue(self) -> float:
        self.check()
        return run_queue_seconds(self.pid)

    def memory(self) -> tuple[float, float]:
        self.check()
        return memory_mb(self.pid)

    def check(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the operator exited ({self.process.returncode}):\n{tail}")

    def errors(self) -> list[str]:
        """Log lines that say something went wrong (tracebacks, failed reconciles)."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [line for line in lines if "Traceback" in line or " failed" in line]


def operator_env(text: str) -> dict[str, str]:
    """`INITPIPELINE_WORKERS=16 INITPIPELINE_RESYNC_SECONDS=5` as a dict: settings for the
    operator under test (the shell's own INITPIPELINE_* variables are not passed on)."""
    pairs = [word.partition("=") for word in text.split()]
    bad = [key for key, eq, _ in pairs if not eq or not key.startswith("INITPIPELINE_")]
    if bad:
        raise ValueError(f"BENCH_OPERATOR_ENV: {bad} are not INITPIPELINE_NAME=value")
    return {key: value for key, _, value in pairs}


@contextlib.contextmanager
def running(namespaces: list[str], log: Path, **env: str) -> Iterator[Operator]:
    """`initpipeline run` watching `namespaces`, leader election off, until the block ends."""
    liveness = f"http://127.0.0.1:{_free_port()}/healthz"
    settings = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INITPIPELINE_")},
        "KUBECONFIG": kubeconfig_path(),
        "PYTHONUNBUFFERED": "1",
        "INITPIPELINE_NAMESPACES": ",".join(namespaces),
        "INITPIPELINE_LEADER_ELECTION": "false",
        "INITPIPELINE_LIVENESS_ENDPOINT": liveness,
        "INITPIPELINE_METRICS_PORT": "0",
        **operator_env(os.environ.get("BENCH_OPERATOR_ENV", "")),
        **env,
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "initpipeline.cli", "run"],
            env=settings,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    operator = Operator(process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            operator.check()
            try:
                with urllib.request.urlopen(liveness, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the operator did not answer {liveness} within 60 s")
            time.sleep(0.2)
        yield operator
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
