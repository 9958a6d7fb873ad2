"""The fuzz tier's verdicts: what counts as InvalidSpec, working, and a disagreement."""

from __future__ import annotations

from typing import Any

import pytest
from tests.fuzz import outcome

pytestmark = pytest.mark.unit


def stored(reason: str | None, message: str = "", generation: int = 1, seen: int = 1) -> Any:
    obj: dict[str, Any] = {"metadata": {"name": "p", "generation": generation}, "spec": {}}
    if reason is not None:
        obj["status"] = {
            "observedGeneration": seen,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": reason, "message": message}
            ],
        }
    return obj


def test_no_status_or_an_older_generation_is_still_waiting() -> None:
    assert outcome.operator_verdict(stored(None)).kind == "waiting"
    assert outcome.operator_verdict(stored("Pending", generation=2, seen=1)).kind == "waiting"


def test_invalid_spec_must_name_the_field() -> None:
    named = outcome.operator_verdict(stored("InvalidSpec", "spec.steps[0].name: bad"))
    assert named.kind == "invalid"
    assert outcome.operator_verdict(stored("InvalidSpec", "it is wrong")).kind == "bad"


def test_progressing_reasons_work_and_pod_creation_failures_do_not() -> None:
    assert outcome.operator_verdict(stored("Pending", "waiting")).kind == "working"
    assert outcome.operator_verdict(stored("Suspended")).kind == "working"
    assert outcome.operator_verdict(stored("PodCreationFailed", "pod x: invalid")).kind == "bad"
    refused = stored("PodCreationFailed", 'pod x: spec.containers[1].name: Duplicate value: "a"')
    assert outcome.operator_verdict(refused).kind == "pod-refused"


def test_pods_are_expected_unless_suspended_or_scaled_to_zero() -> None:
    assert outcome.expects_pods({"spec": {}})
    assert not outcome.expects_pods({"spec": {"suspend": True}})
    assert not outcome.expects_pods({"spec": {"replicas": 0}})


def test_a_disagreement_is_one_side_refusing_what_the_other_takes() -> None:
    invalid = outcome.Verdict("invalid", "InvalidSpec", "spec.x: bad")
    working = outcome.Verdict("working", "Pending")
    assert outcome.disagreement(invalid, "initpipeline: spec.x: bad") is None
    assert outcome.disagreement(working, None) is None
    assert outcome.disagreement(invalid, None)
    assert outcome.disagreement(working, "initpipeline: spec.x: bad")


def test_a_top_level_unknown_field_is_named() -> None:
    assert outcome.names_a_field('strict decoding error: unknown field "Name"')
    assert not outcome.names_a_field("strict decoding error")


def test_the_summary_line_counts_each_kind() -> None:
    verdicts = [
        outcome.Verdict("invalid"),
        outcome.Verdict("working"),
        outcome.Verdict("pod-refused"),
    ]
    summary = outcome.summarize(5, 2, verdicts)
    assert summary.line() == (
        "fuzz: 5 tried, 2 refused at create, 3 accepted, 1 InvalidSpec, 1 working, "
        "1 PodCreationFailed (the Pod spec refused)"
    )
