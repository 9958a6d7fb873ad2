"""`render -f` reads a document as the API server stores it (found by the fuzz tier)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from initpipeline.render import render_pods
from initpipeline.settings import DEFAULT_STEP_IMAGE
from initpipeline.spec import InvalidSpec, parse_pipeline

pytestmark = pytest.mark.unit


def sidecar_pipeline(period: Any) -> dict[str, Any]:
    probe = {"tcpSocket": {"port": 80}, "periodSeconds": period}
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "steps": [{"name": "s", "sidecar": {"image": "busybox", "readinessProbe": probe}}],
            "template": {"spec": {"containers": [{"name": "app", "image": "busybox"}]}},
        },
    }


def test_a_whole_float_period_is_the_integer_the_api_server_stores() -> None:
    # fuzz case fz00983 (seed 1): the API server accepts periodSeconds 2.0 and stores 2.
    pipeline = parse_pipeline(sidecar_pipeline(2.0))
    sidecar = render_pods(pipeline, DEFAULT_STEP_IMAGE)[0]["spec"]["initContainers"][0]
    assert sidecar["readinessProbe"]["periodSeconds"] == 2
    assert isinstance(sidecar["readinessProbe"]["periodSeconds"], int)
    assert sidecar["startupProbe"]["periodSeconds"] == 2
    assert pipeline.spec == parse_pipeline(sidecar_pipeline(2)).spec


def test_a_fractional_period_is_still_refused() -> None:
    with pytest.raises(InvalidSpec) as raised:
        parse_pipeline(sidecar_pipeline(1.5))
    assert str(raised.value) == (
        'spec.steps[0].sidecar: readinessProbe.periodSeconds must be an integer (step "s")'
    )


def test_render_prints_no_pods_for_a_suspended_pipeline(tmp_path: Any) -> None:
    from initpipeline import cli

    document = {"apiVersion": "initpipeline.io/v1alpha1", "kind": "InitPipeline"}
    running = {**document, **sidecar_pipeline(2)}
    suspended = {**running, "spec": {**running["spec"], "suspend": True}}
    suspended["metadata"] = {"name": "q", "namespace": "ns"}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([running, suspended]))
    pods = [pod for pod in yaml.safe_load_all(cli.render(str(path), DEFAULT_STEP_IMAGE)) if pod]
    assert [pod["metadata"]["ownerReferences"][0]["name"] for pod in pods] == ["p"]
