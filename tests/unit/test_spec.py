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
    # renderConfig came after tests/unit/pods/ was recorded from this example (a new step
    # would change its revision): test_renderconfig.py covers it.
    assert [s.type for s in pipeline.spec.steps] == [
        kind for kind in StepType if kind is not StepType.RENDER_CONFIG
    ]
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
            "'ftp://x' must be an http:// or https:// URL (step \"fetch-config\")",
        ),
        (
            lambda b: steps(b)[0]["waitFor"][1].update(port=3),
            "spec.steps[0].waitFor[1]",
            'port is only allowed with service (step "wait-deps")',
        ),
        (
            lambda b: steps(b)[0]["waitFor"][1].update(dns="x"),
            "spec.steps[0].waitFor[1]",
            "a target needs exactly one of service, tcp, http, dns, file, job, resource, command "
            '(step "wait-deps")',
        ),
        (
            lambda b: steps(b)[0]["waitFor"][1].update(tcp="mysql"),
            "spec.steps[0].waitFor[1].tcp",
            "'mysql' must be host:port with a port from 1 to 65535 (step \"wait-deps\")",
        ),
        (
            lambda b: steps(b)[2].update(run={"image": "x"}),
            "spec.steps[2]",
            "each step needs exactly one of waitFor, download, copyAssets, prepareVolume, "
            'renderConfig, run, sidecar (step "site")',
        ),
        (
            lambda b: steps(b)[3]["prepareVolume"].update(mode="999"),
            "spec.steps[3].prepareVolume.mode",
            """'999' must be an octal mode such as "0750" (step "data-dir")""",
        ),
        (
            lambda b: steps(b)[1]["download"].update(path="../etc/passwd"),
            "spec.steps[1].download.path",
            """'../etc/passwd' must be a relative path without '..' (step "fetch-config")""",
        ),
        (
            lambda b: steps(b)[4]["run"].update(name="x"),
            "spec.steps[4].run",
            'do not set name here: the step name is the container name (step "migrate")',
        ),
        (
            lambda b: steps(b).append({"name": "web", "run": {"image": "x"}}),
            "spec.steps[6].name",
            "'web' is already used by another step or a template container",
        ),
        (
            lambda b: steps(b).append({"name": "site", "run": {"image": "x"}}),
            "spec.steps[6].name",
            "'site' is already used by another step or a template container",
        ),
        (
            lambda b: steps(b)[0].update(name="initpipeline-x"),
            "spec.steps[0].name",
            """names starting with 'initpipeline-' are reserved (step "initpipeline-x")""",
        ),
        (
            lambda b: steps(b)[0].update(name="Bad_Name"),
            "spec.steps[0].name",
            """'Bad_Name' is not a DNS-1123 label (lower case, digits, '-') (step "Bad_Name")""",
        ),
        (
            lambda b: b["spec"]["template"]["spec"].update(initContainers=[{"name": "i"}]),
            "spec.template",
            "use steps instead of template.spec.initContainers",
        ),
        (
            lambda b: b["spec"].update(replicas=-1),
            "spec.replicas",
            "Input should be greater than or equal to 0",  # pydantic's own words
        ),
        (
            lambda b: steps(b)[1]["download"].update(sha256="abc"),
            "spec.steps[1].download.sha256",
            """'abc' must be a sha256 digest: 64 hexadecimal digits (step "fetch-config")""",
        ),
        (
            lambda b: steps(b)[1]["download"].update(sha256="g" * 64),
            "spec.steps[1].download.sha256",
            f"'{'g' * 64}' must be a sha256 digest: 64 hexadecimal digits (step \"fetch-config\")",
        ),
        (
            lambda b: b["spec"]["template"]["metadata"]["labels"].update(
                {"initpipeline.io/pipeline": "other"}
            ),
            "spec.template.metadata.labels",
            "'initpipeline.io/pipeline': labels under initpipeline.io/ are set by the operator",
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
    assert raised.value.message == message
    assert str(raised.value) == f"{field}: {message}"  # the InvalidSpec condition message


@pytest.mark.parametrize("policy", [None, "Always", "OnFailure"])
def test_retries_are_refused_unless_the_pods_restart_policy_is_never(policy: str | None) -> None:
    # The same words as the CRD's rule (tests/integration/test_crd.py), so `render -f`
    # refuses what `kubectl apply` refuses.
    body = copy.deepcopy(EXAMPLE)
    body["spec"]["retries"] = 2
    if policy:
        body["spec"]["template"]["spec"]["restartPolicy"] = policy
    with pytest.raises(InvalidSpec) as raised:
        parse_pipeline(body)
    assert str(raised.value) == (
        "spec.retries: only allowed with spec.template.spec.restartPolicy Never "
        f"(here: {policy or 'Always'})"
    )


def test_deadline_and_retries_parse_and_count_the_attempts() -> None:
    body = copy.deepcopy(EXAMPLE)
    body["spec"].update(activeDeadlineSeconds=120, retries=2)
    body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    spec = parse_pipeline(body).spec
    assert (spec.active_deadline_seconds, spec.retries, spec.attempts) == (120, 2, 3)
    assert parse_pipeline(EXAMPLE).spec.attempts == 1  # no retries: one attempt
    body["spec"]["retries"] = 21
    with pytest.raises(InvalidSpec) as raised:
        parse_pipeline(body)
    assert str(raised.value) == "spec.retries: Input should be less than or equal to 20"


SURGE_REFUSED = (
    "spec.strategy.rollingUpdate.maxSurge: must be a number of Pods (0 or more) or a "
    'percentage such as "25%"'
)
STRATEGY_REFUSALS = [
    pytest.param(
        {"type": "Recreate", "rollingUpdate": {}},
        "spec.strategy.rollingUpdate: only allowed with spec.strategy.type RollingUpdate "
        "(here: Recreate)",
        id="recreate-with-rolling-update",
    ),
    pytest.param(
        {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
        "spec.strategy.rollingUpdate: maxSurge and maxUnavailable must not both be 0: "
        "no Pod could be replaced",
        id="both-zero",
    ),
    pytest.param({"rollingUpdate": {"maxSurge": "x"}}, SURGE_REFUSED, id="surge-not-a-percentage"),
    pytest.param({"rollingUpdate": {"maxSurge": -1}}, SURGE_REFUSED, id="negative-surge"),
    pytest.param({"rollingUpdate": {"maxSurge": True}}, SURGE_REFUSED, id="boolean-surge"),
    pytest.param(
        {"rollingUpdate": {"maxUnavailable": "101%"}},
        "spec.strategy.rollingUpdate.maxUnavailable: must be a number of Pods (0 or more) or a "
        'percentage from "0%" to "100%"',
        id="unavailable-over-100-percent",
    ),
    pytest.param(
        {"type": "BlueGreen"},
        "spec.strategy.type: 'BlueGreen' must be one of Recreate, RollingUpdate",
        id="unknown-type",
    ),
]


@pytest.mark.parametrize(("strategy", "refusal"), STRATEGY_REFUSALS)
def test_a_bad_strategy_is_refused_naming_the_field(strategy: Any, refusal: str) -> None:
    # The same words as the CRD's rules (tests/integration/test_crd.py).
    body = copy.deepcopy(EXAMPLE)
    body["spec"]["strategy"] = strategy
    with pytest.raises(InvalidSpec) as raised:
        parse_pipeline(body)
    assert str(raised.value) == refusal


@pytest.mark.parametrize(
    ("strategy", "replicas", "bounds"),
    [
        pytest.param(None, 4, (1, 1), id="default-25-percent-of-4"),
        pytest.param(None, 1, (1, 0), id="default-of-1-surge-rounds-up-unavailable-down"),
        pytest.param(None, 10, (3, 2), id="default-of-10"),
        pytest.param({"rollingUpdate": {"maxSurge": 0}}, 8, (0, 2), id="only-unavailable"),
        pytest.param(
            {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"}},
            3,
            (0, 1),
            id="both-round-to-0-one-may-be-unavailable",
        ),
        pytest.param(
            {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}}, 3, (3, 0), id="blue"
        ),
        pytest.param({"rollingUpdate": {"maxSurge": "34%"}}, 3, (2, 0), id="1.02-rounds-up"),
        pytest.param({"rollingUpdate": {"maxUnavailable": "66%"}}, 3, (1, 1), id="1.98-down"),
    ],
)
def test_rolling_update_bounds_round_as_a_deployment(
    strategy: Any, replicas: int, bounds: tuple[int, int]
) -> None:
    body = copy.deepcopy(EXAMPLE)
    if strategy is not None:
        body["spec"]["strategy"] = strategy
    rolling = parse_pipeline(body).spec.strategy.rolling
    assert rolling is not None
    assert rolling.bounds(replicas) == bounds


def test_recreate_has_no_bounds_and_the_strategy_is_not_part_of_the_revision() -> None:
    body = copy.deepcopy(EXAMPLE)
    body["spec"]["strategy"] = {"type": "Recreate"}
    recreate = parse_pipeline(body).spec
    assert recreate.strategy.rolling is None
    assert recreate.revision == parse_pipeline(EXAMPLE).spec.revision


def test_every_example_parses() -> None:
    examples = Path(__file__).parents[2] / "deploy" / "examples"
    docs = [d for p in sorted(examples.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())]
    pipelines = [parse_pipeline(d) for d in docs if d and d.get("kind") == "InitPipeline"]
    assert len(pipelines) >= 16


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
