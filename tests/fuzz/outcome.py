"""What the fuzz tier concludes from one document: pure functions of what the API server,
the operator and `initpipeline render -f` said, unit-tested in tests/unit/test_fuzz_outcome.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.fuzz.harness import names_a_field

# Ready reasons of a pipeline the operator works on (Pods created or on their way), and
# DeadlineExceeded: the Pods are never scheduled here, so a spec.activeDeadlineSeconds ends
# their start-up.
WORKING = frozenset(
    {
        "Pending",
        "Initializing",
        "WaitingForDependency",
        "Running",
        "Succeeded",
        "Suspended",
        "DeadlineExceeded",
    }
)


@dataclass(frozen=True)
class Verdict:
    """The operator's word on one stored pipeline."""

    # "waiting" (no status for this generation yet), "invalid", "working", "pod-refused"
    # (the API server refused the rendered Pod, naming its field: the template's Pod spec
    # is the user's and the CRD does not validate it), "bad"
    kind: str
    reason: str = ""
    message: str = ""


def operator_verdict(obj: Mapping[str, Any]) -> Verdict:
    """From the stored object: its Ready condition for the current generation."""
    generation = (obj.get("metadata") or {}).get("generation")
    status = obj.get("status") or {}
    if not status or status.get("observedGeneration") != generation:
        return Verdict("waiting")
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None:
        return Verdict("waiting")
    reason, message = str(ready.get("reason", "")), str(ready.get("message", ""))
    if reason == "InvalidSpec":
        kind = "invalid" if names_a_field(message) else "bad"
        return Verdict(kind, reason, message)
    if reason == "PodCreationFailed" and names_a_field(message):
        return Verdict("pod-refused", reason, message)
    return Verdict("working" if reason in WORKING else "bad", reason, message)


def expects_pods(document: Mapping[str, Any]) -> bool:
    """A valid pipeline that is not suspended and has replicas gets Pods."""
    spec = document.get("spec") or {}
    return not spec.get("suspend", False) and spec.get("replicas", 1) != 0


@dataclass(frozen=True)
class Summary:
    tried: int
    refused: int
    accepted: int
    invalid: int
    working: int
    pod_refused: int

    def line(self) -> str:
        return (
            f"fuzz: {self.tried} tried, {self.refused} refused at create, {self.accepted} "
            f"accepted, {self.invalid} InvalidSpec, {self.working} working, "
            f"{self.pod_refused} PodCreationFailed (the Pod spec refused)"
        )


def summarize(tried: int, refused: int, verdicts: Iterable[Verdict]) -> Summary:
    kinds = [v.kind for v in verdicts]
    return Summary(
        tried,
        refused,
        len(kinds),
        kinds.count("invalid"),
        kinds.count("working"),
        kinds.count("pod-refused"),
    )


def disagreement(verdict: Verdict, render_error: str | None) -> str | None:
    """Why render and the operator disagree on one accepted document, or None."""
    if verdict.kind == "invalid" and render_error is None:
        return f"operator: InvalidSpec ({verdict.message}); render -f renders it"
    if verdict.kind in ("working", "pod-refused") and render_error is not None:
        return f"operator: {verdict.reason}; render -f refuses it: {render_error}"
    return None
