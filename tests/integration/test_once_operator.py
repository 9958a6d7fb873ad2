"""`once: true` run steps against a real API server and controller-manager, the operator in
this process. No node: the Pods (the replicas' and the Job's) stay unscheduled and their
statuses are written the way the kubelet writes them; the Job controller turns its Pod's
status into the Job's (Complete, or Failed with BackoffLimitExceeded), as on a node."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from tests.helpers import Kubectl, eventually, get, operator_running, pods, status
from tests.integration.test_deadlines_retries import WAITED, ended, ready
from tests.integration.test_operator import _init_status, apply, name_of, set_pod_status

pytestmark = pytest.mark.integration

ONCE_LABEL = "initpipeline.io/once-of"
RELEASED = "initpipeline.io/released"
PIPELINE_LABEL = "initpipeline.io/pipeline"

PIPELINE = """
apiVersion: initpipeline.io/v1alpha1
kind: InitPipeline
metadata:
  name: web
spec:
  replicas: 2
  steps:
    - name: wait-db
      waitFor: [{tcp: "mydb:5432"}]
    - name: migrate
      once: true
      run:
        image: docker.io/library/busybox:1.36.1-musl
        command: ["sh", "-c", "echo applied 3 migrations > /dev/termination-log"]
  template:
    spec:
      # No scheduler serves this name: the Pods (also the Job's, which takes the template's
      # Pod spec) stay unscheduled, so the tests write their status as a kubelet would.
      schedulerName: initpipeline-tests-unscheduled
      containers:
        - name: app
          image: docker.io/library/busybox:1.36.1-musl
          command: ["sleep", "3600"]
"""


def pipeline(command: str = "echo applied 3 migrations") -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(PIPELINE)
    body["spec"]["steps"][1]["run"]["command"][2] = f"{command} > /dev/termination-log"
    return body


@pytest.fixture
def operator(kubeconfig: str, namespace: str) -> Iterator[None]:
    with operator_running(kubeconfig, namespace, INITPIPELINE_NAMESPACES=namespace):
        yield


def replicas_of(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    """The pipeline's Pods (not the Job's), not being deleted."""
    return [p for p in pods(kubectl, namespace) if PIPELINE_LABEL in p["metadata"]["labels"]]


def jobs(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = get(kubectl, namespace, "jobs", "-l", ONCE_LABEL)["items"]
    return [job for job in found if not job["metadata"].get("deletionTimestamp")]


def job_pod(kubectl: Kubectl, namespace: str, job: str) -> dict[str, Any] | None:
    found = get(kubectl, namespace, "pods", "-l", f"batch.kubernetes.io/job-name={job}")
    return next(iter(found["items"]), None)


def at_migrate(kubectl: Kubectl, namespace: str, pod: dict[str, Any]) -> None:
    """The kubelet's report of a replica whose wait-db step is done and which waits at
    migrate (its wait for the Job runs)."""
    running = {"running": {"startedAt": "2026-11-25T10:00:04Z"}}
    set_pod_status(
        kubectl,
        namespace,
        name_of(pod),
        {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "initContainerStatuses": [
                _init_status("wait-db", WAITED),
                _init_status("migrate", running),
            ],
        },
    )


def job_ran(kubectl: Kubectl, namespace: str, job: str, code: int, message: str) -> None:
    """The kubelet's report of the Job's Pod: its container ended with `code`."""
    pod = eventually(lambda: job_pod(kubectl, namespace, job))
    state = ended(code, "2026-11-25T10:00:05Z", "2026-11-25T10:00:07Z", message)
    set_pod_status(
        kubectl,
        namespace,
        name_of(pod),
        {
            "phase": "Succeeded" if code == 0 else "Failed",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{**_init_status("migrate", state), "started": False}],
        },
    )


def released(kubectl: Kubectl, namespace: str) -> list[str] | None:
    found = [
        p["metadata"].get("annotations", {}).get(RELEASED) for p in replicas_of(kubectl, namespace)
    ]
    return found if all(found) and len(found) == 2 else None


def step(st: dict[str, Any], name: str = "migrate") -> dict[str, Any]:
    return next((s for s in st.get("steps") or () if s["name"] == name), {})


def migrate_is(kubectl: Kubectl, namespace: str, state: str) -> dict[str, Any]:
    """The pipeline's status once its migrate step is in `state`."""

    def check() -> dict[str, Any] | None:
        st = status(kubectl, namespace)
        return st if step(st).get("state") == state else None

    return eventually(check)


