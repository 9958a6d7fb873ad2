"""A watch gap: what happened while the operator could not watch is seen once it can again.

The operator runs as a child process (`initpipeline run`, watching the test's namespace). It
is frozen (SIGSTOP) and its connections to the API server are cut (`ss -K` on the process' own
sockets: a network fault on the operator's side, no cluster component is touched). Meanwhile
one pipeline's Pod and the other pipeline are deleted, and small objects of the watched kinds
are created and deleted until a watch from the operator's last resourceVersion is answered
410 Gone (the API server's watch cache keeps at least 75 s of events, so this takes that
long): the operator can only learn what happened by listing again. Then it is resumed
(SIGCONT). What was done is printed (`pytest -s`).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from tests.helpers import (
    Kubectl,
    OperatorProcess,
    eventually,
    get,
    in_ci,
    log_messages,
    operator_process,
    pods,
)

pytestmark = pytest.mark.integration

PIPELINE_LABEL = "initpipeline.io/pipeline"
GAUGE = "initpipeline_pipelines"


def pipeline(name: str, suspend: bool = False) -> dict[str, Any]:
    labels = {"noise": "true"} if suspend else {}
    return {
        "apiVersion": "initpipeline.io/v1alpha1",
        "kind": "InitPipeline",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "suspend": suspend,
            "steps": [
                {"name": "first", "run": {"image": "busybox:1.36.1-musl", "command": ["true"]}}
            ],
            "template": {
                "spec": {
                    # No scheduler serves this name: the Pods stay Pending, untouched.
                    "schedulerName": "initpipeline-tests-unscheduled",
                    "containers": [{"name": "app", "image": "busybox:1.36.1-musl"}],
                }
            },
        },
    }


def noise_pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"noise-{i}", "labels": {PIPELINE_LABEL: "noise", "noise": "true"}},
        "spec": {
            "schedulerName": "initpipeline-tests-unscheduled",
            "containers": [{"name": "c", "image": "busybox:1.36.1-musl"}],
        },
    }


def as_list(items: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def pods_of(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        p for p in pods(kubectl, namespace) if p["metadata"]["labels"].get(PIPELINE_LABEL) == name
    ]


def version(kubectl: Kubectl, path: str) -> str:
    listed = json.loads(kubectl("get", "--raw", f"{path}?limit=1").stdout)
    return str(listed["metadata"]["resourceVersion"])


def expired(kubectl: Kubectl, path: str, resource_version: str) -> bool:
    """Whether a watch from `resource_version` is answered 410 Gone."""
    query = f"{path}?watch=1&resourceVersion={resource_version}&timeoutSeconds=1"
    out = kubectl("get", "--raw", query, check=False, timeout=30).stdout
    first = out.splitlines()[0] if out.strip() else "{}"
    event = json.loads(first)
    return bool(event.get("type") == "ERROR" and event["object"].get("code") == 410)


def cut_connections(operator: OperatorProcess, api_port: int) -> list[str]:
    """Abort the operator's TCP connections to the API server (the kernel's SOCK_DESTROY)."""
    pid = operator.process.pid
    listing = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, check=True).stdout
    ports = [
        line.split()[3].rpartition(":")[2]
        for line in listing.splitlines()
        if f"pid={pid}," in line and line.split()[4].endswith(f":{api_port}")
    ]
    for port in ports:
        subprocess.run(["ss", "-K", "-tn", f"sport = :{port}"], capture_output=True, check=True)
    return ports


def counted(operator: OperatorProcess) -> float:
    return sum(operator.metric(GAUGE).values())


def test_a_pod_and_a_pipeline_deleted_during_a_watch_gap_are_seen_after_a_relist(
    kubeconfig: str, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    if shutil.which("ss") is None:
        why = "needs ss (iproute2) to cut the operator's connections"
        if in_ci():
            pytest.fail(f"{why}: .ci/run installs iproute2 (CI runs every tier)", pytrace=False)
        pytest.skip(why)
    server = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    api_port = urlsplit(server).port or 443
    log = tmp_path / "operator.log"
    with operator_process(kubeconfig, log, INITPIPELINE_NAMESPACES=namespace) as operator:
        for name in ("kept", "dropped"):
            kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(pipeline(name)))
        eventually(
            lambda: pods_of(kubectl, namespace, "kept") and pods_of(kubectl, namespace, "dropped")
        )
        eventually(lambda: counted(operator) == 2)
        [lost] = pods_of(kubectl, namespace, "kept")

        pods_path = f"/api/v1/namespaces/{namespace}/pods"
        pipelines_path = f"/apis/initpipeline.io/v1alpha1/namespaces/{namespace}/initpipelines"
        versions = {path: version(kubectl, path) for path in (pods_path, pipelines_path)}
        operator.process.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        cut = cut_connections(operator, api_port)
        print(f"\nSIGSTOP; cut the operator's connections from ports {', '.join(cut)}")
        assert cut, "the operator had no connection to the API server"

        kubectl("delete", "pod", lost["metadata"]["name"], "--wait=false", namespace=namespace)
        kubectl("delete", "initpipeline", "dropped", "--wait=false", namespace=namespace)
        print(f"deleted Pod {lost['metadata']['name']} and InitPipeline dropped")

        # The watch cache keeps every event younger than 75 s (it grows to do so): let the
        # gap age past that, then add events until the operator's versions are evicted.
        time.sleep(max(0.0, 80 - (time.monotonic() - stopped)))
        rounds = 0
        noise = as_list([noise_pod(i) for i in range(200)])
        noise_pipelines = as_list([pipeline(f"noise-{i}", suspend=True) for i in range(50)])
        while not all(expired(kubectl, path, rv) for path, rv in versions.items()):
            assert rounds < 40, "the watch cache never let the operator's version expire"
            rounds += 1
            kubectl("create", "-f", "-", namespace=namespace, input=noise, check=False)
            kubectl("create", "-f", "-", namespace=namespace, input=noise_pipelines, check=False)
            for kind in ("pods", "initpipelines"):
                kubectl(
                    "delete", kind, "-l", "noise", "--wait=false", namespace=namespace, check=False
                )
            eventually(lambda: not pods_of(kubectl, namespace, "noise"), timeout=60)
        print(
            f"{rounds} rounds of 200 Pods and 50 InitPipelines created and deleted: a watch "
            f"from the operator's versions {versions} is answered 410 Gone "
            f"({time.monotonic() - stopped:.0f}s after SIGSTOP)"
        )

        meanwhile = pods_of(kubectl, namespace, "kept")
        assert not meanwhile, (
            "another operator re-created the Pod while this one was stopped: this test needs "
            "no other operator watching every namespace (a concurrent test session's)"
        )
        operator.process.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        print("SIGCONT")
        eventually(lambda: pods_of(kubectl, namespace, "kept"), timeout=60)
        print(f"the lost Pod was created again {time.monotonic() - resumed:.1f}s after SIGCONT")
        eventually(lambda: counted(operator) == 1, timeout=60)
        assert f"InitPipeline {namespace}/dropped is gone, forgotten" in log_messages(
            operator.text()
        )
        relists = [line for line in operator.text().splitlines() if "listing again" in line]
        print("the operator:", *relists, sep="\n  ")
        st = get(kubectl, namespace, "initpipeline", "kept")["status"]
        assert st["ready"] == "0/1"
        assert not [line for line in operator.text().splitlines() if "Traceback" in line]
