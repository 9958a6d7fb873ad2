"""The reconcile loop of each InitPipeline: Pods, releases, status and events.

Each InitPipeline seen in Kopf's watch gets one asyncio task. It reconciles, then sleeps until
something relevant happens (the CR, one of its Pods or a dependency changed) or the resync
period passes. (Not a Kopf daemon: daemons need a finalizer on the CR, which would block
`kubectl delete` whenever the operator is down.) Every decision is made by the pure modules;
this one only does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from initpipeline import deps, metrics
from initpipeline.cache import WatchCache
from initpipeline.deps import Watched
from initpipeline.fields import condition_true
from initpipeline.kube import PODS, ApiError, Kube, Obj, Resource
from initpipeline.messages import wait_report
from initpipeline.names import RELEASED_ANNOTATION
from initpipeline.plan import current_pods, plan_pods, release_value
from initpipeline.render import spec_hash
from initpipeline.settings import Settings
from initpipeline.spec import API_VERSION, KIND, PLURAL, InvalidSpec, Pipeline, parse_pipeline
from initpipeline.status import (
    Problems,
    derive_status,
    status_changed,
    step_events,
    unparsed_status,
    wait_logs_to_read,
)

log = logging.getLogger(__name__)

PIPELINES = Resource(API_VERSION, KIND, PLURAL, namespaced=True)
MINIMUM_VERSION = (1, 29)
# A pipeline with nothing in progress is still looked at now and then.
IDLE_RESYNC_SECONDS = 300.0
# Lines of a running wait container's log read to tell users why it waits.
WAIT_LOG_LINES = 20

Key = tuple[str, str]


class Controller:
    def __init__(self, kube: Kube, settings: Settings, unsupported_cluster: str | None) -> None:
        self.kube = kube
        self.settings = settings
        self.unsupported_cluster = unsupported_cluster
        self.cache = WatchCache(kube, self._dependency_changed)
        self._bodies: dict[Key, Mapping[str, Any]] = {}
        self._loops: dict[Key, asyncio.Task[None]] = {}
        self._wakers: dict[Key, asyncio.Event] = {}
        self._depends_on: dict[Key, set[Watched]] = {}

    @classmethod
    async def start(cls, kube: Kube, settings: Settings) -> Controller:
        major, minor = await kube.server_version()
        unsupported = None
        if (major, minor) < MINIMUM_VERSION:
            unsupported = (
                f"Kubernetes {major}.{minor} is too old: InitPipeline needs "
                f"{MINIMUM_VERSION[0]}.{MINIMUM_VERSION[1]} or newer (native sidecars)"
            )
            log.error("%s; pipelines will report Stalled/UnsupportedCluster", unsupported)
        return cls(kube, settings, unsupported)

    async def close(self) -> None:
        for loop in self._loops.values():
            loop.cancel()
        await asyncio.gather(*self._loops.values(), return_exceptions=True)
        await self.cache.close()
        await self.kube.close()

    def wake(self, namespace: str, name: str) -> None:
        waker = self._wakers.get((namespace, name))
        if waker is not None:
            waker.set()

    def _dependency_changed(self, watched: Watched) -> None:
        for key, depends_on in self._depends_on.items():
            if watched in depends_on:
                self.wake(*key)

    def observe(self, body: Mapping[str, Any], pods: Callable[[], Sequence[Obj]]) -> None:
        """Follow this InitPipeline (seen in a watch event): start its loop or wake it."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        self._remember(key, body)
        if key not in self._loops:
            self._wakers[key] = asyncio.Event()
            self._loops[key] = asyncio.create_task(self._follow(key, pods), name=f"follow {key}")
        self.wake(*key)

    def _remember(self, key: Key, body: Mapping[str, Any]) -> None:
        """Keep the newest body seen: our own status patch's answer can be newer than the
        watch event that arrives after it, and reconciling from a stale status would post
        the same step events twice."""
        known = self._bodies.get(key)
        new_version, known_version = _version(body), _version(known or {})
        if new_version is None or known_version is None or new_version >= known_version:
            self._bodies[key] = body

    def forget(self, namespace: str, name: str) -> None:
        """The InitPipeline is gone; its Pods go with it (ownerReferences)."""
        key = (namespace, name)
        loop = self._loops.pop(key, None)
        if loop is not None:
            loop.cancel()
        for table in (self._bodies, self._wakers, self._depends_on):
            table.pop(key, None)
        metrics.forget(namespace, name)

    async def _follow(self, key: Key, pods: Callable[[], Sequence[Obj]]) -> None:
        waker = self._wakers[key]
        while key in self._bodies:
            waker.clear()
            try:
                delay = await self.reconcile(self._bodies[key], pods())
            except ApiError as error:
                log.warning("reconciling %s/%s failed, will retry: %s", *key, error)
                delay = self.settings.resync_seconds
            except Exception:
                log.exception("reconciling %s/%s failed, will retry", *key)
                delay = self.settings.resync_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waker.wait(), timeout=delay)

    async def reconcile(self, body: Mapping[str, Any], pods: Sequence[Obj]) -> float:
        """One pass; returns how long until the next pass if nothing wakes us."""
        previous = body.get("status") or {}
        try:
            pipeline = parse_pipeline(dict(body))
        except InvalidSpec as error:
            problems = Problems(invalid_spec=str(error))
            await self._update_status(
                body, previous, unparsed_status(body, previous, _now(), problems)
            )
            return IDLE_RESYNC_SECONDS
        problems = Problems(unsupported_cluster=self.unsupported_cluster)
        if self.unsupported_cluster is None:
            problems = Problems(creation_error=await self._converge_pods(pipeline, pods))
        key = (pipeline.namespace, pipeline.name)
        self._depends_on[key] = deps.watches_for(pipeline)
        self.cache.ensure(self._depends_on[key])
        waiting = deps.api_waiting(pipeline, self.cache)
        await self._release(pipeline, current_pods(pipeline, pods), waiting)
        revision = spec_hash(pipeline.spec)
        reports = await self._wait_reports(pipeline, wait_logs_to_read(pipeline, pods, revision))
        status = derive_status(
            pipeline, pods, waiting, previous, _now(), revision, reports, problems=problems
        )
        await self._update_status(body, previous, status)
        busy = status.get("currentStep") or not condition_true(status, "Ready")
        return self.settings.resync_seconds if busy else IDLE_RESYNC_SECONDS

    async def _converge_pods(self, pipeline: Pipeline, pods: Sequence[Obj]) -> str | None:
        """Create and delete Pods; the API server's refusal of a Pod, if any."""
        plan = plan_pods(pipeline, pods, self.settings.step_image)
        for pod in plan.delete:
            meta = pod["metadata"]
            await self.kube.delete(PODS.path(meta["namespace"], meta["name"]), uid=meta["uid"])
        for manifest in plan.create:
            try:
                await self.kube.create(PODS.path(pipeline.namespace), manifest)
            except ApiError as error:
                if error.status >= 500:
                    raise
                return f"pod {manifest['metadata']['name']}: {error.message}"
        return None

    async def _release(
        self,
        pipeline: Pipeline,
        pods: Sequence[Mapping[str, Any]],
        waiting: Mapping[str, Sequence[str]],
    ) -> None:
        for pod in pods:
            value = release_value(pipeline, pod, waiting)
            if value is not None:
                path = PODS.path(pipeline.namespace, pod["metadata"]["name"])
                await self.kube.merge_patch(
                    path, {"metadata": {"annotations": {RELEASED_ANNOTATION: value}}}
                )

    async def _wait_reports(
        self, pipeline: Pipeline, containers: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """What these running wait containers last printed about the targets they wait on."""
        reports = {}
        for pod, container in containers:
            text = await self.kube.pod_log(pipeline.namespace, pod, container, WAIT_LOG_LINES)
            report = wait_report(text)
            if report:
                reports[(pod, container)] = report
        return reports

    async def _update_status(
        self, body: Mapping[str, Any], previous: Mapping[str, Any], status: dict[str, Any]
    ) -> None:
        """Write the status when it changed, then record what changed (metrics, events)."""
        if status_changed(previous, status):
            await self._write_status(body, previous, status)
            await self._status_written(body, previous, status)

    async def _write_status(
        self, body: Mapping[str, Any], previous: Mapping[str, Any], status: dict[str, Any]
    ) -> None:
        """Patch the status subresource and remember the body the API server answered."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        # A merge patch keeps keys it does not mention: clear the ones that went away.
        patch = {**{field: None for field in previous if field not in status}, **status}
        path = PIPELINES.path(meta["namespace"], meta["name"], "status")
        patched = await self.kube.merge_patch(path, {"status": patch})
        if patched is not None and key in self._bodies:
            self._remember(key, patched)

    async def _status_written(
        self, body: Mapping[str, Any], previous: Mapping[str, Any], status: Mapping[str, Any]
    ) -> None:
        """The side effects of a new status: metrics and the step events."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        metrics.observe(meta["namespace"], meta["name"], previous, status)
        for event in step_events(previous, status):
            try:
                await self.kube.post_event(dict(body), event.type, event.reason, event.message)
            except ApiError as error:  # e.g. the namespace is terminating: the status is written
                log.warning("event %s on %s/%s not posted: %s", event.reason, *key, error)


def _now() -> datetime:
    return datetime.now(UTC)


def _version(body: Mapping[str, Any]) -> int | None:
    """The resourceVersion as a number (etcd revisions are); None when it is not one."""
    version = str(body.get("metadata", {}).get("resourceVersion", ""))
    return int(version) if version.isdigit() else None
