"""Leader election on a coordination.k8s.io Lease, shaped like client-go's tools/leaderelection.

Kopf's peering is not leader election (it pauses lower-priority peers and freezes equal ones),
so the replicas compete for one Lease and only its holder reconciles. A candidate reads the
Lease and creates it if absent, or takes it over once it has expired: once `leaseDurationSeconds`
have passed on this process's own monotonic clock since it last saw the record change, so
clock skew between nodes does not matter (the record's renewTime is written, never trusted).
Every write carries the resourceVersion that was read, so of two candidates exactly one wins
(the other gets 409). A standby watches the Lease (and reads it every retry period, should the
watch be down), so it counts from each renewal as it happens and sees a release at once. The
leader renews every retry period; when no renewal has succeeded for
the renew deadline (shorter than the lease duration, so it gives up before anyone else may take
over), leadership is lost and `on_lost` is called. On shutdown the leader releases the Lease
(holder empty, duration 1 s, as client-go's ReleaseOnCancel), so a standby takes over at once.

A leader frozen (SIGSTOP, a stalled VM) past its lease wakes up believing it leads; its
writes go through a FencedKube that asks `may_write()`, which is false past the renew deadline
on the monotonic clock, so they are refused before they are sent. (A request already on the
wire when the process froze still lands: that, the API server cannot be asked to fence.)
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx

from initpipeline import metrics
from initpipeline.kube import LEASES, ApiError, Kube, Obj, WatchExpired
from initpipeline.settings import ELECTION_JITTER, Settings

log = logging.getLogger(__name__)

# A watch of the Lease that failed is tried again this much later (polling goes on meanwhile).
WATCH_BACKOFF_SECONDS = 30.0
_TRANSIENT = (ApiError, httpx.HTTPError, TimeoutError)


class Decision(enum.Enum):
    ACQUIRE = "acquire"  # no Lease, or no live holder: take it
    RENEW = "renew"  # the Lease is ours: renew it
    WAIT = "wait"  # another holder, not expired by our clock
    LOST = "lost"  # we led, and the Lease is not ours any more


@dataclass(frozen=True)
class Record:
    """The Lease's spec, as client-go's LeaderElectionRecord."""

    holder: str = ""
    duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def of(cls, lease: Obj) -> Record:
        spec: dict[str, Any] = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or "",
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )


def decide(
    record: Record | None, identity: str, leading: bool, now: float, observed_at: float
) -> Decision:
    """What to do with the Lease as read. `now` and `observed_at` (when this process last saw
    the record change) are readings of the local monotonic clock."""
    if leading:
        # Leadership goes on only by renewing our own record: had anyone else written the
        # Lease (or deleted it), another replica may have reconciled in between.
        return Decision.RENEW if record is not None and record.holder == identity else Decision.LOST
    if record is None:
        return Decision.ACQUIRE
    if record.holder == identity:  # ours from an attempt whose answer we did not see
        return Decision.RENEW
    if record.holder and now < observed_at + record.duration_seconds:
        return Decision.WAIT
    return Decision.ACQUIRE


def micro_time(moment: datetime) -> str:
    """metav1.MicroTime, as the API server writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def next_spec(
    decision: Decision, record: Record | None, identity: str, duration: int, now: datetime
) -> dict[str, Any]:
    """The Lease spec to write for ACQUIRE or RENEW."""
    stamp = micro_time(now)
    if decision is Decision.RENEW and record is not None:
        acquired, transitions = record.acquire_time or stamp, record.transitions
    else:
        acquired, transitions = stamp, record.transitions + 1 if record is not None else 0
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": acquired,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


def released_spec(record: Record, now: datetime) -> dict[str, Any]:
    """client-go's release: no holder, and a 1 s lease for candidates that wait it out."""
    stamp = micro_time(now)
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": record.transitions,
    }


