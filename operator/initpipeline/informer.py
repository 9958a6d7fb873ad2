"""List+watch of one kind into a local store, shaped like client-go's reflector and informer.

The store starts from a LIST (paginated) and follows a WATCH from the list's resourceVersion;
BOOKMARK events advance that version without changing the store, so a watch that ends (the
server's timeout) resumes from recent history. Whenever the informer lists again (410 Gone:
the version fell out of the API server's watch cache; or any failed watch), the store is
REPLACED by what the list returned and a change is emitted for every key that appeared,
changed or disappeared (`replace_diff`): an object deleted while the watch was down is seen
deleted, which an index fed by watch events only (Kopf's) never sees. Objects are stored
without their managedFields (`slim`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from initpipeline.kube import Kube, WatchExpired, transient

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); namespace "" for a cluster-scoped object

# A kind the API server does not serve (its CRD not installed) is looked up again this often.
REDISCOVER_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 30.0
# Watches ask the server to end them after 5 to 10 minutes (client-go's spread), then resume.
WATCH_SECONDS = 300


@dataclass(frozen=True)
class Change:
    """One key's change: `old` None when it appeared, `new` None when it disappeared."""

    key: Key
    old: Obj | None
    new: Obj | None


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _version(obj: Mapping[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


def slim(obj: Obj) -> Obj:
    """The object as stored: without `metadata.managedFields` (server-side apply's record of
    who set which field, a third of a Pod's size, read by nothing here; client-go's
    TransformStripManagedFields). Changes `obj`, freshly decoded, in place."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


def replace_diff(old: Mapping[Key, Obj], new: Mapping[Key, Obj]) -> list[Change]:
    """What replacing the store `old` by the listed `new` changes, key by key (sorted): keys
    only in `new` appeared, keys only in `old` disappeared, keys in both whose resourceVersion
    differs changed; unchanged objects emit nothing."""
    changes = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before is None or after is None or _version(before) != _version(after):
            changes.append(Change(key, before, after))
    return changes


def apply_event(store: dict[Key, Obj], kind: str, obj: Obj) -> Change | None:
    """Apply one watch event to the store; the change it makes (None for none)."""
    key = key_of(obj)
    before = store.get(key)
    if kind == "DELETED":
        if before is None:
            return None
        del store[key]
        return Change(key, before, None)
    if kind in ("ADDED", "MODIFIED"):
        store[key] = obj
        return Change(key, before, obj)
    return None


class Informer:
    """One list+watch. `locate()` gives the collection's path (None: the kind is not served);
    `on_change` gets every change of the store, `on_served` every flip of `served`."""

    def __init__(
        self,
        kube: Kube,
        name: str,
        locate: Callable[[], Awaitable[str | None]],
        on_change: Callable[[Change], None],
        label_selector: str = "",
        on_served: Callable[[], None] | None = None,
        index: Callable[[Obj], Hashable | None] | None = None,
    ) -> None:
        self.name = name
        self.store: dict[Key, Obj] = {}
        # With `index`: the objects by index value (e.g. the Pods by pipeline).
        self.indexed: dict[Hashable, dict[Key, Obj]] = {}
        self._index = index
        self.served: bool | None = None
        self.synced = asyncio.Event()
        self.relists = 0  # lists after the first one (410 Gone, failed watches)
        # The resourceVersion the store is at (its last list, event or bookmark).
        self.version = ""
        self._kube = kube
        self._locate = locate
        self._on_change = on_change
        self._on_served = on_served
        self._selector = label_selector
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer {self.name}")

    def stop_soon(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def objects(self) -> Iterable[Obj]:
        return self.store.values()

    def by_index(self, value: Hashable) -> list[Obj]:
        return list(self.indexed.get(value, {}).values())

    def _emit(self, change: Change) -> None:
        if self._index is not None:
            if change.old is not None and (value := self._index(change.old)) is not None:
                self.indexed.get(value, {}).pop(change.key, None)
                if not self.indexed.get(value, True):
                    del self.indexed[value]
            if change.new is not None and (value := self._index(change.new)) is not None:
                self.indexed.setdefault(value, {})[change.key] = change.new
        self._on_change(change)

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            try:
                path = await self._locate()
                if path is None:
                    self._set_served(False)
                    await asyncio.sleep(REDISCOVER_SECONDS)
                    continue
                version = await self._list(path)
                self._set_served(True)
                backoff = 1.0
                await self._watch(path, version)
            except WatchExpired:
                log.info("%s: resourceVersion expired (410 Gone), listing again", self.name)
            except Exception as error:  # API, transport or decoding errors: keep following
                level = logging.INFO if transient(error) else logging.WARNING
                log.log(level, "%s: list/watch failed, listing again: %r", self.name, error)
                await asyncio.sleep(backoff * (1 + random.random() / 2))
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _list(self, path: str) -> str:
        items, version = await self._kube.list(path, label_selector=self._selector)
        listed = {key_of(item): slim(item) for item in items}
        changes = replace_diff(self.store, listed)
        if self.synced.is_set():
            self.relists += 1
            if changes:
                log.info("%s: relisted, %d objects changed meanwhile", self.name, len(changes))
        self.store = listed
        self.version = version
        self.synced.set()
        for change in changes:
            self._emit(change)
        return version

    async def _watch(self, path: str, version: str) -> None:
        """Follow the watch from `version`, resuming after each normal end of the stream."""
        loop = asyncio.get_running_loop()
        while True:
            seconds = WATCH_SECONDS + random.randrange(WATCH_SECONDS)
            began = loop.time()
            async for kind, obj in self._kube.watch(
                path, version, label_selector=self._selector, seconds=seconds, bookmarks=True
            ):
                version = _version(obj) or version
                change = apply_event(self.store, kind, slim(obj))
                self.version = version
                if change is not None:
                    self._emit(change)
            if loop.time() - began < 1:  # ended at once (a proxy's doing?): no busy loop
                await asyncio.sleep(1)

    def _set_served(self, served: bool) -> None:
        if self.served != served:
            self.served = served
            if self._on_served is not None:
                self._on_served()
