"""One Pod of a pipeline as the status sees it: its steps, readiness, and which Pod stands
for the pipeline.

Current Pods (`revisions.is_current`, each replica's latest attempt: failed attempts that
spec.retries replaced are reported apart) are the only ones counted. The representative Pod,
whose steps `steps[]`, `progress` and `currentStep` describe, is the least advanced one: a
Pod with a failed step first (it cannot progress until retried), then the fewest finished
steps, then not Ready, then by name. A step is finished when it Succeeded; a sidecar once
it started. A copyAssets step that mounts its image volume (no container) is finished once
any container of the Pod started: the kubelet sets up every volume first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from initpipeline.fields import as_int, as_mapping, as_str, find_condition
from initpipeline.names import DEADLINE_ANNOTATION, TOOLS_CONTAINER, assets_volume
from initpipeline.revisions import attempt_of, is_current, revision_of, superseded
from initpipeline.spec import AssetsMode, Pipeline, Step, StepType
from initpipeline.status.kubelet import STARTING, StepView, step_view, with_tools
from initpipeline.status.states import Reason, StepState
from initpipeline.status.text import deadline_exceeded, one_line


def pod_condition(pod: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    return find_condition(pod.get("status"), type_) or {}


@dataclass(frozen=True)
class PodView:
    name: str
    phase: str
    ready: bool
    scheduled: bool
    steps: tuple[StepView, ...]
    restarts: int
    raw: Mapping[str, Any]
    attempt: int = 1  # of its replica (spec.retries)
    # The start-up deadline fired (DEADLINE_ANNOTATION): its first unfinished step failed.
    deadline_exceeded: bool = False

    @property
    def finished(self) -> int:
        return sum(view.finished for view in self.steps)

    @property
    def current(self) -> int | None:
        """Index of the first unfinished step, None when all are finished."""
        return next((i for i, view in enumerate(self.steps) if not view.finished), None)

    @property
    def failed(self) -> int | None:
        return next(
            (i for i, view in enumerate(self.steps) if view.state is StepState.FAILED), None
        )

    def rank(self) -> tuple[bool, int, bool, str]:
        """Sort key: the least advanced Pod first."""
        return (self.failed is None, self.finished, self.ready, self.name)


def _main_containers_done(pod: Mapping[str, Any]) -> bool:
    """Every main container terminated and none will be restarted: the Pod is finishing
    (the kubelet then stops the sidecars, which may exit non-zero, e.g. 137 or 143)."""
    policy = as_mapping(pod.get("spec")).get("restartPolicy") or "Always"
    entries = [as_mapping(e) for e in as_mapping(pod.get("status")).get("containerStatuses") or ()]
    ended = [as_mapping(as_mapping(e.get("state")).get("terminated")) for e in entries]
    if not entries or not all(ended) or policy == "Always":
        return False
    return policy == "Never" or all(as_int(t.get("exitCode")) == 0 for t in ended)


def pod_view(
    pipeline: Pipeline, pod: Mapping[str, Any], once: Mapping[str, StepView] | None = None
) -> PodView:
    """The Pod's steps; a `once` step with a Job is the Job's view (`once`: step name ->
    `status.once.job_view`), whatever the Pod's wait for it shows."""
    status = as_mapping(pod.get("status"))
    phase = as_str(status.get("phase")) or "Pending"
    finishing = _main_containers_done(pod)
    statuses = {
        as_mapping(entry).get("name"): as_mapping(entry)
        for entry in status.get("initContainerStatuses") or ()
    }
    tools = statuses.get(TOOLS_CONTAINER)
    volumes = {as_mapping(v).get("name") for v in as_mapping(pod.get("spec")).get("volumes") or ()}
    mounted = {
        i
        for i, step in enumerate(pipeline.spec.steps)
        if assets_volume(i) in volumes and step.copy_assets
    }
    first_copy = next(
        (
            s.name
            for i, s in enumerate(pipeline.spec.steps)
            if s.type is StepType.COPY_ASSETS and i not in mounted
        ),
        None,
    )
    views = []
    for i, step in enumerate(pipeline.spec.steps):
        if i in mounted:
            views.append(_mounted_view(step, pod, phase))
            continue
        view = step_view(step, statuses.get(step.name), phase, finishing)
        view = (once or {}).get(step.name, view)
        if step.name == first_copy and tools is not None:
            view = with_tools(view, step_view(step, tools, phase))
        if step.type is StepType.COPY_ASSETS:
            view = replace(view, mode=AssetsMode.COPY.value)
        views.append(view)
    restarts = sum(
        as_int(as_mapping(entry).get("restartCount")) or 0
        for key in ("initContainerStatuses", "containerStatuses")
        for entry in status.get(key) or ()
    )
    metadata = as_mapping(pod.get("metadata"))
    expired = DEADLINE_ANNOTATION in as_mapping(metadata.get("annotations"))
    if expired:
        _deadline_failed(pipeline, views)
    return PodView(
        name=as_str(metadata.get("name")) or "",
        phase=phase,
        ready=pod_condition(pod, "Ready").get("status") == "True",
        scheduled=pod_condition(pod, "PodScheduled").get("status") == "True",
        steps=tuple(views),
        restarts=restarts,
        raw=pod,
        attempt=attempt_of(pod),
        deadline_exceeded=expired,
    )


