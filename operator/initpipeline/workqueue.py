"""A work queue of keys, shaped like client-go's util/workqueue (rate-limiting, delaying).

- A key added many times before a worker takes it is reconciled once (the adds merge).
- A key is never handed to two workers at once: added while it is being reconciled, it is
  queued again when that reconcile is `done`.
- `add_after` queues a key later (the earliest wins when asked twice); `add_rate_limited`
  does so after a per-key exponential backoff with jitter (`backoff`, pure), at least the
  delay the API server asked for (Retry-After); `forget` resets the key's failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

BASE_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 300.0
JITTER = 0.2  # a delay d becomes d to d * (1 + JITTER)


def backoff(
    failures: int, base: float = BASE_DELAY_SECONDS, cap: float = MAX_DELAY_SECONDS
) -> float:
    """The delay before retrying after `failures` failures in a row: base, 2 base, 4 base ...
    up to `cap` (client-go's ItemExponentialFailureRateLimiter)."""
    if failures <= 0:
        return 0.0
    exponent: int = min(failures - 1, 64)
    return float(min(cap, base * 2.0**exponent))


def jittered(delay: float, draw: float, factor: float = JITTER) -> float:
    """`delay` stretched by up to `factor` (`draw` in [0, 1)), so that keys queued together
    do not come back together (client-go's wait.Jitter)."""
    return delay * (1 + factor * min(max(draw, 0.0), 1.0))


class WorkQueue(Generic[K]):
    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        draw: Callable[[], float] = random.random,
        base_delay: float = BASE_DELAY_SECONDS,
        max_delay: float = MAX_DELAY_SECONDS,
    ) -> None:
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()  # queued, or to queue again when its reconcile is done
        self._processing: set[K] = set()
        self._later: list[tuple[float, int, K]] = []  # heap of (when, order, key)
        self._due: dict[K, float] = {}  # the earliest pending time of each delayed key
        self._order = itertools.count()
        self._failures: dict[K, int] = {}
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._draw = draw
        self._base, self._max = base_delay, max_delay
        self._wakeup = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: K) -> None:
        if self._closed or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._wakeup.set()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        when = self._clock() + delay
        if self._closed or self._due.get(key, float("inf")) <= when:
            return
        self._due[key] = when
        heapq.heappush(self._later, (when, next(self._order), key))
        self._wakeup.set()

    def add_rate_limited(self, key: K, at_least: float = 0.0) -> float:
        """Queue `key` after its backoff; the delay chosen."""
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = max(at_least, jittered(backoff(failures, self._base, self._max), self._draw()))
        self.add_after(key, delay)
        return delay

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def discard(self, key: K) -> None:
        """No more delayed adds of `key` (it is gone)."""
        self._due.pop(key, None)
        self.forget(key)

    def _promote_due(self) -> float | None:
        """Queue the delayed keys whose time has come; seconds until the next one."""
        now = self._clock()
        while self._later:
            when, _, key = self._later[0]
            if self._due.get(key) != when:  # superseded by an earlier add_after, or discarded
                heapq.heappop(self._later)
                continue
            if when > now:
                return when - now
            heapq.heappop(self._later)
            del self._due[key]
            self.add(key)
        return None

    async def get(self) -> K:
        """The next key to reconcile; call `done(key)` once reconciled."""
        while True:
            wait = self._promote_due()
            if self._queue:
                key = self._queue.popleft()
                self._dirty.discard(key)
                self._processing.add(key)
                return key
            if self._closed:
                raise asyncio.CancelledError
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), wait)

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wakeup.set()

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()
