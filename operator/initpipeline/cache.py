"""The objects wait steps depend on (Services, EndpointSlices, Jobs, any kind), as informers.

One informer per kind, cluster-wide; with INITPIPELINE_NAMESPACES, one per kind and
namespace. An informer starts when a pipeline first needs it and stops when no pipeline
needs it any more. A change of an object is reported with the name pipelines refer to it by
(an EndpointSlice by its Service's name), so only the pipelines that depend on that object are
woken (`dependencies_of`, pure).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from initpipeline.deps import SERVICE_NAME_LABEL, Obj, Watched, target_objects
from initpipeline.informer import Change, Informer
from initpipeline.kube import Kube
from initpipeline.render import step_targets
from initpipeline.spec import Pipeline

log = logging.getLogger(__name__)

# (api_version, kind, namespace or "" for every namespace)
Scope = tuple[str, str, str]
# One object a pipeline depends on: its kind and namespace, and the name it is known by.
Dependency = tuple[Watched, str]


def dependencies_of(pipeline: Pipeline) -> set[Dependency]:
    """The objects whose changes can release one of the pipeline's steps."""
    return {
        dependency
        for step in pipeline.spec.steps
        for target in step_targets(pipeline, step)
        for dependency in target_objects(target, pipeline.namespace)
    }


def known_as(watched: Watched, obj: Mapping[str, Any]) -> str:
    """The name pipelines refer to this object by."""
    meta = obj.get("metadata") or {}
    if watched.kind == "EndpointSlice":
        return str((meta.get("labels") or {}).get(SERVICE_NAME_LABEL, ""))
    return str(meta.get("name", ""))


class DependencyCache:
    """deps.Objects over shared informers; `on_change(dependency)` for every change, and
    `on_change((watched, ""))` when a kind turns out to be served or not."""

    def __init__(
        self, kube: Kube, cluster_wide: bool, on_change: Callable[[Dependency], None]
    ) -> None:
        self._kube = kube
        self._cluster_wide = cluster_wide
        self._on_change = on_change
        self._informers: dict[Scope, Informer] = {}
        self._users: dict[Scope, set[Any]] = {}

    def _scope(self, watched: Watched) -> Scope:
        return (watched.api_version, watched.kind, "" if self._cluster_wide else watched.namespace)

    def use(self, user: Any, wanted: set[Watched]) -> None:
        """`user` (a pipeline) needs these; what it needed before and no longer does, it
        releases: an informer no one uses is stopped."""
        scopes = {self._scope(watched) for watched in wanted}
        for scope in scopes:
            self._users.setdefault(scope, set()).add(user)
            if scope not in self._informers:
                self._start(scope)
        for scope, users in list(self._users.items()):
            if scope not in scopes and user in users:
                users.discard(user)
                if not users:
                    self._stop(scope)

    def release(self, user: Any) -> None:
        self.use(user, set())

    def _start(self, scope: Scope) -> None:
        api_version, kind, namespace = scope

        async def locate() -> str | None:
            resource = await self._kube.discover(api_version, kind)
            return None if resource is None else resource.path(namespace or None)

        def changed(change: Change) -> None:
            for obj in (change.old, change.new):
                if obj is not None:
                    ns = str((obj.get("metadata") or {}).get("namespace") or "")
                    watched = Watched(api_version, kind, ns)
                    self._on_change((watched, known_as(watched, obj)))

        def served() -> None:
            self._on_change((Watched(api_version, kind, namespace), ""))

        def by_service(obj: Obj) -> tuple[str, str]:
            ns = str((obj.get("metadata") or {}).get("namespace") or "")
            return ns, known_as(Watched(api_version, kind, ns), obj)

        where = namespace or "every namespace"
        informer = Informer(
            self._kube,
            f"{kind} in {where}",
            locate,
            changed,
            on_served=served,
            index=by_service if kind == "EndpointSlice" else None,
        )
        self._informers[scope] = informer
        informer.start()

    def _stop(self, scope: Scope) -> None:
        informer = self._informers.pop(scope, None)
        self._users.pop(scope, None)
        if informer is not None:
            log.info("%s: no pipeline needs it any more, stopped", informer.name)
            informer.stop_soon()

    def watching(self) -> list[str]:
        return sorted(informer.name for informer in self._informers.values())

    async def close(self) -> None:
        for informer in self._informers.values():
            await informer.stop()
        self._informers.clear()

    # deps.Objects

    def served(self, watched: Watched) -> bool | None:
        informer = self._informers.get(self._scope(watched))
        return None if informer is None else informer.served

    def get(self, watched: Watched, name: str) -> Obj | None:
        informer = self._informers.get(self._scope(watched))
        if informer is None:
            return None
        namespaced = informer.store.get((watched.namespace, name))
        return namespaced if namespaced is not None else informer.store.get(("", name))

    def select(self, watched: Watched, label: str, value: str) -> Sequence[Obj]:
        informer = self._informers.get(self._scope(watched))
        if informer is None:
            return []
        if watched.kind == "EndpointSlice" and label == SERVICE_NAME_LABEL:
            return informer.by_index((watched.namespace, value))  # the common case, indexed
        return [
            obj
            for obj in informer.objects()
            if (obj.get("metadata") or {}).get("namespace", "") == watched.namespace
            and ((obj.get("metadata") or {}).get("labels") or {}).get(label) == value
        ]
