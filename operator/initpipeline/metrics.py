"""Prometheus metrics: step durations by type and outcome, pipelines by state, who leads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server

from initpipeline.fields import find_condition, seconds_between

REGISTRY = CollectorRegistry()

STEP_DURATION = Histogram(
    "initpipeline_step_duration_seconds",
    "Time from a step's start to its end, by step type and outcome.",
    ["type", "outcome"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)
PIPELINES = Gauge(
    "initpipeline_pipelines",
    "InitPipelines by the reason of their Ready condition.",
    ["state"],
    registry=REGISTRY,
)

LEADER = Gauge(
    "initpipeline_leader",
    "1 while this process reconciles (holds the leader Lease, or runs without leader "
    "election), 0 on a standby.",
    registry=REGISTRY,
)

_FINAL_STATES = {"Succeeded", "Failed"}
_state_of: dict[tuple[str, str], str] = {}
_published: set[str] = set()
_serving: set[int] = set()


def serve(port: int) -> None:
    """Serve /metrics on `port` (once: Kopf calls a failed startup handler again)."""
    if port not in _serving:
        start_http_server(port, registry=REGISTRY)
        _serving.add(port)


def set_leader(leading: bool) -> None:
    LEADER.set(1 if leading else 0)


def ready_reason(status: Mapping[str, Any]) -> str:
    """The state a pipeline counts under: its Ready condition's reason."""
    return str((find_condition(status, "Ready") or {}).get("reason") or "Unknown")


def observe(
    namespace: str, name: str, previous: Mapping[str, Any], status: Mapping[str, Any]
) -> None:
    """Record what changed between two statuses of one pipeline (steps that ended)."""
    before = {step["name"]: step.get("state") for step in previous.get("steps", [])}
    for step in status.get("steps", []):
        state = step.get("state")
        if state in _FINAL_STATES and before.get(step["name"]) != state:
            seconds = seconds_between(step.get("startedAt"), step.get("finishedAt"))
            if seconds is not None:
                STEP_DURATION.labels(step["type"], state.lower()).observe(seconds)
    set_state(namespace, name, status)


def set_state(namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """Count the pipeline under its current state, whether or not its status just changed:
    after a restart, every pipeline counts from its first reconcile."""
    state = ready_reason(status)
    if _state_of.get((namespace, name)) != state:
        _state_of[(namespace, name)] = state
        _publish()


def forget(namespace: str, name: str) -> None:
    """A deleted pipeline no longer counts."""
    _state_of.pop((namespace, name), None)
    _publish()


def _publish() -> None:
    counts = Counter(_state_of.values())
    _published.update(counts)
    for state in _published:  # a state no pipeline is in any more reads 0, not its last count
        PIPELINES.labels(state).set(counts[state])
