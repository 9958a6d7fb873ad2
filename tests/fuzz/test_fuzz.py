"""The fuzz tier: >= 1000 generated InitPipelines (tests/fuzz/generate.py, a fixed seed)
created against the API server in a namespace of their own, with one operator process
watching only that namespace.

Each document is refused at create naming the field, or accepted; each accepted one ends with
a status (InvalidSpec naming the field, or working: Pods created, unscheduled); the operator
never exits and logs no traceback; `initpipeline render -f` refuses exactly the accepted
documents the operator marks InvalidSpec.

    make test-fuzz        # or: uv run pytest -m fuzz tests/fuzz
    python -m tests.fuzz.generate --seed 1 --case 417   # replay one case
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from tests.fuzz import generate, harness, outcome
from tests.helpers import eventually, operator_process

pytestmark = [pytest.mark.fuzz, pytest.mark.integration, pytest.mark.timeout(900)]

SEED = generate.DEFAULT_SEED
COUNT = int(os.environ.get("INITPIPELINE_FUZZ_COUNT", "1000"))
PIPELINES = harness.PLURAL_PATH
PIPELINE_LABEL = "initpipeline.io/pipeline"


def test_generated_pipelines_are_refused_naming_a_field_or_end_with_a_status(
    kubeconfig: str, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert COUNT >= 1000 or "INITPIPELINE_FUZZ_COUNT" in os.environ
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    cases = generate.generate(SEED, COUNT)
    log = tmp_path / "operator.log"
    with operator_process(kubeconfig, log, INITPIPELINE_NAMESPACES=namespace) as operator:
        created = harness.create_all([(namespace, c.document) for c in cases], parallel=8)
        problems: list[str] = []
        accepted = {}
        for case, answer in zip(cases, created, strict=True):
            if answer.accepted:
                assert answer.body is not None
                accepted[answer.body["metadata"]["name"]] = case
            elif not harness.names_a_field(answer.message):
                problems.append(
                    f"{case.name} ({case.label}): refused naming no field: "
                    f"{answer.status} {answer.message}"
                )

        def settled() -> dict[str, outcome.Verdict] | None:
            operator.alive()
            stored = harness.list_objects(PIPELINES.format(namespace=namespace))
            verdicts = {o["metadata"]["name"]: outcome.operator_verdict(o) for o in stored}
            pods = Counter(
                p["metadata"].get("labels", {}).get(PIPELINE_LABEL)
                for p in harness.list_objects(f"/api/v1/namespaces/{namespace}/pods")
            )
            for name, verdict in verdicts.items():
                if verdict.kind == "waiting":
                    return None
                case = accepted.get(name)
                working = verdict.kind == "working" and case is not None
                if working and outcome.expects_pods(case.document) and not pods[name]:
                    return None
            return verdicts if set(verdicts) >= set(accepted) else None

        verdicts = eventually(settled, timeout=600, interval=2)
        operator.alive()
    log_text = log.read_text(errors="replace")

    for name, case in sorted(accepted.items()):
        verdict = verdicts[name]
        where = f"{case.name} ({case.label})"
        if verdict.kind == "bad":
            problems.append(f"{where}: status {verdict.reason}: {verdict.message}")
        rendered = harness.render_verdict(case.document, tmp_path)
        if rendered.crash:
            problems.append(f"{where}: render -f crashed: {rendered.crash}")
        elif why := outcome.disagreement(verdict, rendered.error):
            problems.append(f"{where}: {why}")

    summary = outcome.summarize(
        len(cases), len(cases) - len(accepted), (verdicts[n] for n in accepted)
    )
    print(summary.line())
    assert "Traceback" not in log_text, log_text[-5000:]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:80])
