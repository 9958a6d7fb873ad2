"""The whole `status` of an InitPipeline from its spec, its Pods and the operator's findings.

- `steps[]`, `progress` and `currentStep` describe the representative Pod (`pods`); with no
  current Pod every step is Pending and `currentStep` is "".
- `waitingOn` only on a wait step that is the current step and Pending/Running: the
  operator's API-side findings, then the Pod's own last `waiting:` report
  (`messages.wait_report`, read from the containers `wait_logs_to_read` names).
- `heldTargets`: the Job targets that held, per step and spec revision (`held`), carried
  forward from `previous`.
- `retriesStatus` and `attempt`: the failed attempts spec.retries replaced, and the
  representative Pod's attempt (`retries`).
- Every top-level key is always present (a JSON merge patch of the dict replaces every
  field); step entries leave out empty fields; nothing is ever None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from initpipeline import messages
from initpipeline.fields import as_int, as_mapping
from initpipeline.names import PIPELINE_LABEL
from initpipeline.spec import Pipeline, StepType
from initpipeline.status import held, retries
from initpipeline.status.conditions import conditions
from initpipeline.status.kubelet import StepView, step_entry
from initpipeline.status.pods import PodView, current_pods
from initpipeline.status.states import Reason, StepState
from initpipeline.status.text import one_line
from initpipeline.status.verdict import Problems, Verdict, overruling, verdict


def _unique(items: Iterable[str]) -> list[str]:
    """Distinct findings, placeholders left out (also those an older operator wrote)."""
    found = (item for item in items if item and not messages.is_placeholder(item))
    return list(dict.fromkeys(found))[: messages.MAX_WAITING_ON]


def _assemble(
    verdict: Verdict,
    previous: Mapping[str, Any] | None,
    now: datetime,
    *,
    name: str,
    generation: int,
    replicas: int,
    steps: list[dict[str, Any]],
    held_targets: list[dict[str, str]],
    retried: Sequence[dict[str, Any]],
    ready_replicas: int = 0,
    finished: int = 0,
    current_step: str = "",
    attempt: str = "",
    pods: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The status dict; the defaults describe a pipeline with no Pod to report."""
    entries = conditions(verdict, previous, generation, now)
    return {
        "observedGeneration": generation,
        "replicas": replicas,
        "readyReplicas": ready_replicas,
        "ready": f"{ready_replicas}/{replicas}",
        "selector": f"{PIPELINE_LABEL}={name}",
        "progress": f"{finished}/{len(steps)}",
        "currentStep": current_step,
        "attempt": attempt,
        "message": entries[0]["message"],
        "pods": list(pods),
        "steps": steps,
        "conditions": entries,
        held.FIELD: held_targets,
        retries.FIELD: list(retried),
    }


def _identity(pipeline: Pipeline) -> dict[str, Any]:
    """The `_assemble` arguments that come from the pipeline itself."""
    return {
        "name": pipeline.name,
        "generation": pipeline.generation,
        "replicas": pipeline.spec.replicas,
    }


def _waiting_step(pipeline: Pipeline, pod: PodView) -> str | None:
    """The name of the Pod's current step when it is a wait step still waiting."""
    index = pod.current
    if index is None or pipeline.spec.steps[index].type is not StepType.WAIT_FOR:
        return None
    if pod.steps[index].state not in (StepState.PENDING, StepState.RUNNING):
        return None
    return pipeline.spec.steps[index].name


def wait_logs_to_read(
    pipeline: Pipeline, pods: Sequence[Mapping[str, Any]], current_hash: str | None = None
) -> list[tuple[str, str]]:
    """(pod name, container name) of the running wait containers whose `wait_report`
    `derive_status` uses (the representative Pod's; none when it does not wait, or when
    its step checks nothing in the Pod: then the log holds only placeholders)."""
    rep = current_pods(pipeline, pods, current_hash).rep
    if rep is None or (name := _waiting_step(pipeline, rep)) is None:
        return []
    index = rep.current
    assert index is not None
    if not pipeline.spec.steps[index].has_pod_checks:
        return []
    return [(rep.name, name)] if rep.steps[index].state is StepState.RUNNING else []


