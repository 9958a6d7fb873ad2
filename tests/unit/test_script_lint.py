"""shellcheck (POSIX sh) on every script `render` can produce.

The scripts are generated, so they are linted here, in the unit tier, for every variant a
spec can ask for: each target kind and option, with and without timeouts, every optional
field of download, copyAssets and prepareVolume, and the tools container. (User strings
are plain here: hostile ones end up as single-quoted data, which shellcheck would comment
on; test_scripts runs those for real.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import in_ci

from initpipeline.render import render_pod
from initpipeline.spec import parse_pipeline

pytestmark = pytest.mark.unit

SHELLCHECK = shutil.which("shellcheck")

# Checks left out, and why:
# - SC2317 "command appears to be unreachable": `stop` and `tidy` are called by the trap,
#   and check functions by name through `poll`; shellcheck cannot see indirect calls.
# - SC2140 "word is of the form "A"B"C"": user strings are spliced into double-quoted
#   messages as single-quoted words (shlex.quote) on purpose, so no value can expand.
EXCLUDED = "SC2317,SC2140"

WAIT_TARGETS: list[dict[str, Any]] = [
    {"service": "db"},
    {"service": "db", "port": 5432},
    {"service": "data/db", "port": 5432},
    {"tcp": "mysql:3306"},
    {"http": "http://config:8888/health"},
    {"http": "http://config:8888/health", "expectStatus": 204},
    {"http": "http://config:8888/health", "bodyContains": "UP"},
    {"http": "https://config/health", "expectStatus": 200, "bodyContains": "status: UP"},
    {"dns": "myservice"},
    {"file": "/certs/tls.crt"},
    {"job": "db-migrate"},
    {"resource": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "condition": "X"}},
    {"command": ["sh", "-c", "test -s /work/ready"]},
]


def steps() -> list[dict[str, Any]]:
    mounts = [{"name": "certs", "mountPath": "/certs"}, {"name": "work", "mountPath": "/work"}]
    found: list[dict[str, Any]] = []
    for timeout in (None, 30):
        extra = {"timeoutSeconds": timeout} if timeout else {}
        for target in WAIT_TARGETS:
            found.append({"waitFor": [target], "volumeMounts": mounts, **extra})
        found.append({"waitFor": WAIT_TARGETS, "volumeMounts": mounts, **extra})
        for sha256 in (None, "ab" * 32):
            download: dict[str, Any] = {"url": "https://h/a b.conf", "volume": "v", "path": "d/f"}
            if sha256:
                download["sha256"] = sha256
            found.append({"download": download, **extra})
    for path in ("", "site/static"):
        found.append({"copyAssets": {"image": "a:1", "from": "/dist", "volume": "v", "path": path}})
    for mode in (None, "0750"):
        for owner in (None, "999:999"):
            prepare = {"volume": "v", "path": "data", "mode": mode, "owner": owner}
            found.append({"prepareVolume": {k: v for k, v in prepare.items() if v is not None}})
    return [{"name": f"s{index}", **step} for index, step in enumerate(found)]


def rendered_scripts() -> dict[str, str]:
    """Init container name -> its script, for one Pod holding every variant."""
    body = {
        "metadata": {"name": "lint", "namespace": "ns"},
        "spec": {
            "steps": steps(),
            "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        },
    }
    pod = render_pod(parse_pipeline(body), 0, "busybox:1.36.1-musl")
    return {
        container["name"]: container["command"][-1]
        for container in pod["spec"]["initContainers"]
        if container.get("command", [])[-2:-1] == ["-c"]
    }


def test_every_variant_is_covered() -> None:
    scripts = rendered_scripts()
    # 2 x (13 single targets + all of them + 2 downloads), 2 copies, 4 prepares, tools
    assert len(scripts) == 2 * (len(WAIT_TARGETS) + 1 + 2) + 2 + 4 + 1
    assert "initpipeline-tools" in scripts


# What the kubelet rewrites in a container's command: `$$` becomes `$` (its escape), and
# `$(NAME)` becomes the value of the container's variable NAME when there is one.
KUBELET_EXPANDS = re.compile(r"\$\$|\$\([A-Za-z_][A-Za-z0-9_]*\)")


def test_no_script_holds_what_the_kubelet_would_rewrite() -> None:
    rewritten = {
        name: KUBELET_EXPANDS.findall(script)
        for name, script in rendered_scripts().items()
        if KUBELET_EXPANDS.search(script)
    }
    assert rewritten == {}


def test_generated_scripts_pass_shellcheck(tmp_path: Path) -> None:
    if SHELLCHECK is None:
        message = "shellcheck is missing (.ci/run installs it with apt-get install shellcheck)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    files = []
    for name, script in rendered_scripts().items():
        path = tmp_path / f"{name}.sh"
        path.write_text(script)
        files.append(str(path))
    result = subprocess.run(
        [SHELLCHECK, "--shell=sh", "--severity=style", f"--exclude={EXCLUDED}", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
