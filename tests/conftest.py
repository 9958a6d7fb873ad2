"""Cluster fixtures shared by every test tier.

Unit tests never touch a cluster. Tests marked ``integration`` need an API server; tests
marked ``e2e`` need a node where Pods really run. Once collection is done, the session
brings up the local cluster of ``hack/cluster.sh`` at the level the selected tests need
(control-plane if no e2e test is selected, node otherwise), or reuses the one running.

Another cluster (kind, ...) can be used through ``KUBECONFIG``; its current context must be
named in ``INITPIPELINE_TEST_ALLOW_CONTEXT``, since the tests create and delete namespaces.

Environment:
  KUBECONFIG                        use this kubeconfig instead of the local cluster's
  INITPIPELINE_TEST_ALLOW_CONTEXT   context name allowed although the scripts did not create it
  INITPIPELINE_CLUSTER_LEVEL        "control-plane" runs without a node: e2e tests are skipped
  INITPIPELINE_CLUSTER_DIR          local cluster state dir (default /tmp/initpipeline-cluster)
  INITPIPELINE_TEST_OPERATOR        "process" (default: the operator inside pytest) or
                                    "deployment" (its image deployed from deploy/; only the tests
                                    marked ``deployment`` or ``incluster`` run): tests/deployment.py
  CI                                set: a tier that cannot run fails instead of skipping

Fixtures: ``kubeconfig`` (path), ``kube_context``, ``cluster_level``, ``kubectl``
(``kubectl(*args, namespace=None, input=None, check=True, timeout=120)`` returning a
``CompletedProcess[str]``), ``namespace`` (fresh per test, deleted afterwards) and
``deployed_operator`` (the operator's Deployment, per test module). The CRDs
in ``crds/*.yaml`` are applied (and established) before the first test that uses the cluster.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import deployment
from tests.helpers import in_ci, kubectl_binary

REPO = Path(__file__).resolve().parents[1]
HACK = REPO / "hack"
CLUSTER_DIR = Path(os.environ.get("INITPIPELINE_CLUSTER_DIR", "/tmp/initpipeline-cluster"))
LOCAL_CONTEXT = os.environ.get("INITPIPELINE_CONTEXT", "initpipeline-local")
CLUSTER_FIXTURES = {
    "cluster",
    "cluster_level",
    "kubeconfig",
    "kube_context",
    "kubectl",
    "namespace",
    "deployed_operator",
}

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class ClusterLevel:
    """What the session's cluster can do."""

    name: str  # "control-plane" or "node"
    pods_can_run: bool
    local: bool  # the cluster of hack/cluster.sh (not e.g. kind via KUBECONFIG)


@dataclass
class _Session:
    kubeconfig: str = ""
    context: str = ""
    level: ClusterLevel | None = None
    kubectl_bin: str = "kubectl"
    error: str = ""
    no_node_reason: str = ""
    deselected_note: str = ""
    started_log: list[str] = field(default_factory=list)


_STATE = _Session()


def _needs(item: pytest.Item) -> tuple[bool, bool]:
    """(needs an API server, needs a node) for one collected test."""
    e2e = item.get_closest_marker("e2e") is not None
    api = (
        e2e
        or item.get_closest_marker("integration") is not None
        or bool(CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())))
    )
    return api, e2e


def _current_context(kubeconfig: str) -> tuple[str, dict[str, Any]]:
    """Current context name and its cluster entry."""
    cfg: dict[str, Any] = yaml.safe_load(Path(kubeconfig).read_text()) or {}
    name = str(cfg.get("current-context", ""))
    ctx: dict[str, Any] = next(
        (c["context"] for c in cfg.get("contexts", []) if c.get("name") == name), {}
    )
    cluster: dict[str, Any] = next(
        (c["cluster"] for c in cfg.get("clusters", []) if c.get("name") == ctx.get("cluster")), {}
    )
    return name, cluster


def _created_by_scripts(context: str, cluster: dict[str, Any]) -> bool:
    """A context counts as ours only if it has our name and trusts our cluster's CA."""
    ca_file = CLUSTER_DIR / "pki" / "ca.crt"
    if context != LOCAL_CONTEXT or not ca_file.exists():
        return False
    data = cluster.get("certificate-authority-data")
    return isinstance(data, str) and base64.b64decode(data) == ca_file.read_bytes()


