"""metrics.observe/forget, read back through the Prometheus registry the endpoint serves."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import generate_latest

from initpipeline import metrics

pytestmark = pytest.mark.unit

DURATION = "initpipeline_step_duration_seconds"


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def step(
    name: str, type_: str, state: str, started: str | None = None, finished: str | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "type": type_, "state": state}
    if started:
        entry["startedAt"] = started
    if finished:
        entry["finishedAt"] = finished
    return entry


def status(reason: str, *steps: dict[str, Any]) -> dict[str, Any]:
    ready = "True" if reason in ("Running", "Succeeded") else "False"
    return {
        "steps": list(steps),
        "conditions": [{"type": "Ready", "status": ready, "reason": reason}],
    }


@pytest.fixture
def pipeline() -> Iterator[tuple[str, str]]:
    """A (namespace, name) no other test uses: the registry is process-wide."""
    key = ("ns-" + uuid.uuid4().hex[:8], "web")
    yield key
    metrics.forget(*key)


def test_finished_step_records_its_duration_by_type_and_outcome(
    pipeline: tuple[str, str],
) -> None:
    labels = {"type": "WaitFor", "outcome": "succeeded"}
    count, total = sample(f"{DURATION}_count", **labels), sample(f"{DURATION}_sum", **labels)
    running = status(
        "WaitingForDependency", step("wait-db", "WaitFor", "Running", "2026-11-25T10:00:01Z")
    )
    done = status(
        "Initializing",
        step("wait-db", "WaitFor", "Succeeded", "2026-11-25T10:00:01Z", "2026-11-25T10:00:13Z"),
    )
    metrics.observe(*pipeline, running, done)
    assert sample(f"{DURATION}_count", **labels) == count + 1
    assert sample(f"{DURATION}_sum", **labels) == pytest.approx(total + 12)
    # 12s lands in the le=30 bucket, not in le=10.
    assert sample(f"{DURATION}_bucket", le="30.0", **labels) >= 1


def test_a_finished_step_counts_once_however_often_status_is_written(
    pipeline: tuple[str, str],
) -> None:
    labels = {"type": "Download", "outcome": "succeeded"}
    count = sample(f"{DURATION}_count", **labels)
    done = status(
        "Running",
        step("fetch", "Download", "Succeeded", "2026-11-25T10:00:00Z", "2026-11-25T10:00:02Z"),
    )
    metrics.observe(*pipeline, {}, done)
    metrics.observe(*pipeline, done, done)
    metrics.observe(*pipeline, done, done)
    assert sample(f"{DURATION}_count", **labels) == count + 1


def test_failed_step_is_recorded_with_outcome_failed(pipeline: tuple[str, str]) -> None:
    labels = {"type": "Run", "outcome": "failed"}
    count = sample(f"{DURATION}_count", **labels)
    failed = status(
        "StepFailed",
        step("migrate", "Run", "Failed", "2026-11-25T10:00:00Z", "2026-11-25T10:01:00Z"),
    )
    metrics.observe(*pipeline, status("Initializing", step("migrate", "Run", "Running")), failed)
    assert sample(f"{DURATION}_count", **labels) == count + 1


def test_step_without_timestamps_is_not_recorded(pipeline: tuple[str, str]) -> None:
    labels = {"type": "CopyAssets", "outcome": "succeeded"}
    count = sample(f"{DURATION}_count", **labels)
    metrics.observe(*pipeline, {}, status("Running", step("assets", "CopyAssets", "Succeeded")))
    assert sample(f"{DURATION}_count", **labels) == count


def test_pipelines_are_counted_by_ready_reason_and_forgotten_when_deleted() -> None:
    ns = "ns-" + uuid.uuid4().hex[:8]
    before = {r: sample("initpipeline_pipelines", state=r) for r in ("Initializing", "Running")}
    metrics.observe(ns, "a", {}, status("Initializing"))
    metrics.observe(ns, "b", {}, status("Initializing"))
    assert sample("initpipeline_pipelines", state="Initializing") == before["Initializing"] + 2
    metrics.observe(ns, "a", status("Initializing"), status("Running"))
    assert sample("initpipeline_pipelines", state="Initializing") == before["Initializing"] + 1
    assert sample("initpipeline_pipelines", state="Running") == before["Running"] + 1
    metrics.forget(ns, "a")
    metrics.forget(ns, "b")
    # States that dropped to zero stay exported as 0 rather than vanishing.
    assert sample("initpipeline_pipelines", state="Initializing") == before["Initializing"]
    assert sample("initpipeline_pipelines", state="Running") == before["Running"]
    metrics.forget(ns, "never-seen")  # harmless


def test_status_without_ready_condition_counts_as_unknown(pipeline: tuple[str, str]) -> None:
    before = sample("initpipeline_pipelines", state="Unknown")
    metrics.observe(*pipeline, {}, {"steps": []})
    assert sample("initpipeline_pipelines", state="Unknown") == before + 1


def test_exposition_names_and_help_texts_are_the_documented_ones() -> None:
    text = generate_latest(metrics.REGISTRY).decode()
    assert f"# TYPE {DURATION} histogram" in text
    assert "# TYPE initpipeline_pipelines gauge" in text
    assert f"# HELP {DURATION} Time from a step's start to its end" in text


def test_leader_gauge_says_whether_this_process_reconciles() -> None:
    metrics.set_leader(True)
    assert sample("initpipeline_leader") == 1
    metrics.set_leader(False)
    assert sample("initpipeline_leader") == 0
    assert "# TYPE initpipeline_leader gauge" in generate_latest(metrics.REGISTRY).decode()


def test_set_state_counts_a_pipeline_once_whatever_how_often_it_is_seen(
    pipeline: tuple[str, str],
) -> None:
    before = sample("initpipeline_pipelines", state="WaitingForDependency")
    for _ in range(3):  # every reconcile, changed status or not
        metrics.set_state(*pipeline, status("WaitingForDependency"))
    assert sample("initpipeline_pipelines", state="WaitingForDependency") == before + 1
    metrics.set_state(*pipeline, status("Running"))
    assert sample("initpipeline_pipelines", state="WaitingForDependency") == before
