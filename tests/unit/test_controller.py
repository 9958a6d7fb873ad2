"""The controller: it keeps the newest InitPipeline it has seen, whichever way it arrived,
and one reconcile reads only the logs the status uses, derives once, writes the status
once, then records metrics and events (against a fake API module)."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest

from initpipeline import metrics
from initpipeline.cache import dependencies_of, known_as
from initpipeline.controller import (
    Controller,
    _pipeline_of,
    is_own_echo,
    resync_after,
)
from initpipeline.deps import SERVICE_NAME_LABEL, Watched
from initpipeline.informer import Change, Informer, key_of, replace_diff
from initpipeline.kube import ApiError, transient
from initpipeline.names import NUDGED_ANNOTATION, RELEASED_ANNOTATION
from initpipeline.plan import NUDGE_AFTER_SECONDS
from initpipeline.render import pod_name, render_pod
from initpipeline.settings import Settings
from initpipeline.spec import parse_pipeline

pytestmark = pytest.mark.unit


def body(version: str, progress: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": "web", "resourceVersion": version},
        "status": {"progress": progress},
    }


def controller(kube: Any = None) -> Controller:
    return Controller(kube=kube, settings=Settings(), unsupported_cluster=None)


def informer(objects: list[dict[str, Any]], index: Any = None) -> Informer:
    """An informer whose store holds `objects`, as after a list."""

    async def nowhere() -> str | None:
        return None

    found = Informer(None, "test", nowhere, lambda change: None, index=index)  # type: ignore[arg-type]
    for obj in objects:
        found.store[key_of(obj)] = obj
        found._emit(Change(key_of(obj), None, obj))
    return found


def test_an_older_watch_event_does_not_replace_our_newer_status_patch() -> None:
    ctl = controller()
    ctl._patched[("shop", "web")] = body("120", "1/2")  # the answer to our status patch
    ctl.pipelines = [informer([body("117", "0/2")])]  # the informer is behind it
    assert (ctl.body(("shop", "web")) or {})["status"]["progress"] == "1/2"
    ctl.pipelines = [informer([body("121", "2/2")])]
    assert (ctl.body(("shop", "web")) or {})["status"]["progress"] == "2/2"


def test_versions_that_are_not_numbers_are_taken_as_they_come() -> None:
    ctl = controller()
    ctl._patched[("shop", "web")] = body("120", "1/2")
    ctl.pipelines = [informer([body("opaque", "0/2")])]
    assert (ctl.body(("shop", "web")) or {})["status"]["progress"] == "0/2"


async def test_the_answer_to_a_status_write_is_kept_only_until_the_informer_has_it() -> None:
    key = ("shop", "web")
    ctl = controller(FakeKube())  # status writes are answered with resourceVersion 200
    behind = {
        **pipeline_body(),
        "metadata": {**pipeline_body()["metadata"], "resourceVersion": "150"},
    }
    ctl.pipelines = [informer([behind])]
    await ctl.reconcile(behind, [])
    written = (ctl.body(key) or {})["status"]
    assert written["progress"] == "0/1"  # the answer, newer than the informer's body

    echo = {**behind, "metadata": {**behind["metadata"], "resourceVersion": "200"}}
    echo["status"] = written
    ctl.pipelines[0].store[key] = echo
    ctl._pipeline_changed(Change(key, behind, echo))
    assert len(ctl.queue) == 0  # our own echo wakes nothing
    assert ctl._patched == {}  # one copy of the pipeline is kept, not two
    assert ctl.body(key) is echo


# --------------------------------------------------------------------------- one reconcile

WAIT_LOG = (
    "waiting: tcp db:5432: Connection refused\nwaiting: job migrate: checked by the operator\n"
)


class FakeKube:
    """The API module as reconcile uses it, recording every call."""

    def __init__(self) -> None:
        self.logs: list[tuple[str, str, str]] = []
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.events: list[tuple[str, str, str]] = []
        self.created: list[str] = []

    async def pod_log(self, namespace: str, pod: str, container: str, lines: int) -> str:
        self.logs.append((namespace, pod, container))
        return WAIT_LOG

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((path, patch))
        return {"metadata": {"resourceVersion": "200"}, "status": patch["status"]}

    async def post_event(self, body: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    async def create(self, path: str, manifest: dict[str, Any]) -> dict[str, Any]:
        self.created.append(manifest["metadata"]["name"])
        return {
            **manifest,
            "metadata": {**manifest["metadata"], "uid": manifest["metadata"]["name"]},
        }

    async def delete(self, path: str, uid: str, dependents: bool = False) -> None:
        raise AssertionError("nothing to delete")

    async def merge_patch_pod(self, path: str, patch: dict[str, Any]) -> None:
        raise AssertionError("no release expected")


def pipeline_body() -> dict[str, Any]:
    return {
        "apiVersion": "initpipeline.io/v1alpha1",
        "kind": "InitPipeline",
        "metadata": {"namespace": "shop", "name": "web", "generation": 1, "uid": "u1"},
        "spec": {
            "replicas": 2,
            "steps": [{"name": "wait-db", "waitFor": [{"tcp": "db:5432"}]}],
            "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        },
    }


def wait_running_pod(name: str, started: str) -> dict[str, Any]:
    pod = render_pod(parse_pipeline(pipeline_body()), int(name[-1]), "busybox")
    pod["metadata"]["uid"] = name
    pod["status"] = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "initContainerStatuses": [
            {"name": "wait-db", "restartCount": 0, "state": {"running": {"startedAt": started}}}
        ],
    }
    return pod


async def test_reconcile_reads_one_log_derives_once_and_writes_then_records() -> None:
    kube = FakeKube()
    ctl = Controller(kube=kube, settings=Settings(), unsupported_cluster=None)  # type: ignore[arg-type]
    pods = [
        wait_running_pod("web-x-0", "2026-11-25T10:00:01Z"),
        wait_running_pod("web-x-1", "2026-11-25T10:00:02Z"),
    ]
    await ctl.reconcile(pipeline_body(), pods)

    names = sorted(pod["metadata"]["name"] for pod in pods)
    assert kube.logs == [("shop", names[0], "wait-db")]  # the representative Pod only
    [(path, patch)] = kube.patches
    assert path.endswith("/namespaces/shop/initpipelines/web/status")
    status = patch["status"]
    assert status["steps"][0]["waitingOn"] == ["tcp db:5432: Connection refused"]
    assert status["message"] == "step 1/1 wait-db: waiting for tcp db:5432: Connection refused"
    assert kube.events == [("Normal", "StepStarted", "Step 1/1 wait-db started")]

    # the same Pods again, from the status just written: nothing to write, nothing to post
    again = {**pipeline_body(), "status": status}
    await ctl.reconcile(again, pods)
    assert len(kube.patches) == 1
    assert len(kube.events) == 1


class CreatingKube(FakeKube):
    """Pod creates answer with the stored Pod, as the API server does."""

    async def create(self, path: str, manifest: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        await super().create(path, manifest)
        metadata = {**manifest["metadata"], "uid": manifest["metadata"]["name"]}
        return {**manifest, "metadata": metadata, "status": {"phase": "Pending"}}


async def test_the_pods_a_reconcile_creates_are_in_the_status_it_writes() -> None:
    kube = CreatingKube()
    ctl = controller(kube)
    await ctl.reconcile(pipeline_body(), [])
    [(_, patch)] = kube.patches
    assert [pod["name"] for pod in patch["status"]["pods"]] == kube.created
    assert patch["status"]["message"] == f"pod {kube.created[0]} is not scheduled yet"

    # their watch events wake the pipeline again: nothing new to write
    pipeline = parse_pipeline(pipeline_body())
    pods = [render_pod(pipeline, i, ctl.settings.step_image) for i in range(2)]
    for pod in pods:
        pod["metadata"]["uid"] = pod["metadata"]["name"]
        pod["status"] = {"phase": "Pending"}
    await ctl.reconcile({**pipeline_body(), "status": patch["status"]}, pods)
    assert len(kube.patches) == 1


def in_step(type_: str, state: str, started: str | None = None, **condition: str) -> Any:
    """A status whose current step `s` is of that type and state (as derive_status writes)."""
    step = {"name": "s", "type": type_, "state": state}
    if started:
        step["startedAt"] = started
    conditions = [{"type": t, "status": v} for t, v in condition.items()]
    return {"currentStep": "s", "steps": [step], "conditions": conditions}


@pytest.mark.parametrize(
    ("status", "after"),
    [
        ({"currentStep": "", "conditions": [{"type": "Ready", "status": "True"}]}, 300),
        (in_step("WaitFor", "Running", "2026-11-25T10:00:00Z", Stalled="True"), 300),
        (in_step("Run", "Running", "2026-11-25T09:00:00Z"), 10),
        (in_step("WaitFor", "Pending"), 10),  # not started: no age yet
        (in_step("WaitFor", "Running", "2026-11-25T09:59:40Z"), 10),  # 20 s: the period
        (in_step("WaitFor", "Running", "2026-11-25T09:58:00Z"), 30),  # 2 min: a quarter
        (in_step("WaitFor", "Running", "2026-11-25T09:00:00Z"), 120),  # 1 h: the cap
    ],
    ids=["ready", "stalled", "run", "wait-pending", "wait-20s", "wait-2min", "wait-1h"],
)
def test_a_long_wait_is_looked_at_less_often_a_settled_pipeline_rarely(
    status: dict[str, Any], after: float
) -> None:
    now = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
    assert resync_after(status, now, 10.0) == after


# --------------------------------------------------------------------------- failures


class RefusingKube(FakeKube):
    """Pod creates fail with `error`."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def create(self, path: str, manifest: dict[str, Any]) -> None:
        raise self.error


