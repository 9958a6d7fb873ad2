"""`once: true` run steps: the Job the replicas share, the Pods' wait for it, when the
operator creates and deletes Jobs, and the step's status read from the Job."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.test_cli import EXAMPLES, render
from tests.unit.test_deps import JOBS, FakeObjects

from initpipeline import deps
from initpipeline.names import ONCE_LABEL, RELEASED_ANNOTATION, SIGNAL_VOLUME, SPEC_HASH_LABEL
from initpipeline.plan import plan_jobs, release_value
from initpipeline.render import (
    ONCE_BACKOFF_LIMIT,
    once_job_name,
    render_job,
    render_jobs,
    render_pod,
    render_pods,
    spec_hash,
)
from initpipeline.settings import DEFAULT_STEP_IMAGE
from initpipeline.spec import SHARD_LABEL, InvalidSpec, Pipeline, parse_pipeline
from initpipeline.status import derive_status
from initpipeline.status.once import once_views

pytestmark = pytest.mark.unit

IMAGE = "busybox"
NOW = datetime(2026, 12, 6, 10, 0, 30, tzinfo=UTC)
MIGRATE = {
    "image": "app:1",
    "command": ["migrate"],
    "volumeMounts": [{"name": "conf", "mountPath": "/c"}],
}


def body(**step: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": "web", "uid": "u1", "generation": 1},
        "spec": {
            "replicas": 2,
            "steps": [
                {"name": "wait-db", "waitFor": [{"tcp": "db:5432"}]},
                {"name": "proxy", "sidecar": {"image": "proxy:1"}},
                {"name": "migrate", "once": True, "run": MIGRATE, **step},
                {"name": "warm", "run": {"image": "app:1", "command": ["warm"]}},
            ],
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "serviceAccountName": "web",
                    "securityContext": {"runAsUser": 1000},
                    "volumes": [
                        {"name": "conf", "configMap": {"name": "web"}},
                        {"name": "data", "emptyDir": {}},
                    ],
                    "containers": [{"name": "app", "image": "app:1"}],
                },
            },
        },
    }


def pipeline(**step: Any) -> Pipeline:
    return parse_pipeline(body(**step))


def pod(pipe: Pipeline, index: int = 0, done: int = 0) -> dict[str, Any]:
    """Replica `index` as the kubelet reports it with its first `done` steps finished and the
    next one running (a sidecar counts as finished once started)."""
    found = render_pod(pipe, index, IMAGE)
    found["metadata"].update(uid=f"pod-{index}", creationTimestamp="2026-12-06T10:00:00Z")
    statuses = []
    for number, step in enumerate(pipe.spec.steps):
        started = {"startedAt": "2026-12-06T10:00:01Z"}
        if step.sidecar is not None and number <= done:
            state: dict[str, Any] = {"running": started}
        elif number < done:
            state = {"terminated": {"exitCode": 0, "reason": "Completed", **started}}
        elif number == done:
            state = {"running": started}
        else:
            state = {"waiting": {"reason": "PodInitializing"}}
        entry = {"name": step.name, "state": state, "ready": False, "restartCount": 0}
        if step.sidecar is not None and number <= done:
            entry["started"] = True
        statuses.append(entry)
    found["status"] = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "initContainerStatuses": statuses,
    }
    return found


def job(pipe: Pipeline, *conditions: tuple[str, str, str], **status: Any) -> dict[str, Any]:
    """The Job as the API returns it, with conditions (type, reason, message) all True."""
    found = render_job(pipe, pipe.spec.steps[2])
    found["metadata"]["uid"] = "job-uid"
    found["status"] = {
        "startTime": "2026-12-06T10:00:05Z",
        **status,
        "conditions": [
            {
                "type": type_,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": "2026-12-06T10:00:20Z",
            }
            for type_, reason, message in conditions
        ],
    }
    return found


def job_pod(state: dict[str, Any]) -> dict[str, Any]:
    """The Job's Pod, as the kubelet reports its container."""
    return {
        "metadata": {
            "name": "web-migrate-x-abcde",
            "labels": {ONCE_LABEL: "web"},
            "creationTimestamp": "2026-12-06T10:00:05Z",
            "ownerReferences": [{"kind": "Job", "uid": "job-uid"}],
        },
        "status": {"containerStatuses": [{"name": "migrate", "state": state}]},
    }


