"""`initpipeline describe` and `initpipeline graph` (the real CLI, as a user runs it) against
the API server, with the operator in this process and Pod statuses written as the kubelet
would. The ordering case of issue 11: `api` waits on pipeline `db` being Ready."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.helpers import Kubectl, eventually, get, kubelet_runs_everything, pods

from initpipeline.fields import timestamp as stamp

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "12-start-in-order.yaml"
BIN = Path(sys.executable).parent  # the project's environment: both entry points are here
UNSCHEDULED = "initpipeline-tests-unscheduled"  # no scheduler or kubelet touches these Pods


def cli(kubeconfig: str, *args: str, plugin: bool = False) -> subprocess.CompletedProcess[str]:
    """`initpipeline ARGS`, or `kubectl initpipeline ARGS` through kubectl's plugin lookup."""
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("NO_COLOR", None)
    argv = ["kubectl", "initpipeline", *args] if plugin else [str(BIN / "initpipeline"), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def documents(kinds: tuple[str, ...]) -> str:
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d and d["kind"] in kinds]
    for doc in docs:
        if doc["kind"] == "InitPipeline":
            doc["spec"]["template"]["spec"]["schedulerName"] = UNSCHEDULED
    return yaml.safe_dump_all(docs)


def pod_of(kubectl: Kubectl, namespace: str, pipeline: str) -> dict[str, Any] | None:
    found = [p for p in pods(kubectl, namespace)
             if p["metadata"]["labels"].get("initpipeline.io/pipeline") == pipeline]  # fmt: skip
    return found[0] if len(found) == 1 else None


def edge(kubeconfig: str, namespace: str) -> list[str]:
    """The `api wait-db` row of `initpipeline graph`, split in its columns."""
    out = cli(kubeconfig, "graph", "-n", namespace)
    assert out.returncode == 0, out.stderr
    rows = [re.split(r"\s{2,}", line.strip()) for line in out.stdout.splitlines()]
    return next((row for row in rows if row[:2] == ["api", "wait-db"]), [])


