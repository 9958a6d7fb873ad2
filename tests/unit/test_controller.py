"""The controller: it keeps the newest InitPipeline it has seen, whichever way it arrived,
and one reconcile reads only the logs the status uses, derives once, writes the status
once, then records metrics and events (against a fake API module)."""

from __future__ import annotations

from typing import Any

import pytest

from initpipeline.controller import Controller
from initpipeline.informer import Change, Informer, key_of
from initpipeline.render import render_pod
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

    async def create(self, path: str, manifest: dict[str, Any]) -> None:
        self.created.append(manifest["metadata"]["name"])

    async def delete(self, path: str, uid: str) -> None:
        raise AssertionError("nothing to delete")


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
