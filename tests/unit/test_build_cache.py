"""hack/build.sh's cache: binaries are kept per pin, and pruning keeps every pin in use."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

HACK = Path(__file__).resolve().parents[2] / "hack"
KUBERNETES = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"]
KUBERNETES += ["kube-proxy", "kubectl"]


def build(cache: Path, *args: str, pin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INITPIPELINE_CACHE_DIR": str(cache), "INITPIPELINE_KUBERNETES": pin}
    return subprocess.run(
        [str(HACK / "build.sh"), *args], env=env, capture_output=True, text=True, check=False
    )


def fake_build(cache: Path, pin: str = "") -> Path:
    """Binaries of a Kubernetes pin as build.sh leaves them (without building them)."""
    printed = build(cache, "--print", "kubernetes", pin=pin)
    assert printed.returncode == 0, printed.stderr
    where = Path(printed.stdout.split()[1])
    where.mkdir(parents=True)
    for name in KUBERNETES:
        (where / name).write_text("#!/bin/sh\n")
        (where / name).chmod(0o755)
    (where / ".complete").write_text("now\n")
    return where


def test_building_one_kubernetes_pin_keeps_the_other_and_drops_stale_ones(tmp_path: Path) -> None:
    default, matrix = fake_build(tmp_path), fake_build(tmp_path, pin="1.35")
    stale = tmp_path / "bin" / "kubernetes-0123456789abcdef"
    stale.mkdir()

    for pin in ("1.35", ""):
        result = build(tmp_path, "kubernetes", pin=pin)
        assert result.returncode == 0, result.stderr
        assert default.is_dir() and matrix.is_dir(), result.stderr
    assert not stale.exists()
