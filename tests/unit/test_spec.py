"""Parsing refuses bad specs with one message that names the field to fix."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from initpipeline.spec import SHA256_PATTERN, InvalidSpec, StepType, TargetKind, parse_pipeline

pytestmark = pytest.mark.unit

EXAMPLE = yaml.safe_load((Path(__file__).parents[1] / "data" / "api-example.yaml").read_text())
CRD = Path(__file__).parents[2] / "crds" / "initpipelines.initpipeline.io.yaml"


def test_the_api_example_parses_with_every_step_type() -> None:
    pipeline = parse_pipeline(EXAMPLE)
    assert (pipeline.name, pipeline.namespace) == ("shop-web", "shop")
    assert [s.type for s in pipeline.spec.steps] == list(StepType)
    assert [t.kind for t in pipeline.spec.steps[0].targets] == list(TargetKind)
    assert pipeline.spec.replicas == 1
    assert pipeline.spec.restart_policy == "Always"


def steps(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["spec"]["steps"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            lambda b: steps(b)[1]["download"].update(url="ftp://x"),
            "spec.steps[1].download.url",
            "http:// or https://",
        ),
        (
            lambda b: steps(b)[0]["waitFor"][1].update(port=3),
            "spec.steps[0].waitFor[1]",
            "port is only allowed with service",
        ),
        (
            lambda b: steps(b)[0]["waitFor"][1].update(dns="x"),
            "spec.steps[0].waitFor[1]",
            "exactly one of",
        ),
        (
            lambda b: steps(b)[0]["waitFor"][1].update(tcp="mysql"),
            "spec.steps[0].waitFor[1].tcp",
            "host:port",
        ),
        (
            lambda b: steps(b)[2].update(run={"image": "x"}),
            "spec.steps[2]",
            "exactly one of waitFor",
        ),
        (
            lambda b: steps(b)[3]["prepareVolume"].update(mode="999"),
            "spec.steps[3].prepareVolume.mode",
            "octal",
        ),
        (
            lambda b: steps(b)[1]["download"].update(path="../etc/passwd"),
            "spec.steps[1].download.path",
            "without '..'",
        ),
        (
            lambda b: steps(b)[4]["run"].update(name="x"),
            "spec.steps[4].run",
            "step name is the container name",
        ),
        (
            lambda b: steps(b).append({"name": "web", "run": {"image": "x"}}),
            "spec.steps[6].name",
            "already used",
        ),
        (
            lambda b: steps(b).append({"name": "site", "run": {"image": "x"}}),
            "spec.steps[6].name",
            "already used",
        ),
        (lambda b: steps(b)[0].update(name="initpipeline-x"), "spec.steps[0].name", "reserved"),
        (lambda b: steps(b)[0].update(name="Bad_Name"), "spec.steps[0].name", "DNS-1123"),
        (
            lambda b: b["spec"]["template"]["spec"].update(initContainers=[{"name": "i"}]),
            "spec.template",
            "use steps",
        ),
        (lambda b: b["spec"].update(replicas=-1), "spec.replicas", "greater than or equal to 0"),
        (
            lambda b: steps(b)[1]["download"].update(sha256="abc"),
            "spec.steps[1].download.sha256",
            "'abc' must be a sha256 digest: 64 hexadecimal digits",
        ),
        (
            lambda b: steps(b)[1]["download"].update(sha256="g" * 64),
            "spec.steps[1].download.sha256",
            "must be a sha256 digest: 64 hexadecimal digits",
        ),
        (
            lambda b: b["spec"]["template"]["metadata"]["labels"].update(
                {"initpipeline.io/pipeline": "other"}
            ),
            "spec.template.metadata.labels",
            "labels under initpipeline.io/ are set by the operator",
        ),
    ],
)
def test_invalid_specs_name_the_field(
    change: Callable[[dict[str, Any]], None], field: str, message: str
) -> None:
    body = copy.deepcopy(EXAMPLE)
    change(body)
    with pytest.raises(InvalidSpec) as raised:
        parse_pipeline(body)
    assert raised.value.field == field
    assert message in raised.value.message


def test_download_sha256_is_kept_in_lower_case_and_matches_the_crd_pattern() -> None:
    body = copy.deepcopy(EXAMPLE)
    steps(body)[1]["download"]["sha256"] = "AB" * 32
    download = parse_pipeline(body).spec.steps[1].download
    assert download is not None
    assert download.sha256 == "ab" * 32
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    step = schema["properties"]["spec"]["properties"]["steps"]["items"]
    assert step["properties"]["download"]["properties"]["sha256"]["pattern"] == SHA256_PATTERN


def test_pipeline_names_longer_than_a_label_value_are_refused_naming_metadata_name() -> None:
    # The name is the value of the Pods' initpipeline.io/pipeline label: at most 63
    # characters, as the CRD's rule on metadata.name says.
    body = copy.deepcopy(EXAMPLE)
    body["metadata"]["name"] = "a" * 64
    with pytest.raises(InvalidSpec) as raised:
        parse_pipeline(body)
    assert raised.value.field == "metadata.name"
    assert raised.value.message == (
        "must be at most 63 characters (it is the value of the Pods' label "
        "initpipeline.io/pipeline)"
    )
    body["metadata"]["name"] = "a" * 63
    assert parse_pipeline(body).name == "a" * 63
