"""Helpers shared by the cluster tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from kopf.testing import KopfRunner

T = TypeVar("T")


class Kubectl(Protocol):
    def __call__(
        self,
        *args: str,
        namespace: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]: ...


def eventually(check: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.5) -> T:
    """The first truthy value of `check()`; fails with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout:.0f}s")
        time.sleep(interval)


@contextlib.contextmanager
def operator_running(
    kubeconfig: str, namespace: str | None = None, **env: str
) -> Iterator[KopfRunner]:
    """The operator in this process (Kopf's test runner), on the test cluster: every
    namespace, or only `namespace` (so other tests' namespaces are left alone)."""
    settings = {
        "KUBECONFIG": kubeconfig,
        "INITPIPELINE_METRICS_PORT": "0",
        "INITPIPELINE_RESYNC_SECONDS": "2",
        **env,
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    scope = ["--namespace", namespace] if namespace else ["--all-namespaces"]
    args = ["run", *scope, "--standalone", "-m", "initpipeline.handlers"]
    try:
        with KopfRunner(args, timeout=60) as runner:
            yield runner
        assert runner.exit_code == 0, runner.output
        assert runner.exception is None, runner.exception
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def get(kubectl: Kubectl, namespace: str | None, *what: str) -> dict[str, Any]:
    """`kubectl get ... -o json`, parsed."""
    out = kubectl("get", *what, "-o", "json", namespace=namespace).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def pods(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    """The namespace's Pods that are not being deleted."""
    items: list[dict[str, Any]] = get(kubectl, namespace, "pods")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def status(kubectl: Kubectl, namespace: str, name: str = "web") -> dict[str, Any]:
    """An InitPipeline's status ({} before the operator wrote one)."""
    result: dict[str, Any] = get(kubectl, namespace, "initpipeline", name).get("status") or {}
    return result


class Stream:
    """Every watch event of `kubectl get WHAT --watch --output-watch-events -o json`, in order:
    the objects that exist when it starts (as ADDED), then each change."""

    def __init__(self, argv: Sequence[str], namespace: str, *what: str) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[str, dict[str, Any]]] = []
        watch = ["--watch", "--output-watch-events", "--output", "json"]
        self._proc = subprocess.Popen(
            [*argv, "--namespace", namespace, "get", *what, *watch],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:  # one event a line
            event = json.loads(line)
            with self._lock:
                self._events.append((event["type"], event["object"]))

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)
        self._thread.join(timeout=10)

    @property
    def events(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self._events)