def ready_reason(patch: dict[str, Any]) -> tuple[str, str]:
    conditions = {c["type"]: c for c in patch["status"]["conditions"]}
    return conditions["Ready"]["reason"], conditions["Stalled"]["status"]


@pytest.mark.parametrize(
    "error",
    [
        ApiError(429, "TooManyRequests", "slow down", retry_after=3),
        ApiError(500, "InternalError", "etcd leader changed"),
        ApiError(503, "ServiceUnavailable", "apiserver shutting down"),
        ApiError(504, "Timeout", "the request timed out"),
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("read timed out"),
        httpx.PoolTimeout("no connection free"),
    ],
    ids=str,
)
async def test_a_transient_pod_create_failure_is_retried_not_stalled(error: Exception) -> None:
    kube = RefusingKube(error)
    ctl = controller(kube)
    with pytest.raises(type(error)):
        await ctl.reconcile(pipeline_body(), [])
    assert transient(error)
    assert kube.patches == []  # no PodCreationFailed, no Stalled


@pytest.mark.parametrize("status", [400, 403, 404, 422])
async def test_a_refused_pod_stalls_with_pod_creation_failed(status: int) -> None:
    error = ApiError(status, "Invalid", "spec.containers[0].image: Required value")
    kube = RefusingKube(error)
    ctl = controller(kube)
    await ctl.reconcile(pipeline_body(), [])
    assert not transient(error)
    [(_, patch)] = kube.patches
    assert ready_reason(patch) == ("PodCreationFailed", "True")
    # the Pod's name, then the API server's message
    message = (
        f"{pod_name(parse_pipeline(pipeline_body()), 0)}: spec.containers[0].image: Required value"
    )
    assert patch["status"]["message"] == f"pod {message}"


