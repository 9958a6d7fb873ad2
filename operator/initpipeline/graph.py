"""`initpipeline graph`: what a namespace's pipelines wait on, as text, Graphviz DOT or Mermaid.

Pure: the InitPipelines (as the API returns them) -> nodes and edges -> text. A node is a
pipeline, an object an API-side target reads (service, job, any `resource`; a `resource`
target on an InitPipeline is that pipeline's node), or an in-Pod check (tcp, http, dns: shared
by every pipeline; file and command: each pipeline's own). An edge is one target of one wait
step, from the pipeline to what it waits on, with a state read from the pipeline's recorded
status, never from the objects themselves (the operator judged them for the Pods'
ServiceAccount, which the reader of the graph may not be):

- held: the step succeeded; or it is the current step and the operator names no finding for
  this API-side target; or a Job target recorded in `heldTargets` for the current revision;
- waiting: the step's `waitingOn` names the target;
- refused: that finding says the target is not checked for the pipeline (`messages.is_refusal`);
- unknown: no status yet, or a step not reached (an in-Pod check is judged by the Pod alone).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from initpipeline import messages
from initpipeline.deps import target_object
from initpipeline.fields import as_mapping, find_condition
from initpipeline.render import spec_hash, step_targets
from initpipeline.spec import API_VERSION, KIND, InvalidSpec, Pipeline, Target, parse_pipeline
from initpipeline.status import ConditionType, StepState
from initpipeline.status.held import held_revision
from initpipeline.table import columns

# In-Pod checks whose object is the same for every pipeline (a host, a URL, a name).
SHARED_CHECKS = ("tcp", "http", "dns")


class EdgeState(enum.StrEnum):
    HELD = "held"
    WAITING = "waiting"
    REFUSED = "refused"
    UNKNOWN = "unknown"


class NodeKind(enum.StrEnum):
    PIPELINE = "pipeline"
    OBJECT = "object"  # read through the API by the operator
    CHECK = "check"  # checked from inside the Pod


@dataclass(frozen=True)
class Node:
    key: str
    label: str
    kind: NodeKind
    detail: str = ""  # a pipeline's Ready reason


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    step: str
    label: str  # the target as `Target.describe()` writes it
    state: EdgeState
    why: str = ""


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


def _pipeline_key(namespace: str, name: str) -> str:
    return f"{KIND}/{namespace}/{name}"


def _ready_reason(status: Mapping[str, Any]) -> str:
    ready = find_condition(status, ConditionType.READY.value)
    return str(ready.get("reason", "")) if ready else "no status yet"


def _target_node(pipeline: Pipeline, target: Target) -> Node:
    found = target_object(target, pipeline.namespace)
    if found is None:
        kind = target.kind.value
        label = target.describe()
        owner = "" if kind in SHARED_CHECKS else f"{pipeline.name}:"
        return Node(f"{owner}{label}", label, NodeKind.CHECK)
    watched, name = found
    where = name if watched.namespace == pipeline.namespace else f"{watched.namespace}/{name}"
    if (watched.api_version, watched.kind) == (API_VERSION, KIND):
        key = _pipeline_key(watched.namespace, name)
        return Node(key, f"{KIND} {where}", NodeKind.PIPELINE)
    key = f"{watched.api_version}/{watched.kind}/{watched.namespace}/{name}"
    return Node(key, f"{watched.kind.lower()} {where}", NodeKind.OBJECT)


def edge_state(
    pipeline: Pipeline, status: Mapping[str, Any], step: str, target: Target
) -> tuple[EdgeState, str]:
    """The state of one target of one step, and the finding's why when it has one."""
    entry = next(
        (as_mapping(e) for e in status.get("steps") or () if as_mapping(e).get("name") == step),
        None,
    )
    if entry is None:
        return EdgeState.UNKNOWN, ""
    label = target.describe()
    for finding in entry.get("waitingOn") or ():
        if messages.finding_label(str(finding)) == label:
            why = messages.finding_why(str(finding))
            return (EdgeState.REFUSED if messages.is_refusal(why) else EdgeState.WAITING), why
    if entry.get("state") == StepState.SUCCEEDED.value:
        return EdgeState.HELD, ""
    if held_revision(status, step, label) == spec_hash(pipeline.spec):
        return EdgeState.HELD, ""
    current = status.get("currentStep") == step and entry.get("state") in (
        StepState.PENDING.value,
        StepState.RUNNING.value,
    )
    if current and target.checked_by_operator:
        return EdgeState.HELD, ""
    return EdgeState.UNKNOWN, ""


