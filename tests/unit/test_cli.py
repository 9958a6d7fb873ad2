"""`initpipeline render -f FILE`: offline, the exact Pods; bad input: one line naming the field."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from initpipeline.render import render_pods
from initpipeline.settings import DEFAULT_STEP_IMAGE
from initpipeline.spec import parse_pipeline

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).parents[2] / "deploy" / "examples"


def render(
    path: Path | str, stdin: str | None = None, *flags: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "initpipeline.cli", "render", "-f", str(path), *flags],
        capture_output=True, text=True, input=stdin, timeout=60,
    )  # fmt: skip


def test_render_prints_the_pods_the_operator_creates() -> None:
    path = EXAMPLES / "06-copy-assets.yaml"
    result = render(path)
    assert result.returncode == 0, result.stderr
    printed = list(yaml.safe_load_all(result.stdout))
    expected = [
        pod
        for doc in yaml.safe_load_all(path.read_text())
        for pod in render_pods(parse_pipeline(doc), DEFAULT_STEP_IMAGE)
    ]
    assert printed == expected
    assert [p["metadata"]["name"].rsplit("-", 2)[0] for p in printed] == ["site", "site-scratch"]


def test_render_says_how_each_copy_assets_step_gets_its_files() -> None:
    path = EXAMPLES / "17-copy-assets-mount.yaml"
    plain, mounting = render(path), render(path, None, "--image-volumes")

    assert plain.stdout.splitlines()[:3] == [
        "# assets-copy: copyAssets step assets: Copy (mode Copy)",
        "# assets-mount: copyAssets step assets: Mount (mode Mount)",
        "# assets-auto: copyAssets step assets: Copy (mode Auto)",
    ]
    assert (
        mounting.stdout.splitlines()[2]
        == "# assets-auto: copyAssets step assets: Mount (mode Auto)"
    )
    auto = list(yaml.safe_load_all(mounting.stdout))[2]
    assert [c["name"] for c in auto["spec"]["initContainers"]] == []
    assert auto["spec"]["volumes"][-1] == {
        "name": "initpipeline-assets-0",
        "image": {"reference": "localhost/initpipeline/assets-scratch:1"},
    }


def test_render_skips_other_kinds_in_the_file() -> None:
    result = render(EXAMPLES / "10-steps-and-sidecars.yaml")
    assert result.returncode == 0, result.stderr
    [pod] = yaml.safe_load_all(result.stdout)
    assert pod["kind"] == "Pod"
    assert pod["metadata"]["labels"]["initpipeline.io/pipeline"] == "storefront"


def test_invalid_file_is_one_line_naming_the_step_field(tmp_path: Path) -> None:
    body = yaml.safe_load((EXAMPLES / "04-sequential.yaml").read_text())
    body["spec"]["steps"][1] = {
        "name": "second",
        "download": {"url": "ftp://x", "volume": "v", "path": "p"},
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(body))
    result = render(bad)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr == (
        "initpipeline: spec.steps[1].download.url: 'ftp://x' must be an http:// or https:// URL"
        ' (step "second")\n'
    )
    assert "Traceback" not in result.stderr


def test_missing_file_and_wrong_kind_are_clear_errors(tmp_path: Path) -> None:
    missing = render(tmp_path / "nope.yaml")
    assert missing.returncode == 1
    # Python's OSError text: the errno's description is the system's
    assert re.fullmatch(
        rf"initpipeline: \[Errno 2\] [^\n]+: '{re.escape(str(tmp_path / 'nope.yaml'))}'\n",
        missing.stderr,
    ), missing.stderr
    other = render("-", stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert other.returncode == 1
    assert (
        other.stderr
        == "initpipeline: kind: no InitPipeline (initpipeline.io/v1alpha1) found in -\n"
    )
