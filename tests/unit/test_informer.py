"""The informer's store: a relist replaces it, and every key that appeared, changed or
disappeared meanwhile is reported (an object deleted during a watch gap is seen deleted)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx2 as httpx
import pytest

from initpipeline.informer import Change, Informer, apply_event, key_of, replace_diff
from initpipeline.kube import WatchExpired

pytestmark = pytest.mark.unit


def obj(name: str, version: str, namespace: str = "shop", **labels: str) -> dict[str, Any]:
    meta = {"namespace": namespace, "name": name, "resourceVersion": version, "labels": labels}
    return {"metadata": meta}


def store(*objects: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {key_of(o): o for o in objects}


def test_replace_reports_what_appeared_changed_and_disappeared_and_nothing_else() -> None:
    old = store(obj("kept", "1"), obj("changed", "2"), obj("deleted", "3"))
    new = store(obj("kept", "1"), obj("changed", "9"), obj("added", "10"))
    changes = {c.key[1]: (c.old, c.new) for c in replace_diff(old, new)}
    assert set(changes) == {"changed", "deleted", "added"}
    assert changes["deleted"][1] is None and changes["deleted"][0] == obj("deleted", "3")
    assert changes["added"][0] is None and changes["added"][1] == obj("added", "10")
    assert changes["changed"][1] == obj("changed", "9")


def test_replace_of_an_empty_store_and_by_an_empty_list() -> None:
    assert [c.key for c in replace_diff({}, store(obj("a", "1")))] == [("shop", "a")]
    assert [c.new for c in replace_diff(store(obj("a", "1")), {})] == [None]
    assert replace_diff({}, {}) == []


def test_same_name_in_two_namespaces_are_two_keys() -> None:
    diff = replace_diff(store(obj("web", "1", "a")), store(obj("web", "1", "b")))
    assert sorted(c.key for c in diff) == [("a", "web"), ("b", "web")]


def test_watch_events_apply_and_bookmarks_change_nothing() -> None:
    s: dict[tuple[str, str], dict[str, Any]] = {}
    assert apply_event(s, "ADDED", obj("a", "1")) == Change(("shop", "a"), None, obj("a", "1"))
    assert apply_event(s, "BOOKMARK", {"metadata": {"resourceVersion": "5"}}) is None
    assert apply_event(s, "DELETED", obj("a", "6")) == Change(("shop", "a"), obj("a", "1"), None)
    assert apply_event(s, "DELETED", obj("a", "6")) is None  # already gone
    assert s == {}


class GapKube:
    """Lists `lists` in turn; the first watch sends `events`, then 410 Gone; later watches
    wait forever."""

    def __init__(
        self,
        lists: list[list[dict[str, Any]]],
        events: list[tuple[str, Any]],
        gap: Exception | None = None,
    ) -> None:
        self.lists, self.events = lists, events
        self.gap = gap or WatchExpired("/api/v1/pods")
        self.watched_from: list[str] = []

    async def list(self, path: str, label_selector: str = "") -> tuple[list[Any], str]:
        items = self.lists.pop(0)
        return items, "100"

    async def watch(self, path: str, version: str, **_: Any) -> AsyncIterator[tuple[str, Any]]:
        self.watched_from.append(version)
        if len(self.watched_from) == 1:
            for event in self.events:
                yield event
            raise self.gap
        await asyncio.Event().wait()
        yield ("", {})  # pragma: no cover


@pytest.mark.parametrize(
    "gap",
    [WatchExpired("/api/v1/pods"), httpx.ReadError("connection aborted")],
    ids=["410 Gone", "connection lost"],
)
async def test_a_relist_forgets_what_was_deleted_in_the_gap(gap: Exception) -> None:
    kube = GapKube(
        lists=[
            [obj("pod-a", "1", pipeline="a"), obj("pod-b", "2", pipeline="b")],
            [obj("pod-b", "2", pipeline="b"), obj("pod-c", "120", pipeline="c")],
        ],
        events=[
            ("BOOKMARK", {"metadata": {"resourceVersion": "110"}}),
            ("MODIFIED", obj("pod-b", "2", pipeline="b")),
        ],
        gap=gap,
    )
    seen: list[Change] = []
    relisted = asyncio.Event()

    def on_change(change: Change) -> None:
        seen.append(change)
        if change.key == ("shop", "pod-c"):
            relisted.set()

    async def locate() -> str | None:
        return "/api/v1/pods"

    informer = Informer(
        kube,  # type: ignore[arg-type]
        "pods",
        locate,
        on_change,
        index=lambda o: o["metadata"]["labels"].get("pipeline"),
    )
    informer.start()
    await asyncio.wait_for(relisted.wait(), 5)
    await informer.stop()

    assert set(informer.store) == {("shop", "pod-b"), ("shop", "pod-c")}
    gone = [c for c in seen if c.new is None]
    assert [c.key for c in gone] == [("shop", "pod-a")]  # reported although no DELETED came
    assert informer.by_index("a") == [] and len(informer.by_index("c")) == 1
    assert informer.relists == 1
    assert kube.watched_from[0] == "100"  # from the list's version; the bookmark advanced it


async def test_objects_are_stored_without_managed_fields() -> None:
    def owned(name: str, version: str) -> dict[str, Any]:
        found = obj(name, version)
        found["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
        return found

    # listed, then watched; after the gap a relist that shows neither
    kube = GapKube(lists=[[owned("listed", "1")], []], events=[("ADDED", owned("watched", "2"))])
    stored: list[dict[str, Any]] = []
    relisted = asyncio.Event()

    def on_change(change: Change) -> None:
        if change.new is not None:
            stored.append(change.new)
        elif change.key == ("shop", "watched"):
            relisted.set()

    async def locate() -> str | None:
        return "/api/v1/pods"

    informer = Informer(kube, "pods", locate, on_change)  # type: ignore[arg-type]
    informer.start()
    await asyncio.wait_for(relisted.wait(), 5)
    await informer.stop()
    assert [o["metadata"]["name"] for o in stored] == ["listed", "watched"]
    assert all("managedFields" not in o["metadata"] for o in stored)
