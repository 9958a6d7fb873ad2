"""The work queue: adds merge, a key is never handed out twice at once, delays and backoff."""

from __future__ import annotations

import asyncio

import pytest

from initpipeline.workqueue import JITTER, WorkQueue, backoff, jittered

pytestmark = pytest.mark.unit


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff(n, base=0.5, cap=5) for n in range(0, 7)] == [0, 0.5, 1, 2, 4, 5, 5]
    assert backoff(10_000, base=0.5, cap=300) == 300  # no overflow


@pytest.mark.parametrize("draw", [0.0, 0.3, 0.999999, -1.0, 2.0])
def test_jitter_stays_within_its_bounds(draw: float) -> None:
    assert 10 <= jittered(10, draw) <= 10 * (1 + JITTER)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def queue(clock: Clock | None = None, draw: float = 0.0) -> WorkQueue[str]:
    return WorkQueue(clock=clock or Clock(), draw=lambda: draw)


async def test_repeated_adds_merge_into_one() -> None:
    q = queue()
    for key in ("a", "b", "a", "a", "b"):
        q.add(key)
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]


async def test_a_key_added_while_processing_comes_back_once_done_not_before() -> None:
    q = queue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    q.add("a")
    assert len(q) == 0  # not handed to a second worker
    q.done("a")
    assert len(q) == 1 and await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_add_after_keeps_the_earliest_time() -> None:
    clock = Clock()
    q = queue(clock)
    q.add_after("a", 10)
    q.add_after("a", 3)
    q.add_after("a", 30)
    clock.now = 2.9
    assert q._promote_due() == pytest.approx(0.1)
    clock.now = 3.0
    q._promote_due()
    assert await q.get() == "a"
    q.done("a")
    clock.now = 100
    q._promote_due()
    assert len(q) == 0  # the later times were superseded


async def test_rate_limited_adds_back_off_exponentially_until_forgotten() -> None:
    q = queue()
    delays = [q.add_rate_limited("a") for _ in range(4)]
    assert delays == [0.5, 1.0, 2.0, 4.0]
    assert q.add_rate_limited("a", at_least=30) == 30  # the server's Retry-After wins
    q.forget("a")
    assert q.add_rate_limited("a") == 0.5


async def test_a_waiting_worker_gets_a_key_added_later() -> None:
    q: WorkQueue[str] = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("a")
    assert await asyncio.wait_for(getter, 5) == "a"


async def test_discard_drops_a_delayed_key() -> None:
    clock = Clock()
    q = queue(clock)
    q.add_after("gone", 1)
    q.discard("gone")
    clock.now = 5
    q._promote_due()
    assert len(q) == 0