async def test_a_throttled_key_comes_back_no_sooner_than_retry_after() -> None:
    ctl = controller()
    error = ApiError(429, "TooManyRequests", "slow down", retry_after=7)
    assert ctl.queue.add_rate_limited(("shop", "web"), at_least=error.retry_after or 0) >= 7


# --------------------------------------------------------------------------- the gauge


def gauge(state: str) -> float:
    return metrics.REGISTRY.get_sample_value("initpipeline_pipelines", {"state": state}) or 0.0


async def test_the_gauge_counts_a_pipeline_from_its_first_reconcile_even_unchanged() -> None:
    kube = FakeKube()
    pipeline = parse_pipeline(pipeline_body())
    pods = [render_pod(pipeline, i, Settings().step_image) for i in range(2)]
    for pod in pods:
        pod["metadata"]["uid"] = pod["metadata"]["name"]
        pod["status"] = {"phase": "Pending"}
    await controller(kube).reconcile(pipeline_body(), pods)
    [(_, patch)] = kube.patches
    metrics.forget("shop", "web")  # a new process: the gauge starts empty
    before = gauge("Pending")

    restarted = controller(kube)  # the status already says it all
    await restarted.reconcile({**pipeline_body(), "status": patch["status"]}, pods)
    assert len(kube.patches) == 1  # nothing changed, nothing written
    assert gauge("Pending") == before + 1
    metrics.forget("shop", "web")


