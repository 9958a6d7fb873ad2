"""The status a user sees, derived from Pods as a real kubelet wrote them.

The Pods under tests/unit/pods/ are the api-example pipeline's Pod at moments of its life,
recorded by tests/record_pods.py (see tests/unit/pods/README.md). Tests that need a state
no recording holds change a recorded Pod in plain sight.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from initpipeline import scripts
from initpipeline.messages import wait_report
from initpipeline.names import (
    ATTEMPT_LABEL,
    DEADLINE_ANNOTATION,
    SPEC_HASH_LABEL,
    TOOLS_CONTAINER,
)
from initpipeline.render import pod_name, render_pod, spec_hash
from initpipeline.settings import DEFAULT_STEP_IMAGE
from initpipeline.spec import Pipeline, StepType, parse_pipeline
from initpipeline.status import (
    MAX_MESSAGE,
    Problems,
    StepEvent,
    derive_status,
    one_line,
    status_changed,
    step_events,
    unparsed_status,
    wait_logs_to_read,
)

pytestmark = pytest.mark.unit

PODS = Path(__file__).parent / "pods"
EXAMPLE = Path(__file__).parents[1] / "data" / "api-example.yaml"
# The recorded Pods are the example's: its spec hash, its replicas' names.
EXAMPLE_PIPELINE = parse_pipeline(yaml.safe_load(EXAMPLE.read_text()))
HASH = spec_hash(EXAMPLE_PIPELINE.spec)
POD = pod_name(EXAMPLE_PIPELINE, 0)  # shop-web-12463-0
SECOND_POD = pod_name(EXAMPLE_PIPELINE, 1)
NOW = datetime(2026, 11, 25, 10, 6, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
# What wait-deps' script wrote when all its targets held (the Pod of wait-step-running,
# step-2-running and ready: released 2 s after it started), and how the status shows it.
WAIT_RESULT = (
    "mydb:5432 reachable after 0s; mysql:3306 reachable after 0s; "
    "http://config-server:8888/health answered after 1s; dns myservice resolved after 0s; "
    "file /certs/tls.crt exists after 0s; command sh -c test -s /work/ready succeeded after 0s; "
    "service mydb port 5432, job db-migrate, Certificate web-tls (Ready) confirmed by the "
    "operator after 2s"
)
SHORTENED_WAIT_RESULT = (
    "mydb:5432 reachable after 0s; mysql:3306 reachable after 0s; http://config-server:888…"
    "sts after 0s; command sh -c test -s /work/ready succeeded after 0s; service mydb port "
    "5432, job db-migrate, Certificate web-tls (Ready) confirmed by the operator after 2s"
)
# The events of the copyAssets and prepareVolume steps, with their scripts' result lines (the
# same in every recorded Pod that got past them).
SITE_SUCCEEDED = (
    "Normal",
    "StepSucceeded",
    "Step 3/6 site succeeded after 0s: copied 2 files from localhost/initpipeline/assets:1:/dist "
    "to volume html",
)
DATA_DIR_SUCCEEDED = (
    "Normal",
    "StepSucceeded",
    "Step 4/6 data-dir succeeded after 0s: prepared volume redis-data/redis: mode 0750, "
    "owner 999:999",
)
STEP_NAMES = ["wait-deps", "fetch-config", "site", "data-dir", "migrate", "log-shipper"]


def example_body(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"]["generation"] = 4
    restart_policy = spec.pop("restartPolicy", None)
    if restart_policy:
        body["spec"]["template"]["spec"]["restartPolicy"] = restart_policy
    body["spec"].update(spec)
    return body


def pipeline(**spec: Any) -> Pipeline:
    return parse_pipeline(example_body(**spec))


def recorded(name: str, *, pod_name: str | None = None, spec_hash: str | None = None) -> Any:
    pod = json.loads((PODS / f"{name}.json").read_text())
    if pod_name:
        pod["metadata"]["name"] = pod_name
    if spec_hash:
        pod["metadata"]["labels"][SPEC_HASH_LABEL] = spec_hash
    return pod


def derive(
    pipe: Pipeline,
    pods: list[Any],
    *,
    api_waiting: Mapping[str, list[str]] | None = None,
    previous: Mapping[str, Any] | None = None,
    now: datetime = NOW,
    wait_reports: Mapping[tuple[str, str], str] | None = None,
    problems: Problems | None = None,
) -> dict[str, Any]:
    return derive_status(
        pipe, pods, api_waiting or {}, previous, now, HASH, wait_reports, problems=problems
    )


def container(pod: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The container status `name` of a recorded Pod (init containers included)."""
    statuses = [
        *pod["status"].get("initContainerStatuses", []),
        *pod["status"].get("containerStatuses", []),
    ]
    return next(c for c in statuses if c["name"] == name)


def step(status: Mapping[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in status["steps"] if s["name"] == name)
    return found


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == kind)
    return found


def states(status: Mapping[str, Any]) -> list[str]:
    return [s["state"] for s in status["steps"]]


