"""Helpers shared by the cluster tests."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from kopf.testing import KopfRunner

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]

# What the API server answers to a Pod with `cpu: lots` in its resources (not a quantity): the
# PodCreationFailed message after the operator's `pod NAME: `.
BAD_QUANTITY = (
    'Pod in version "v1" cannot be handled as a Pod: quantities must match the regular '
    "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)

# A line of the operator's text log in Kopf's format (kopf.LogFormat.FULL):
# `[<time>] <logger, 20 characters> [<LEVEL, 8 characters>] <message>`.
_LOG_LINE = re.compile(r"\[[^]]*\] .{20} \[[A-Z ]{8}\] (?P<message>.*)")


def log_messages(text: str) -> list[str]:
    """The messages of the operator's text log, one per line: Kopf's time, logger and level
    left out; the lines a message continues on (a traceback's) are no messages."""
    return [found["message"] for line in text.splitlines() if (found := _LOG_LINE.fullmatch(line))]


def in_ci() -> bool:
    """Whether the tests run in CI, where a tier that cannot run must fail, not skip: the
    environment variable CI set to anything but "", "0", "false" or "no" (any case)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def kubectl_binary() -> str:
    """The kubectl built with the cluster's pins, else the one on PATH."""
    try:
        out = subprocess.run(
            [str(REPO / "hack" / "build.sh"), "--print"], capture_output=True, text=True, check=True
        ).stdout
        for line in out.splitlines():
            mod, _, path = line.partition(" ")
            if mod == "kubernetes" and (Path(path) / "kubectl").exists():
                return str(Path(path) / "kubectl")
    except (OSError, subprocess.CalledProcessError):
        pass
    return shutil.which("kubectl") or "kubectl"


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
    namespace, or only `namespace` (so other tests' namespaces are left alone).

    It watches dependencies cluster-wide unless the test sets INITPIPELINE_NAMESPACES in
    `env`: one exported in the developer's shell does not leak in."""
    settings = {
        "KUBECONFIG": kubeconfig,
        "INITPIPELINE_METRICS_PORT": "0",
        "INITPIPELINE_RESYNC_SECONDS": "2",
        "INITPIPELINE_NAMESPACES": "",
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


def kubelet_runs_everything(
    kubectl: Kubectl,
    namespace: str,
    pod: dict[str, Any],
    start: datetime = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC),
) -> None:
    """As the kubelet would report a Pod whose steps all succeeded (from `start` + 1 s to
    + 3 s) and whose app is ready (since + 5 s), through the Pod status subresource."""

    def at(seconds: int) -> str:
        return (start + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    done = {"terminated": {
        "exitCode": 0, "reason": "Completed", "startedAt": at(1), "finishedAt": at(3),
    }}  # fmt: skip

    def container(name: str, state: dict[str, Any], ready: bool) -> dict[str, Any]:
        return {"name": name, "image": "docker.io/library/busybox:1.36.1-musl", "imageID": "",
                "ready": ready, "restartCount": 0, "started": "running" in state,
                "state": state, "lastState": {}}  # fmt: skip

    spec = pod["spec"]
    pod_status = {
        "phase": "Running",
        "conditions": [
            {"type": kind, "status": "True", "lastTransitionTime": at(5)}
            for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
        "initContainerStatuses": [
            container(c["name"], done, False) for c in spec["initContainers"]
        ],
        "containerStatuses": [
            container(c["name"], {"running": {"startedAt": at(5)}}, True)
            for c in spec["containers"]
        ],
    }  # fmt: skip
    kubectl(
        "patch", "pod", pod["metadata"]["name"], "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": pod_status}), namespace=namespace,
    )  # fmt: skip


def revision_of(pod: dict[str, Any]) -> str:
    """The spec revision a Pod of a pipeline belongs to (its initpipeline.io/spec-hash)."""
    return str(pod["metadata"]["labels"]["initpipeline.io/spec-hash"])


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def replay_pods(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, int, set[str]]]:
    """After each watch event of a `Stream` of a pipeline's Pods: (Pods that exist, also
    those being deleted; Ready Pods not being deleted; the spec revisions of the Pods that
    exist). The first events list the Pods there when the watch started."""
    now: dict[str, dict[str, Any]] = {}
    seen = []
    for kind, pod in events:
        assert kind != "RELISTED", "the watch lost events"
        if kind == "DELETED":
            now.pop(pod["metadata"]["name"], None)
        else:
            now[pod["metadata"]["name"]] = pod
        serving = [
            p for p in now.values() if pod_ready(p) and not p["metadata"].get("deletionTimestamp")
        ]
        seen.append((len(now), len(serving), {revision_of(p) for p in now.values()}))
    return seen


class Stream:
    """Every watch event of `kubectl get WHAT --watch --output-watch-events -o json`, in order:
    the objects that exist when it starts (as ADDED), then each change. When the watch ends
    (an API-server restart), it starts again: a ("RELISTED", {}) event marks where the fresh
    list begins, since what changed in between is not known."""

    def __init__(self, argv: Sequence[str], namespace: str, *what: str) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._argv = [*argv, "--namespace", namespace, "get", *what]
        self._argv += ["--watch", "--output-watch-events", "--output", "json"]
        self._stopped = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        first = True
        while not self._stopped.is_set():
            try:
                proc = subprocess.Popen(
                    self._argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
                )
            except OSError:  # exec refused for a moment (EFAULT, seen in CI): try again
                self._stopped.wait(0.1)
                continue
            self._proc = proc
            if not first:
                with self._lock:
                    self._events.append(("RELISTED", {}))
            first = False
            assert proc.stdout is not None
            for line in proc.stdout:  # one event a line
                event = json.loads(line)
                with self._lock:
                    self._events.append((event["type"], event["object"]))
            proc.wait()
            self._stopped.wait(1)  # the API server is away: ask again in a second

    def stop(self) -> None:
        self._stopped.set()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        self._thread.join(timeout=10)

    @property
    def events(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self._events)


# ------------------------------------------------------------------ the operator as a process


def token_kubeconfig(
    kubectl: Kubectl, admin_kubeconfig: str, path: Path, account: str, namespace: str
) -> str:
    """A kubeconfig with the admin one's server and CA, and only a token (TokenRequest) of
    the ServiceAccount `namespace/account`: requests are that account's, under its RBAC and
    its API Priority and Fairness flow."""
    token = kubectl("create", "token", account, "--duration=1h", namespace=namespace).stdout
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    context = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = dict(next(c["cluster"] for c in admin["clusters"] if c["name"] == context["cluster"]))
    if "certificate-authority" in cluster:  # a file path, maybe relative to the kubeconfig
        ca = Path(admin_kubeconfig).parent / cluster["certificate-authority"]
        cluster["certificate-authority"] = str(ca.resolve())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token.strip()}}],
        "contexts": [{"name": account, "context": {"cluster": "cluster", "user": account}}],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return 0, ""