def _mounted_view(step: Step, pod: Mapping[str, Any], phase: str) -> StepView:
    """A mounted copyAssets step: done once any container started (or the Pod ran)."""
    assets = step.copy_assets
    assert assets is not None
    status = as_mapping(pod.get("status"))
    started = phase in ("Running", "Succeeded") or any(
        set(as_mapping(as_mapping(entry).get("state"))) & {"running", "terminated"}
        for key in ("initContainerStatuses", "containerStatuses")
        for entry in status.get(key) or ()
    )
    if not started:
        return StepView(mode=AssetsMode.MOUNT.value)
    where = f"volume {assets.volume}" + (f"/{assets.path}" if assets.path else "")
    message = f"mounted {assets.image}:{assets.from_} read-only at {where}"
    return StepView(StepState.SUCCEEDED, True, message=message, mode=AssetsMode.MOUNT.value)


def _deadline_failed(pipeline: Pipeline, views: list[StepView]) -> None:
    """The step a Pod was on when its start-up deadline fired (its first unfinished one)
    failed with reason DeadlineExceeded, whatever the kubelet made of its container (not
    started, running, or killed with exit code 137)."""
    index = next((i for i, view in enumerate(views) if not view.finished), None)
    if index is not None:
        views[index] = replace(
            views[index],
            state=StepState.FAILED,
            reason=Reason.DEADLINE_EXCEEDED.value,
            message=deadline_exceeded(pipeline.spec.active_deadline_seconds),
        )


@dataclass(frozen=True)
class Pods:
    """The current Pods (by name), how many others there are (other revisions, being
    deleted), the representative, the failed attempts a later one replaced (by name), and
    how many Pods are of older revisions (also those being deleted): a rollout is on."""

    current: list[PodView]
    others: int
    rep: PodView | None
    replaced: list[PodView]
    old: int = 0


def current_pods(
    pipeline: Pipeline,
    pods: Sequence[Mapping[str, Any]],
    current_hash: str | None,
    once: Mapping[str, StepView] | None = None,
) -> Pods:
    """The Pods of the current revision (all given Pods when `current_hash` is None), each
    replica's latest attempt being current (`revisions`); `once`: as `pod_view` takes it."""
    later = superseded(pods)
    ours = sorted(
        (pod_view(pipeline, pod, once) for pod in pods if is_current(pipeline, pod, current_hash)),
        key=lambda view: view.name,
    )
    current = [view for view in ours if view.name not in later]
    replaced = [view for view in ours if view.name in later]
    rep = min(current, key=PodView.rank) if current else None
    old = 0 if current_hash is None else sum(revision_of(pod) != current_hash for pod in pods)
    return Pods(current, len(pods) - len(ours), rep, replaced, old)


def container_problem(pod: Mapping[str, Any]) -> str:
    """The first main container that is failing or cannot start, as one short line."""
    for entry in as_mapping(pod.get("status")).get("containerStatuses") or ():
        entry = as_mapping(entry)
        name = entry.get("name")
        state = as_mapping(entry.get("state"))
        waiting = as_mapping(state.get("waiting"))
        terminated = as_mapping(state.get("terminated"))
        last = as_mapping(as_mapping(entry.get("lastState")).get("terminated"))
        if waiting.get("reason") == "CrashLoopBackOff" and last:
            detail = f"exit code {last.get('exitCode')}, restarted {entry.get('restartCount', 0)}"
            message = one_line(last.get("message"))
            return f"container {name}: CrashLoopBackOff ({detail})" + (
                f": {message}" if message else ""
            )
        if waiting and waiting.get("reason") not in STARTING:
            message = one_line(waiting.get("message"))
            return f"container {name}: {waiting.get('reason')}" + (
                f": {message}" if message else ""
            )
        if terminated and as_int(terminated.get("exitCode")) not in (0, None):
            message = one_line(terminated.get("message"))
            return (
                f"container {name}: exit code {terminated.get('exitCode')} "
                f"({terminated.get('reason') or 'Error'})" + (f": {message}" if message else "")
            )
    return ""