def kstatus(status: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(Ready status, Ready reason, Reconciling status, Stalled status)."""
    ready = condition(status, "Ready")
    return (
        ready["status"],
        ready["reason"],
        condition(status, "Reconciling")["status"],
        condition(status, "Stalled")["status"],
    )


def assert_schema_safe(value: Any, path: str = "status") -> None:
    """Never null, never an empty optional field: the CRD schema is strict about types."""
    assert value is not None, path
    if isinstance(value, Mapping):
        for key, item in value.items():
            assert_schema_safe(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_schema_safe(item, f"{path}[{index}]")


# --------------------------------------------------------------------------- no Pod yet


def test_no_pod_yet_every_step_is_pending() -> None:
    status = derive(pipeline(), [])

    assert status["observedGeneration"] == 4
    assert (status["replicas"], status["readyReplicas"], status["ready"]) == (1, 0, "0/1")
    assert (status["progress"], status["currentStep"], status["pods"]) == ("0/6", "", [])
    assert status["selector"] == "initpipeline.io/pipeline=shop-web"  # the scale subresource
    assert [s["name"] for s in status["steps"]] == STEP_NAMES
    assert [s["type"] for s in status["steps"]] == [
        "WaitFor",
        "Download",
        "CopyAssets",
        "PrepareVolume",
        "Run",
        "Sidecar",
    ]
    assert states(status) == ["Pending"] * 6
    assert kstatus(status) == ("False", "Pending", "True", "False")
    assert status["message"] == "waiting for the pod to be created"


def test_just_created_pod_without_any_status_is_pending() -> None:
    status = derive(pipeline(), [recorded("created")])

    assert kstatus(status) == ("False", "Pending", "True", "False")
    assert status["message"] == f"pod {POD} is not scheduled yet"
    assert status["pods"] == [
        {
            "name": POD,
            "phase": "Pending",
            "ready": False,
            "currentStep": "wait-deps",
            "restarts": 0,
        }
    ]
    assert states(status) == ["Pending"] * 6
    assert status["currentStep"] == "wait-deps"


def test_unschedulable_pod_shows_the_schedulers_reason() -> None:
    status = derive(pipeline(), [recorded("unschedulable")])

    assert kstatus(status) == ("False", "Pending", "True", "False")
    assert status["message"] == (
        f"pod {POD} is not scheduled: 0/1 nodes are available: 1 node(s) didn't match Pod's "
        "node affinity/selector. no new claims to deallocate, preemption: 0/1 nodes are "
        "available: 1 Preemption is not helpful for scheduling."
    )


# --------------------------------------------------------------------------- in progress


def test_first_wait_step_waiting_to_start_lists_what_the_operator_waits_on() -> None:
    waiting = {"wait-deps": ["service mydb: no ready endpoints", "Job db-migrate: not complete"]}
    status = derive(pipeline(), [recorded("init-first-step-waiting")], api_waiting=waiting)

    assert step(status, "wait-deps") == {
        "name": "wait-deps",
        "type": "WaitFor",
        "state": "Pending",
        "restartCount": 0,
        "reason": "PodInitializing",
        "waitingOn": ["service mydb: no ready endpoints", "Job db-migrate: not complete"],
    }
    assert kstatus(status) == ("False", "WaitingForDependency", "True", "False")
    assert status["message"] == (
        "step 1/6 wait-deps: waiting for service mydb: no ready endpoints; "
        "Job db-migrate: not complete"
    )
    assert (status["progress"], status["currentStep"]) == ("0/6", "wait-deps")


def test_running_wait_step_merges_operator_findings_and_in_pod_reports() -> None:
    log = (
        "checking 8 targets\n"
        "waiting: tcp mysql:3306: connection refused\n"
        "waiting: dns myservice: no such host\n"
        "waiting: tcp mysql:3306: connection refused\n"
        "waiting: dns myservice: no such host\n"
    )
    report = wait_report(log)
    assert (
        report
        == "waiting: tcp mysql:3306: connection refused\nwaiting: dns myservice: no such host"
    )

    status = derive(
        pipeline(),
        [recorded("wait-step-running")],
        api_waiting={"wait-deps": ["service mydb: no ready endpoints"], "other": ["x"]},
        wait_reports={(POD, "wait-deps"): report},
    )

    wait = step(status, "wait-deps")
    assert (wait["state"], wait["startedAt"]) == ("Running", "2026-12-06T08:23:43Z")
    assert wait["waitingOn"] == [
        "service mydb: no ready endpoints",
        "tcp mysql:3306: connection refused",
        "dns myservice: no such host",
    ]
    assert kstatus(status) == ("False", "WaitingForDependency", "True", "False")
    assert status["message"] == (
        "step 1/6 wait-deps: waiting for service mydb: no ready endpoints; "
        "tcp mysql:3306: connection refused; dns myservice: no such host"
    )


def test_wait_step_with_nothing_reported_says_what_it_checks() -> None:
    status = derive(pipeline(), [recorded("wait-step-running")], api_waiting={"wait-deps": []})

    assert "waitingOn" not in step(status, "wait-deps")
    assert status["message"] == "step 1/6 wait-deps: waiting for 8 targets"


def test_wait_report_keeps_only_the_latest_round() -> None:
    assert wait_report("") is None
    assert wait_report("waiting: tcp a:1: refused\nok: tcp a:1 after 3s\n") is None
    log = "waiting: tcp a:1: refused\nwaiting: dns b: NXDOMAIN\nwaiting: tcp a:1: timeout\n"
    assert wait_report(log) == "waiting: tcp a:1: timeout"


def test_operator_placeholder_lines_never_reach_waiting_on_or_the_message() -> None:
    """Issue 13: `job migrate: checked by the operator` is the Pod's own placeholder."""
    log = (
        "waiting: job db-migrate: checked by the operator\n"
        "waiting: tcp mysql:3306: Connection refused\n"
        "waiting: job db-migrate: checked by the operator\n"
    )
    report = wait_report(log)
    assert report == "waiting: tcp mysql:3306: Connection refused"
    assert wait_report("waiting: job db-migrate: checked by the operator\n") is None

    status = derive(
        pipeline(),
        [recorded("wait-step-running")],
        api_waiting={"wait-deps": ["job db-migrate: job does not exist"]},
        wait_reports={(POD, "wait-deps"): log},  # even unfiltered
    )
    assert step(status, "wait-deps")["waitingOn"] == [
        "job db-migrate: job does not exist",
        "tcp mysql:3306: Connection refused",
    ]
    assert status["message"] == (
        "step 1/6 wait-deps: waiting for job db-migrate: job does not exist; "
        "tcp mysql:3306: Connection refused"
    )


def test_a_placeholder_an_older_operator_wrote_is_not_carried_into_a_timeout() -> None:
    pod = recorded("never-wait-timeout")
    del pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["message"]
    previous = derive(pipeline(restartPolicy="Never"), [recorded("wait-step-running")])
    previous["steps"][0]["waitingOn"] = [
        "job db-migrate: checked by the operator",
        "tcp mysql:3306: connection refused",
    ]

    status = derive(pipeline(restartPolicy="Never"), [pod], previous=previous)

    assert status["message"] == (
        "step 1/6 wait-deps: timed out after 300s waiting for tcp mysql:3306: connection refused"
    )


def test_wait_logs_to_read_names_the_representative_running_wait_container() -> None:
    pipe = pipeline()
    running = recorded("wait-step-running")
    assert wait_logs_to_read(pipe, [running], HASH) == [(POD, "wait-deps")]
    assert wait_logs_to_read(pipe, [recorded("init-first-step-waiting")], HASH) == []  # no log
    assert wait_logs_to_read(pipe, [recorded("step-2-running")], HASH) == []  # past waiting
    assert wait_logs_to_read(pipe, [running], "other-hash") == []  # an old revision's Pod
    assert wait_logs_to_read(pipe, [], HASH) == []
    # two replicas: only the less advanced one's report is shown
    ahead = recorded("step-2-running", pod_name=SECOND_POD)
    assert wait_logs_to_read(pipe, [ahead, running], HASH) == [(POD, "wait-deps")]


@pytest.mark.parametrize(
    ("targets", "read"),
    [
        ([{"service": "mydb"}, {"job": "db-migrate"}], False),  # only placeholders in its log
        ([{"service": "mydb", "port": 5432}], True),  # the port is checked in the Pod
        ([{"job": "db-migrate"}, {"tcp": "mysql:3306"}], True),
    ],
    ids=["operator-only", "service-port", "mixed"],
)
def test_a_wait_step_log_is_read_only_when_the_step_checks_something_in_the_pod(
    targets: list[dict[str, Any]], read: bool
) -> None:
    steps = example_body()["spec"]["steps"]
    steps[0]["waitFor"] = targets
    expected = [(POD, "wait-deps")] if read else []
    assert wait_logs_to_read(pipeline(steps=steps), [recorded("wait-step-running")], HASH) == (
        expected
    )


def test_second_step_running_after_the_first_succeeded() -> None:
    status = derive(pipeline(), [recorded("step-2-running")])

    assert step(status, "wait-deps") == {
        "name": "wait-deps",
        "type": "WaitFor",
        "state": "Succeeded",
        "startedAt": "2026-12-06T08:23:43Z",
        "finishedAt": "2026-12-06T08:23:45Z",
        "exitCode": 0,
        "restartCount": 0,
        "reason": "Completed",
        # the script's result line, shortened in the middle to MAX_MESSAGE
        "message": SHORTENED_WAIT_RESULT,
    }
    assert step(status, "fetch-config") == {
        "name": "fetch-config",
        "type": "Download",
        "state": "Running",
        "startedAt": "2026-12-06T08:23:46Z",
        "restartCount": 0,
    }
    assert states(status) == ["Succeeded", "Running"] + ["Pending"] * 4
    assert (status["progress"], status["currentStep"]) == ("1/6", "fetch-config")
    assert kstatus(status) == ("False", "Initializing", "True", "False")
    assert status["message"] == "step 2/6 fetch-config: downloading http://config-server/nginx.conf"
    assert status["pods"][0]["currentStep"] == "fetch-config"


def test_the_recorded_wait_result_is_what_the_wait_script_writes() -> None:
    """The recorded Pods hold wait-deps' real result line (its parts in spec order)."""
    terminated = recorded("step-2-running")["status"]["initContainerStatuses"][0]["state"]
    assert terminated["terminated"]["message"] == WAIT_RESULT + "\n"
    assert one_line(WAIT_RESULT) == SHORTENED_WAIT_RESULT
    script = scripts.wait_script(pipeline().spec.steps[0])
    results = [re.sub(r" after \d+s$", " after ", part) for part in WAIT_RESULT.split("; ")]
    assert [shlex.quote(part) in script for part in results] == [True] * 7
    order = [script.index(f'msg="${{msg:+$msg; }}"{shlex.quote(part)}') for part in results]
    assert order == sorted(order)


@pytest.mark.parametrize("name", sorted(p.stem for p in PODS.glob("*.json")))
def test_the_recorded_pods_ran_the_scripts_render_writes_today(name: str) -> None:
    """So their termination messages are what the scripts write now: each generated
    container ran the image and command `render` gives the example today (site with the
    assets image it ran). After changing a script: `uv run python -m tests.record_pods`."""
    pod = recorded(name)
    ran = {c["name"]: (c["image"], c["command"]) for c in pod["spec"]["initContainers"]}
    body = example_body()
    copy_step = next(s for s in body["spec"]["steps"] if "copyAssets" in s)
    copy_step["copyAssets"]["image"] = ran[copy_step["name"]][0]
    generated = {TOOLS_CONTAINER} | {
        s.name
        for s in EXAMPLE_PIPELINE.spec.steps
        if s.type not in (StepType.RUN, StepType.SIDECAR)
    }
    expected = {
        c["name"]: (c["image"], c["command"])
        for c in render_pod(parse_pipeline(body), 0, DEFAULT_STEP_IMAGE)["spec"]["initContainers"]
        if c["name"] in generated
    }

    assert {name: ran[name] for name in expected} == expected, "record the Pods again"


def test_wait_step_no_longer_lists_targets_once_it_succeeded() -> None:
    status = derive(pipeline(), [recorded("step-2-running")], api_waiting={"wait-deps": ["stale"]})

    assert "waitingOn" not in step(status, "wait-deps")


# --------------------------------------------------------------------------- held Job targets


def test_a_job_target_that_holds_is_recorded_for_the_spec_revision_and_kept() -> None:
    pipe = pipeline()
    revision = spec_hash(pipe.spec)
    unmet = {"wait-deps": ["service mydb: no ready endpoints", "job db-migrate: job not complete"]}
    assert derive(pipe, [], api_waiting=unmet)["heldTargets"] == []
    held = {"wait-deps": ["service mydb: no ready endpoints"]}
    status = derive(pipe, [], api_waiting=held)
    record = [
        {
            "step": "wait-deps",
            "target": "job db-migrate",
            "revision": revision,
            "heldAt": "2026-11-25T10:06:00Z",
        }
    ]
    assert status["heldTargets"] == record
    # Kept as it was (heldAt too), whatever the Job does now, and through an unparsable spec.
    later = derive(pipe, [], api_waiting=unmet, previous=status, now=LATER)
    assert later["heldTargets"] == record
    body = example_body()
    body["spec"]["steps"] = "not a list"
    kept = unparsed_status(body, later, LATER, Problems(invalid_spec="spec.steps: bad"))
    assert kept["heldTargets"] == record
    # A target no longer in the spec is dropped.
    without_job = example_body()
    without_job["spec"]["steps"][0]["waitFor"] = [{"service": "mydb"}]
    dropped = derive(parse_pipeline(without_job), [], api_waiting=held, previous=later)
    assert dropped["heldTargets"] == []


# --------------------------------------------------------------------------- failures


def test_failed_step_under_never_stalls_with_exit_code_and_termination_message() -> None:
    status = derive(pipeline(restartPolicy="Never"), [recorded("never-step-failed")])

    migrate = step(status, "migrate")
    assert migrate == {
        "name": "migrate",
        "type": "Run",
        "state": "Failed",
        "startedAt": "2026-12-06T08:23:54Z",
        "finishedAt": "2026-12-06T08:23:54Z",
        "exitCode": 1,
        "restartCount": 0,
        "reason": "Error",
        "message": 'ERROR:  relation "users" does not exist (SQLSTATE 42P01)',
    }
    assert states(status) == ["Succeeded"] * 4 + ["Failed", "Pending"]
    assert (status["progress"], status["currentStep"]) == ("4/6", "migrate")
    assert kstatus(status) == ("False", "StepFailed", "False", "True")
    assert status["message"] == (
        'step 5/6 migrate: exit code 1 (Error): ERROR:  relation "users" does not exist '
        "(SQLSTATE 42P01)"
    )
    assert condition(status, "Stalled")["message"] == status["message"]
    assert status["pods"][0]["phase"] == "Failed"


def test_crash_loop_under_always_is_failed_but_still_reconciling() -> None:
    status = derive(pipeline(), [recorded("always-crashloop")])

    migrate = step(status, "migrate")
    assert migrate["state"] == "Failed"
    assert (migrate["exitCode"], migrate["restartCount"], migrate["reason"]) == (1, 3, "Error")
    assert migrate["finishedAt"] == "2026-12-06T08:24:30Z"
    # the last line of the termination message
    assert migrate["message"] == 'ERROR:  relation "users" does not exist (SQLSTATE 42P01)'
    assert kstatus(status) == ("False", "StepFailed", "True", "False")
    assert status["message"] == (
        'step 5/6 migrate: exit code 1 (Error): ERROR:  relation "users" does not exist '
        "(SQLSTATE 42P01) (restarted 3 times)"
    )
    assert status["pods"][0]["restarts"] == 3


def test_failed_step_under_on_failure_is_retried_not_stalled() -> None:
    status = derive(pipeline(restartPolicy="OnFailure"), [recorded("always-crashloop")])

    assert kstatus(status) == ("False", "StepFailed", "True", "False")


def test_wait_timeout_names_the_unmet_targets() -> None:
    status = derive(pipeline(restartPolicy="Never"), [recorded("never-wait-timeout")])

    wait = step(status, "wait-deps")
    assert (wait["state"], wait["exitCode"], wait["reason"]) == ("Failed", 124, "WaitTimeout")
    assert "waitingOn" not in wait
    assert kstatus(status) == ("False", "WaitTimeout", "False", "True")
    assert wait["message"] == (
        "WaitTimeout: tcp mysql:3306, service mydb port 5432, job db-migrate, "
        "Certificate web-tls (Ready) not met after 300s"
    )
    assert status["message"] == (
        "step 1/6 wait-deps: timed out after 300s waiting for tcp mysql:3306, "
        "service mydb port 5432, job db-migrate, Certificate web-tls (Ready)"
    )


def test_wait_timeout_with_only_the_unmet_targets_in_the_termination_message() -> None:
    pod = recorded("never-wait-timeout")
    terminated = pod["status"]["initContainerStatuses"][0]["state"]["terminated"]
    terminated["message"] = "tcp mysql:3306: connection refused\n"

    status = derive(pipeline(restartPolicy="Never"), [pod])

    assert status["message"] == (
        "step 1/6 wait-deps: timed out after 300s waiting for tcp mysql:3306: connection refused"
    )


def test_wait_timeout_without_termination_message_uses_what_was_last_seen() -> None:
    pod = recorded("never-wait-timeout")
    del pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["message"]
    previous = derive(pipeline(restartPolicy="Never"), [recorded("wait-step-running")])
    previous["steps"][0]["waitingOn"] = ["tcp mysql:3306: connection refused"]

    status = derive(pipeline(restartPolicy="Never"), [pod], previous=previous)

    assert status["message"] == (
        "step 1/6 wait-deps: timed out after 300s waiting for tcp mysql:3306: connection refused"
    )


def test_image_pull_error_on_copy_assets_is_shown_with_the_kubelets_message() -> None:
    status = derive(pipeline(), [recorded("copyassets-errimagepull")])

    site = step(status, "site")
    assert (site["state"], site["reason"]) == ("Pending", "ErrImagePull")
    pulled = (  # the kubelet's message (295 characters), shortened in the middle
        'failed to pull and unpack image "registry.example/frontend-assets:1.2": failed to res…'
        'd-assets:1.2": failed to do request: Head "https://registry.example/v2/frontend-assets/'
        'manifests/1.2": proxyconnect tcp: dial tcp 127.0.0.1:1: connect: connection refused'
    )
    assert site["message"] == pulled
    assert len(site["message"]) == MAX_MESSAGE
    assert kstatus(status) == ("False", "Initializing", "True", "False")
    assert status["message"] == f"step 3/6 site: ErrImagePull: {pulled}"
    assert (status["progress"], status["currentStep"]) == ("2/6", "site")


def test_image_pull_back_off_keeps_the_kubelets_reason() -> None:
    pod = recorded("copyassets-errimagepull")
    waiting = pod["status"]["initContainerStatuses"][3]["state"]["waiting"]
    waiting["reason"] = "ImagePullBackOff"
    waiting["message"] = 'Back-off pulling image "registry.example/frontend-assets:1.2"'

    status = derive(pipeline(), [pod])

    assert step(status, "site")["reason"] == "ImagePullBackOff"
    assert status["message"] == (
        'step 3/6 site: ImagePullBackOff: Back-off pulling image "registry.example/'
        'frontend-assets:1.2"'
    )


def test_tools_container_failure_counts_as_the_copy_assets_step() -> None:
    pod = recorded("copyassets-errimagepull")
    pod["status"]["phase"] = "Failed"
    statuses = pod["status"]["initContainerStatuses"]
    tools = next(s for s in statuses if s["name"] == TOOLS_CONTAINER)
    tools["state"] = {
        "terminated": {
            "exitCode": 1,
            "reason": "Error",
            "message": "cp: can't create '/var/run/initpipeline-tools/busybox': Read-only\n",
            "startedAt": "2026-12-06T08:23:52Z",
            "finishedAt": "2026-12-06T08:23:52Z",
        }
    }
    statuses[3]["state"] = {"waiting": {"reason": "PodInitializing"}}

    status = derive(pipeline(restartPolicy="Never"), [pod])

    site = step(status, "site")
    assert (site["state"], site["exitCode"]) == ("Failed", 1)
    failed = f"{TOOLS_CONTAINER}: cp: can't create '/var/run/initpipeline-tools/busybox': Read-only"
    assert site["message"] == failed
    assert kstatus(status) == ("False", "StepFailed", "False", "True")
    assert status["message"] == f"step 3/6 site: exit code 1 (Error): {failed}"
    assert status["currentStep"] == "site"


def test_main_container_failing_a_never_pod_stalls() -> None:
    pod = recorded("ready")
    pod["spec"]["restartPolicy"] = "Never"
    pod["status"]["phase"] = "Failed"
    pod["status"]["containerStatuses"][0]["state"] = {
        "terminated": {
            "exitCode": 2,
            "reason": "Error",
            "message": "nginx: [emerg] unknown directive\n",
            "startedAt": "2026-12-06T08:23:57Z",
            "finishedAt": "2026-12-06T08:23:58Z",
        }
    }

    status = derive(pipeline(restartPolicy="Never"), [pod])

    assert kstatus(status) == ("False", "PodFailed", "False", "True")
    assert status["message"] == (
        f"pod {POD} failed: container web: exit code 2 (Error): nginx: [emerg] unknown directive"
    )


# --------------------------------------------------------------------------- sidecars, done


def test_sidecar_started_but_not_ready_counts_as_done_but_the_pod_is_not_ready() -> None:
    status = derive(pipeline(), [recorded("sidecar-started-not-ready")])

    assert step(status, "log-shipper") == {
        "name": "log-shipper",
        "type": "Sidecar",
        "state": "Running",
        "startedAt": "2026-12-06T08:23:55Z",
        "restartCount": 0,
    }
    assert (status["progress"], status["currentStep"]) == ("6/6", "")
    assert kstatus(status) == ("False", "Running", "True", "False")
    assert status["message"] == (
        "all 6 steps done; 0/1 pods ready; containers with unready status: [log-shipper]"
    )


def test_sidecar_not_started_yet_is_the_current_step() -> None:
    pod = recorded("sidecar-started-not-ready")
    pod["status"]["initContainerStatuses"][6]["started"] = False

    status = derive(pipeline(), [pod])

    assert (status["progress"], status["currentStep"]) == ("5/6", "log-shipper")
    assert status["message"] == "step 6/6 log-shipper: starting sidecar fluent/fluent-bit:3"


def test_everything_done_and_ready() -> None:
    status = derive(pipeline(), [recorded("ready")])

    assert states(status) == ["Succeeded"] * 5 + ["Ready"]
    assert (status["readyReplicas"], status["ready"]) == (1, "1/1")
    assert (status["progress"], status["currentStep"]) == ("6/6", "")
    assert kstatus(status) == ("True", "Running", "False", "False")
    assert status["message"] == "1/1 pods ready"
    assert status["pods"] == [
        {
            "name": POD,
            "phase": "Running",
            "ready": True,
            "currentStep": "",
            "restarts": 0,
        }
    ]
    assert condition(status, "Reconciling")["message"] == ""


def test_never_pod_that_succeeded_is_ready_succeeded() -> None:
    status = derive(pipeline(restartPolicy="Never"), [recorded("never-succeeded")])

    assert kstatus(status) == ("True", "Succeeded", "False", "False")
    assert status["message"] == "all 1 pods succeeded"
    assert status["readyReplicas"] == 0
    assert status["pods"][0]["phase"] == "Succeeded"
    assert (status["progress"], status["currentStep"]) == ("6/6", "")


def test_never_pod_running_is_not_ready_until_it_succeeds() -> None:
    status = derive(pipeline(restartPolicy="Never"), [recorded("ready")])

    assert kstatus(status) == ("False", "Running", "True", "False")
    assert status["message"] == "all 6 steps done; 0/1 pods succeeded"


def test_never_pod_whose_app_exited_is_running_while_the_kubelet_stops_its_sidecar() -> None:
    status = derive(
        pipeline(restartPolicy="Never"), [recorded("never-web-exited-sidecar-stopping")]
    )

    assert step(status, "log-shipper")["state"] == "Ready"
    assert (status["progress"], status["currentStep"]) == ("6/6", "")
    assert kstatus(status) == ("False", "Running", "True", "False")
    assert status["message"] == "all 6 steps done; 0/1 pods succeeded"


def test_never_pod_succeeded_while_its_sidecar_still_runs_is_ready_succeeded() -> None:
    # Kubelet 1.35 reports Succeeded only with the sidecar stopped (never-succeeded); a
    # status that says Succeeded while the sidecar still runs counts the same.
    pod = recorded("never-web-exited-sidecar-stopping")
    pod["status"]["phase"] = "Succeeded"

    status = derive(pipeline(restartPolicy="Never"), [pod])

    assert kstatus(status) == ("True", "Succeeded", "False", "False")
    assert status["message"] == "all 1 pods succeeded"
    assert (status["progress"], status["currentStep"]) == ("6/6", "")


def test_sidecar_stopped_with_its_succeeded_pod_is_not_a_failure() -> None:
    # The kubelet killed it (137) after its grace period: it ignores SIGTERM.
    status = derive(pipeline(restartPolicy="Never"), [recorded("never-succeeded")])

    assert step(status, "log-shipper") == {
        "name": "log-shipper",
        "type": "Sidecar",
        "state": "Succeeded",
        "startedAt": "2026-12-06T08:23:55Z",
        "finishedAt": "2026-12-06T08:24:28Z",
        "exitCode": 137,
        "restartCount": 0,
        "reason": "Error",
    }
    assert step_events({}, status)[-1] == StepEvent(
        "Normal", "StepSucceeded", "Sidecar 6/6 log-shipper succeeded after 33s"
    )


def test_sidecar_killed_while_its_pod_finishes_is_not_a_failure() -> None:
    # restartPolicy Never, the main container exited: the kubelet stops the sidecar; a
    # status may show it killed (137) while the Pod's phase is still Running.
    pod = recorded("never-web-exited-sidecar-stopping")
    sidecar = pod["status"]["initContainerStatuses"][6]
    sidecar["ready"] = False
    sidecar["started"] = False
    sidecar["state"] = {
        "terminated": {
            "exitCode": 137,
            "reason": "Error",
            "startedAt": "2026-12-06T08:23:55Z",
            "finishedAt": "2026-12-06T08:24:28Z",
        }
    }

    status = derive(pipeline(restartPolicy="Never"), [pod])

    assert step(status, "log-shipper")["state"] == "Succeeded"
    assert kstatus(status) == ("False", "Running", "True", "False")
    assert (status["progress"], status["currentStep"]) == ("6/6", "")
    assert step_events({}, status)[-1].reason == "StepSucceeded"


def test_sidecar_killed_while_an_always_pod_restarts_its_app_is_a_failure() -> None:
    pod = recorded("never-web-exited-sidecar-stopping")
    pod["spec"]["restartPolicy"] = "Always"
    pod["status"]["initContainerStatuses"][6]["state"] = {
        "terminated": {"exitCode": 137, "reason": "Error"}
    }

    status = derive(pipeline(), [pod])

    assert step(status, "log-shipper")["state"] == "Failed"


def test_crashing_sidecar_is_failed_but_never_stalls_it_is_always_restarted() -> None:
    pod = recorded("ready")
    pod["spec"]["restartPolicy"] = "Never"
    sidecar = pod["status"]["initContainerStatuses"][6]
    sidecar["restartCount"] = 2
    sidecar["ready"] = False
    sidecar["lastState"] = {
        "terminated": {
            "exitCode": 1,
            "reason": "Error",
            "startedAt": "2026-12-06T08:24:10Z",
            "finishedAt": "2026-12-06T08:24:12Z",
        }
    }
    sidecar["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}}

    status = derive(pipeline(restartPolicy="Never"), [pod])

    assert step(status, "log-shipper")["state"] == "Failed"
    assert kstatus(status) == ("False", "StepFailed", "True", "False")


def test_main_container_crash_loop_is_named_while_running() -> None:
    pod = recorded("ready")
    web = pod["status"]["containerStatuses"][0]
    web["ready"] = False
    web["restartCount"] = 4
    web["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error"}}
    web["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}}
    next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] = "False"

    status = derive(pipeline(), [pod])

    assert kstatus(status) == ("False", "Running", "True", "False")
    assert status["message"] == (
        "all 6 steps done; 0/1 pods ready; container web: CrashLoopBackOff "
        "(exit code 1, restarted 4)"
    )
    assert status["pods"][0]["restarts"] == 4


# --------------------------------------------------------------------------- several Pods


def test_least_advanced_pod_is_reported_with_two_replicas() -> None:
    ahead = recorded("ready", pod_name=POD)
    behind = recorded("step-2-running", pod_name=SECOND_POD)

    status = derive(pipeline(replicas=2), [ahead, behind])

    assert (status["replicas"], status["readyReplicas"], status["ready"]) == (2, 1, "1/2")
    assert (status["progress"], status["currentStep"]) == ("1/6", "fetch-config")
    assert step(status, "fetch-config")["state"] == "Running"
    assert [(p["name"], p["currentStep"], p["ready"]) for p in status["pods"]] == [
        (POD, "", True),
        (SECOND_POD, "fetch-config", False),
    ]
    assert kstatus(status) == ("False", "Initializing", "True", "False")


def test_a_failed_pod_ranks_before_a_less_advanced_one() -> None:
    failed = recorded("always-crashloop", pod_name=POD)
    behind = recorded("step-2-running", pod_name=SECOND_POD)

    status = derive(pipeline(replicas=2), [behind, failed])

    assert status["currentStep"] == "migrate"
    assert kstatus(status)[1] == "StepFailed"


def test_missing_replica_keeps_the_pipeline_pending() -> None:
    status = derive(pipeline(replicas=2), [recorded("ready")])

    assert kstatus(status) == ("False", "Pending", "True", "False")
    assert status["message"] == "1/2 pods created; creating the rest"


def test_pods_of_an_older_spec_are_ignored() -> None:
    old = recorded("ready", pod_name="shop-web-0ld00-0", spec_hash="0ld00")

    status = derive(pipeline(), [old])

    assert (status["readyReplicas"], status["pods"]) == (0, [])
    assert states(status) == ["Pending"] * 6
    assert kstatus(status) == ("False", "Pending", "True", "False")
    assert status["message"] == (
        "rolling out 0/1; waiting for the pod to be created (1 old pod still terminating)"
    )

    status = derive(pipeline(), [old, recorded("step-2-running")])

    assert [p["name"] for p in status["pods"]] == [POD]
    assert status["currentStep"] == "fetch-config"


def test_during_a_rollout_the_message_says_how_far_it_is_and_updated_counts_new_pods() -> None:
    old = [recorded("ready", pod_name=f"shop-web-0ld00-{i}", spec_hash="0ld00") for i in (2, 3)]
    new = [recorded("ready", pod_name=POD), recorded("step-2-running", pod_name=SECOND_POD)]

    status = derive(pipeline(replicas=4), [*old, *new])

    assert (status["updatedReplicas"], status["readyReplicas"], status["ready"]) == (2, 1, "1/4")
    assert status["message"].startswith("rolling out 1/4; step 2/6 fetch-config: ")
    assert kstatus(status) == ("False", "Initializing", "True", "False")

    # Every new Pod ready: Ready, also while old Pods are still on their way out.
    done = [recorded("ready", pod_name=f"shop-web-{HASH[:5]}-{i}") for i in range(4)]
    status = derive(pipeline(replicas=4), [*old, *done])
    assert (status["updatedReplicas"], status["message"]) == (4, "4/4 pods ready")

    # The next new Pod waits for room: an old one to go.
    status = derive(pipeline(replicas=4), [*old, *done[:2]])
    assert status["message"] == "rolling out 2/4; 2/4 pods created; 2 old pods left"


def test_pods_being_deleted_are_ignored() -> None:
    pod = recorded("ready")
    pod["metadata"]["deletionTimestamp"] = "2026-12-06T08:25:00Z"

    status = derive(pipeline(), [pod])

    assert (status["readyReplicas"], status["pods"]) == (0, [])


def test_without_a_hash_the_given_pods_are_taken_as_current() -> None:
    old = recorded("ready", spec_hash="0ld00")

    status = derive_status(pipeline(), [old], {}, None, NOW)

    assert status["readyReplicas"] == 1


# --------------------------------------------------------------------------- deadline and retries

DEADLINE_MESSAGE = "start-up not done within 60s of the pod's creation (spec.activeDeadlineSeconds)"
MIGRATE_FAILED = (
    'step 5/6 migrate: exit code 1 (Error): ERROR:  relation "users" does not exist '
    "(SQLSTATE 42P01)"
)


def expired(pod: dict[str, Any], step_name: str) -> dict[str, Any]:
    """The Pod once the operator fired its start-up deadline (on step `step_name`)."""
    pod["metadata"].setdefault("annotations", {})[DEADLINE_ANNOTATION] = step_name
    pod["spec"]["activeDeadlineSeconds"] = 1
    return pod


def attempt(name: str, number: int) -> dict[str, Any]:
    """A recorded Pod as attempt `number` of replica 0 (the retry's name and label)."""
    pod = recorded(name)
    if number > 1:
        pod["metadata"]["name"] += f"-retry{number - 1}"
        pod["metadata"]["labels"][ATTEMPT_LABEL] = str(number)
    pod["metadata"]["uid"] = f"uid-{number}"
    return pod


def test_a_start_up_past_its_deadline_fails_the_pipeline_naming_the_step() -> None:
    pod = expired(recorded("step-2-running"), "fetch-config")

    status = derive(pipeline(activeDeadlineSeconds=60), [pod])

    # Under restartPolicy Always too: the Pod is stopped, nobody retries it.
    assert kstatus(status) == ("False", "DeadlineExceeded", "False", "True")
    assert status["message"] == f"step 2/6 fetch-config: {DEADLINE_MESSAGE}"
    assert (status["progress"], status["currentStep"]) == ("1/6", "fetch-config")
    assert step(status, "fetch-config") == {
        "name": "fetch-config",
        "type": "Download",
        "state": "Failed",
        "startedAt": container(pod, "fetch-config")["state"]["running"]["startedAt"],
        "restartCount": 0,
        "reason": "DeadlineExceeded",
        "message": DEADLINE_MESSAGE,
    }
    assert step_events(derive(pipeline(), [recorded("step-2-running")]), status) == [
        StepEvent(
            "Warning", "DeadlineExceeded", f"Step 2/6 fetch-config stopped: {DEADLINE_MESSAGE}"
        )
    ]


def test_the_deadline_still_names_the_step_once_the_kubelet_stopped_the_pod() -> None:
    pod = expired(recorded("step-2-running"), "fetch-config")
    message = "Pod was active on the node longer than the specified deadline"
    pod["status"].update(phase="Failed", reason="DeadlineExceeded", message=message)
    fetch = pod["status"]["initContainerStatuses"][1]
    fetch["state"] = {"terminated": {
        "exitCode": 137, "reason": "Error", "startedAt": "2026-11-25T10:00:14Z",
        "finishedAt": "2026-11-25T10:01:01Z",
    }}  # fmt: skip

    status = derive(pipeline(activeDeadlineSeconds=60), [pod])

    assert kstatus(status) == ("False", "DeadlineExceeded", "False", "True")
    assert status["message"] == f"step 2/6 fetch-config: {DEADLINE_MESSAGE}"
    entry = step(status, "fetch-config")
    assert (entry["state"], entry["exitCode"], entry["reason"]) == (
        "Failed",
        137,
        "DeadlineExceeded",
    )


def test_a_pod_stopped_before_any_node_had_it_fails_at_its_first_step() -> None:
    pod = expired(recorded("created"), "wait-deps")
    pod["status"].update(phase="Failed", reason="DeadlineExceeded")

    status = derive(pipeline(activeDeadlineSeconds=60), [pod])

    assert status["message"] == f"step 1/6 wait-deps: {DEADLINE_MESSAGE}"
    assert step(status, "wait-deps")["state"] == "Failed"


def test_a_failed_attempt_with_retries_left_says_so_and_is_not_stalled() -> None:
    status = derive(pipeline(restartPolicy="Never", retries=2), [attempt("never-step-failed", 1)])

    assert kstatus(status) == ("False", "StepFailed", "True", "False")
    assert status["message"] == f"{MIGRATE_FAILED}; retrying (attempt 2/3)"
    assert (status["attempt"], status["retriesStatus"]) == ("1/3", [])


def test_without_retries_the_attempt_column_is_empty() -> None:
    status = derive(pipeline(restartPolicy="Never"), [attempt("never-step-failed", 1)])

    assert kstatus(status) == ("False", "StepFailed", "False", "True")
    assert status["message"] == MIGRATE_FAILED
    assert (status["attempt"], status["retriesStatus"]) == ("", [])


FAILED_POD: Final = recorded("never-step-failed")
FIRST_ATTEMPT: Final = {
    "replica": 0,
    "attempt": 1,
    "podName": POD,
    "revision": HASH,
    "createdAt": FAILED_POD["metadata"]["creationTimestamp"],
    "finishedAt": container(FAILED_POD, "migrate")["state"]["terminated"]["finishedAt"],
    "reason": "StepFailed",
    "message": MIGRATE_FAILED,
}


def test_a_replaced_attempt_is_recorded_and_the_new_one_is_current() -> None:
    pipe = pipeline(restartPolicy="Never", retries=2)
    failed = derive(pipe, [attempt("never-step-failed", 1)])
    pods = [attempt("never-step-failed", 1), attempt("step-2-running", 2)]

    status = derive(pipe, pods, previous=failed)

    assert kstatus(status) == ("False", "Initializing", "True", "False")
    assert status["attempt"] == "2/3"
    assert [p["name"] for p in status["pods"]] == [f"{POD}-retry1"]
    assert (status["progress"], status["currentStep"]) == ("1/6", "fetch-config")
    [entry] = status["retriesStatus"]
    assert {k: v for k, v in entry.items() if k != "steps"} == FIRST_ATTEMPT
    assert entry["steps"] == failed["steps"]  # as status.steps showed them
    assert step(entry, "migrate")["exitCode"] == 1
    retrying = [e for e in step_events(failed, status) if e.reason == "Retrying"]
    assert retrying == [
        StepEvent(
            "Warning",
            "Retrying",
            f"pod {POD} (attempt 1) failed and was replaced: {MIGRATE_FAILED}",
        )
    ]
    assert derive(pipe, pods, previous=status, now=LATER) == status  # stable


def test_the_last_attempt_failing_stalls_with_its_own_reason() -> None:
    pipe = pipeline(restartPolicy="Never", retries=2, activeDeadlineSeconds=60)
    last = expired(attempt("step-2-running", 3), "fetch-config")
    pods = [attempt("never-step-failed", 1), attempt("never-step-failed", 2), last]

    status = derive(pipe, pods)

    assert kstatus(status) == ("False", "DeadlineExceeded", "False", "True")
    assert status["message"] == (
        f"step 2/6 fetch-config: {DEADLINE_MESSAGE}; attempt 3/3, no retries left"
    )
    assert status["attempt"] == "3/3"
    assert [(e["attempt"], e["podName"]) for e in status["retriesStatus"]] == [
        (1, POD),
        (2, f"{POD}-retry1"),
    ]


def test_an_attempt_stopped_before_any_container_ran_ended_at_its_deadline() -> None:
    pipe = pipeline(restartPolicy="Never", retries=1, activeDeadlineSeconds=60)
    first = expired(attempt("created", 1), "wait-deps")
    first["status"].update(phase="Failed", reason="DeadlineExceeded")

    [entry] = derive(pipe, [first, attempt("created", 2)])["retriesStatus"]

    created = first["metadata"]["creationTimestamp"]
    deadline = datetime.fromisoformat(created) + timedelta(seconds=60)
    assert (entry["createdAt"], entry["finishedAt"]) == (
        created,
        deadline.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert (entry["reason"], entry["message"]) == (
        "DeadlineExceeded",
        f"step 1/6 wait-deps: {DEADLINE_MESSAGE}",
    )


def test_a_failed_pod_under_never_with_retries_left_is_retried_not_stalled() -> None:
    pod = attempt("ready", 1)
    pod["status"].update(phase="Failed", reason="Evicted", message="The node was low on memory.")

    status = derive(pipeline(restartPolicy="Never", retries=1), [pod])

    assert kstatus(status) == ("False", "PodFailed", "True", "False")
    assert status["message"] == (
        f"pod {POD} failed: Evicted: The node was low on memory.; retrying (attempt 2/2)"
    )


def test_retries_status_outlives_the_pods_of_its_revision_only() -> None:
    pipe = pipeline(restartPolicy="Never", retries=2)
    pods = [attempt("never-step-failed", 1), attempt("step-2-running", 2)]
    before = derive(pipe, pods)

    kept = derive(pipe, pods[1:], previous=before)  # the failed Pod was deleted

    assert kept["retriesStatus"] == before["retriesStatus"]
    new_revision = derive_status(pipe, [], {}, before, NOW, "n3wr3")
    assert new_revision["retriesStatus"] == []


# --------------------------------------------------------------------------- outcomes without Pods


def test_suspended_pipeline() -> None:
    status = derive(pipeline(suspend=True), [])

    assert kstatus(status) == ("False", "Suspended", "False", "False")
    assert (status["pods"], status["currentStep"], status["progress"]) == ([], "", "0/6")
    assert status["message"] == "spec.suspend is true"

    status = derive(pipeline(suspend=True), [recorded("ready")])

    assert kstatus(status) == ("False", "Suspended", "True", "False")
    assert status["message"] == "spec.suspend is true: deleting 1 pod"


def test_scaled_to_zero_is_ready() -> None:
    status = derive(pipeline(replicas=0), [])

    assert kstatus(status) == ("True", "Running", "False", "False")
    assert status["ready"] == "0/0"


def test_invalid_spec_stalls_with_a_message_naming_the_field() -> None:
    message = "spec.steps[2].copyAssets.volume: volume 'html' is a configMap, not writable"
    status = derive(
        pipeline(),
        [recorded("ready")],
        problems=Problems(invalid_spec=message),
    )

    assert kstatus(status) == ("False", "InvalidSpec", "False", "True")
    assert status["message"] == message
    assert condition(status, "Stalled")["message"] == message
    assert status["pods"] == []
    assert states(status) == ["Pending"] * 6


def test_spec_that_does_not_parse_gets_a_status_too() -> None:
    body = example_body()
    body["spec"]["steps"][0]["name"] = "Bad_Name"
    message = "spec.steps[0].name: 'Bad_Name' is not a DNS-1123 label"

    status = unparsed_status(body, None, NOW, Problems(invalid_spec=message))

    assert kstatus(status) == ("False", "InvalidSpec", "False", "True")
    assert (status["observedGeneration"], status["replicas"]) == (4, 1)
    assert (status["steps"], status["pods"], status["progress"]) == ([], [], "0/0")
    assert status["message"] == message
    assert_schema_safe(status)


def test_pod_creation_failure_stalls() -> None:
    error = f'pod {POD}: pods "{POD}" is forbidden: exceeded quota: pods'
    status = derive(pipeline(), [], problems=Problems(creation_error=error))

    assert kstatus(status) == ("False", "PodCreationFailed", "False", "True")
    assert status["message"] == error


def test_pod_creation_failure_still_shows_the_pods_that_exist() -> None:
    error = f'pod {SECOND_POD}: pods "{SECOND_POD}" is forbidden: exceeded quota: pods'
    status = derive(
        pipeline(replicas=2), [recorded("ready")], problems=Problems(creation_error=error)
    )

    assert kstatus(status) == ("False", "PodCreationFailed", "False", "True")
    assert (status["ready"], status["progress"]) == ("1/2", "6/6")
    assert [p["name"] for p in status["pods"]] == [POD]


def test_unsupported_cluster_stalls() -> None:
    message = (
        "Kubernetes 1.34 is not supported: InitPipeline is tested on 1.35 to 1.37 "
        "and needs 1.35 or newer"
    )
    status = derive(pipeline(), [], problems=Problems(unsupported_cluster=message))

    assert kstatus(status) == ("False", "UnsupportedCluster", "False", "True")
    assert status["message"] == message


# --------------------------------------------------------------------------- conditions over time


def test_conditions_have_the_metav1_shape() -> None:
    status = derive(pipeline(), [recorded("step-2-running")])

    assert [c["type"] for c in status["conditions"]] == ["Ready", "Reconciling", "Stalled"]
    assert condition(status, "Ready") == {
        "type": "Ready",
        "status": "False",
        "reason": "Initializing",
        "message": "step 2/6 fetch-config: downloading http://config-server/nginx.conf",
        "observedGeneration": 4,
        "lastTransitionTime": "2026-11-25T10:06:00Z",
    }


def test_last_transition_time_is_kept_until_the_status_flips() -> None:
    first = derive(pipeline(), [recorded("step-2-running")])
    second = derive(pipeline(), [recorded("copyassets-errimagepull")], previous=first, now=LATER)

    # Reason and message changed, status did not: the transition time stays.
    assert condition(second, "Ready")["lastTransitionTime"] == "2026-11-25T10:06:00Z"
    assert condition(second, "Ready")["reason"] == "Initializing"

    third = derive(pipeline(), [recorded("ready")], previous=second, now=LATER)

    assert condition(third, "Ready")["lastTransitionTime"] == "2026-11-25T10:11:00Z"
    assert condition(third, "Reconciling")["lastTransitionTime"] == "2026-11-25T10:11:00Z"
    assert condition(third, "Stalled")["lastTransitionTime"] == "2026-11-25T10:06:00Z"


def test_status_is_stable_and_only_changes_with_its_inputs() -> None:
    pods = [recorded("step-2-running")]
    first = derive(pipeline(), pods)
    again = derive(pipeline(), pods, previous=first, now=LATER)

    assert again == first
    assert not status_changed(first, again)
    assert not status_changed({**first, "kopf": {"progress": {}}}, again)
    assert status_changed(None, again)
    assert status_changed(first, derive(pipeline(), [recorded("ready")], previous=first))


@pytest.mark.parametrize("name", sorted(p.stem for p in PODS.glob("*.json")))
@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_every_recorded_pod_gives_a_schema_safe_status(name: str, policy: str) -> None:
    status = derive(
        pipeline(restartPolicy=policy),
        [recorded(name)],
        api_waiting={"wait-deps": ["service mydb: no ready endpoints"]},
    )

    assert_schema_safe(status)
    assert set(status) == {
        "observedGeneration",
        "replicas",
        "readyReplicas",
        "updatedReplicas",
        "ready",
        "selector",
        "progress",
        "currentStep",
        "attempt",
        "message",
        "pods",
        "steps",
        "conditions",
        "heldTargets",
        "retriesStatus",
    }
    for entry in status["steps"]:
        assert entry["state"] in {"Pending", "Running", "Ready", "Succeeded", "Failed"}
        assert "\n" not in entry.get("message", "")
        assert len(entry.get("message", "")) <= MAX_MESSAGE
        assert all(value not in ("", []) for value in entry.values())
    ready, reconciling, stalled = (c["status"] for c in status["conditions"])
    assert [ready, reconciling, stalled].count("True") <= 1
    assert status["message"] == condition(status, "Ready")["message"]


# --------------------------------------------------------------------------- events


def test_events_for_what_happened_since_the_last_status() -> None:
    pipe = pipeline()
    started = derive(pipe, [recorded("step-2-running")])

    assert step_events(None, started) == [
        StepEvent(
            "Normal",
            "StepSucceeded",
            f"Step 1/6 wait-deps succeeded after 2s: {SHORTENED_WAIT_RESULT}",
        ),
        StepEvent("Normal", "StepStarted", "Step 2/6 fetch-config started"),
    ]
    # The operator restarted, or nothing changed: no repeated events.
    assert step_events(started, derive(pipe, [recorded("step-2-running")])) == []

    crashing = derive(pipe, [recorded("always-crashloop")], previous=started)
    events = step_events(started, crashing)
    assert [(e.type, e.reason, e.message) for e in events] == [
        (
            "Normal",
            "StepSucceeded",
            "Step 2/6 fetch-config succeeded after 6s: downloaded http://config-server/nginx.conf "
            "(103 bytes)",
        ),
        SITE_SUCCEEDED,
        DATA_DIR_SUCCEEDED,
        (
            "Warning",
            "StepFailed",
            'Step 5/6 migrate failed: exit code 1 (Error), restart 3: ERROR:  relation "users" '
            "does not exist (SQLSTATE 42P01)",
        ),
    ]

    again = recorded("always-crashloop")
    again["status"]["initContainerStatuses"][5]["restartCount"] = 4
    assert [e.reason for e in step_events(crashing, derive(pipe, [again]))] == ["StepFailed"]

    ready = derive(pipe, [recorded("ready")], previous=crashing)
    assert [(e.reason, e.message) for e in step_events(crashing, ready)] == [
        ("StepSucceeded", "Step 5/6 migrate succeeded after 0s"),
        ("StepReady", "Sidecar 6/6 log-shipper is ready"),
    ]


def test_sidecar_started_event_and_wait_timeout_warning() -> None:
    sidecar = derive(pipeline(), [recorded("sidecar-started-not-ready")])
    assert [(e.type, e.reason, e.message) for e in step_events(None, sidecar)] == [
        (
            "Normal",
            "StepSucceeded",
            "Step 1/6 wait-deps succeeded after 2s: mydb:5432 reachable after 0s; mysql:3306 "
            "reachable after 0s; http://config-server:888…sts after 0s; command sh -c test -s "
            "/work/ready succeeded after 0s; service mydb port 5432, job db-migrate, Certificate "
            "web-tls (Ready) confirmed by the operator after 1s",
        ),
        (
            "Normal",
            "StepSucceeded",
            "Step 2/6 fetch-config succeeded after 5s: downloaded http://config-server/nginx.conf "
            "(103 bytes)",
        ),
        SITE_SUCCEEDED,
        DATA_DIR_SUCCEEDED,
        ("Normal", "StepSucceeded", "Step 5/6 migrate succeeded after 0s"),
        ("Normal", "StepStarted", "Sidecar 6/6 log-shipper started"),
    ]

    timeout = derive(pipeline(restartPolicy="Never"), [recorded("never-wait-timeout")])
    [event] = step_events(derive(pipeline(), []), timeout)
    assert (event.type, event.reason) == ("Warning", "WaitTimeout")
    assert event.message == (
        "Step 1/6 wait-deps timed out after 300s waiting for tcp mysql:3306, "
        "service mydb port 5432, job db-migrate, Certificate web-tls (Ready)"
    )


def test_pods_replaced_after_a_spec_change_post_no_events() -> None:
    done = derive(pipeline(), [recorded("ready")])
    replaced = derive(pipeline(), [], previous=done)

    assert step_events(done, replaced) == []


# --------------------------------------------------------------------------- messages


def test_messages_are_one_line_and_keep_their_end() -> None:
    assert one_line("first\n\n  last line  \n") == "last line"
    assert one_line(None) == ""
    long = "x" * 300 + " the cause"
    short = one_line(long)
    assert len(short) == MAX_MESSAGE
    # a third of the room for the head, the rest for the tail with the cause
    assert short == "x" * 85 + "…" + "x" * 160 + " the cause"
    assert one_line("rpc error: code = Unknown desc = boom") == "boom"


def test_recorded_pods_are_not_modified() -> None:
    pod = recorded("always-crashloop")
    before = copy.deepcopy(pod)
    derive(pipeline(), [pod])
    assert pod == before


def test_evicted_pod_under_always_is_replaced_not_stalled() -> None:
    pod = recorded("ready")
    pod["status"].update(
        {
            "phase": "Failed",
            "reason": "Evicted",
            "message": "The node was low on resource: memory. Threshold quantity: 100Mi.",
        }
    )
    pod["status"]["containerStatuses"][0]["state"] = {
        "terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}
    }
    next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] = "False"

    status = derive(pipeline(), [pod])

    assert kstatus(status) == ("False", "PodFailed", "True", "False")
    assert status["message"] == (
        f"pod {POD} failed: Evicted: The node was low on resource: memory. "
        "Threshold quantity: 100Mi.; replacing it"
    )


def test_oom_killed_step_keeps_the_kubelets_reason() -> None:
    pod = recorded("never-step-failed")
    terminated = pod["status"]["initContainerStatuses"][5]["state"]["terminated"]
    terminated.update({"exitCode": 137, "reason": "OOMKilled"})
    del terminated["message"]

    status = derive(pipeline(restartPolicy="Never"), [pod])

    assert step(status, "migrate")["reason"] == "OOMKilled"
    assert "message" not in step(status, "migrate")
    assert status["message"] == "step 5/6 migrate: exit code 137 (OOMKilled)"


def test_step_running_again_after_a_failure_shows_the_restart() -> None:
    pod = recorded("always-crashloop")
    migrate = pod["status"]["initContainerStatuses"][5]
    migrate["restartCount"] = 4
    migrate["started"] = True
    migrate["state"] = {"running": {"startedAt": "2026-12-06T08:25:10Z"}}

    status = derive(pipeline(), [pod])

    assert step(status, "migrate") == {
        "name": "migrate",
        "type": "Run",
        "state": "Running",
        "startedAt": "2026-12-06T08:25:10Z",
        "restartCount": 4,
    }
    assert kstatus(status) == ("False", "Initializing", "True", "False")
    assert status["message"] == "step 5/6 migrate: running myapp:migrations (restart 4)"


# --------------------------------------------------------------------------- copyAssets Mount


def mounted_pod(after_state: dict[str, Any]) -> tuple[Pipeline, dict[str, Any]]:
    """A Pod whose copyAssets step mounts its image, its next step in `after_state`."""
    body = example_body()
    body["spec"]["steps"] = [
        {
            "name": "site",
            "copyAssets": {"image": "a:1", "from": "/dist", "volume": "html", "mode": "Mount"},
        },
        {"name": "after", "run": {"image": "x:1"}},
    ]
    pipe = parse_pipeline(body)
    pod = render_pod(pipe, 0, DEFAULT_STEP_IMAGE)
    pod["status"] = {
        "phase": "Pending",
        "initContainerStatuses": [
            {
                "name": "after",
                "ready": False,
                "restartCount": 0,
                "image": "x:1",
                "state": after_state,
            }
        ],
    }
    return pipe, pod


def test_a_mounted_copy_step_is_pending_until_the_pod_starts_its_first_container() -> None:
    pipe, pod = mounted_pod({"waiting": {"reason": "PodInitializing"}})

    status = derive_status(pipe, [pod], {}, None, NOW)

    assert status["steps"][0] == {
        "name": "site",
        "type": "CopyAssets",
        "state": "Pending",
        "mode": "Mount",
    }
    assert status["progress"] == "0/2"


def test_a_mounted_copy_step_succeeded_once_a_container_started() -> None:
    pipe, pod = mounted_pod({"running": {"startedAt": "2026-12-06T11:00:00Z"}})

    status = derive_status(pipe, [pod], {}, None, NOW)

    assert status["steps"][0] == {
        "name": "site",
        "type": "CopyAssets",
        "state": "Succeeded",
        "mode": "Mount",
        "message": "mounted a:1:/dist read-only at volume html",
    }
    assert status["progress"] == "1/2"
    assert status["currentStep"] == "after"


def test_a_copied_copy_step_says_copy() -> None:
    status = derive(pipeline(), [recorded("ready")])

    assert [s.get("mode") for s in status["steps"]] == [None, None, "Copy", None, None, None]
