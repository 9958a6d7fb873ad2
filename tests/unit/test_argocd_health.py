"""The Argo CD health check (deploy/argocd/health.lua), run by a real Lua interpreter.

Argo CD runs the script as a function body with the live object in the global `obj` and reads
`status` and `message` from the table it returns. Here the same file runs in Lua through
`lupa` (PyPI, a dev dependency), which embeds Lua.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.helpers import in_ci

pytestmark = pytest.mark.unit

ARGOCD = Path(__file__).resolve().parents[2] / "deploy" / "argocd"
SCRIPT = (ARGOCD / "health.lua").read_text()
CM_KEY = "resource.customizations.health.initpipeline.io_InitPipeline"


def health(obj: dict[str, Any]) -> dict[str, str]:
    """What Argo CD would show for `obj`: the script's `status` and `message`."""
    try:
        import lupa
    except ImportError:
        why = "needs the Lua interpreter: lupa is a dev dependency (uv sync)"
        if in_ci():
            pytest.fail(f"{why}; CI runs every tier", pytrace=False)
        pytest.skip(why)
    lua = lupa.LuaRuntime()
    check = lua.eval("function(obj)\n" + SCRIPT + "\nend")
    result = check(lua.table_from(obj, recursive=True))
    return {"status": result["status"], "message": result["message"]}


def _pipeline(
    generation: int = 3,
    observed: int | None = 3,
    ready: tuple[str, str, str] = ("False", "Initializing", "step 2/3 fetch: downloading"),
    reconciling: str = "True",
    stalled: str = "False",
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "initpipeline.io/v1alpha1",
        "kind": "InitPipeline",
        "metadata": {"name": "web", "namespace": "shop", "generation": generation},
        "spec": {"replicas": 1, "steps": []},
    }
    if observed is None:
        return obj
    status, reason, message = ready
    conditions = [
        {"type": "Ready", "status": status, "reason": reason, "message": message},
        {"type": "Reconciling", "status": reconciling, "reason": reason,
         "message": message if reconciling == "True" else ""},
        {"type": "Stalled", "status": stalled, "reason": reason,
         "message": message if stalled == "True" else ""},
    ]  # fmt: skip
    for condition in conditions:
        condition.update(observedGeneration=observed, lastTransitionTime="2026-11-25T10:00:00Z")
    obj["status"] = {"observedGeneration": observed, "replicas": 1, "conditions": conditions}
    return obj


def test_ready_and_current_generation_is_healthy() -> None:
    obj = _pipeline(ready=("True", "Running", "1/1 pods ready"), reconciling="False")
    assert health(obj) == {"status": "Healthy", "message": "1/1 pods ready"}


def test_run_to_completion_pipeline_that_succeeded_is_healthy() -> None:
    obj = _pipeline(ready=("True", "Succeeded", "all 1 pods succeeded"), reconciling="False")
    assert health(obj)["status"] == "Healthy"


def test_reconciling_is_progressing_with_the_ready_message() -> None:
    obj = _pipeline(ready=("False", "WaitingForDependency", "step 1/3 wait-db: waiting for mydb"))
    assert health(obj) == {"status": "Progressing", "message": "step 1/3 wait-db: waiting for mydb"}


def test_ready_but_stale_generation_is_progressing() -> None:
    obj = _pipeline(generation=4, observed=3,
                    ready=("True", "Running", "1/1 pods ready"), reconciling="False")  # fmt: skip
    assert health(obj) == {
        "status": "Progressing",
        "message": "Waiting for the operator to observe generation 4",
    }


def test_stalled_but_stale_generation_is_progressing() -> None:
    """The failure was about an older spec: the new one may well fix it."""
    obj = _pipeline(generation=5, observed=4, reconciling="False", stalled="True",
                    ready=("False", "StepFailed", "step 1/1 migrate: exit code 1"))  # fmt: skip
    assert health(obj) == {
        "status": "Progressing",
        "message": "Waiting for the operator to observe generation 5",
    }


def test_no_status_yet_is_progressing() -> None:
    assert health(_pipeline(observed=None)) == {
        "status": "Progressing",
        "message": "Waiting for the operator to report status",
    }


def test_stalled_is_degraded_with_the_message() -> None:
    message = "step 2/3 migrate failed: exit code 1: schema v41 found, v42 required"
    obj = _pipeline(ready=("False", "StepFailed", message), reconciling="False", stalled="True")
    assert health(obj) == {"status": "Degraded", "message": f"StepFailed: {message}"}


def test_pod_creation_failed_is_degraded_naming_the_violation() -> None:
    message = (
        'pod redis-0: pods "redis-0" is forbidden: violates PodSecurity "restricted:latest": '
        'runAsNonRoot != true (container "data-dir" must not set runAsNonRoot=false)'
    )
    obj = _pipeline(ready=("False", "PodCreationFailed", message), reconciling="False",
                    stalled="True")  # fmt: skip
    assert health(obj) == {"status": "Degraded", "message": f"PodCreationFailed: {message}"}


def test_suspended() -> None:
    obj = _pipeline(ready=("False", "Suspended", "spec.suspend is true"), reconciling="False")
    assert health(obj) == {"status": "Suspended", "message": "spec.suspend is true"}


def test_suspending_while_pods_are_deleted_is_suspended_too() -> None:
    obj = _pipeline(ready=("False", "Suspended", "spec.suspend is true: deleting 2 pods"))
    assert health(obj)["status"] == "Suspended"


def test_argocd_cm_snippet_carries_the_same_script() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    assert cm["data"][CM_KEY] == SCRIPT


def test_script_keeps_to_lua_5_1_syntax() -> None:
    """Argo CD runs gopher-lua (Lua 5.1): no integer division, goto or bitwise operators."""
    code = "\n".join(line.split("--", 1)[0] for line in SCRIPT.splitlines())
    for newer in ("//", "goto ", "::", "<<", ">>", " & ", " | "):
        assert newer not in code, newer
