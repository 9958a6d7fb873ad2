"""Watches on the objects that wait steps depend on (Services, EndpointSlices, Jobs, any kind).

One list+watch per kind and namespace, started when a pipeline first needs it; every change
calls `on_change`, so pipelines are re-checked on events rather than by a polling loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from initpipeline.deps import Obj, Watched
from initpipeline.kube import Kube, WatchExpired

log = logging.getLogger(__name__)

# A kind that is not served yet (its CRD not installed) is looked up again this often.
REDISCOVER_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 30.0


class WatchCache:
    def __init__(self, kube: Kube, on_change: Callable[[Watched], None]) -> None:
        self._kube = kube
        self._on_change = on_change
        self._objects: dict[Watched, dict[str, Obj]] = {}
        self._served: dict[Watched, bool] = {}
        self._tasks: dict[Watched, asyncio.Task[None]] = {}

    def ensure(self, wanted: set[Watched]) -> None:
        for watched in wanted - self._tasks.keys():
            self._tasks[watched] = asyncio.create_task(
                self._follow(watched), name=f"watch {watched.kind} in {watched.namespace}"
            )

    def served(self, watched: Watched) -> bool | None:
        return self._served.get(watched)

    def get(self, watched: Watched, name: str) -> Obj | None:
        return self._objects.get(watched, {}).get(name)

    def select(self, watched: Watched, label: str, value: str) -> Sequence[Obj]:
        return [
            obj
            for obj in self._objects.get(watched, {}).values()
            if (obj.get("metadata", {}).get("labels") or {}).get(label) == value
        ]

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    async def _follow(self, watched: Watched) -> None:
        backoff = 1.0
        while True:
            try:
                resource = await self._kube.discover(watched.api_version, watched.kind)
                if resource is None:
                    self._set_served(watched, False)
                    await asyncio.sleep(REDISCOVER_SECONDS)
                    continue
                path = resource.path(watched.namespace)
                items, version = await self._kube.list(path)
                self._objects[watched] = {item["metadata"]["name"]: item for item in items}
                self._set_served(watched, True)
                backoff = 1.0
                while True:
                    async for kind, obj in self._kube.watch(path, version):
                        name = obj["metadata"]["name"]
                        version = obj["metadata"].get("resourceVersion", version)
                        if kind == "DELETED":
                            self._objects[watched].pop(name, None)
                        else:
                            self._objects[watched][name] = obj
                        self._on_change(watched)
            except WatchExpired:
                continue  # list again from scratch
            except Exception as error:  # API, transport or decoding errors: keep watching
                log.warning("watch of %s in %s failed: %r", watched.kind, watched.namespace, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _set_served(self, watched: Watched, served: bool) -> None:
        if self._served.get(watched) != served:
            self._served[watched] = served
            self._on_change(watched)