def derive_status(
    pipeline: Pipeline,
    pods: Sequence[Mapping[str, Any]],
    api_waiting: Mapping[str, Sequence[str]],
    previous: Mapping[str, Any] | None,
    now: datetime,
    current_hash: str | None = None,
    wait_reports: Mapping[tuple[str, str], str] | None = None,
    *,
    problems: Problems | None = None,
    once: Mapping[str, StepView] | None = None,
) -> dict[str, Any]:
    """The whole `status` of an InitPipeline.

    pods: the Pods of this pipeline as the API returns them. With `current_hash`, only those
      labelled SPEC_HASH_LABEL == current_hash count; with None, all given Pods do (the
      caller filtered them). Pods being deleted never count.
    api_waiting: step name -> the operator's unmet API-side targets of that wait step,
      already formatted (`service mydb: no ready endpoints`); [] or absent when none.
    previous: the CR's current `status` (or None): conditions keep their lastTransitionTime,
      `heldTargets` is carried forward (`held.carry_forward`).
    now: when the status is derived; only used for conditions that flip.
    wait_reports: (pod name, step name) -> `wait_report()` of that wait container's log
      (`wait_logs_to_read` says which).
    problems: outcomes decided outside the Pods (invalid spec, refused Pod, old cluster).
    once: step name -> the view of a `once` step's Job (`status.once.once_views`), which
      stands for that step in every Pod.
    """
    problems = problems or Problems()
    spec = pipeline.spec
    steps = spec.steps
    pending = [step_entry(step, StepView(), ()) for step in steps]
    held_targets = held.carry_forward(pipeline, api_waiting, previous, now)
    overruled = overruling(problems, spec.suspend, len(pods))
    if overruled is not None and (problems.invalid_spec is not None or spec.suspend):
        # No Pod of this spec can exist (or should): report none.
        return _assemble(
            overruled,
            previous,
            now,
            **_identity(pipeline),
            steps=pending,
            held_targets=held_targets,
            retried=retries.retries_status(pipeline, (), previous, current_hash),
        )

    seen = current_pods(pipeline, pods, current_hash, once)
    current, rep = seen.current, seen.rep
    reports = wait_reports or {}

    def waiting_on(pod: PodView) -> list[str]:
        name = _waiting_step(pipeline, pod)
        if name is None:
            return []
        found = messages.report_lines(reports.get((pod.name, name)))
        return _unique([*api_waiting.get(name, ()), *(one_line(line) for line in found)])

    if rep is None:
        entries, finished, current_step, rep_waiting = pending, 0, "", []
    else:
        index = rep.current
        rep_waiting = waiting_on(rep)
        entries = [
            step_entry(step, view, rep_waiting if i == index else ())
            for i, (step, view) in enumerate(zip(steps, rep.steps, strict=True))
        ]
        finished = rep.finished
        current_step = steps[index].name if index is not None else ""
    if rep is not None and rep.failed is not None and steps[rep.failed].type is StepType.WAIT_FOR:
        # A timed-out step without a termination message: name what it was still waiting for.
        rep_waiting = _unique(
            [
                *api_waiting.get(steps[rep.failed].name, ()),
                *_previous_waiting(previous, steps[rep.failed].name),
            ]
        )

    pod_entries = [
        {
            "name": pod.name,
            "phase": pod.phase,
            "ready": pod.ready,
            "currentStep": steps[pod.current].name if pod.current is not None else "",
            "restarts": pod.restarts,
        }
        for pod in current
    ]
    outcome = overruled or verdict(pipeline, current, seen.others, rep, rep_waiting)
    return _assemble(
        outcome,
        previous,
        now,
        **_identity(pipeline),
        steps=entries,
        held_targets=held_targets,
        retried=retries.retries_status(pipeline, seen.replaced, previous, current_hash),
        ready_replicas=sum(pod.ready for pod in current),
        finished=finished,
        current_step=current_step,
        attempt=retries.attempt(pipeline, rep),
        pods=pod_entries,
    )


def _previous_waiting(previous: Mapping[str, Any] | None, name: str) -> list[str]:
    for entry in as_mapping(previous).get("steps") or ():
        entry = as_mapping(entry)
        if entry.get("name") == name:
            return [str(item) for item in entry.get("waitingOn") or ()]
    return []


def unparsed_status(
    body: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    now: datetime,
    problems: Problems,
) -> dict[str, Any]:
    """The status of a CR whose spec does not parse (problems.invalid_spec says why).

    No step is known for sure, so `steps` and `pods` are empty and `progress` is "0/0".
    """
    generation = as_int(as_mapping(body.get("metadata")).get("generation")) or 0
    raw = as_int(as_mapping(body.get("spec")).get("replicas", 1))
    replicas = raw if raw is not None and raw >= 0 else 1
    outcome = overruling(problems, False, 0) or Verdict(
        False, Reason.INVALID_SPEC, "the spec cannot be parsed", stalled=True
    )
    return _assemble(
        outcome,
        previous,
        now,
        name=str(as_mapping(body.get("metadata")).get("name", "")),
        generation=generation,
        replicas=replicas,
        steps=[],
        held_targets=held.unparsed(previous),
        retried=retries.unparsed(previous),
    )


def status_changed(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    """True when patching `current` would change what the CR shows.

    Keys of `previous` that this module does not write (e.g. Kopf's own `status.kopf`) are
    ignored.
    """
    before = as_mapping(previous)
    return any(before.get(key) != value for key, value in current.items())