def build_graph(pipelines: Iterable[Mapping[str, Any]]) -> Graph:
    """The nodes (pipelines by name, then what they wait on, in the order first named) and
    edges (pipeline by pipeline, in step and target order)."""
    bodies = sorted(pipelines, key=lambda body: str(as_mapping(body.get("metadata")).get("name")))
    nodes: dict[str, Node] = {}
    for body in bodies:
        meta = as_mapping(body.get("metadata"))
        key = _pipeline_key(str(meta.get("namespace", "")), str(meta.get("name", "")))
        detail = _ready_reason(as_mapping(body.get("status")))
        nodes[key] = Node(key, str(meta.get("name", "")), NodeKind.PIPELINE, detail)
    edges: list[Edge] = []
    for body in bodies:
        try:
            pipeline = parse_pipeline(dict(body))
        except InvalidSpec:
            continue  # its node says InvalidSpec once the operator has seen it
        status = as_mapping(body.get("status"))
        source = _pipeline_key(pipeline.namespace, pipeline.name)
        for step in pipeline.spec.steps:
            for target in step_targets(pipeline, step):
                node = _target_node(pipeline, target)
                nodes.setdefault(node.key, node)
                state, why = edge_state(pipeline, status, step.name, target)
                edges.append(Edge(source, node.key, step.name, target.describe(), state, why))
    return Graph(tuple(nodes.values()), tuple(edges))


def to_text(graph: Graph) -> str:
    pipelines = [node for node in graph.nodes if node.kind is NodeKind.PIPELINE and node.detail]
    if not pipelines:
        return "No InitPipelines.\n"
    lines = columns([("PIPELINE", "STATUS"), *((n.label, n.detail) for n in pipelines)])
    names = {node.key: node.label for node in graph.nodes}
    if graph.edges:
        rows = [("FROM", "STEP", "STATE", "WAITS ON", "WHY")]
        rows += [
            (names[e.source], e.step, e.state.value, e.label, e.why or "-") for e in graph.edges
        ]
        lines += ["", *columns(rows)]
    else:
        lines += ["", "No pipeline waits on anything."]
    return "\n".join(lines) + "\n"


# Edge looks per state: (colour, DOT style, Mermaid dash pattern or "").
_LOOKS: Mapping[EdgeState, tuple[str, str, str]] = {
    EdgeState.HELD: ("green", "solid", ""),
    EdgeState.WAITING: ("orange", "dashed", "5 5"),
    EdgeState.REFUSED: ("red", "bold", ""),
    EdgeState.UNKNOWN: ("gray", "dotted", "2 4"),
}
_DOT_SHAPES: Mapping[NodeKind, str] = {
    NodeKind.PIPELINE: "shape=box, style=rounded",
    NodeKind.OBJECT: "shape=ellipse",
    NodeKind.CHECK: "shape=note",
}


def _dot_quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _node_text(node: Node, newline: str, quote: Callable[[str], str]) -> str:
    return newline.join(quote(part) for part in (node.label, node.detail) if part)


def to_dot(graph: Graph) -> str:
    lines = ["digraph initpipelines {", "  rankdir=LR;", '  node [fontname="sans-serif"];']
    for node in graph.nodes:
        label = _node_text(node, "\\n", lambda part: _dot_quoted(part)[1:-1])
        lines.append(f'  {_dot_quoted(node.key)} [label="{label}", {_DOT_SHAPES[node.kind]}];')
    for edge in graph.edges:
        colour, style, _ = _LOOKS[edge.state]
        label = _dot_quoted(f"{edge.step}: {edge.state.value}")
        lines.append(
            f"  {_dot_quoted(edge.source)} -> {_dot_quoted(edge.target)} "
            f'[label={label}, color="{colour}", style="{style}"];'
        )
    return "\n".join([*lines, "}"]) + "\n"


def _mermaid_quoted(text: str) -> str:
    # Mermaid has no backslash escapes: entity codes stand for what would end the label.
    return text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;")


_MERMAID_SHAPES: Mapping[NodeKind, tuple[str, str]] = {
    NodeKind.PIPELINE: ("(", ")"),
    NodeKind.OBJECT: ("[", "]"),
    NodeKind.CHECK: ("{{", "}}"),
}


def to_mermaid(graph: Graph) -> str:
    ids = {node.key: f"n{index}" for index, node in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for node in graph.nodes:
        opening, closing = _MERMAID_SHAPES[node.kind]
        text = _node_text(node, "<br/>", _mermaid_quoted)
        lines.append(f'  {ids[node.key]}{opening}"{text}"{closing}')
    for edge in graph.edges:
        label = _mermaid_quoted(f"{edge.step}: {edge.state.value}")
        lines.append(f'  {ids[edge.source]} -->|"{label}"| {ids[edge.target]}')
    for index, edge in enumerate(graph.edges):
        colour, _, dashes = _LOOKS[edge.state]
        dash = f",stroke-dasharray:{dashes}" if dashes else ""
        lines.append(f"  linkStyle {index} stroke:{colour}{dash}")
    return "\n".join(lines) + "\n"


FORMATS = {"text": to_text, "dot": to_dot, "mermaid": to_mermaid}
