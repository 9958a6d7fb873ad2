"""What the scenarios share: namespaces, manifests, watches that timestamp arrivals."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.kube import NAMESPACES, PODS, SERVICEACCOUNTS, ApiError, Kube, Obj, Resource
from initpipeline.render import render_pod
from initpipeline.settings import Settings
from initpipeline.spec import API_VERSION, KIND, parse_pipeline

BENCH_LABEL = "initpipeline.io/bench"
PIPELINE_LABEL = "initpipeline.io/pipeline"
SHARD_LABEL = "initpipeline.io/shard"
BUSYBOX = "docker.io/library/busybox:1.36.1-musl"
# No scheduler serves this name: Pods stay Pending, no kubelet writes their status (as in
# tests/integration/test_operator.py), so only the control plane and the operator work.
UNSCHEDULED = "initpipeline-bench-unscheduled"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def create_namespaces(kube: Kube, names: list[str]) -> None:
    """Create the namespaces and wait for their default ServiceAccounts (Pods need them)."""
    for name in names:
        await kube.create(
            NAMESPACES,
            None,
            {"metadata": {"name": name, "labels": {BENCH_LABEL: "true"}}},
        )
    deadline = time.monotonic() + 60
    for name in names:
        while not await kube.get(SERVICEACCOUNTS, name, "default"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no ServiceAccount default in {name} after 60 s")
            await asyncio.sleep(0.2)


async def delete_namespaces(kube: Kube, names: list[str], within: float = 600) -> None:
    """Delete the namespaces and wait until they are gone."""
    for name in names:
        await kube.delete(NAMESPACES, None, name)
    deadline = time.monotonic() + within
    for name in names:
        while await kube.get(NAMESPACES, None, name):
            if time.monotonic() > deadline:
                raise RuntimeError(f"namespace {name} still there after {within:.0f} s")
            await asyncio.sleep(1)


@contextlib.asynccontextmanager
async def namespaces(kube: Kube, *prefixes: str) -> AsyncIterator[list[str]]:
    names = [unique(p) for p in prefixes]
    try:
        await create_namespaces(kube, names)
        yield names
    finally:
        await delete_namespaces(kube, names)


def pipeline(name: str, steps: list[Obj], pod_spec: Obj | None = None, **spec: Any) -> Obj:
    template_spec = pod_spec or {
        "schedulerName": UNSCHEDULED,
        "containers": [{"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"]}],
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "labels": {BENCH_LABEL: "true"}},
        "spec": {"steps": steps, "template": {"spec": template_spec}, **spec},
    }


def run_steps(count: int = 2) -> list[Obj]:
    """`count` plain `run` steps (no API target: no extra informer, no log reads)."""
    return [
        {"name": f"step{i}", "run": {"image": BUSYBOX, "command": ["sleep", "1"]}}
        for i in range(count)
    ]


def rendered_pods(body: Obj, namespace: str) -> list[Obj]:
    """The Pods the operator would create for `body`, as a user would post them by hand:
    the render module's output without the ownerReference (no CR owns them here)."""
    obj = copy.deepcopy(body)
    obj["metadata"] = {**obj["metadata"], "namespace": namespace, "uid": "bench"}
    pods = []
    image = Settings.from_env().step_image
    parsed = parse_pipeline(obj)
    for index in range(parsed.spec.replicas):
        pod = render_pod(parsed, index, image)
        pod["metadata"].pop("ownerReferences", None)
        pods.append(pod)
    return pods