def make_identity(pod_name: str) -> str:
    """The Pod's name (or the host's), plus a part unique to this process: a container that
    restarts in the same Pod is a new candidate, not the holder it replaced."""
    return f"{pod_name or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class Elector:
    """One candidate for the Lease `settings.lease_namespace/lease_name`."""

    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        on_lost: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.identity = make_identity(settings.pod_name)
        self.namespace, self.name = settings.lease_namespace, settings.lease_name
        self._duration = settings.lease_duration_seconds
        self._deadline = settings.renew_deadline_seconds
        self._retry = settings.retry_period_seconds
        self._on_lost = on_lost
        self._clock = clock
        self._lease: Obj | None = None  # as last read or written
        self._observed_at = 0.0
        self._renewed_at: float | None = None  # send time of our last successful write
        self._unanswered_write = False
        self._renewing: asyncio.Task[None] | None = None

    @property
    def leading(self) -> bool:
        return self._renewed_at is not None

    def may_write(self) -> bool:
        """True until the renew deadline after our last successful renewal: past it, another
        replica may lead (a process frozen past it finds out here before it writes)."""
        return self._renewed_at is not None and self._clock() < self._renewed_at + self._deadline

    @property
    def _path(self) -> str:
        return LEASES.path(self.namespace, self.name)

    async def acquire(self) -> None:
        """Return once this process holds the Lease; it is then renewed in the background."""
        if self.leading:
            return
        log.info("Standing by for the Lease %s/%s as %s", self.namespace, self.name, self.identity)
        changed = asyncio.Event()
        watching = asyncio.create_task(self._watch(changed), name="lease watch")
        try:
            await self._wait_for_lease(changed)
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
        record = self._record()
        log.info(
            "Leading: acquired the Lease %s/%s as %s (transitions: %d)",
            self.namespace,
            self.name,
            self.identity,
            record.transitions,
        )
        metrics.set_leader(True)
        self._renewing = asyncio.create_task(self._keep(), name="lease renewal")

    async def _wait_for_lease(self, changed: asyncio.Event) -> None:
        seen_holder: str | None = None
        last_error = ""
        while True:
            changed.clear()
            try:
                async with asyncio.timeout(self._deadline):
                    decision = await self._round()
            except _TRANSIENT as error:
                if str(error) != last_error:  # once per kind of failure, not every retry
                    log.warning("Reading the Lease %s failed: %r", self._path, error)
                    last_error = str(error)
            else:
                if decision in (Decision.ACQUIRE, Decision.RENEW):
                    return
                holder = self._record().holder
                if holder != seen_holder:
                    log.info("The Lease %s/%s is held by %r", self.namespace, self.name, holder)
                    seen_holder = holder
            # Look again when the Lease changes (a release is taken over at once), when it
            # expires by our clock, and every retry period anyway (the watch may be down).
            timeout = self._retry * (1 + random.random() * ELECTION_JITTER)
            if self._lease is not None:
                expiry = self._observed_at + self._record().duration_seconds - self._clock()
                timeout = min(timeout, max(expiry, 0.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)

    async def _watch(self, changed: asyncio.Event) -> None:
        """Set `changed` on every change of the Lease, so that a standby sees each renewal when
        it happens (its expiry count starts then) and a release at once."""
        reported = False
        version = (self._lease or {}).get("metadata", {}).get("resourceVersion", "")
        while True:
            try:
                async for _, lease in self.kube.watch(
                    LEASES.path(self.namespace),
                    version,
                    field_selector=f"metadata.name={self.name}",
                ):
                    version = lease.get("metadata", {}).get("resourceVersion", version)
                    changed.set()
            except WatchExpired:
                version = ""  # from the current state: one extra look, no gap
                continue
            except _TRANSIENT as error:
                if not reported:  # e.g. no `watch` on leases: polling alone still works
                    log.warning("Watching the Lease failed, looking every retry period: %r", error)
                    reported = True
                await asyncio.sleep(WATCH_BACKOFF_SECONDS)

    async def close(self) -> None:
        """Stop renewing and release the Lease (if held), then close the API client."""
        try:
            await self.release()
        finally:
            await self.kube.close()

    async def release(self) -> None:
        """Give the Lease up, so that a standby takes it over at once."""
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)
            self._renewing = None
        if not (self.leading or self._unanswered_write):
            return
        self._renewed_at = None
        metrics.set_leader(False)
        try:
            async with asyncio.timeout(self._deadline):
                if self._unanswered_write:  # cancelled mid-write: it may have taken the Lease
                    self._observe(await self.kube.get(self._path))
                # Twice at most: a renewal cancelled in flight may have changed the version.
                for _ in range(2):
                    if self._lease is None or self._record().holder != self.identity:
                        return
                    spec = released_spec(self._record(), datetime.now(UTC))
                    body = {**self._lease, "spec": {**self._lease.get("spec", {}), **spec}}
                    if await self.kube.replace(self._path, body) is not None:
                        log.info("Released the Lease %s/%s", self.namespace, self.name)
                        return
                    self._observe(await self.kube.get(self._path))
        except _TRANSIENT as error:
            log.warning(
                "Releasing the Lease %s/%s failed (a standby takes over once it expires): %s",
                self.namespace,
                self.name,
                error,
            )

    def _record(self) -> Record:
        return Record.of(self._lease) if self._lease is not None else Record()

    def _observe(self, lease: Obj | None) -> None:
        """Remember the Lease; note *when* (our clock) its record last changed."""
        before = None if self._lease is None else self._lease.get("spec")
        after = None if lease is None else lease.get("spec")
        if before != after:
            self._observed_at = self._clock()
        self._lease = lease

    async def _round(self) -> Decision | None:
        """One round of client-go's tryAcquireOrRenew. ACQUIRE or RENEW: this process now holds
        the Lease; WAIT or LOST: another does; None: a write lost a race (try again)."""
        sent = self._clock()
        if self.leading and await self._write(Decision.RENEW, sent):
            return Decision.RENEW  # the fast path: renew what we wrote last, no read
        self._observe(await self.kube.get(self._path))
        record = None if self._lease is None else self._record()
        decision = decide(record, self.identity, self.leading, self._clock(), self._observed_at)
        if decision in (Decision.WAIT, Decision.LOST):
            return decision
        return decision if await self._write(decision, sent) else None

    async def _write(self, decision: Decision, sent: float) -> bool:
        """Create or update the Lease for `decision`; False when another write came first."""
        record = None if self._lease is None else self._record()
        spec = next_spec(decision, record, self.identity, self._duration, datetime.now(UTC))
        self._unanswered_write = True
        if self._lease is None:
            body = {
                "apiVersion": LEASES.api_version,
                "kind": LEASES.kind,
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": spec,
            }
            written = await self.kube.create(LEASES.path(self.namespace), body)
        else:
            body = {**self._lease, "spec": {**self._lease.get("spec", {}), **spec}}
            written = await self.kube.replace(self._path, body)
        self._unanswered_write = False
        if written is None:
            return False
        self._observe(written)
        # The API server applied the write at some moment after we sent it: count from then.
        self._renewed_at = sent
        return True

    async def _keep(self) -> None:
        """Renew every retry period until no renewal has succeeded for the renew deadline."""
        try:
            while True:
                await asyncio.sleep(self._retry)
                while True:
                    assert self._renewed_at is not None
                    remaining = self._renewed_at + self._deadline - self._clock()
                    if remaining <= 0:
                        self._lose(f"no renewal succeeded for {self._deadline:g}s")
                        return
                    try:
                        async with asyncio.timeout(remaining):
                            decision = await self._round()
                    except _TRANSIENT as error:
                        log.warning("Renewing the Lease failed: %s", error)
                        decision = None
                    if decision is Decision.RENEW:
                        break
                    if decision is Decision.LOST:
                        self._lose(f"it is held by {self._record().holder!r} now")
                        return
                    await asyncio.sleep(min(self._retry, remaining))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug here must not leave a leader that no longer renews
            log.exception("Renewing the Lease failed unexpectedly")
            self._lose(f"renewal failed: {error!r}")

    def _lose(self, reason: str) -> None:
        self._renewed_at = None
        metrics.set_leader(False)
        log.error("Lost the Lease %s/%s: %s", self.namespace, self.name, reason)
        self._on_lost(reason)