def _has_ready_node(kubectl_bin: str, kubeconfig: str, context: str) -> bool:
    out = subprocess.run(
        [
            kubectl_bin,
            "--kubeconfig",
            kubeconfig,
            "--context",
            context,
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.returncode == 0 and "True" in out.stdout.split()


def _prepare_cluster(want_node: bool) -> None:
    """Find or start the cluster; record problems for the fixtures to report."""
    st = _STATE
    st.kubectl_bin = kubectl_binary()
    explicit_level = os.environ.get("INITPIPELINE_CLUSTER_LEVEL", "")
    external = os.environ.get("KUBECONFIG", "")
    local_kubeconfig = CLUSTER_DIR / "kubeconfig"

    if external and Path(external).resolve() != local_kubeconfig.resolve():
        if ":" in external or not Path(external).exists():
            st.error = f"KUBECONFIG={external!r}: give one existing kubeconfig file"
            return
        context, cluster = _current_context(external)
        allowed = os.environ.get("INITPIPELINE_TEST_ALLOW_CONTEXT", "")
        if not _created_by_scripts(context, cluster) and context != allowed:
            st.error = (
                f"refusing kube-context {context!r} from KUBECONFIG={external}: hack/cluster.sh "
                "did not create it and the tests create and delete namespaces there. Run "
                f"with INITPIPELINE_TEST_ALLOW_CONTEXT={context} to allow it, or unset "
                "KUBECONFIG to use the local cluster."
            )
            return
        st.kubeconfig, st.context = external, context
        pods = _has_ready_node(st.kubectl_bin, external, context)
        st.level = ClusterLevel("node" if pods else "control-plane", pods, local=False)
        if not pods:
            st.no_node_reason = f"context {context!r} has no Ready node"
        return

    level = "node" if want_node else "control-plane"
    if explicit_level == "control-plane":
        level = "control-plane"
        st.no_node_reason = "INITPIPELINE_CLUSTER_LEVEL=control-plane: running without a node"
    elif explicit_level not in ("", "node"):
        st.error = f"INITPIPELINE_CLUSTER_LEVEL={explicit_level!r}: use control-plane or node"
        return
    proc = subprocess.run([str(HACK / "cluster.sh"), "up", level], capture_output=True, text=True)
    if proc.returncode != 0:
        st.error = (
            f"hack/cluster.sh up {level} failed (exit {proc.returncode}); logs in "
            f"{CLUSTER_DIR}/logs\n{proc.stderr[-4000:]}"
        )
        return
    st.started_log = proc.stderr.splitlines()[-3:]
    st.kubeconfig = str(local_kubeconfig)
    st.context = LOCAL_CONTEXT
    running_level = (CLUSTER_DIR / "level").read_text().strip()
    # An explicit control-plane run skips e2e even if a node happens to be running.
    pods = running_level == "node" and explicit_level != "control-plane"
    st.level = ClusterLevel(running_level, pods, local=True)
    if running_level != "node" and not st.no_node_reason:
        st.no_node_reason = "the local cluster runs at control-plane level"
    _apply_crds()


def _run_kubectl(
    *args: str, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_STATE.kubectl_bin, "--kubeconfig", _STATE.kubeconfig, "--context", _STATE.context, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _apply_crds() -> None:
    files = sorted((REPO / "crds").glob("*.yaml"))
    if not files:
        return
    args = [a for f in files for a in ("-f", str(f))]
    proc = _run_kubectl("apply", "--server-side", "--force-conflicts", *args)
    if proc.returncode != 0:
        _STATE.error = f"applying crds/ failed:\n{proc.stderr}"
        return
    names = _run_kubectl("get", *args, "-o", "name").stdout.split()
    crds = [n for n in names if n.startswith("customresourcedefinition")]
    if crds:
        proc = _run_kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)
        if proc.returncode != 0:
            _STATE.error = f"CRDs not established:\n{proc.stderr}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """One operator at a time: the deployed one watches every namespace, so a session runs
    either the in-process operator's tests or the deployed operator's, never both."""
    run_mode = deployment.mode()

    def wanted(item: pytest.Item) -> bool:
        if run_mode == "deployment":
            return any(item.get_closest_marker(m) for m in ("deployment", "incluster"))
        return item.get_closest_marker("deployment") is None

    kept = [item for item in items if wanted(item)]
    left = [item for item in items if not wanted(item)]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept
        _STATE.deselected_note = (
            f"{len(left)} tests deselected: INITPIPELINE_TEST_OPERATOR={run_mode} runs "
            + (
                "only the tests marked deployment or incluster"
                if run_mode == "deployment"
                else "no test marked deployment (make test runs them in a second session)"
            )
        )


def pytest_collection_finish(session: pytest.Session) -> None:
    # Runs once on the final selection (after -m/-k), outside any per-test timeout,
    # so a first build of the binaries does not count against a test.
    needs = [_needs(item) for item in session.items]
    if any(api for api, _ in needs):
        _prepare_cluster(want_node=any(node for _, node in needs))


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"cluster dir: {CLUSTER_DIR} (hack/cluster.sh)"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _STATE.deselected_note:
        terminalreporter.write_line(_STATE.deselected_note)
    if _STATE.level is not None:
        lvl = _STATE.level
        where = (
            f"local cluster ({CLUSTER_DIR}), still running: make cluster-down stops it"
            if lvl.local
            else _STATE.kubeconfig
        )
        terminalreporter.write_line(f"cluster: context {_STATE.context}, level {lvl.name}; {where}")


@pytest.fixture(scope="session")
def cluster_level() -> ClusterLevel:
    if _STATE.error:
        pytest.fail(_STATE.error, pytrace=False)
    if _STATE.level is None:  # a fixture requested in a way collection did not see
        _prepare_cluster(want_node=False)
        if _STATE.error:
            pytest.fail(_STATE.error, pytrace=False)
    assert _STATE.level is not None
    return _STATE.level


@pytest.fixture(scope="session")
def kubeconfig(cluster_level: ClusterLevel) -> str:
    return _STATE.kubeconfig


@pytest.fixture(scope="session")
def kube_context(cluster_level: ClusterLevel) -> str:
    return _STATE.context


@pytest.fixture(scope="session")
def kubectl(cluster_level: ClusterLevel) -> Kubectl:
    """Run kubectl against the session's cluster: kubectl("get", "pods", namespace=ns)."""

    def run(
        *args: str,
        namespace: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        full = (*(("--namespace", namespace) if namespace else ()), *args)
        proc = _run_kubectl(*full, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(full)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
            )
        return proc

    return run


@pytest.fixture(scope="session")
def kubectl_argv(cluster_level: ClusterLevel) -> list[str]:
    """The command line the `kubectl` fixture runs, for long-running watches."""
    return [_STATE.kubectl_bin, "--kubeconfig", _STATE.kubeconfig, "--context", _STATE.context]


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace, ready for Pods (its default ServiceAccount exists); deleted afterwards."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower()).strip("-")
    name = f"t-{base[:40].strip('-')}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    deadline = time.monotonic() + 60
    while kubectl("get", "serviceaccount", "default", namespace=name, check=False).returncode:
        if time.monotonic() > deadline:
            raise AssertionError(f"ServiceAccount default never appeared in namespace {name}")
        time.sleep(0.2)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(autouse=True)
def _cluster_for_marked_tests(request: pytest.FixtureRequest) -> None:
    """integration tests get the API server; e2e tests also need a node, or are skipped."""
    node = request.node
    if node.get_closest_marker("e2e") is not None:
        level: ClusterLevel = request.getfixturevalue("cluster_level")
        if not level.pods_can_run:
            why = f"e2e needs a node where Pods run: {_STATE.no_node_reason}"
            if in_ci():
                pytest.fail(f"{why} (CI runs every tier)", pytrace=False)
            pytest.skip(why)
    elif node.get_closest_marker("integration") is not None:
        request.getfixturevalue("cluster_level")


@pytest.fixture(scope="module")
def deployed_operator(
    kubectl: Kubectl, cluster_level: ClusterLevel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[deployment.Deployed]:
    """The operator's image deployed from deploy/base for this test module, then removed."""
    if deployment.mode() != "deployment":
        pytest.fail(f"needs {deployment.MODE_ENV}=deployment", pytrace=False)
    image = deployment.operator_image(cluster_level.local)
    with deployment.operator_deployed(kubectl, image, tmp_path_factory.mktemp("deploy")) as op:
        yield op