@dataclass
class Watcher:
    """A watch in the background that records, per object name, the arrival time of the
    first event for which `match(object)` holds (and the object)."""

    kube: Kube
    resource: Resource
    namespace: str
    match: Callable[[Obj], bool] = lambda _obj: True
    seen: dict[str, float] = field(default_factory=dict)
    objects: dict[str, Obj] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> Watcher:
        first = await self.kube.request("GET", self.resource, self.namespace, params={"limit": "1"})
        version = first["metadata"]["resourceVersion"]
        for obj in await self.kube.list_all(self.resource, self.namespace):
            self._record(time.monotonic(), obj)
        self._task = asyncio.create_task(self._run(version))
        return self

    def _record(self, now: float, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        self.objects[name] = obj
        if name not in self.seen and self.match(obj):
            self.seen[name] = now
            self._changed.set()

    async def _run(self, version: str) -> None:
        while True:
            try:
                async for now, kind, obj in self.kube.watch(
                    self.resource, self.namespace, version, timeoutSeconds="3600"
                ):
                    if kind == "ERROR":
                        raise ApiError(410, "WATCH", self.namespace, str(obj))
                    version = obj["metadata"]["resourceVersion"]
                    if kind != "DELETED":
                        self._record(now, obj)
            except ApiError:
                # Expired: pick up from a fresh list (objects seen then count at list time).
                version = await self._relist()
            except (aiohttp.ClientError, TimeoutError):
                # The API server went away (a restart on the shared cluster): resume.
                self.kube.outages += 1
                await asyncio.sleep(1)

    async def _relist(self) -> str:
        page = await self.kube.request("GET", self.resource, self.namespace)
        now = time.monotonic()
        for obj in page.get("items") or []:
            self._record(now, obj)
        return str(page["metadata"]["resourceVersion"])

    async def wait_for(self, names: set[str] | int, within: float) -> bool:
        """Until `names` (or that many objects) matched; False after `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            done = len(self.seen) >= names if isinstance(names, int) else names <= set(self.seen)
            if done:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))

    def forget(self, names: set[str]) -> None:
        """Let these names match again (for a second measurement on the same objects)."""
        for name in names:
            self.seen.pop(name, None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def pod_pipeline(pod: Obj) -> str:
    return str((pod["metadata"].get("labels") or {}).get(PIPELINE_LABEL, ""))


POD_RESOURCE = PODS


# ------------------------------------------------------------- Pod statuses, as a kubelet writes


def container_status(name: str, state: Obj, ready: bool = False) -> Obj:
    return {
        "name": name,
        "image": BUSYBOX,
        "imageID": "",
        "ready": ready,
        "restartCount": 0,
        "started": "running" in state,
        "state": state,
        "lastState": {},
    }


def _terminated(at: str = "2026-01-01T00:00:01Z") -> Obj:
    return {
        "terminated": {
            "exitCode": 0,
            "reason": "Completed",
            "startedAt": "2026-01-01T00:00:00Z",
            "finishedAt": at,
        }
    }


RUNNING: Obj = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}


def steps_status(steps: list[str], done: int) -> Obj:
    """A Pending Pod whose first `done` init containers exited 0 and the next one runs."""
    statuses = [
        container_status(
            name, _terminated() if i < done else RUNNING if i == done else {"waiting": {}}
        )
        for i, name in enumerate(steps)
    ]
    return {
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized"},
            ],
            "initContainerStatuses": statuses,
        }
    }


def ready_status(steps: list[str], containers: list[str]) -> Obj:
    """A Running, Ready Pod whose init containers all exited 0."""
    true = [
        {"type": t, "status": "True"}
        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    return {
        "status": {
            "phase": "Running",
            "conditions": true,
            "initContainerStatuses": [container_status(n, _terminated()) for n in steps],
            "containerStatuses": [container_status(n, RUNNING, ready=True) for n in containers],
        }
    }


def init_names(pod: Obj) -> list[str]:
    return [c["name"] for c in pod["spec"].get("initContainers") or []]


def step_state(obj: Obj, index: int) -> str:
    steps = (obj.get("status") or {}).get("steps") or []
    return str(steps[index].get("state", "")) if len(steps) > index else ""


def ready_reason(obj: Obj) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return f"{cond.get('status')}/{cond.get('reason')}"
    return ""