COMPLETE = ("Complete", "", "")
EXITED_0 = {"terminated": {"exitCode": 0, "message": "applied 3 migrations\n"}}


def status_of(
    pipe: Pipeline, pods: list[dict[str, Any]], jobs: list[dict[str, Any]], job_pods: list[Any]
) -> dict[str, Any]:
    return derive_status(
        pipe, pods, {}, None, NOW, spec_hash(pipe.spec), once=once_views(pipe, jobs, job_pods)
    )


# --------------------------------------------------------------------------- spec


@pytest.mark.parametrize(
    "step",
    [
        {"name": "s", "waitFor": [{"tcp": "db:1"}], "once": True},
        {"name": "s", "sidecar": {"image": "proxy:1"}, "once": False},
    ],
)
def test_once_is_refused_on_other_steps_naming_the_field(step: dict[str, Any]) -> None:
    bad = body()
    bad["spec"]["steps"] = [step]
    with pytest.raises(InvalidSpec) as error:
        parse_pipeline(bad)
    assert str(error.value) == (
        "spec.steps[0].once: only allowed on run steps (a Job runs the step once per spec "
        'revision) (step "s")'
    )


# --------------------------------------------------------------------------- render


def test_the_pods_wait_for_the_job_instead_of_running_the_step() -> None:
    pipe = pipeline()
    name = once_job_name(pipe, pipe.spec.steps[2])
    manifest = render_pod(pipe, 0, IMAGE)

    wait = manifest["spec"]["initContainers"][2]
    assert wait["name"] == "migrate"
    assert wait["image"] == IMAGE
    assert "app:1" not in str(wait["command"])
    assert f"job {name} confirmed by the operator" in wait["command"][2]
    assert wait["securityContext"]["runAsNonRoot"] is True
    assert {"name": SIGNAL_VOLUME, "mountPath": "/var/run/initpipeline", "readOnly": True} in (
        wait["volumeMounts"]
    )
    assert SIGNAL_VOLUME in [v["name"] for v in manifest["spec"]["volumes"]]
    assert name == f"web-migrate-{spec_hash(pipe.spec)[:5]}"


