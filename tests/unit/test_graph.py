"""`initpipeline graph`: nodes, edges and their states from recorded statuses; exact text, DOT
and Mermaid."""

# ruff: noqa: E501  (the expected lines are as wide as what the terminal shows)

from __future__ import annotations

import copy
from typing import Any

import pytest

from initpipeline.graph import EdgeState, build_graph, edge_state, to_dot, to_mermaid, to_text
from initpipeline.render import spec_hash
from initpipeline.spec import parse_pipeline

pytestmark = pytest.mark.unit

IMAGE = "docker.io/library/busybox:1.36.1-musl"
DB_READY = {"resource": {"apiVersion": "initpipeline.io/v1alpha1", "kind": "InitPipeline",
                         "name": "db"}}  # fmt: skip


def pipeline(name: str, steps: list[dict[str, Any]], status: dict[str, Any] | None = None,
             ) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "apiVersion": "initpipeline.io/v1alpha1",
        "kind": "InitPipeline",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "steps": steps,
            "template": {"spec": {"containers": [{"name": "app", "image": IMAGE}]}},
        },
    }
    if status is not None:
        body["status"] = status
    return body


def ready(reason: str) -> list[dict[str, str]]:
    return [{"type": "Ready", "status": str(reason in ("Running", "Succeeded")), "reason": reason}]


API = pipeline(
    "api",
    [{"name": "wait-db", "waitFor": [DB_READY, {"tcp": "db:5432"}]}],
    {
        "currentStep": "wait-db",
        "steps": [{"name": "wait-db", "state": "Running",
                   "waitingOn": ["InitPipeline db (Ready): Ready is False Initializing"]}],
        "conditions": ready("WaitingForDependency"),
    },
)  # fmt: skip
DB = pipeline(
    "db",
    [{"name": "wait-schema", "waitFor": [{"job": "schema"}]}],
    {"currentStep": "", "steps": [{"name": "wait-schema", "state": "Succeeded"}],
     "conditions": ready("Initializing")},
)  # fmt: skip
WORKER = pipeline(
    "worker",
    [{"name": "wait", "waitFor": [{"service": "vault/vault"}, {"job": "schema"}]}],
    {
        "currentStep": "wait",
        "steps": [{"name": "wait", "state": "Running", "waitingOn": [
            "service vault/vault: not checked: serviceaccount shop/default may not get "
            "services in vault"]}],
        "conditions": ready("WaitingForDependency"),
    },
)  # fmt: skip
WEB = pipeline(
    "web", [{"name": "wait-api", "waitFor": [{"http": "http://api:8080/healthz"}, {"tcp": "db:5432"}]}]
)  # fmt: skip
NAMESPACE = [WORKER, WEB, API, DB]


def test_text_lists_the_pipelines_and_every_edge_with_its_state() -> None:
    assert to_text(build_graph(NAMESPACE)).splitlines() == [
        "PIPELINE  STATUS",
        "api       WaitingForDependency",
        "db        Initializing",
        "web       no status yet",
        "worker    WaitingForDependency",
        "",
        "FROM    STEP         STATE    WAITS ON                      WHY",
        "api     wait-db      waiting  InitPipeline db (Ready)       Ready is False Initializing",
        "api     wait-db      unknown  tcp db:5432                   -",
        "db      wait-schema  held     job schema                    -",
        "web     wait-api     unknown  http http://api:8080/healthz  -",
        "web     wait-api     unknown  tcp db:5432                   -",
        "worker  wait         refused  service vault/vault           not checked: serviceaccount"
        " shop/default may not get services in vault",
        "worker  wait         held     job schema                    -",
    ]  # fmt: skip


def test_a_pipeline_target_is_the_pipelines_node_and_in_pod_checks_are_leaves() -> None:
    graph = build_graph(NAMESPACE)
    keys = [node.key for node in graph.nodes]
    assert keys == [
        "InitPipeline/shop/api", "InitPipeline/shop/db", "InitPipeline/shop/web",
        "InitPipeline/shop/worker", "tcp db:5432", "batch/v1/Job/shop/schema",
        "http http://api:8080/healthz", "v1/Service/vault/vault",
    ]  # fmt: skip
    [to_db] = [edge for edge in graph.edges if edge.label.startswith("InitPipeline")]
    assert (to_db.source, to_db.target) == ("InitPipeline/shop/api", "InitPipeline/shop/db")


