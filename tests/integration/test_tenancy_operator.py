"""The issue's tenancy and Job-ttl scenarios, end to end: the operator in this process on the
real API server (no node needed: the pipeline's Pods are never scheduled, and the Job is
managed by the test, which writes its status as the Job controller would).

The operator watches only the namespaces of the test (INITPIPELINE_NAMESPACES), so it leaves
every other test's pipelines alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from tests.helpers import Kubectl, eventually, get, operator_running, pods, status

pytestmark = pytest.mark.integration

# A finding that does not come within this long will not come.
SETTLE = 30.0


def apply(kubectl: Kubectl, namespace: str, *docs: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", namespace=namespace, input=yaml.safe_dump_all(docs))


def pipeline(*targets: dict[str, Any], step: str = "wait-db") -> dict[str, Any]:
    return {
        "apiVersion": "initpipeline.io/v1alpha1",
        "kind": "InitPipeline",
        "metadata": {"name": "web"},
        "spec": {
            "steps": [{"name": step, "waitFor": list(targets)}],
            "template": {
                "spec": {
                    # No scheduler serves this name: the Pods stay unscheduled.
                    "schedulerName": "initpipeline-tests-unscheduled",
                    "containers": [
                        {
                            "name": "app",
                            "image": "docker.io/library/busybox:1.36.1-musl",
                            "command": ["sleep", "3600"],
                        }
                    ],
                }
            },
        },
    }


def waiting_on(kubectl: Kubectl, namespace: str) -> list[str]:
    steps = status(kubectl, namespace).get("steps") or [{}]
    return list(steps[0].get("waitingOn") or [])


@pytest.fixture
def tenant_b(kubectl: Kubectl) -> Iterator[str]:
    """The other tenant, with the Service private-db (no endpoints); deleted afterwards."""
    name = f"t-tenant-b-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    try:
        apply(
            kubectl,
            name,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "private-db"},
                "spec": {"ports": [{"port": 5432}], "selector": {"app": "private-db"}},
            },
        )
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def test_a_pipeline_in_tenant_a_learns_nothing_about_tenant_b(
    kubeconfig: str, kubectl: Kubectl, namespace: str, tenant_b: str
) -> None:
    """Seen on the local cluster: `no ready endpoints` for private-db, `service does not
    exist` for nothing. Both must read the same refusal."""
    watched = f"{namespace},{tenant_b}"
    with operator_running(kubeconfig, namespace, INITPIPELINE_NAMESPACES=watched):
        apply(
            kubectl,
            namespace,
            pipeline({"service": f"{tenant_b}/private-db"}, {"service": f"{tenant_b}/nothing"}),
        )
        why = f"not checked: serviceaccount {namespace}/default may not get services in {tenant_b}"
        want = [f"service {tenant_b}/private-db: {why}", f"service {tenant_b}/nothing: {why}"]
        eventually(lambda: waiting_on(kubectl, namespace) == want, timeout=SETTLE)


def test_a_target_in_a_namespace_the_operator_does_not_watch_says_so(
    kubeconfig: str, kubectl: Kubectl, namespace: str, tenant_b: str
) -> None:
    with operator_running(kubeconfig, namespace, INITPIPELINE_NAMESPACES=namespace):
        apply(kubectl, namespace, pipeline({"service": f"{tenant_b}/private-db"}))
        want = [
            f"service {tenant_b}/private-db: not checked: the operator does not watch "
            f"namespace {tenant_b} (INITPIPELINE_NAMESPACES)"
        ]
        eventually(lambda: waiting_on(kubectl, namespace) == want, timeout=SETTLE)


# --------------------------------------------------------------------------- Job ttl

JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "migrate"},
    "spec": {
        # Not the Job controller's: the test writes its status, as that controller would.
        "managedBy": "initpipeline.io/tests",
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "m", "image": "docker.io/library/busybox:1.36.1-musl"},
                ],
            }
        },
    },
}
COMPLETE = {
    "startTime": "2026-12-02T08:00:00Z",
    "completionTime": "2026-12-02T08:00:05Z",
    "succeeded": 1,
    "conditions": [
        {"type": "SuccessCriteriaMet", "status": "True",
         "lastTransitionTime": "2026-12-02T08:00:05Z"},
        {"type": "Complete", "status": "True", "lastTransitionTime": "2026-12-02T08:00:05Z"},
    ],
}  # fmt: skip


def released(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    """Pod name -> its release annotation, for the Pods not being deleted."""
    return {
        pod["metadata"]["name"]: (pod["metadata"].get("annotations") or {}).get(
            "initpipeline.io/released", ""
        )
        for pod in pods(kubectl, namespace)
    }


def complete_the_job(kubectl: Kubectl, namespace: str) -> None:
    apply(kubectl, namespace, JOB)
    kubectl(
        "patch", "job", "migrate", "--subresource=status", "--type=merge",
        "-p", yaml.safe_dump({"status": COMPLETE}), namespace=namespace,
    )  # fmt: skip


def test_a_completed_job_is_recorded_for_the_spec_revision(
    kubeconfig: str, kubectl: Kubectl, namespace: str
) -> None:
    with operator_running(kubeconfig, namespace, INITPIPELINE_NAMESPACES=namespace):
        apply(kubectl, namespace, pipeline({"job": "migrate"}, step="wait-migrate"))
        [pod] = eventually(lambda: pods(kubectl, namespace) or None)
        eventually(lambda: waiting_on(kubectl, namespace) == ["job migrate: job does not exist"])
        complete_the_job(kubectl, namespace)
        eventually(
            lambda: released(kubectl, namespace) == {pod["metadata"]["name"]: "wait-migrate"}
        )
        [held] = eventually(lambda: status(kubectl, namespace).get("heldTargets"))
        revision = pod["metadata"]["labels"]["initpipeline.io/spec-hash"]
        assert {k: held[k] for k in ("step", "target", "revision")} == {
            "step": "wait-migrate",
            "target": "job migrate",
            "revision": revision,
        }


def test_a_job_that_cleaned_up_after_itself_still_releases_a_recreated_pod(
    kubeconfig: str, kubectl: Kubectl, namespace: str
) -> None:
    """The issue's scenario: the Job completes, the pipeline's step is released, the Job's
    ttlSecondsAfterFinished deletes it (here: the test), the Pod is deleted; the re-created Pod
    must be released too, not wait for `job migrate: job does not exist` forever."""
    with operator_running(kubeconfig, namespace, INITPIPELINE_NAMESPACES=namespace):
        apply(kubectl, namespace, pipeline({"job": "migrate"}, step="wait-migrate"))
        [pod] = eventually(lambda: pods(kubectl, namespace) or None)
        complete_the_job(kubectl, namespace)
        eventually(lambda: status(kubectl, namespace).get("heldTargets"))
        kubectl("delete", "job", "migrate", "--wait=true", namespace=namespace)
        first = pod["metadata"]["name"]
        uid = get(kubectl, namespace, "pod", first)["metadata"]["uid"]
        kubectl("delete", "pod", first, "--wait=true", namespace=namespace)

        def recreated() -> dict[str, str] | None:
            now = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods(kubectl, namespace)}
            return now if now and uid not in now.values() else None

        eventually(recreated)
        eventually(
            lambda: list(released(kubectl, namespace).values()) == ["wait-migrate"],
            timeout=SETTLE,
        )
        assert waiting_on(kubectl, namespace) == []