def test_one_job_for_both_replicas_releases_them_when_it_completes(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, namespace, pipeline())
    replicas = eventually(
        lambda: (found := replicas_of(kubectl, namespace)) and len(found) == 2 and found
    )
    st = eventually(lambda: (s := status(kubectl, namespace)).get("pods") and s)
    assert jobs(kubectl, namespace) == []  # no Pod has reached the step yet
    init = replicas[0]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["wait-db", "migrate"]
    assert "migrations" not in json.dumps(init[1]["command"])  # a wait, not the step

    for pod in replicas:  # both reach it: still one Job
        at_migrate(kubectl, namespace, pod)
    [job] = eventually(lambda: jobs(kubectl, namespace) or None)
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("InitPipeline", "web", True)
    assert job["spec"]["backoffLimit"] == 0
    revision = replicas[0]["metadata"]["labels"]["initpipeline.io/spec-hash"]
    assert name_of(job) == f"web-migrate-{revision[:5]}"
    st = migrate_is(kubectl, namespace, "Pending")  # the Job's Pod is not scheduled
    assert st["message"] == (
        f"step 2/2 migrate: running docker.io/library/busybox:1.36.1-musl in job {name_of(job)}"
    )
    assert released(kubectl, namespace) is None

    job_ran(kubectl, namespace, name_of(job), 0, "applied 3 migrations")
    assert eventually(lambda: released(kubectl, namespace)) == ["migrate", "migrate"]
    st = migrate_is(kubectl, namespace, "Succeeded")
    assert {k: step(st)[k] for k in ("exitCode", "reason", "message")} == {
        "exitCode": 0,
        "reason": "Completed",
        "message": "applied 3 migrations",
    }
    assert [name_of(j) for j in jobs(kubectl, namespace)] == [name_of(job)]
    held = [entry["target"] for entry in st["heldTargets"]]
    assert held == [f"job {name_of(job)}"]

    # A replica re-created later (deleted, evicted) is released at once: no second Job.
    kubectl("delete", "pod", name_of(replicas[1]), "--wait=false", namespace=namespace)
    assert eventually(lambda: released(kubectl, namespace)) == ["migrate", "migrate"]
    assert [name_of(j) for j in jobs(kubectl, namespace)] == [name_of(job)]

    # Deleting the pipeline deletes the Job (ownerReference, garbage collector).
    kubectl("delete", "initpipeline", "web", "--wait=false", namespace=namespace)
    eventually(lambda: not get(kubectl, namespace, "jobs")["items"] or None, timeout=60)


def test_a_spec_change_runs_a_new_job_and_deletes_the_old_one(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, namespace, pipeline())
    first = eventually(lambda: (found := replicas_of(kubectl, namespace)) and found[0])
    at_migrate(kubectl, namespace, first)
    [old] = eventually(lambda: jobs(kubectl, namespace) or None)
    eventually(lambda: job_pod(kubectl, namespace, name_of(old)))

    apply(kubectl, namespace, pipeline("echo applied 4 migrations"))
    revision = "initpipeline.io/spec-hash"
    replaced = eventually(  # a Pod of the new revision (the old ones roll out one by one)
        lambda: next(
            (
                p
                for p in replicas_of(kubectl, namespace)
                if p["metadata"]["labels"][revision] != first["metadata"]["labels"][revision]
            ),
            None,
        )
    )
    eventually(lambda: jobs(kubectl, namespace) == [] or None)  # the old revision's, deleted
    eventually(lambda: job_pod(kubectl, namespace, name_of(old)) is None or None)  # its Pod too
    at_migrate(kubectl, namespace, replaced)
    [new] = eventually(lambda: jobs(kubectl, namespace) or None)
    assert name_of(new) != name_of(old)
    assert "applied 4 migrations" in json.dumps(new["spec"]["template"]["spec"]["containers"])


def test_a_failed_job_stalls_the_pipeline_naming_the_step(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, namespace, pipeline())
    first = eventually(lambda: (found := replicas_of(kubectl, namespace)) and found[0])
    at_migrate(kubectl, namespace, first)
    [job] = eventually(lambda: jobs(kubectl, namespace) or None)

    job_ran(kubectl, namespace, name_of(job), 3, "relation users exists")
    st = migrate_is(kubectl, namespace, "Failed")
    assert (step(st)["exitCode"], step(st)["reason"]) == (3, "BackoffLimitExceeded")
    assert ready(st) == (
        "StepFailed",
        "step 2/2 migrate: exit code 3 (BackoffLimitExceeded): relation users exists",
        "True",
    )
    assert released(kubectl, namespace) is None
