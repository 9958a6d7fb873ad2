"""The controller: informers feed a work queue of pipeline keys; workers reconcile them.

Shaped like controller-runtime's: InitPipelines and their Pods are followed by the project's
own informers (`informer.py`, replaced on every relist, so nothing deleted during a watch gap
is remembered); every change becomes a key (namespace, name) in one `WorkQueue`, which merges
repeated keys; `settings.workers` workers reconcile one key at a time each. A reconcile reads
the caches, parses the spec, plans (pure), writes Pods and releases, derives the status
(pure), writes it once if it changed, then posts the events. A transient API failure is
retried with backoff (at least the Retry-After the API server asked for); only a refusal of
a Pod stalls the pipeline. The operator's own status write does not wake the pipeline again.
Every decision is made by the pure modules; this one only does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from initpipeline import deps, metrics, support
from initpipeline.access import AccessReviews
from initpipeline.cache import Dependency, DependencyCache, dependencies_of
from initpipeline.fields import condition_true, seconds_between, timestamp
from initpipeline.informer import Change, Informer
from initpipeline.kube import JOBS, PODS, ApiError, Kube, Obj, Resource, transient
from initpipeline.messages import wait_report
from initpipeline.names import NUDGED_ANNOTATION, ONCE_LABEL, PIPELINE_LABEL, RELEASED_ANNOTATION
from initpipeline.plan import (
    NUDGE_AFTER_SECONDS,
    OwnWrites,
    current_pods,
    deadlines,
    nudge_value,
    owns,
    plan_jobs,
    plan_pods,
    release_value,
    shard_handover,
    with_own_writes,
)
from initpipeline.render import spec_hash
from initpipeline.settings import Settings
from initpipeline.spec import (
    API_VERSION,
    KIND,
    PLURAL,
    InvalidSpec,
    Pipeline,
    StepType,
    parse_pipeline,
)
from initpipeline.status import (
    Problems,
    StepState,
    derive_status,
    status_changed,
    step_events,
    unparsed_status,
    wait_logs_to_read,
)
from initpipeline.status.once import once_views
from initpipeline.workqueue import WorkQueue, jittered

log = logging.getLogger(__name__)

PIPELINES = Resource(API_VERSION, KIND, PLURAL, namespaced=True)
# A pipeline with nothing in progress (Ready, or Stalled on a user's action) is still looked
# at now and then.
IDLE_RESYNC_SECONDS = 300.0
# Lines of a running wait container's log read to tell users why it waits.
WAIT_LOG_LINES = 20
# A wait step that has waited t seconds is looked at again after t/4 (at least the resync
# period, at most this): its container's log is read on those passes, and a reason that has
# not changed for minutes is unlikely to change in the next one. The step's end is a Pod
# status change and wakes the pipeline at once, however long it waited.
MAX_WAIT_RESYNC_SECONDS = 120.0

Key = tuple[str, str]


def is_own_echo(old: Obj | None, new: Obj | None, written: Mapping[str, Any] | None) -> bool:
    """A pipeline's watch event that only echoes our own status write: same generation and
    metadata as before, and the status is the one we wrote (GenerationChangedPredicate, but a
    status someone else wrote still wakes the pipeline)."""
    if old is None or new is None or written is None:
        return False
    before, after = old.get("metadata") or {}, new.get("metadata") or {}
    same_meta = all(
        before.get(field) == after.get(field)
        for field in ("generation", "labels", "annotations", "deletionTimestamp")
    )
    return same_meta and new.get("status") == written


def pod_selector(shard_selector: str) -> str:
    """The Pods to follow: the pipelines' (PIPELINE_LABEL), of this shard's pipelines only
    (their SHARD_LABEL is copied onto their Pods)."""
    return f"{PIPELINE_LABEL},{shard_selector}" if shard_selector else PIPELINE_LABEL


def resync_after(status: Mapping[str, Any], now: datetime, resync_seconds: float) -> float:
    """How long until a pipeline with this status is looked at again if nothing wakes it:
    IDLE_RESYNC_SECONDS when settled (Stalled, or Ready with no step in progress); while its
    current step is a running wait step, a quarter of the time it has waited, between
    `resync_seconds` and MAX_WAIT_RESYNC_SECONDS; else `resync_seconds`."""
    current = status.get("currentStep")
    if condition_true(status, "Stalled") or (condition_true(status, "Ready") and not current):
        return IDLE_RESYNC_SECONDS
    step: Mapping[str, Any] = next(
        (s for s in status.get("steps") or () if s.get("name") == current), {}
    )
    if step.get("type") != StepType.WAIT_FOR or step.get("state") != StepState.RUNNING:
        return resync_seconds
    waited = seconds_between(step.get("startedAt"), timestamp(now))
    if waited is None:
        return resync_seconds
    return max(resync_seconds, min(MAX_WAIT_RESYNC_SECONDS, waited / 4))


def _newer(a: Obj | None, b: Obj | None) -> Obj | None:
    """Of two bodies of one object, the one with the higher resourceVersion (etcd revisions
    are numbers); `a` when they cannot be compared."""
    if a is None or b is None:
        return a or b
    va, vb = _version(a), _version(b)
    return b if va is not None and vb is not None and vb > va else a


async def _node_runtimes(kube: Kube) -> list[str]:
    """Every node's containerRuntimeVersion; none when the operator may not list nodes.
    Not asked when it watches some namespaces only: such an install has no cluster-wide
    rights, and Auto copies there."""
    try:
        nodes, _ = await kube.list("/api/v1/nodes")
    except ApiError as error:
        if error.status != 403:
            raise
        log.info("cannot list nodes (%s): copyAssets in Auto mode copies", error)
        return []
    return [
        str(((node.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion", ""))
        for node in nodes
    ]


class Controller:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        unsupported_cluster: str | None,
        *,
        image_volumes: bool = False,
    ) -> None:
        # The informers and workers start in `run`, once this process may reconcile.
        self.kube = kube
        self.settings = settings
        self.unsupported_cluster = unsupported_cluster
        # copyAssets steps in Auto mode mount their image (support.image_volumes).
        self.image_volumes = image_volumes
        self.cache = DependencyCache(kube, not settings.namespaces, self._dependency_changed)
        self.access = AccessReviews(kube, self._dependency_changed, namespaces=settings.namespaces)
        self.pipelines: list[Informer] = []
        self.pods: list[Informer] = []
        # The Jobs of `once` steps and their Pods (ONCE_LABEL).
        self.jobs: list[Informer] = []
        self.job_pods: list[Informer] = []
        self.queue: WorkQueue[Key] = WorkQueue()
        self._workers: list[asyncio.Task[None]] = []
        # The API server's answers to our status writes, until the informer holds them.
        self._patched: dict[Key, Obj] = {}
        # When the operator wrote each Pod's release, by pipeline and Pod uid.
        self._released_at: dict[Key, dict[str, float]] = {}
        self._depends_on: dict[Key, set[Dependency]] = {}
        self._dependents: dict[Dependency, set[Key]] = {}
        self._known: set[Key] = set()
        # Pipelines whose last Pod create was refused: looked at again with backoff (a refusal
        # can pass too, e.g. a new namespace's ServiceAccount that did not exist yet).
        self._refused: set[Key] = set()
        # Pods created and deleted that the Pod informers may not show yet, by pipeline.
        self._own_writes: dict[Key, OwnWrites] = {}

    @classmethod
    async def start(cls, kube: Kube, settings: Settings) -> Controller:
        version = await kube.server_version()
        unsupported = support.unsupported_server(version)
        if unsupported is not None:
            log.error("%s; pipelines will report Stalled/UnsupportedCluster", unsupported)
        untested = support.untested_server(version)
        if untested is not None:
            log.warning("%s", untested)
        runtimes = [] if settings.namespaces else await _node_runtimes(kube)
        image_volumes, why = support.image_volumes(version, runtimes)
        log.info("copyAssets in Auto mode %s: %s", "mounts" if image_volumes else "copies", why)
        controller = cls(kube, settings, unsupported, image_volumes=image_volumes)
        await controller.run()
        return controller

    async def run(self) -> None:
        """Start the informers, wait until each has listed once, then start the workers."""
        scopes: Sequence[str | None] = self.settings.namespaces or [None]
        for namespace in scopes:
            where = namespace or "every namespace"
            self.pipelines.append(
                Informer(
                    self.kube,
                    f"InitPipelines in {where}",
                    self._path(PIPELINES, namespace),
                    self._pipeline_changed,
                    label_selector=self.settings.shard_selector,
                )
            )
            self.pods.append(
                Informer(
                    self.kube,
                    f"Pods in {where}",
                    self._path(PODS, namespace),
                    self._pod_changed,
                    label_selector=pod_selector(self.settings.shard_selector),
                    index=_pipeline_of,
                )
            )
            for informers, resource, what in (
                (self.jobs, JOBS, "Jobs"),
                (self.job_pods, PODS, "Pods of Jobs"),
            ):
                informers.append(
                    Informer(
                        self.kube,
                        f"{what} of once steps in {where}",
                        self._path(resource, namespace),
                        self._pod_changed,
                        # Every shard's: a Job keeps the shard it was made for (its Pod's
                        # labels cannot change), and the pipeline index picks ours.
                        label_selector=ONCE_LABEL,
                        index=_pipeline_of,
                    )
                )
        every = (*self.pipelines, *self.pods, *self.jobs, *self.job_pods)
        for informer in every:
            informer.start()
        await asyncio.gather(*(i.synced.wait() for i in every))
        log.info(
            "Following %d InitPipelines and %d of their Pods; %d workers",
            sum(len(i.store) for i in self.pipelines),
            sum(len(i.store) for i in self.pods),
            self.settings.workers,
        )
        self._workers = [
            asyncio.create_task(self._work(), name=f"worker {n}")
            for n in range(self.settings.workers)
        ]

    @staticmethod
    def _path(resource: Resource, namespace: str | None) -> Callable[[], Awaitable[str | None]]:
        async def locate() -> str | None:
            return resource.path(namespace)

        return locate

    async def close(self) -> None:
        self.queue.close()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for informer in (*self.pipelines, *self.pods, *self.jobs, *self.job_pods):
            await informer.stop()
        await self.cache.close()
        await self.access.close()
        await self.kube.close()

    # ------------------------------------------------------------------ events -> keys

    def _pipeline_changed(self, change: Change) -> None:
        echo = is_own_echo(change.old, change.new, self._written_status(change.key))
        self._drop_caught_up(change.key)
        if not echo:
            self.queue.add(change.key)

    def _drop_caught_up(self, key: Key) -> None:
        """Forget the answer to our status write once the informer holds it or a newer body
        (one copy of each pipeline is kept, not two)."""
        patched, stored = self._patched.get(key), self._stored(key)
        if patched is not None and stored is not None and _newer(stored, patched) is stored:
            del self._patched[key]

    def _written_status(self, key: Key) -> Mapping[str, Any] | None:
        patched = self._patched.get(key)
        return None if patched is None else patched.get("status")

    def _pod_changed(self, change: Change) -> None:
        for pod in (change.old, change.new):
            key = None if pod is None else _pipeline_of(pod)
            if key is not None:
                self.queue.add(key)

    def _dependency_changed(self, dependency: Dependency) -> None:
        watched, name = dependency
        if name:
            keys = self._dependents.get(dependency, set())
        else:  # the kind turned out (not) to be served: everyone on it
            keys = {k for (w, _), ks in self._dependents.items() if w == watched for k in ks}
        for key in keys:
            self.queue.add(key)

    def _depend(self, key: Key, dependencies: set[Dependency]) -> None:
        for dependency in self._depends_on.get(key, set()) - dependencies:
            self._dependents.get(dependency, set()).discard(key)
        for dependency in dependencies:
            self._dependents.setdefault(dependency, set()).add(key)
        self._depends_on[key] = dependencies

    # ------------------------------------------------------------------ workers

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                delay = await self.reconcile_key(key)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                retry_after = error.retry_after if isinstance(error, ApiError) else None
                wait = self.queue.add_rate_limited(key, at_least=retry_after or 0.0)
                if transient(error):
                    log.warning("reconciling %s/%s failed, again in %.1fs: %r", *key, wait, error)
                else:
                    log.exception("reconciling %s/%s failed, again in %.1fs", *key, wait)
            else:
                if key in self._refused:
                    self.queue.add_rate_limited(key)
                else:
                    self.queue.forget(key)
                    if delay is not None:
                        self.queue.add_after(key, jittered(delay, random.random()))
            finally:
                self.queue.done(key)

    def body(self, key: Key) -> Obj | None:
        """The newest body known: the informer's, or our status write's answer when that is
        newer (reconciling from a stale status would post the same step events twice)."""
        stored = self._stored(key)
        if stored is None:
            return None
        return _newer(stored, self._patched.get(key))

    def _stored(self, key: Key) -> Obj | None:
        return next((i.store[key] for i in self.pipelines if key in i.store), None)

    async def reconcile_key(self, key: Key) -> float | None:
        """Reconcile one pipeline; how long until it is looked at again (None: never)."""
        body = self.body(key)
        if body is None:
            self.forget(key)
            return None
        cached = [pod for informer in self.pods for pod in informer.by_index(key)]
        pods, pending = with_own_writes(
            cached, self._own_writes.pop(key, OwnWrites()), self._pods_seen(), timestamp(_now())
        )
        if pending.created or pending.deleted:
            self._own_writes[key] = pending
        jobs = [job for informer in self.jobs for job in informer.by_index(key)]
        job_pods = [pod for informer in self.job_pods for pod in informer.by_index(key)]
        self._known.add(key)
        return await self.reconcile(body, pods, jobs, job_pods)

    def _pods_seen(self) -> int | None:
        """The resourceVersion every Pod informer has seen (None: not known)."""
        versions = [_version({"metadata": {"resourceVersion": i.version}}) for i in self.pods]
        known = [version for version in versions if version is not None]
        return min(known) if known and len(known) == len(versions) else None

    def forget(self, key: Key) -> None:
        """The InitPipeline is gone; its Pods go with it (ownerReferences)."""
        if key in self._known:
            log.info("InitPipeline %s/%s is gone, forgotten", *key)
        self._known.discard(key)
        self._refused.discard(key)
        self._patched.pop(key, None)
        self._released_at.pop(key, None)
        self._own_writes.pop(key, None)
        self._depend(key, set())
        self._depends_on.pop(key, None)
        self.cache.release(key)
        self.queue.discard(key)
        metrics.forget(*key)

    def known(self) -> set[Key]:
        return set(self._known)

    # ------------------------------------------------------------------ one reconcile

    async def reconcile(
        self,
        body: Mapping[str, Any],
        pods: Sequence[Obj],
        jobs: Sequence[Obj] = (),
        job_pods: Sequence[Obj] = (),
    ) -> float:
        """One pass; returns how long until the next pass if nothing wakes us. `jobs`: the
        pipeline's Jobs of `once` steps, `job_pods` their Pods."""
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
        key = (pipeline.namespace, pipeline.name)
        if self.unsupported_cluster is None:
            created, refusal = await self._converge_pods(pipeline, pods)
            # The Pods just created count at once: the status lists them in this pass's
            # write, not in a second one when their watch events arrive.
            pods = [*pods, *created]
            if refusal is None:
                started, refusal = await self._converge_jobs(pipeline, jobs, pods, previous)
                jobs = [*jobs, *started]
            problems = Problems(creation_error=refusal)
            if problems.creation_error:
                self._refused.add(key)
            else:
                self._refused.discard(key)
            await self._enforce_deadlines(pipeline, pods)
        waiting = self._api_waiting(pipeline, previous)
        await self._release(pipeline, current_pods(pipeline, pods), waiting)
        revision = spec_hash(pipeline.spec)
        reports = await self._wait_reports(pipeline, wait_logs_to_read(pipeline, pods, revision))
        status = derive_status(
            pipeline,
            pods,
            waiting,
            previous,
            _now(),
            revision,
            reports,
            problems=problems,
            once=once_views(pipeline, jobs, job_pods),
        )
        await self._update_status(body, previous, status)
        return resync_after(status, _now(), self.settings.resync_seconds)

    def _api_waiting(self, pipeline: Pipeline, previous: Obj) -> dict[str, list[str]]:
        """The API-side wait targets: the one place they are looked up (watches started in
        the namespaces the operator watches, access reviews asked, findings from the
        informers' caches, Job targets that held for this revision kept held)."""
        key = (pipeline.namespace, pipeline.name)
        self._depend(key, dependencies_of(pipeline))
        self.cache.use(key, deps.watches_for(pipeline, self.access))
        return deps.api_waiting(pipeline, self.cache, self.access, previous)

    async def _converge_pods(
        self, pipeline: Pipeline, pods: Sequence[Obj]
    ) -> tuple[list[Obj], str | None]:
        """Create and delete Pods; the Pods created (the API server's answers) and its
        refusal of a Pod, if any. A failure that may pass (429, 5xx, a timeout, a lost
        connection) is raised: the key is retried with backoff and the pipeline is not
        Stalled for it."""
        plan = plan_pods(
            pipeline,
            pods,
            self.settings.step_image,
            render_image=self.settings.render_image,
            image_volumes=self.image_volumes,
        )
        writes = self._own_writes.setdefault((pipeline.namespace, pipeline.name), OwnWrites())
        return await self._converge(PODS, pipeline, plan.delete, plan.create, writes=writes)

    async def _converge_jobs(
        self, pipeline: Pipeline, jobs: Sequence[Obj], pods: Sequence[Obj], previous: Obj
    ) -> tuple[list[Obj], str | None]:
        """Create and delete the Jobs of `once` steps (`plan_jobs`), as `_converge_pods`
        does Pods; a Job is deleted with its Pods."""
        plan = plan_jobs(pipeline, jobs, pods, previous)
        return await self._converge(JOBS, pipeline, plan.delete, plan.create, dependents=True)

    async def _converge(
        self,
        resource: Resource,
        pipeline: Pipeline,
        delete: Sequence[Mapping[str, Any]],
        create: Sequence[Obj],
        *,
        dependents: bool = False,
        writes: OwnWrites | None = None,
    ) -> tuple[list[Obj], str | None]:
        """Delete, then create, the pipeline's objects of one kind: the objects created (the
        API server's answers, or the existing ones that are the pipeline's: `_existing`) and
        its refusal of one (`<kind> <name>: <why>`), if any. `writes` remembers what was
        deleted and created until the informer shows it (`with_own_writes`)."""
        writes = OwnWrites() if writes is None else writes
        for obj in delete:
            meta = obj["metadata"]
            path = resource.path(meta["namespace"], meta["name"])
            if await self.kube.delete(path, uid=meta["uid"], dependents=dependents):
                writes.deleted.add(meta["uid"])
        created: list[Obj] = []
        for manifest in create:
            try:
                answer = await self.kube.create(resource.path(pipeline.namespace), manifest)
            except ApiError as error:
                if transient(error):
                    raise
                name = manifest["metadata"]["name"]
                return created, f"{resource.kind.lower()} {name}: {error.message}"
            if answer is None and resource is PODS:  # it exists already
                answer = await self._existing_pod(pipeline, manifest["metadata"]["name"])
            if answer is not None:
                created.append(answer)
                writes.created[answer["metadata"]["name"]] = answer
        return created, None

    async def _existing_pod(self, pipeline: Pipeline, name: str) -> Obj | None:
        """A Pod whose create was refused as existing, when it is the pipeline's: one the
        informer has not shown yet, or one labelled for the shard the pipeline was in before,
        handed over to this one (`shard_handover`) so that the informer follows it. (A Job's
        create refused so is left to its informer, which follows every shard's Jobs.)"""
        path = PODS.path(pipeline.namespace, name)
        found = await self.kube.get(path)
        if found is None or not owns(pipeline, found):
            return None
        handover = shard_handover(pipeline, found)
        if handover is not None:
            log.info("Pod %s/%s: taken over from another shard", pipeline.namespace, name)
            found = await self.kube.merge_patch(path, handover)
        return found

    async def _enforce_deadlines(self, pipeline: Pipeline, pods: Sequence[Obj]) -> None:
        """Stop the Pods whose start-up outlived spec.activeDeadlineSeconds (`deadlines`
        decides how), and look at the pipeline again when the next deadline falls, not only
        on the next event. A Pod that changed since it was read (409) is left to the pass
        its change event brings."""
        due = deadlines(pipeline, pods, _now())
        if due.next_in is not None:
            self.queue.add_after((pipeline.namespace, pipeline.name), due.next_in)
        for expiry in due.expired:
            name = expiry.pod["metadata"]["name"]
            try:
                patched = await self.kube.merge_patch(
                    PODS.path(pipeline.namespace, name), expiry.patch
                )
                if patched is not None and expiry.unscheduled is not None:
                    version = patched["metadata"]["resourceVersion"]
                    await self.kube.merge_patch(
                        PODS.path(pipeline.namespace, name, "status"),
                        {"metadata": {"resourceVersion": version}, "status": expiry.unscheduled},
                    )
            except ApiError as error:
                if error.status != 409:
                    raise

    async def _release(
        self,
        pipeline: Pipeline,
        pods: Sequence[Mapping[str, Any]],
        waiting: Mapping[str, Sequence[str]],
    ) -> None:
        """Write each Pod's release annotation when more steps are released; nudge a Pod
        whose released step still runs a while later (`nudge_value`), and look at the
        pipeline again once that while has passed."""
        key = (pipeline.namespace, pipeline.name)
        now = asyncio.get_running_loop().time()
        written = self._released_at.pop(key, {})
        for pod in pods:
            uid = pod["metadata"]["uid"]
            path = PODS.path(pipeline.namespace, pod["metadata"]["name"])
            value = release_value(pipeline, pod, waiting)
            if value is not None:
                await self.kube.merge_patch(
                    path, {"metadata": {"annotations": {RELEASED_ANNOTATION: value}}}
                )
                written[uid] = now
                self.queue.add_after(key, NUDGE_AFTER_SECONDS)
                continue
            since = written.get(uid)
            nudge = nudge_value(pod, None if since is None else now - since)
            if nudge is not None:
                await self.kube.merge_patch(
                    path, {"metadata": {"annotations": {NUDGED_ANNOTATION: nudge}}}
                )
        # Only the Pods at hand are remembered: the others are gone or done.
        uids = {pod["metadata"]["uid"] for pod in pods}
        if kept := {uid: at for uid, at in written.items() if uid in uids}:
            self._released_at[key] = kept

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
        """Write the status when it changed, then record what changed (metrics, events).
        The pipeline counts in the gauge from its first reconcile, written or not."""
        meta = body["metadata"]
        if status_changed(previous, status):
            await self._write_status(body, previous, status)
            await self._status_written(body, previous, status)
        metrics.set_state(meta["namespace"], meta["name"], status)

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
        if patched is not None:
            newest = _newer(self._patched.get(key), patched)
            if newest is not None:
                self._patched[key] = newest
            self._drop_caught_up(key)  # its watch event came first

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


def _pipeline_of(obj: Mapping[str, Any]) -> Key | None:
    """The pipeline of a Pod (PIPELINE_LABEL), or of a `once` step's Job or its Pod
    (ONCE_LABEL)."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = labels.get(PIPELINE_LABEL) or labels.get(ONCE_LABEL)
    return (str(meta.get("namespace", "")), str(name)) if name else None


def _now() -> datetime:
    return datetime.now(UTC)


def _version(body: Mapping[str, Any]) -> int | None:
    """The resourceVersion as a number (etcd revisions are); None when it is not one."""
    version = str(body.get("metadata", {}).get("resourceVersion", ""))
    return int(version) if version.isdigit() else None
