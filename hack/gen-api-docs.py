#!/usr/bin/env python3
"""Generate the field reference of docs/api.md from the CRD's openAPIV3Schema.

docs/api.md is prose written by hand (introduction, semantics) plus one generated region
between the BEGIN/END markers below: every field of spec and status, with its type,
whether it is required, its default, constraints and description, the CEL rules and the
printer columns, all read from crds/initpipelines.initpipeline.io.yaml. So the reference
cannot drift from the CRD: tests/unit/test_api_docs.py regenerates the region in memory and
compares it with the committed file.

    uv run python hack/gen-api-docs.py           # rewrite the region in docs/api.md (make docs)
    uv run python hack/gen-api-docs.py --check   # exit 1 if docs/api.md is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CRD = REPO / "crds" / "initpipelines.initpipeline.io.yaml"
DOC = REPO / "docs" / "api.md"
BEGIN = (
    "<!-- BEGIN GENERATED: hack/gen-api-docs.py from the CRD; edit the CRD, then `make docs` -->"
)
END = "<!-- END GENERATED -->"

Schema = dict[str, Any]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _code(value: Any) -> str:
    text = value if isinstance(value, str) and value else json.dumps(value)
    return f"`{_one_line(text)}`"


def type_of(node: Schema) -> str:
    """A Go-like type: string, integer (int32), []object, map[string]string, int-or-string,
    ..."""
    if node.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    kind = node.get("type", "any")
    if kind == "array":
        return "[]" + type_of(node.get("items", {}))
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return "map[string]" + type_of(node["additionalProperties"])
    if node.get("format"):
        return f"{kind} ({node['format']})"
    return str(kind)


def constraints(node: Schema, rules: bool = True) -> list[str]:
    """What the schema enforces on one field, in words (CEL rules too, unless `rules` is
    false: an object's own section lists them)."""
    out: list[str] = []
    if "default" in node:
        out.append(f"default {_code(node['default'])}")
    if "enum" in node:
        out.append("one of " + ", ".join(_code(v) for v in node["enum"]))
    for key, words in (
        ("minimum", "minimum"),
        ("maximum", "maximum"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ):
        if key in node:
            out.append(f"{words} {node[key]}")
    if "pattern" in node:
        out.append(f"pattern {_code(node['pattern'])}")
    list_type = node.get("x-kubernetes-list-type")
    if list_type == "map":
        keys = ", ".join(node.get("x-kubernetes-list-map-keys", []))
        out.append(f"list map keyed by {keys}")
    elif list_type:
        out.append(f"list type {list_type}")
    if node.get("x-kubernetes-preserve-unknown-fields"):
        out.append("further fields are kept as written (not pruned)")
    for rule in node.get("x-kubernetes-validations", []) if rules else []:
        out.append(f"rule: {_one_line(rule['message'])}")
    return out


def _object_of(node: Schema) -> Schema | None:
    """The object whose fields a section lists: the node itself, or its array's items."""
    while node.get("type") == "array":
        node = node.get("items", {})
    return node if node.get("properties") else None


def sections(node: Schema, path: str) -> list[tuple[str, Schema]]:
    """(path, object schema) of every object with properties, depth first, in schema order."""
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        suffix = "[]" * _array_depth(child)
        obj = _object_of(child)
        if obj is not None:
            found += sections(obj, f"{path}.{name}{suffix}" if path else f"{name}{suffix}")
    return found


def _array_depth(node: Schema) -> int:
    depth = 0
    while node.get("type") == "array":
        node, depth = node.get("items", {}), depth + 1
    return depth


def _anchor(path: str) -> str:
    """GitHub's heading anchor for a heading that is just `path` in backticks."""
    return "".join(c for c in path.lower() if c.isalnum() or c in "-_ ").replace(" ", "-")


def field_table(path: str, node: Schema) -> list[str]:
    required = set(node.get("required", []))
    rows = ["| Field | Type | Required | Description |", "| --- | --- | --- | --- |"]
    for name, child in node.get("properties", {}).items():
        suffix = "[]" * _array_depth(child)
        target = f"{path}.{name}{suffix}" if path else f"{name}{suffix}"
        label = f"`{name}`"
        if _object_of(child) is not None:
            label = f"[`{name}`](#{_anchor(target)})"
        own_section = child.get("type") == "object" and bool(child.get("properties"))
        words = [_cell(child.get("description", ""))] if child.get("description") else []
        words += [_cell(c) + "." for c in constraints(child, rules=not own_section)]
        needed = "yes" if name in required else ""
        rows.append(f"| {label} | {type_of(child)} | {needed} | {' '.join(words)} |")
    return rows


def object_rules(node: Schema) -> list[str]:
    """The CEL rules of an object (checked at apply time), as a list."""
    return [
        f"- {_one_line(rule['message'])}"
        + (f" (`{rule['fieldPath']}`)" if "fieldPath" in rule else "")
        for rule in node.get("x-kubernetes-validations", [])
    ]


def render(crd: dict[str, Any]) -> str:
    """The generated region of docs/api.md, markers included."""
    spec = crd["spec"]
    [version] = [v for v in spec["versions"] if v.get("storage")]
    names = spec["names"]
    schema = version["schema"]["openAPIV3Schema"]
    out = [BEGIN, "", "## Field reference", ""]
    short = ", ".join(f"`{n}`" for n in names.get("shortNames", []))
    subresources = ", ".join(f"`{s}`" for s in version.get("subresources", {}))
    out += [
        f"Group `{spec['group']}`, version `{version['name']}`, kind `{names['kind']}`, "
        f"plural `{names['plural']}`, short names {short}, {spec['scope'].lower()}. "
        f"Subresources: {subresources}.",
        "",
    ]
    scale = version.get("subresources", {}).get("scale")
    if scale:
        out += [
            f"The scale subresource reads `{scale['specReplicasPath']}`, "
            f"`{scale['statusReplicasPath']}` and `{scale['labelSelectorPath']}` "
            "(so `kubectl scale ipl NAME --replicas=N` works).",
            "",
        ]
    out += [
        "### `kubectl get` columns",
        "",
        "| Column | Type | Wide only | JSONPath | Description |",
    ]
    out += ["| --- | --- | --- | --- | --- |"]
    for col in version.get("additionalPrinterColumns", []):
        wide = "yes" if col.get("priority", 0) > 0 else ""
        out.append(
            f"| {col['name'].upper()} | {col['type']} | {wide} | `{_cell(col['jsonPath'])}` "
            f"| {_cell(col.get('description', ''))} |"
        )
    out.append("")
    for path, node in sections(schema, ""):
        title = path or names["kind"]
        out += [f"### `{title}`", ""]
        if node.get("description"):
            out += [_one_line(node["description"]), ""]
        out += field_table(path, node)
        rules = object_rules(node)
        if rules:
            out += ["", "Checked at apply time (CEL):", "", *rules]
        out.append("")
    out.append(END)
    return "\n".join(out) + "\n"


def regenerate(document: str, crd: dict[str, Any]) -> str:
    """`document` with its generated region replaced by a fresh one from `crd`."""
    head, sep, rest = document.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"{DOC.name}: the BEGIN/END GENERATED markers are missing")
    return head + render(crd).rstrip("\n") + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is stale")
    args = parser.parse_args(argv)
    crd = yaml.safe_load(CRD.read_text())
    current = DOC.read_text()
    fresh = regenerate(current, crd)
    if args.check:
        if fresh != current:
            print(f"{DOC.relative_to(REPO)} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    if fresh != current:
        DOC.write_text(fresh)
        print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