# --------------------------------------------------------------------------- watch gaps


async def test_a_pod_gone_from_the_relisted_cache_is_created_again() -> None:
    kube = FakeKube()
    ctl = controller(kube)
    pipeline = {**pipeline_body(), "spec": {**pipeline_body()["spec"], "replicas": 1}}
    pod = render_pod(parse_pipeline(pipeline), 0, ctl.settings.step_image)
    pod["metadata"]["uid"] = "p0"
    ctl.pipelines = [informer([pipeline])]
    pods = informer([pod], index=_pipeline_of)
    ctl.pods = [pods]
    await ctl.reconcile_key(("shop", "web"))
    assert kube.created == []  # the Pod is there
    for change in replace_diff(pods.store, {}):  # relisted: the Pod was deleted in the gap
        pods._emit(change)
    pods.store = {}
    await ctl.reconcile_key(("shop", "web"))
    assert kube.created == [pod["metadata"]["name"]]


async def test_a_pipeline_gone_from_the_relisted_cache_is_forgotten() -> None:
    kube = FakeKube()
    ctl = controller(kube)
    ctl.pipelines = [informer([pipeline_body()])]
    await ctl.reconcile_key(("shop", "web"))
    assert ("shop", "web") in ctl.known()
    before = gauge("Pending")
    ctl.pipelines = [informer([])]
    assert await ctl.reconcile_key(("shop", "web")) is None  # no resync of a gone pipeline
    assert ("shop", "web") not in ctl.known()
    assert gauge("Pending") == before - 1


# --------------------------------------------------------------------------- wake-ups


def test_our_own_status_echo_does_not_wake_the_pipeline_but_a_spec_change_does() -> None:
    ctl = controller()
    old = {**pipeline_body(), "status": {"progress": "0/1"}}
    ctl._patched[("shop", "web")] = {**old, "status": {"progress": "1/1"}}
    echo = {**old, "status": {"progress": "1/1"}}
    ctl._pipeline_changed(Change(("shop", "web"), old, echo))
    assert len(ctl.queue) == 0
    someone_else = {**old, "status": {"progress": "0/7"}}
    ctl._pipeline_changed(Change(("shop", "web"), old, someone_else))
    assert len(ctl.queue) == 1
    newer = {**echo, "metadata": {**echo["metadata"], "generation": 2}}
    assert not is_own_echo(echo, newer, echo["status"])


def waiting_on_service(name: str, service: str) -> Any:
    return parse_pipeline(
        {
            **pipeline_body(),
            "metadata": {**pipeline_body()["metadata"], "name": name},
            "spec": {
                **pipeline_body()["spec"],
                "steps": [{"name": "wait", "waitFor": [{"service": service}]}],
            },
        }
    )


def test_a_dependency_change_wakes_only_the_pipelines_that_depend_on_it() -> None:
    ctl = controller()
    for name, service in (("web", "db"), ("api", "db"), ("batch", "cache")):
        ctl._depend(("shop", name), dependencies_of(waiting_on_service(name, service)))
    slice_ = {
        "metadata": {"namespace": "shop", "name": "db-x1", "labels": {SERVICE_NAME_LABEL: "db"}}
    }
    watched = Watched("discovery.k8s.io/v1", "EndpointSlice", "shop")
    ctl._dependency_changed((watched, known_as(watched, slice_)))
    assert sorted(ctl.queue._queue) == [("shop", "api"), ("shop", "web")]


async def run_worker_once(ctl: Controller) -> None:
    """One worker, until it has reconciled one key."""
    finished = asyncio.Event()
    done = ctl.queue.done

    def done_and_tell(key: Any) -> None:
        done(key)
        finished.set()

    ctl.queue.done = done_and_tell  # type: ignore[method-assign]
    worker = asyncio.create_task(ctl._work())
    await asyncio.wait_for(finished.wait(), 5)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)