def test_the_job_is_the_step_alone_in_the_templates_pod_hardened_and_owned() -> None:
    pipe = pipeline(timeoutSeconds=600)
    [manifest] = render_jobs(pipe)

    meta = manifest["metadata"]
    labels = {ONCE_LABEL: "web", "initpipeline.io/step": "migrate"}
    labels[SPEC_HASH_LABEL] = spec_hash(pipe.spec)
    assert (meta["name"], meta["namespace"], meta["labels"]) == (
        once_job_name(pipe, pipe.spec.steps[2]),
        "shop",
        labels,
    )
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "initpipeline.io/v1alpha1",
            "kind": "InitPipeline",
            "name": "web",
            "uid": "u1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = manifest["spec"]
    assert spec["backoffLimit"] == ONCE_BACKOFF_LIMIT == 0
    assert spec["activeDeadlineSeconds"] == 600
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    ]
    template = spec["template"]
    assert template["metadata"] == {"labels": labels}  # not the template's app: web
    pod_spec = template["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["serviceAccountName"] == "web"
    assert pod_spec["volumes"] == [{"name": "conf", "configMap": {"name": "web"}}]
    [container] = pod_spec["containers"]
    assert container["name"] == "migrate"
    assert container["command"] == ["migrate"]
    # The Pod sets runAsUser 1000 and no runAsNonRoot: the container gets the rest.
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    [proxy] = pod_spec["initContainers"]  # the sidecar step before it, native
    assert (proxy["name"], proxy["restartPolicy"]) == ("proxy", "Always")


def test_what_the_user_set_wins_over_the_restricted_defaults() -> None:
    user = {**MIGRATE, "securityContext": {"runAsNonRoot": False, "runAsUser": 0}}
    pipe = pipeline(run=user)
    [container] = render_job(pipe, pipe.spec.steps[2])["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["runAsNonRoot"] is False
    assert container["securityContext"]["runAsUser"] == 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_a_spec_change_names_a_new_job_scaling_does_not() -> None:
    pipe = pipeline()
    changed = pipeline(run={**MIGRATE, "command": ["migrate", "--v2"]})
    scaled = parse_pipeline({**body(), "spec": {**body()["spec"], "replicas": 5}})
    step = pipe.spec.steps[2]
    assert once_job_name(changed, step) != once_job_name(pipe, step)
    assert once_job_name(scaled, step) == once_job_name(pipe, step)


# --------------------------------------------------------------------------- plan


def test_the_job_is_created_once_a_pod_has_finished_the_steps_before_it() -> None:
    pipe = pipeline()
    waiting = [pod(pipe, 0, done=0), pod(pipe, 1, done=0)]
    assert plan_jobs(pipe, [], waiting, None).create == []

    reached = [pod(pipe, 0, done=0), pod(pipe, 1, done=1)]  # the sidecar has started
    [created] = plan_jobs(pipe, [], reached, None).create
    assert created == render_job(pipe, pipe.spec.steps[2])


def test_one_job_for_all_replicas_and_none_again_once_it_exists() -> None:
    pipe = pipeline()
    reached = [pod(pipe, 0, done=2), pod(pipe, 1, done=2)]
    assert len(plan_jobs(pipe, [], reached, None).create) == 1
    assert plan_jobs(pipe, [job(pipe)], reached, None) == plan_jobs(pipe, [job(pipe)], [], None)
    assert plan_jobs(pipe, [job(pipe)], reached, None).create == []


def test_a_job_that_completed_for_this_revision_is_not_run_again_when_deleted() -> None:
    pipe = pipeline()
    label = f"job {once_job_name(pipe, pipe.spec.steps[2])}"
    revision = spec_hash(pipe.spec)
    held = {"heldTargets": [{"step": "migrate", "target": label, "revision": revision}]}
    assert plan_jobs(pipe, [], [pod(pipe, 0, done=2)], held).create == []


def test_jobs_of_other_revisions_are_deleted_and_the_new_one_created() -> None:
    before = pipeline()
    after = pipeline(run={**MIGRATE, "command": ["migrate", "--v2"]})
    plan = plan_jobs(after, [job(before)], [pod(after, 0, done=2)], None)
    assert plan.delete == [job(before)]
    assert [j["metadata"]["name"] for j in plan.create] == [
        once_job_name(after, after.spec.steps[2])
    ]


def test_no_job_while_suspended() -> None:
    pipe = parse_pipeline({**body(), "spec": {**body()["spec"], "suspend": True}})
    assert plan_jobs(pipe, [], [pod(pipe, 0, done=2)], None).create == []


# --------------------------------------------------------------------------- release


def test_the_pods_are_released_when_the_job_completes() -> None:
    pipe = pipeline()
    name = once_job_name(pipe, pipe.spec.steps[2])
    running = FakeObjects({JOBS: True}, {JOBS: [job(pipe)]})
    complete = FakeObjects({JOBS: True}, {JOBS: [job(pipe, COMPLETE)]})

    assert deps.api_waiting(pipe, running) == {"migrate": [f"job {name}: job not complete"]}
    waiting = deps.api_waiting(pipe, complete)
    assert waiting == {"migrate": []}
    replica = pod(pipe, 1, done=2)
    assert release_value(pipe, replica, waiting) == "migrate"
    assert deps.watches_for(pipe) == {JOBS}
    replica["metadata"]["annotations"] = {RELEASED_ANNOTATION: "migrate"}
    assert release_value(pipe, replica, waiting) is None


# --------------------------------------------------------------------------- status


def test_the_steps_status_is_the_jobs_in_every_pod() -> None:
    pipe = pipeline()
    pods = [pod(pipe, 0, done=2), pod(pipe, 1, done=2)]
    running = job_pod({"running": {"startedAt": "2026-12-06T10:00:06Z"}})

    status = status_of(pipe, pods, [job(pipe, active=1)], [running])
    step = status["steps"][2]
    assert (step["name"], step["type"], step["state"]) == ("migrate", "Run", "Running")
    assert step["startedAt"] == "2026-12-06T10:00:06Z"  # the Job's container, not the wait
    name = once_job_name(pipe, pipe.spec.steps[2])
    assert status["message"] == f"step 3/4 migrate: running app:1 in job {name}"
    assert [p["currentStep"] for p in status["pods"]] == ["migrate", "migrate"]


def test_a_completed_job_is_a_succeeded_step_with_its_containers_message() -> None:
    pipe = pipeline()
    done = job(pipe, COMPLETE, completionTime="2026-12-06T10:00:20Z", succeeded=1)

    status = status_of(pipe, [pod(pipe, 0, done=2)], [done], [job_pod(EXITED_0)])
    assert status["steps"][2] == {
        "name": "migrate",
        "type": "Run",
        "state": "Succeeded",
        "startedAt": "2026-12-06T10:00:05Z",
        "finishedAt": "2026-12-06T10:00:20Z",
        "exitCode": 0,
        "reason": "Completed",
        "message": "applied 3 migrations",
    }
    assert status["progress"] == "3/4"  # the Pod's wait is finished with it


def test_a_failed_job_fails_the_pipeline_with_its_reason_naming_the_step() -> None:
    never = body()
    never["spec"]["retries"] = 2
    never["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    pipe = parse_pipeline(never)
    failed = job(
        pipe, ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    )
    exited = job_pod(
        {"terminated": {"exitCode": 3, "reason": "Error", "message": "relation users exists"}}
    )

    status = status_of(pipe, [pod(pipe, 0, done=2), pod(pipe, 1, done=2)], [failed], [exited])
    step = status["steps"][2]
    assert (step["state"], step["exitCode"], step["reason"]) == (
        "Failed",
        3,
        "BackoffLimitExceeded",
    )
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["reason"] == "StepFailed"
    assert conditions["Stalled"]["status"] == "True"
    assert status["message"] == (
        "step 3/4 migrate: exit code 3 (BackoffLimitExceeded): relation users exists"
    )  # not "retrying": nothing retries a once step's Job


def test_a_job_that_failed_without_a_container_says_the_jobs_message() -> None:
    pipe = pipeline()
    failed = job(
        pipe, ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
    )
    status = status_of(pipe, [pod(pipe, 0, done=2)], [failed], [])
    assert status["message"] == ("step 3/4 migrate: Job was active longer than specified deadline")
    assert {c["type"]: c["reason"] for c in status["conditions"]}["Ready"] == "DeadlineExceeded"


def test_an_image_the_jobs_pod_cannot_pull_is_reported() -> None:
    pipe = pipeline()
    stuck = job_pod({"waiting": {"reason": "ErrImagePull", "message": "not found"}})
    status = status_of(pipe, [pod(pipe, 0, done=2)], [job(pipe)], [stuck])
    assert status["message"] == "step 3/4 migrate: ErrImagePull: not found"


# --------------------------------------------------------------------------- initpipeline render


def test_render_prints_the_pods_then_the_job(tmp_path: Path) -> None:
    example = EXAMPLES / "14-run-once-migration.yaml"
    result = render(example)
    assert result.returncode == 0, result.stderr
    pipe = parse_pipeline(yaml.safe_load(example.read_text()))
    assert list(yaml.safe_load_all(result.stdout)) == [
        *render_pods(pipe, DEFAULT_STEP_IMAGE),
        *render_jobs(pipe),
    ]

    bad = yaml.safe_load(example.read_text())
    bad["spec"]["steps"][0] = {"name": "migrate", "once": True, "sidecar": {"image": "x"}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    refused = render(tmp_path / "bad.yaml")
    assert (refused.returncode, refused.stderr) == (
        1,
        "initpipeline: spec.steps[0].once: only allowed on run steps (a Job runs the step once"
        ' per spec revision) (step "migrate")\n',
    )


def test_the_job_and_its_pod_carry_the_pipelines_shard() -> None:
    sharded = body()
    sharded["metadata"]["labels"] = {SHARD_LABEL: "a"}
    manifest = render_job(parse_pipeline(sharded), parse_pipeline(sharded).spec.steps[2])
    assert manifest["metadata"]["labels"][SHARD_LABEL] == "a"
    assert manifest["spec"]["template"]["metadata"]["labels"][SHARD_LABEL] == "a"
    assert SHARD_LABEL not in render_job(pipeline(), pipeline().spec.steps[2])["metadata"]["labels"]
