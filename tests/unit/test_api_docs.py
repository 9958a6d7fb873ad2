"""docs/api.md and the CRD cannot drift: its field reference is generated from the CRD
(hack/gen-api-docs.py, `make docs`), and its example uses only fields the CRD declares."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from tests.helpers import Kubectl

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "api.md"
CRD = REPO / "crds" / "initpipelines.initpipeline.io.yaml"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api_docs", REPO / "hack" / "gen-api-docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    [version] = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _examples() -> list[dict[str, Any]]:
    """The InitPipelines in the document's yaml code blocks."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(), flags=re.M | re.S)
    docs = [d for block in blocks for d in yaml.safe_load_all(block) if d]
    return [d for d in docs if d.get("kind") == "InitPipeline"]


def _unknown_fields(value: Any, node: dict[str, Any], path: str) -> list[str]:
    """Field paths of `value` that the schema `node` does not declare."""
    if node.get("x-kubernetes-preserve-unknown-fields") and not node.get("properties"):
        return []
    if isinstance(value, list):
        return [
            p for i, item in enumerate(value)
            for p in _unknown_fields(item, node.get("items", {}), f"{path}[{i}]")
        ]  # fmt: skip
    if not isinstance(value, dict) or node.get("type") != "object":
        return []
    props = node.get("properties")
    if props is None:  # a map (additionalProperties) or free-form metadata
        return []
    found = []
    for key, item in value.items():
        if key in props:
            found += _unknown_fields(item, props[key], f"{path}.{key}")
        elif not node.get("x-kubernetes-preserve-unknown-fields"):
            found.append(f"{path}.{key}")
    return found


@pytest.mark.unit
def test_field_reference_is_generated_from_the_crd() -> None:
    gen = _generator()
    committed = DOC.read_text()
    fresh = gen.regenerate(committed, yaml.safe_load(CRD.read_text()))
    assert fresh == committed, "docs/api.md is out of date with the CRD: run `make docs`"


@pytest.mark.unit
def test_every_field_of_the_crd_has_a_row() -> None:
    """Belt and braces: each property of spec and status appears in its section's table."""
    gen = _generator()
    text = DOC.read_text()
    for path, node in gen.sections(_schema(), ""):
        title = path or "InitPipeline"
        section = text.split(f"### `{title}`\n", 1)[1].split("\n### ", 1)[0]
        for name in node.get("properties", {}):
            assert re.search(rf"^\| \[?`{re.escape(name)}`", section, re.M), f"{title}.{name}"


@pytest.mark.unit
def test_generated_region_is_replaced_not_appended() -> None:
    gen = _generator()
    crd = yaml.safe_load(CRD.read_text())
    once = gen.regenerate(f"intro\n{gen.BEGIN}\nstale\n{gen.END}\noutro\n", crd)
    assert once.startswith("intro\n") and once.endswith(f"{gen.END}\noutro\n")
    assert "stale" not in once
    assert gen.regenerate(once, crd) == once
    with pytest.raises(ValueError, match="markers"):
        gen.regenerate("no markers", crd)


@pytest.mark.unit
def test_the_examples_use_only_fields_of_the_crd() -> None:
    examples = _examples()
    assert examples, "docs/api.md has no InitPipeline example"
    for example in examples:
        assert _unknown_fields(example, _schema(), "") == []


@pytest.mark.unit
def test_unknown_fields_are_found() -> None:
    bad = {"spec": {"steps": [{"name": "a", "waitFor": [{"tcp": "x:1", "tpc": "y"}]}]}}
    assert _unknown_fields(bad, _schema(), "") == [".spec.steps[0].waitFor[0].tpc"]


@pytest.mark.integration
def test_the_examples_are_accepted_by_the_api_server(kubectl: Kubectl, namespace: str) -> None:
    for example in _examples():
        example["metadata"]["namespace"] = namespace
        kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(example))