@pytest.mark.parametrize(
    ("error", "at_least"),
    [
        (ApiError(422, "Invalid", "spec.containers: Required value"), 0.5),
        (ApiError(429, "TooManyRequests", "slow down", retry_after=7), 7),
    ],
    ids=["refused", "throttled"],
)
async def test_a_failing_key_is_requeued_with_backoff_not_at_the_resync_period(
    error: ApiError, at_least: float
) -> None:
    ctl = controller(RefusingKube(error))
    ctl.pipelines = [informer([pipeline_body()])]
    ctl.queue.add(("shop", "web"))
    before = asyncio.get_running_loop().time()
    await run_worker_once(ctl)
    assert ctl.queue.failures(("shop", "web")) == 1
    due = ctl.queue._due[("shop", "web")] - before
    assert at_least <= due < at_least * 1.5  # the backoff (or Retry-After), not a resync


# --------------------------------------------------------------------------- start-up deadline


class DeadlineKube(FakeKube):
    """Answers Pod patches as the API server does (the patched Pod, a new resourceVersion),
    or with `refusal`."""

    def __init__(self, refusal: ApiError | None = None) -> None:
        super().__init__()
        self.refusal = refusal

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        if "/pods/" not in path:
            return await super().merge_patch(path, patch)
        self.patches.append((path, patch))
        if self.refusal is not None:
            raise self.refusal
        return {"metadata": {"name": path.split("/")[6], "resourceVersion": "201"}}


def deadline_body(seconds: int) -> dict[str, Any]:
    body = pipeline_body()
    body["spec"].update(replicas=1, activeDeadlineSeconds=seconds)
    return body


