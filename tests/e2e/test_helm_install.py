"""The Helm chart installed on the node, running the operator's image, runs a pipeline.

`helm install` of charts/initpipeline into a fresh namespace (labelled for the `restricted` Pod
Security level, which the chart's Pods must meet), with the image of this tree
(tests/deployment.py: built and imported into the local node's containerd, or
INITPIPELINE_TEST_IMAGE; pull policy IfNotPresent) and the default 2 replicas with leader
election; the operator watches only that namespace, with Roles there and no cluster-wide rights
but the aggregated wait-target ClusterRole. Then deploy/examples/04-sequential.yaml must become
Ready.

Nothing else may reconcile that namespace: it runs in the INITPIPELINE_TEST_OPERATOR=deployment
session (marker `deployment`), after the modules whose deploy/ operator watches every namespace
have removed it; a deploy/ operator left running is refused.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests import deployment
from tests.helpers import Kubectl, eventually, get, status
from tests.unit.test_helm import CHART, built_binary

pytestmark = [pytest.mark.e2e, pytest.mark.deployment]

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "04-sequential.yaml"
TIMEOUT = 180.0


class Helm:
    """The helm binary of hack/build.sh against the session's cluster, with its own homes."""

    def __init__(self, binary: str, kubeconfig: str, context: str, home: Path) -> None:
        self.argv = [binary, "--kubeconfig", kubeconfig, "--kube-context", context]
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self.argv, *args], env=self.env, capture_output=True, text=True, timeout=600
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}")
        return proc


@pytest.fixture
def helm(kubeconfig: str, kube_context: str, tmp_path: Path) -> Helm:
    return Helm(built_binary("helm", "helm"), kubeconfig, kube_context, tmp_path / "helm")


def _operator_logs(kubectl: Kubectl, namespace: str, release: str) -> str:
    proc = kubectl(
        "logs", "-l", f"app.kubernetes.io/instance={release}", "--all-containers",
        "--prefix", "--tail=40", namespace=namespace, check=False,
    )  # fmt: skip
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def image(cluster_level: Any) -> str:
    """The operator image of this tree, on the node (built and imported if needed)."""
    return deployment.operator_image(cluster_level.local)


def _no_operator_watching_everything(kubectl: Kubectl) -> None:
    found = kubectl(
        "get", "deployment", deployment.DEPLOYMENT, "-o", "json",
        namespace=deployment.NAMESPACE, check=False,
    )  # fmt: skip
    if found.returncode == 0 and json.loads(found.stdout)["spec"].get("replicas"):
        pytest.fail(
            f"{deployment.NAMESPACE}/{deployment.DEPLOYMENT} runs and watches every namespace: "
            "two operators would reconcile this test's pipeline; scale it to 0 first",
            pytrace=False,
        )


@pytest.fixture
def release(helm: Helm, kubectl: Kubectl, namespace: str, image: str) -> Iterator[str]:
    """The chart installed in `namespace`, watching it; uninstalled afterwards (its
    cluster-scoped ClusterRole would outlive the namespace)."""
    _no_operator_watching_everything(kubectl)
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    name = f"ipl-{namespace.rsplit('-', 1)[-1]}"
    repository, _, tag = image.rpartition(":")
    try:
        installed = helm(
            "install", name, str(CHART), "--namespace", namespace,
            "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", f"watchNamespaces={{{namespace}}}",
            "--wait", "--timeout", f"{TIMEOUT:.0f}s", check=False,
        )  # fmt: skip
        if installed.returncode != 0:
            events = kubectl("get", "events", namespace=namespace, check=False).stdout
            raise AssertionError(
                f"helm install failed:\n{installed.stderr}{installed.stdout}\n--- events\n"
                f"{events}\n--- logs\n{_operator_logs(kubectl, namespace, name)}"
            )
        yield name
    finally:
        helm("uninstall", name, "--namespace", namespace, "--wait", check=False)


def _ready(kubectl: Kubectl, namespace: str) -> dict[str, Any] | None:
    conditions = status(kubectl, namespace, "sequential").get("conditions") or []
    ready = [c for c in conditions if c["type"] == "Ready"]
    return ready[0] if ready and ready[0]["status"] == "True" else None


def test_helm_install_runs_a_pipeline(
    release: str, image: str, kubectl: Kubectl, namespace: str
) -> None:
    operator = f"{release}-operator"
    spec = get(kubectl, namespace, "deployment", operator)
    assert spec["status"].get("readyReplicas") == spec["spec"]["replicas"] == 2
    [container] = spec["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image

    # One replica leads: the Lease named after the release is held by one of its Pods.
    pods = get(kubectl, namespace, "pods", "-l", f"app.kubernetes.io/instance={release}")
    names = [p["metadata"]["name"] for p in pods["items"]]
    lease = eventually(
        lambda: get(kubectl, namespace, "lease", operator)["spec"].get("holderIdentity"),
        timeout=TIMEOUT,
    )
    # the identity: the Pod's name and 8 hex digits unique to the process
    holder = re.fullmatch(r"(?P<pod>.+)_[0-9a-f]{8}", lease)
    assert holder and holder["pod"] in names, (lease, names)

    kubectl("apply", "-f", str(EXAMPLE), namespace=namespace)
    try:
        ready = eventually(lambda: _ready(kubectl, namespace), timeout=TIMEOUT, interval=1)
    except AssertionError as error:
        pipeline = json.dumps(status(kubectl, namespace, "sequential"), indent=1)
        raise AssertionError(
            f"{error}\n--- status\n{pipeline}\n--- logs\n"
            f"{_operator_logs(kubectl, namespace, release)}"
        ) from None
    assert ready["reason"] == "Running"
    st = status(kubectl, namespace, "sequential")
    assert st["progress"] == "2/2"
    assert [s["state"] for s in st["steps"]] == ["Succeeded", "Succeeded"]
    assert yaml.safe_load(EXAMPLE.read_text())["metadata"]["name"] == "sequential"