@dataclass
class OperatorProcess:
    """`initpipeline run` as a child process (the container's command)."""

    process: subprocess.Popen[bytes]
    log: Path
    liveness_url: str
    metrics_url: str

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def alive(self) -> bool:
        assert self.process.poll() is None, self.text()[-3000:]
        return True

    def metric(self, name: str) -> dict[str, float]:
        """The samples of one metric, by their label text (`state="Pending"`); {} when the
        endpoint does not answer."""
        code, text = http_get(self.metrics_url)
        samples = {}
        for line in text.splitlines() if code == 200 else ():
            if line.startswith(name + "{") or line.startswith(name + " "):
                labels, _, value = line[len(name) :].rpartition(" ")
                samples[labels.strip("{}")] = float(value)
        return samples


@contextlib.contextmanager
def operator_process(
    kubeconfig: str, log: Path, python: str = sys.executable, **env: str
) -> Iterator[OperatorProcess]:
    """The operator as a child process, until the block ends (SIGTERM, then SIGKILL)."""
    liveness, metrics = free_port(), free_port()
    settings = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INITPIPELINE_")},
        "KUBECONFIG": kubeconfig,
        "PYTHONUNBUFFERED": "1",
        "INITPIPELINE_LIVENESS_ENDPOINT": f"http://127.0.0.1:{liveness}/healthz",
        "INITPIPELINE_METRICS_PORT": str(metrics),
        "INITPIPELINE_RESYNC_SECONDS": "2",
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [python, "-m", "initpipeline.cli", "run"],
            env=settings, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip
    operator = OperatorProcess(
        process,
        log,
        settings["INITPIPELINE_LIVENESS_ENDPOINT"],
        f"http://127.0.0.1:{metrics}/metrics",
    )
    try:
        eventually(lambda: operator.alive() and http_get(operator.liveness_url)[0] == 200)
        yield operator
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # should the test have left it stopped
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