def created_pod(body: dict[str, Any], age: float) -> dict[str, Any]:
    """The pipeline's Pod, unscheduled, created `age` seconds ago."""
    pod = render_pod(parse_pipeline(body), 0, Settings().step_image)
    created = datetime.now(UTC) - timedelta(seconds=age)
    pod["metadata"].update(
        uid="p0", resourceVersion="150", creationTimestamp=created.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    pod["status"] = {"phase": "Pending"}
    return pod


async def test_a_pipeline_is_woken_when_its_next_start_up_deadline_falls() -> None:
    ctl = controller(DeadlineKube())
    body = deadline_body(60)
    before = asyncio.get_running_loop().time()

    await ctl.reconcile(body, [created_pod(body, age=20)])

    due = ctl.queue._due[("shop", "web")] - before
    assert 38 <= due <= 41  # 60 s after the Pod's creation (whole seconds), not the resync


async def test_an_unscheduled_pod_past_its_deadline_is_annotated_then_marked_failed() -> None:
    kube = DeadlineKube()
    body = deadline_body(60)
    pod = created_pod(body, age=61)
    name = pod["metadata"]["name"]

    await controller(kube).reconcile(body, [pod])

    pod_patches = [(path, patch) for path, patch in kube.patches if "/pods/" in path]
    assert pod_patches == [
        (
            f"/api/v1/namespaces/shop/pods/{name}",
            {
                "metadata": {
                    "resourceVersion": "150",
                    "annotations": {"initpipeline.io/deadline-exceeded": "wait-db"},
                },
                "spec": {"activeDeadlineSeconds": 1},
            },
        ),
        (
            f"/api/v1/namespaces/shop/pods/{name}/status",
            {
                "metadata": {"resourceVersion": "201"},  # the version the first patch made
                "status": {
                    "phase": "Failed",
                    "reason": "DeadlineExceeded",
                    "message": "start-up not done within 60s of the pod's creation "
                    "(spec.activeDeadlineSeconds); no node had started it",
                },
            },
        ),
    ]


async def test_a_pod_that_changed_since_it_was_read_is_left_to_the_next_pass() -> None:
    kube = DeadlineKube(refusal=ApiError(409, "Conflict", "the object has been modified"))
    body = deadline_body(60)

    await controller(kube).reconcile(body, [created_pod(body, age=61)])  # no error

    assert len([path for path, _ in kube.patches if "/pods/" in path]) == 1


# --------------------------------------------------------------------------- release and nudge


class AnnotatingKube(FakeKube):
    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((path, patch))
        return {"metadata": {"resourceVersion": "200", **patch.get("metadata", {})}}


async def test_a_release_is_looked_at_again_and_a_step_still_running_is_nudged_once() -> None:
    kube = AnnotatingKube()
    ctl = Controller(kube=kube, settings=Settings(), unsupported_cluster=None)  # type: ignore[arg-type]
    pipe = parse_pipeline(pipeline_body())
    pod = wait_running_pod("web-x-0", "2026-11-25T10:00:01Z")
    loop = asyncio.get_running_loop()

    before = loop.time()
    await ctl._release(pipe, [pod], {"wait-db": []})
    path = f"/api/v1/namespaces/shop/pods/{pod['metadata']['name']}"
    assert kube.patches == [(path, {"metadata": {"annotations": {RELEASED_ANNOTATION: "wait-db"}}})]
    due = ctl.queue._due[("shop", "web")] - before
    assert NUDGE_AFTER_SECONDS <= due <= NUDGE_AFTER_SECONDS + 1  # looked at once it may nudge

    # The release is on the Pod and its step still runs: not nudged at once ...
    pod["metadata"].setdefault("annotations", {})[RELEASED_ANNOTATION] = "wait-db"
    await ctl._release(pipe, [pod], {"wait-db": []})
    assert len(kube.patches) == 1
    # ... but by an operator that does not know when it was released (it restarted), once.
    restarted = Controller(kube=kube, settings=Settings(), unsupported_cluster=None)  # type: ignore[arg-type]
    await restarted._release(pipe, [pod], {"wait-db": []})
    assert kube.patches[1:] == [
        (path, {"metadata": {"annotations": {NUDGED_ANNOTATION: "wait-db"}}})
    ]
    pod["metadata"]["annotations"][NUDGED_ANNOTATION] = "wait-db"
    await restarted._release(pipe, [pod], {"wait-db": []})
    assert len(kube.patches) == 2


# --------------------------------------------------------------------------- rollouts


class RollingKube(FakeKube):
    """Creates answer with the Pod (resourceVersion 300 on); deletes are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted: list[str] = []

    async def create(self, path: str, manifest: dict[str, Any]) -> dict[str, Any]:
        self.created.append(manifest["metadata"]["name"])
        made = {"uid": f"new-{len(self.created)}", "resourceVersion": str(300 + len(self.created))}
        return {**manifest, "metadata": {**manifest["metadata"], **made}}

    async def delete(self, path: str, uid: str, dependents: bool = False) -> bool:
        self.deleted.append(uid)
        return True


async def test_a_rollout_does_not_act_twice_on_a_cache_that_lags_behind_its_writes() -> None:
    kube = RollingKube()
    ctl = controller(kube)
    old_body = {**pipeline_body(), "spec": {**pipeline_body()["spec"], "replicas": 4}}
    old = []
    for index in range(4):
        pod = render_pod(parse_pipeline(old_body), index, ctl.settings.step_image)
        pod["metadata"].update(uid=f"old-{index}", resourceVersion="100")
        pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        old.append(pod)
    new_body = copy.deepcopy(old_body)
    new_body["spec"]["template"]["spec"]["containers"][0]["image"] = "app:2"
    ctl.pipelines = [informer([new_body])]
    pods = informer(old, index=_pipeline_of)
    pods.version = "100"
    ctl.pods = [pods]

    await ctl.reconcile_key(("shop", "web"))  # 25% of 4: one new Pod, one old one gone
    assert (len(kube.created), kube.deleted) == (1, ["old-0"])
    # The Pod informer has seen neither write yet: nothing more may go, nothing more come.
    await ctl.reconcile_key(("shop", "web"))
    await ctl.reconcile_key(("shop", "web"))
    assert (len(kube.created), kube.deleted) == (1, ["old-0"])
    # It has caught up with the deletion (the new Pod was created and deleted meanwhile):
    # the next new Pod comes.
    for change in replace_diff(pods.store, {key_of(p): p for p in old[1:]}):
        pods._emit(change)
    pods.store = {key_of(p): p for p in old[1:]}
    pods.version = "400"
    await ctl.reconcile_key(("shop", "web"))
    assert (len(kube.created), kube.deleted) == (3, ["old-0"])
    metrics.forget("shop", "web")


# --------------------------------------------------------------------------- shards


def sharded_body(shard: str) -> dict[str, Any]:
    body = pipeline_body()
    body["metadata"]["labels"] = {"initpipeline.io/shard": shard}
    return body


def test_a_shards_operator_follows_its_pipelines_and_their_pods_only() -> None:
    settings = Settings(shard_selector="initpipeline.io/shard=s1")
    ctl = Controller(kube=None, settings=settings, unsupported_cluster=None)  # type: ignore[arg-type]
    asyncio.run(_started_and_closed(ctl))
    assert [i._selector for i in ctl.pipelines] == ["initpipeline.io/shard=s1"]
    assert [i._selector for i in ctl.pods] == ["initpipeline.io/pipeline,initpipeline.io/shard=s1"]
    # once steps' Jobs and their Pods: every shard's (a Job keeps the shard it was made for)
    assert [i._selector for i in (*ctl.jobs, *ctl.job_pods)] == ["initpipeline.io/once-of"] * 2
    # the Pods carry their pipeline's shard, so that selector finds them
    pod = render_pod(parse_pipeline(sharded_body("s1")), 0, "busybox")
    assert pod["metadata"]["labels"]["initpipeline.io/shard"] == "s1"
    assert (
        "initpipeline.io/shard"
        not in render_pod(parse_pipeline(pipeline_body()), 0, "busybox")["metadata"]["labels"]
    )


async def _started_and_closed(ctl: Controller) -> None:
    """Build the informers as `run` does, without waiting for lists nobody answers."""
    run = asyncio.create_task(ctl.run())
    await asyncio.sleep(0)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    for informer_ in (*ctl.pipelines, *ctl.pods, *ctl.jobs, *ctl.job_pods):
        await informer_.stop()


class ShardKube(FakeKube):
    """Creating a Pod is refused as existing; the existing Pod is `existing`."""

    def __init__(self, existing: dict[str, Any]) -> None:
        super().__init__()
        self.existing = existing

    async def create(self, path: str, manifest: dict[str, Any]) -> None:  # type: ignore[override]
        self.created.append(manifest["metadata"]["name"])
        return None

    async def get(self, path: str) -> dict[str, Any] | None:
        return self.existing if path.endswith("/" + self.existing["metadata"]["name"]) else None

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((path, patch))
        if "status" in patch:
            return {"metadata": {"resourceVersion": "200"}, "status": patch["status"]}
        labels = {**self.existing["metadata"]["labels"], **patch["metadata"]["labels"]}
        labels = {k: v for k, v in labels.items() if v is not None}
        return {**self.existing, "metadata": {**self.existing["metadata"], "labels": labels}}


async def test_a_pipeline_moved_to_this_shard_takes_its_pods_over_instead_of_losing_them() -> None:
    moved = sharded_body("s2")
    before = render_pod(parse_pipeline(sharded_body("s1")), 0, "busybox")  # made by shard s1
    before["metadata"]["uid"] = "pod-0"
    kube = ShardKube(before)
    settings = Settings(shard_selector="initpipeline.io/shard=s2")
    ctl = Controller(kube=kube, settings=settings, unsupported_cluster=None)  # type: ignore[arg-type]
    moved["spec"]["replicas"] = 1
    await ctl.reconcile(moved, [])  # shard s2 does not see the Pod labelled s1
    pod_path = "/api/v1/namespaces/shop/pods/" + before["metadata"]["name"]
    assert kube.patches[0] == (pod_path, {"metadata": {"labels": {"initpipeline.io/shard": "s2"}}})
    status = kube.patches[-1][1]["status"]
    # counted in this pass's status, not created twice
    assert [pod["name"] for pod in status["pods"]] == [before["metadata"]["name"]]


async def test_a_pod_of_that_name_owned_by_someone_else_is_left_alone() -> None:
    stranger = render_pod(parse_pipeline(sharded_body("s1")), 0, "busybox")
    stranger["metadata"]["ownerReferences"][0]["uid"] = "another-pipeline"
    kube = ShardKube(stranger)
    ctl = Controller(kube=kube, settings=Settings(), unsupported_cluster=None)  # type: ignore[arg-type]
    body = pipeline_body()
    body["spec"]["replicas"] = 1
    await ctl.reconcile(body, [])
    assert [path for path, patch in kube.patches if "status" not in patch] == []
    assert kube.patches[-1][1]["status"].get("pods", []) == []
