"""110 namespaces, one pipeline each waiting on a `service` target: no cliff.

The operator runs as a child process watching those namespaces (INITPIPELINE_NAMESPACES:
per kind and namespace, the watches of the single-namespace install, so other tests'
namespaces are left alone). Watches hold their connections for minutes; they have their own
pool, so Pod creates never wait for a connection (the old operator, one pool of 100
connections for everything, starved its Pod creates past ~50 namespaces: `PoolTimeout`).
Timings are printed (`pytest -s`), not asserted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import Kubectl, eventually, operator_process

pytestmark = pytest.mark.integration

COUNT = 110
PIPELINE_LABEL = "initpipeline.io/pipeline"


def waiting_pipeline(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "initpipeline.io/v1alpha1",
        "kind": "InitPipeline",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "steps": [{"name": "wait-backend", "waitFor": [{"service": "backend"}]}],
            "template": {
                "spec": {
                    # No scheduler serves this name: the Pods stay Pending, untouched.
                    "schedulerName": "initpipeline-tests-unscheduled",
                    "containers": [{"name": "app", "image": "busybox:1.36.1-musl"}],
                }
            },
        },
    }


def as_list(items: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


@pytest.fixture
def namespaces(kubectl: Kubectl, namespace: str) -> Iterator[list[str]]:
    """COUNT namespaces named after the test's own, each with its default ServiceAccount."""
    names = [f"{namespace}-{i}" for i in range(COUNT)]
    spaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in names]
    kubectl("create", "-f", "-", input=as_list(spaces))
    try:

        def accounts() -> bool:
            found = {sa["metadata"]["namespace"] for sa in read(kubectl, "serviceaccounts", "-A")}
            return set(names) <= found

        eventually(accounts, timeout=120)
        yield names
    finally:
        kubectl("delete", "namespace", *names, "--wait=false", "--ignore-not-found", check=False)


def read(kubectl: Kubectl, *args: str) -> list[dict[str, Any]]:
    """Items of `kubectl get ... -o json`; none while the API server does not answer (the
    cluster is shared: another session's fault tests may restart it)."""
    done = kubectl("get", *args, "-o", "json", timeout=60, check=False)
    items: list[dict[str, Any]] = json.loads(done.stdout)["items"] if done.returncode == 0 else []
    return items


def pods_by_namespace(kubectl: Kubectl) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pod in read(kubectl, "pods", "-A", "-l", PIPELINE_LABEL):
        ns = pod["metadata"]["namespace"]
        counts[ns] = counts.get(ns, 0) + 1
    return counts


def test_a_pipeline_in_each_of_110_namespaces_gets_its_pod_and_a_new_one_too(
    kubeconfig: str, kubectl: Kubectl, namespaces: list[str], tmp_path: Path
) -> None:
    log = tmp_path / "operator.log"
    pipelines = [waiting_pipeline("web", ns) for ns in namespaces]
    started = time.monotonic()
    with operator_process(
        kubeconfig, log, INITPIPELINE_NAMESPACES=",".join(namespaces)
    ) as operator:
        up = time.monotonic() - started
        created = time.monotonic()
        kubectl("create", "-f", "-", input=as_list(pipelines), timeout=300)
        applied = time.monotonic() - created

        def all_have_pods() -> bool:
            operator.alive()
            counts = pods_by_namespace(kubectl)
            return all(counts.get(ns) == 1 for ns in namespaces)

        eventually(all_have_pods, timeout=300, interval=2)
        every_pod = time.monotonic() - created

        late = time.monotonic()
        kubectl("create", "-f", "-", input=json.dumps(waiting_pipeline("late", namespaces[-1])))
        eventually(lambda: pods_by_namespace(kubectl).get(namespaces[-1]) == 2, timeout=120)
        late_pod = time.monotonic() - late

        def all_waiting() -> bool:
            reasons = [
                c.get("reason")
                for item in read(kubectl, "initpipelines", "-A")
                if item["metadata"]["namespace"] in set(namespaces)
                for c in (item.get("status") or {}).get("conditions", [])
                if c["type"] == "Ready"
            ]
            return len(reasons) == COUNT + 1 and "PodCreationFailed" not in reasons

        eventually(all_waiting, timeout=120, interval=2)
        text = operator.text()
    print(
        f"\n{COUNT} namespaces: operator up in {up:.1f}s; {COUNT} pipelines created in "
        f"{applied:.1f}s; every pipeline had its Pod {every_pod:.1f}s after the create began; "
        f"a pipeline created afterwards had its Pod after {late_pod:.2f}s"
    )
    assert "PoolTimeout" not in text
    assert "Traceback" not in text
