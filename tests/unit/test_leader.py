"""Leader election: the pure decision and Lease records, then electors on an in-memory Lease
that keeps resourceVersions the way the API server does (a stale version is a 409)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
import pytest

from initpipeline import metrics
from initpipeline.kube import ApiError, FencedKube, Kube
from initpipeline.leader import (
    Decision,
    Elector,
    Record,
    decide,
    make_identity,
    micro_time,
    next_spec,
    released_spec,
)
from initpipeline.settings import Settings

pytestmark = pytest.mark.unit

ME, OTHER = "operator-a_1", "operator-b_2"
NOW = datetime(2026, 12, 2, 7, 30, 0, 123456, tzinfo=UTC)


def held_by(holder: str, duration: int = 15, transitions: int = 3) -> Record:
    return Record(
        holder, duration, "2026-12-02T07:00:00.000000Z", "2026-12-02T07:29:58Z", transitions
    )


# --------------------------------------------------------------------------- decide


def test_a_candidate_creates_a_missing_lease() -> None:
    assert decide(None, ME, leading=False, now=100.0, observed_at=0.0) is Decision.ACQUIRE


def test_a_candidate_waits_while_another_holder_is_live_by_our_clock() -> None:
    record = held_by(OTHER, duration=15)
    assert decide(record, ME, leading=False, now=114.9, observed_at=100.0) is Decision.WAIT


def test_a_candidate_takes_over_once_the_lease_went_unchanged_for_its_duration() -> None:
    record = held_by(OTHER, duration=15)
    assert decide(record, ME, leading=False, now=115.0, observed_at=100.0) is Decision.ACQUIRE


def test_expiry_is_counted_from_when_we_saw_the_change_not_from_its_renew_time() -> None:
    # renewTime says 07:29:58, an hour before a skewed local clock would read: irrelevant.
    record = held_by(OTHER, duration=15)
    assert decide(record, ME, leading=False, now=5.0, observed_at=1.0) is Decision.WAIT


def test_a_released_lease_is_taken_at_once() -> None:
    record = Record("", 1, None, None, 4)
    assert decide(record, ME, leading=False, now=100.0, observed_at=100.0) is Decision.ACQUIRE


def test_a_lease_already_ours_is_renewed_even_before_we_knew_we_lead() -> None:
    # Our write was applied but its answer never arrived (a timeout): we hold it.
    assert decide(held_by(ME), ME, leading=False, now=1.0, observed_at=1.0) is Decision.RENEW
    assert decide(held_by(ME), ME, leading=True, now=1.0, observed_at=1.0) is Decision.RENEW


@pytest.mark.parametrize(
    "record",
    [held_by(OTHER), Record("", 1, None, None, 4), None],
    ids=["other", "released", "gone"],
)
def test_a_leader_that_finds_the_lease_not_its_own_has_lost(record: Record | None) -> None:
    assert decide(record, ME, leading=True, now=1000.0, observed_at=0.0) is Decision.LOST


# --------------------------------------------------------------------------- records


def test_lease_spec_fields_are_read_and_missing_ones_default() -> None:
    lease = {
        "spec": {
            "holderIdentity": OTHER,
            "leaseDurationSeconds": 15,
            "acquireTime": "2026-12-02T07:00:00.000000Z",
            "renewTime": "2026-12-02T07:29:58.000000Z",
            "leaseTransitions": 3,
        }
    }
    assert Record.of(lease) == Record(
        OTHER, 15, "2026-12-02T07:00:00.000000Z", "2026-12-02T07:29:58.000000Z", 3
    )
    assert Record.of({"spec": {}}) == Record()
    assert Record.of({}) == Record()


def test_micro_time_is_rfc3339_with_microseconds_in_utc() -> None:
    assert micro_time(NOW) == "2026-12-02T07:30:00.123456Z"


def test_creating_the_lease_starts_at_zero_transitions() -> None:
    spec = next_spec(Decision.ACQUIRE, None, ME, 15, NOW)
    assert spec == {
        "holderIdentity": ME,
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-12-02T07:30:00.123456Z",
        "renewTime": "2026-12-02T07:30:00.123456Z",
        "leaseTransitions": 0,
    }


def test_a_takeover_counts_a_transition_and_sets_acquire_time() -> None:
    spec = next_spec(Decision.ACQUIRE, held_by(OTHER, transitions=3), ME, 15, NOW)
    assert spec["holderIdentity"] == ME
    assert spec["leaseTransitions"] == 4
    assert spec["acquireTime"] == spec["renewTime"] == micro_time(NOW)


def test_a_renewal_keeps_acquire_time_and_transitions() -> None:
    spec = next_spec(Decision.RENEW, held_by(ME, duration=10, transitions=3), ME, 15, NOW)
    assert spec["acquireTime"] == "2026-12-02T07:00:00.000000Z"
    assert spec["leaseTransitions"] == 3
    assert spec["renewTime"] == micro_time(NOW)
    assert spec["leaseDurationSeconds"] == 15


def test_release_empties_the_holder_with_a_one_second_lease() -> None:
    spec = released_spec(held_by(ME, transitions=3), NOW)
    assert spec["holderIdentity"] == ""
    assert spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == 3


def test_identity_names_the_pod_and_is_unique_per_process() -> None:
    first, second = make_identity("initpipeline-operator-7d9f-x2k4p"), make_identity("p")
    assert re.fullmatch(r"initpipeline-operator-7d9f-x2k4p_[0-9a-f]{8}", first)
    assert make_identity("p") != second
    assert make_identity("")  # the host name when not in a Pod


# --------------------------------------------------------------------------- electors


class FakeLeases:
    """One namespace's Leases with API-server semantics: create of an existing name and a PUT
    with a stale resourceVersion are 409s (None, as the Kube methods return them)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.writes: list[str] = []  # holder of each write, in order
        self.written = asyncio.Event()
        self.closed = False

    def _stored(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[obj["metadata"]["name"]] = obj
        self.writes.append(obj["spec"]["holderIdentity"])
        self.written.set()
        return copy.deepcopy(obj)

    async def wait_writes(self, count: int) -> None:
        while len(self.writes) < count:
            self.written.clear()
            await self.written.wait()

    async def watch(
        self, path: str, resource_version: str, field_selector: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        assert field_selector == "metadata.name=lease"
        while True:
            await self.wait_writes(len(self.writes) + 1)
            yield "MODIFIED", copy.deepcopy(self.objects["lease"])

    async def get(self, path: str) -> dict[str, Any] | None:
        obj = self.objects.get(path.rsplit("/", 1)[1])
        return copy.deepcopy(obj) if obj else None

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any] | None:
        if obj["metadata"]["name"] in self.objects:
            return None
        return self._stored(obj)

    async def replace(self, path: str, obj: dict[str, Any]) -> dict[str, Any] | None:
        current = self.objects.get(path.rsplit("/", 1)[1])
        if current is None:
            return None
        if obj["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]:
            return None
        return self._stored(obj)

    async def close(self) -> None:
        self.closed = True

    def holder(self) -> str:
        return str(self.objects["lease"]["spec"]["holderIdentity"])


SHORT = Settings(
    leader_election=True,
    lease_name="lease",
    lease_namespace="ns",
    lease_duration_seconds=1,
    renew_deadline_seconds=0.5,
    retry_period_seconds=0.05,
)


class Candidate:
    def __init__(self, leases: FakeLeases, pod: str) -> None:
        self.lost: list[str] = []
        settings = dataclasses.replace(SHORT, pod_name=pod)
        self.elector = Elector(leases, settings, self.lost.append)  # type: ignore[arg-type]


async def test_one_candidate_leads_and_the_other_waits_until_it_releases() -> None:
    leases = FakeLeases()
    a, b = Candidate(leases, "a"), Candidate(leases, "b")
    await a.elector.acquire()
    assert a.elector.leading and leases.holder() == a.elector.identity
    assert metrics.REGISTRY.get_sample_value("initpipeline_leader") == 1
    waiting = asyncio.create_task(b.elector.acquire())
    await asyncio.wait_for(leases.wait_writes(3), timeout=5)  # a renews while b stands by
    assert not waiting.done() and not b.elector.leading
    assert set(leases.writes) == {a.elector.identity}

    await a.elector.close()
    assert leases.closed and not a.elector.leading
    await asyncio.wait_for(waiting, timeout=5)
    assert leases.holder() == b.elector.identity
    assert leases.objects["lease"]["spec"]["leaseTransitions"] == 1
    await b.elector.release()
    assert leases.holder() == ""
    assert a.lost == b.lost == []


async def test_a_leader_that_stops_renewing_is_replaced_after_the_lease_duration() -> None:
    leases = FakeLeases()
    a, b = Candidate(leases, "a"), Candidate(leases, "b")
    await a.elector.acquire()
    assert a.elector._renewing is not None
    a.elector._renewing.cancel()  # as if a's process froze
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(b.elector.acquire(), timeout=5)
    # b saw the record unchanged for the whole lease duration (1 s) before taking it.
    assert loop.time() - started >= SHORT.lease_duration_seconds
    assert leases.holder() == b.elector.identity
    await b.elector.release()


async def test_a_leader_whose_lease_was_taken_loses_at_its_next_renewal() -> None:
    leases = FakeLeases()
    a = Candidate(leases, "a")
    await a.elector.acquire()
    stolen = copy.deepcopy(leases.objects["lease"])
    stolen["spec"]["holderIdentity"] = "intruder_0"
    await leases.replace("ns/leases/lease", stolen)
    assert a.elector._renewing is not None
    await asyncio.wait_for(a.elector._renewing, timeout=5)
    assert a.lost == ["it is held by 'intruder_0' now"]
    assert not a.elector.leading
    assert metrics.REGISTRY.get_sample_value("initpipeline_leader") == 0
    await a.elector.close()  # releases nothing: the Lease is not ours
    assert leases.holder() == "intruder_0"


async def test_a_leader_that_cannot_renew_within_the_deadline_loses() -> None:
    leases = FakeLeases()
    a = Candidate(leases, "a")
    await a.elector.acquire()

    async def unreachable(path: str, obj: dict[str, Any]) -> dict[str, Any] | None:
        await asyncio.sleep(3600)  # an API server that never answers
        return None

    leases.replace = unreachable  # type: ignore[method-assign]
    assert a.elector._renewing is not None
    await asyncio.wait_for(a.elector._renewing, timeout=5)
    assert a.lost == ["no renewal succeeded for 0.5s"]


async def test_without_a_watch_a_standby_still_finds_the_release_by_looking_again() -> None:
    class Unwatchable(FakeLeases):
        async def watch(  # type: ignore[override]
            self, path: str, resource_version: str, field_selector: str
        ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
            raise ApiError(403, "Forbidden", 'cannot watch resource "leases"')
            yield  # an async generator, as Kube.watch

    leases = Unwatchable()
    a, b = Candidate(leases, "a"), Candidate(leases, "b")
    await a.elector.acquire()
    waiting = asyncio.create_task(b.elector.acquire())
    await asyncio.wait_for(leases.wait_writes(2), timeout=5)
    await a.elector.release()
    await asyncio.wait_for(waiting, timeout=5)
    assert leases.holder() == b.elector.identity
    await b.elector.release()


async def test_a_leader_may_write_only_until_the_renew_deadline_after_its_last_renewal() -> None:
    now = [100.0]
    lost: list[str] = []
    elector = Elector(FakeLeases(), SHORT, lost.append, clock=lambda: now[0])  # type: ignore[arg-type]
    assert not elector.may_write()  # a standby
    await elector.acquire()
    assert elector._renewing is not None
    elector._renewing.cancel()  # the clock is ours to move, not the renewal loop's
    assert elector.may_write()
    now[0] += SHORT.renew_deadline_seconds  # e.g. the process was frozen that long
    assert not elector.may_write()


async def test_a_fenced_kube_sends_no_write_while_it_may_not() -> None:
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(201 if request.method == "POST" else 200, json={"metadata": {}})

    allowed = [True]
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="https://api")
    kube = FencedKube.around(Kube(http), lambda: allowed[0])
    assert await kube.create("/api/v1/namespaces/ns/pods", {"metadata": {}}) is not None
    allowed[0] = False
    with pytest.raises(ApiError, match="NotLeader"):
        await kube.create("/api/v1/namespaces/ns/pods", {"metadata": {}})
    with pytest.raises(ApiError, match="NotLeader"):
        await kube.merge_patch("/api/v1/namespaces/ns/pods/p", {"metadata": {}})
    assert await kube.get("/api/v1/namespaces/ns/pods/p") is not None  # reads go on
    assert sent == ["POST", "GET"]
    await kube.close()