def test_api_waits_on_db_then_starts(
    operator: None, kubectl: Kubectl, namespace: str, kubeconfig: str
) -> None:
    # Without the Role, api's ServiceAccount may not read db: the operator refuses to check it.
    kubectl("apply", "-f", "-", namespace=namespace, input=documents(("InitPipeline",)))
    refused = eventually(lambda: (row := edge(kubeconfig, namespace))[2:3] == ["refused"] and row)
    assert refused[3:] == [
        "InitPipeline db (Ready)",
        f"not checked: serviceaccount {namespace}/default may not get "
        f"initpipelines.initpipeline.io in {namespace}",
    ]
    kubectl("apply", "-f", "-", namespace=namespace, input=documents(("Role", "RoleBinding")))
    waiting = eventually(lambda: (row := edge(kubeconfig, namespace))[2:3] == ["waiting"] and row)
    # db's Pod is never scheduled: its Ready condition is False with reason Pending
    assert waiting[3:] == ["InitPipeline db (Ready)", "Ready is False Pending"], waiting
    finding = "InitPipeline db (Ready): Ready is False Pending"  # in api's waitingOn
    api_pod = eventually(lambda: pod_of(kubectl, namespace, "api"))
    annotations = api_pod["metadata"].get("annotations") or {}
    assert "initpipeline.io/released" not in annotations

    # The kubelet starts api's wait step, which waits for its release.
    wait_db = {"name": "wait-db", "image": "docker.io/library/busybox:1.36.1-musl", "imageID": "",
               "ready": False, "restartCount": 0, "started": True, "lastState": {},
               "state": {"running": {"startedAt": stamp(datetime.now(UTC))}}}  # fmt: skip
    scheduled = [{"type": "PodScheduled", "status": "True"}]
    kubectl(
        "patch", "pod", api_pod["metadata"]["name"], "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"phase": "Pending", "conditions": scheduled,
                                     "initContainerStatuses": [wait_db]}}),
        namespace=namespace,
    )  # fmt: skip

    def waiting_drawn() -> str | None:
        out = cli(kubeconfig, "describe", "api", "-n", namespace)
        assert out.returncode == 0, out.stderr
        return out.stdout if "Status:  WaitingForDependency: " in out.stdout else None

    text = eventually(waiting_drawn)
    assert "\x1b" not in text  # not a terminal: plain
    lines = text.splitlines()
    assert lines[:2] == [
        f"InitPipeline {namespace}/api",
        f"Status:  WaitingForDependency: step 1/1 wait-db: waiting for {finding}",
    ]
    [step] = [line for line in lines if line.startswith("  wait-db ")]
    # running since a moment after the Pod was created: its bar ends in a head at "now"
    assert re.fullmatch(r"  wait-db  Running  \+\S+ +\S+ +\| *-*>\|", step), step
    waits = lines.index("Waiting on:")
    assert lines[waits : waits + 3] == ["Waiting on:", f"  wait-db: {finding}", ""]

    # db's Pod runs its step and becomes Ready: api's wait step is released, the edge holds.
    kubelet_runs_everything(
        kubectl, namespace, eventually(lambda: pod_of(kubectl, namespace, "db"))
    )
    eventually(lambda: edge(kubeconfig, namespace)[2:3] == ["held"])
    released = eventually(
        lambda: get(kubectl, namespace, "pod", api_pod["metadata"]["name"])["metadata"]
        .get("annotations", {}).get("initpipeline.io/released")
    )  # fmt: skip
    assert released == "wait-db"

    # api's Pod proceeds; describe, through kubectl's plugin lookup, shows it on the time axis.
    # (its steps ran from 1 s to 3 s after the Pod was created: the axis starts at creation)
    created = datetime.fromisoformat(
        api_pod["metadata"]["creationTimestamp"].replace("Z", "+00:00")
    )
    kubelet_runs_everything(kubectl, namespace, api_pod, start=created)

    def running() -> str | None:
        out = cli(kubeconfig, "describe", "api", "-n", namespace, plugin=True)
        return out.stdout if "Status:  Running: 1/1 pods ready" in out.stdout else None

    lines = eventually(running).splitlines()
    assert lines[1] == "Status:  Running: 1/1 pods ready"
    [step] = [line for line in lines if line.startswith("  wait-db ")]
    # the axis spans 0-3 s (creation to the step's end), 40 columns: the bar starts at 13
    bar = "|" + " " * 13 + "=" * 27 + "|"
    assert step == f"  wait-db  Succeeded  +1s    2s        {bar}  Completed", step
    assert "Waiting on:" not in lines
    events = lines[lines.index("Events:") + 2 :]  # after the header; LAST SEEN left out
    assert [re.split(r"\s{2,}", line.strip())[1:] for line in events] == [
        ["Normal", "StepStarted", "initpipeline/api", "Step 1/1 wait-db started"],
        ["Normal", "StepSucceeded", "initpipeline/api", "Step 1/1 wait-db succeeded after 2s"],
    ], lines


def test_describe_watch_redraws_when_the_status_changes_and_ctrl_c_ends_it(
    operator: None, kubectl: Kubectl, namespace: str, kubeconfig: str
) -> None:
    kubectl("apply", "-f", "-", namespace=namespace, input=documents(("InitPipeline",)))
    db_pod = eventually(lambda: pod_of(kubectl, namespace, "db"))
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    # Ctrl-C as a terminal sends it: SIGINT's default action, even where this run inherited
    # it ignored (a shell's background job ignores SIGINT, and so do its children).
    watcher = subprocess.Popen(
        [str(BIN / "initpipeline"), "describe", "db", "-n", namespace, "--watch"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()
        assert first == f"InitPipeline {namespace}/db\n"
        kubelet_runs_everything(kubectl, namespace, db_pod)
        deadline = time.monotonic() + 60
        drawn = first
        while "Status:  Running: 1/1 pods ready" not in drawn:
            assert time.monotonic() < deadline, drawn
            drawn += watcher.stdout.readline()
    finally:
        watcher.send_signal(signal.SIGINT)
        _, stderr = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_describe_of_a_missing_pipeline_is_one_line(kubeconfig: str, namespace: str) -> None:
    out = cli(kubeconfig, "describe", "nope", "-n", namespace)
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == f"initpipeline: initpipeline {namespace}/nope not found\n"