def test_the_edge_to_db_is_held_once_api_no_longer_waits_on_it() -> None:
    body = copy.deepcopy(API)
    body["status"]["steps"][0]["waitingOn"] = ["tcp db:5432: connection refused"]
    graph = build_graph([body, DB])
    assert [(edge.label, edge.state, edge.why) for edge in graph.edges[:2]] == [
        ("InitPipeline db (Ready)", EdgeState.HELD, ""),
        ("tcp db:5432", EdgeState.WAITING, "connection refused"),
    ]
    body["status"]["steps"][0] = {"name": "wait-db", "state": "Succeeded"}
    assert {edge.state for edge in build_graph([body]).edges} == {EdgeState.HELD}


def test_states_without_a_status_a_step_not_reached_and_a_job_held_for_the_revision() -> None:
    steps = [{"name": "first", "waitFor": [{"job": "schema"}]},
             {"name": "second", "waitFor": [{"job": "seed"}]}]  # fmt: skip
    body = pipeline("loader", steps)
    parsed = parse_pipeline(body)
    first, second = (step.targets[0] for step in parsed.spec.steps)
    assert edge_state(parsed, {}, "first", first) == (EdgeState.UNKNOWN, "")
    status: dict[str, Any] = {
        "currentStep": "first",
        "steps": [{"name": "first", "state": "Pending"}, {"name": "second", "state": "Pending"}],
    }
    assert edge_state(parsed, status, "first", first) == (EdgeState.HELD, "")
    assert edge_state(parsed, status, "second", second) == (EdgeState.UNKNOWN, "")
    status["heldTargets"] = [
        {"step": "second", "target": "job seed", "revision": spec_hash(parsed.spec)}
    ]
    assert edge_state(parsed, status, "second", second) == (EdgeState.HELD, "")
    status["heldTargets"][0]["revision"] = "older"
    assert edge_state(parsed, status, "second", second) == (EdgeState.UNKNOWN, "")
    status["steps"][0]["waitingOn"] = ["job schema: not checked yet"]
    assert edge_state(parsed, status, "first", first) == (EdgeState.WAITING, "not checked yet")
    status["steps"][0]["waitingOn"] = ["job schema: not checked: the access review failed (500)"]
    assert edge_state(parsed, status, "first", first)[0] is EdgeState.WAITING


def test_a_spec_that_does_not_parse_is_a_node_without_edges_and_empty_namespaces() -> None:
    broken = pipeline("broken", [{"name": "x"}], {"conditions": ready("InvalidSpec")})
    graph = build_graph([broken])
    assert [node.detail for node in graph.nodes] == ["InvalidSpec"]
    assert (
        to_text(graph)
        == "PIPELINE  STATUS\nbroken    InvalidSpec\n\nNo pipeline waits on anything.\n"
    )
    assert to_text(build_graph([])) == "No InitPipelines.\n"


def test_dot() -> None:
    assert to_dot(build_graph([API, DB])).splitlines() == [
        "digraph initpipelines {",
        "  rankdir=LR;",
        '  node [fontname="sans-serif"];',
        '  "InitPipeline/shop/api" [label="api\\nWaitingForDependency", shape=box, style=rounded];',
        '  "InitPipeline/shop/db" [label="db\\nInitializing", shape=box, style=rounded];',
        '  "tcp db:5432" [label="tcp db:5432", shape=note];',
        '  "batch/v1/Job/shop/schema" [label="job schema", shape=ellipse];',
        '  "InitPipeline/shop/api" -> "InitPipeline/shop/db" [label="wait-db: waiting", color="orange", style="dashed"];',
        '  "InitPipeline/shop/api" -> "tcp db:5432" [label="wait-db: unknown", color="gray", style="dotted"];',
        '  "InitPipeline/shop/db" -> "batch/v1/Job/shop/schema" [label="wait-schema: held", color="green", style="solid"];',
        "}",
    ]  # fmt: skip


def test_mermaid() -> None:
    assert to_mermaid(build_graph([API, DB])).splitlines() == [
        "flowchart LR",
        '  n0("api<br/>WaitingForDependency")',
        '  n1("db<br/>Initializing")',
        '  n2{{"tcp db:5432"}}',
        '  n3["job schema"]',
        '  n0 -->|"wait-db: waiting"| n1',
        '  n0 -->|"wait-db: unknown"| n2',
        '  n1 -->|"wait-schema: held"| n3',
        "  linkStyle 0 stroke:orange,stroke-dasharray:5 5",
        "  linkStyle 1 stroke:gray,stroke-dasharray:2 4",
        "  linkStyle 2 stroke:green",
    ]


def test_quotes_in_labels_cannot_end_them() -> None:
    body = pipeline("q", [{"name": "w", "waitFor": [{"command": ["sh", "-c", 'test "$X" # \\']}]}])
    graph = build_graph([body])
    assert '[label="command sh -c test \\"$X\\" # \\\\", shape=note]' in to_dot(graph)
    assert 'n1{{"command sh -c test #quot;$X#quot; #35; \\"}}' in to_mermaid(graph)
