"""What every scenario gets: the client, where to write logs, the sizes asked for."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.kube import Kube
from bench.report import Grid, Table


@dataclass
class Context:
    kube: Kube
    sizes: list[int]
    workdir: Path
    concurrency: int = 10
    tables: list[Table | Grid] = field(default_factory=list)

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def operator_log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, "") or default)


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, "") or default)
