"""spec.strategy against a real API server, the operator in this process. No node: the
Pods stay unscheduled, and the test is their kubelet: it writes a Pod's status as Ready the
way the kubelet reports it. A watch on the Pods records everything in between."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from tests.helpers import (
    Kubectl,
    Stream,
    eventually,
    kubelet_runs_everything,
    operator_running,
    pod_ready,
    pods,
    replay_pods,
    revision_of,
    status,
)
from tests.integration.test_operator import PIPELINE, apply, condition

pytestmark = pytest.mark.integration

REPLICAS = 4


@pytest.fixture
def operator(kubeconfig: str, namespace: str) -> Iterator[None]:
    with operator_running(kubeconfig, namespace, INITPIPELINE_NAMESPACES=namespace):
        yield


def pipeline(image_tag: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(PIPELINE)
    body["spec"]["replicas"] = REPLICAS
    body["spec"]["template"]["spec"]["containers"][0]["image"] = f"busybox:{image_tag}"
    body["spec"].update(spec)
    return body


def all_ready(kubectl: Kubectl, namespace: str) -> str:
    """Act as the kubelet until the pipeline's REPLICAS Pods are Ready; their revision."""

    def settled() -> str | None:
        for pod in pods(kubectl, namespace):
            if not pod_ready(pod):
                kubelet_runs_everything(kubectl, namespace, pod)
        st = status(kubectl, namespace)
        done = st.get("readyReplicas") == REPLICAS and len(pods(kubectl, namespace)) == REPLICAS
        return str(st["pods"][0]["name"]) if done else None

    eventually(settled)
    [found] = {revision_of(pod) for pod in pods(kubectl, namespace)}
    return found


def test_a_rolling_update_keeps_its_bounds_and_reports_its_progress(
    operator: None, kubectl: Kubectl, kubectl_argv: list[str], namespace: str
) -> None:
    # maxSurge 1, maxUnavailable 1 (the default 25% of 4).
    apply(kubectl, namespace, pipeline("1.36"))
    old = all_ready(kubectl, namespace)
    watch = Stream(kubectl_argv, namespace, "pods")
    try:
        eventually(lambda: len(watch.events) >= REPLICAS)  # the watch has listed them
        apply(kubectl, namespace, pipeline("1.37"))

        # Nothing new is Ready: one old Pod gave way (4 - 1 available) and two new ones
        # are there (4 + 1 Pods). The rollout waits.
        def halfway() -> dict[str, Any] | None:
            st = status(kubectl, namespace)
            current = [p for p in pods(kubectl, namespace) if revision_of(p) != old]
            return st if len(current) == 2 and st.get("updatedReplicas") == 2 else None

        st = halfway() or eventually(halfway)
        assert condition(st, "Ready")["message"].startswith("rolling out 0/4; ")
        assert (st["readyReplicas"], st["ready"]) == (0, "0/4")
        assert sum(revision_of(p) == old for p in pods(kubectl, namespace)) == 3

        new = all_ready(kubectl, namespace)
        st = status(kubectl, namespace)
        assert (st["updatedReplicas"], condition(st, "Ready")["message"]) == (4, "4/4 pods ready")
    finally:
        watch.stop()

    seen = replay_pods(watch.events)[REPLICAS - 1 :]  # from when the watch listed the old Pods
    assert max(total for total, _, _ in seen) == REPLICAS + 1
    assert min(serving for _, serving, _ in seen) == REPLICAS - 1
    assert seen[-1] == (REPLICAS, REPLICAS, {new})
    assert new != old


def test_recreate_deletes_every_old_pod_before_creating_a_new_one(
    operator: None, kubectl: Kubectl, kubectl_argv: list[str], namespace: str
) -> None:
    recreate = {"type": "Recreate"}
    apply(kubectl, namespace, pipeline("1.36", strategy=recreate))
    old = all_ready(kubectl, namespace)
    watch = Stream(kubectl_argv, namespace, "pods")
    try:
        eventually(lambda: len(watch.events) >= REPLICAS)
        apply(kubectl, namespace, pipeline("1.37", strategy=recreate))
        new = all_ready(kubectl, namespace)
    finally:
        watch.stop()

    seen = replay_pods(watch.events)[REPLICAS - 1 :]
    revisions = [found for _, _, found in seen]
    # Old Pods only, then none, then new Pods only: never both.
    assert {old, new} not in revisions
    assert (0, 0, set()) in seen
    assert seen[-1] == (REPLICAS, REPLICAS, {new})
