"""The operator as users run it: its image, deployed from deploy/ into the test cluster.

``INITPIPELINE_TEST_OPERATOR`` picks how the cluster tests get their operator:
  process     (default) Kopf's test runner inside pytest, with the admin kubeconfig
  deployment  the image built from this tree (``hack/images/operator.sh``), deployed with
              ``kubectl apply -k`` of deploy/base: two replicas electing a leader, the
              operator's own ServiceAccount, the in-cluster config, restricted Pod Security.
On the local cluster the image is built and imported by the tests; on another cluster (kind)
``INITPIPELINE_TEST_IMAGE`` names an image of this tree that its nodes already have.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.helpers import Kubectl, eventually, get

REPO = Path(__file__).resolve().parents[1]
CLUSTER_DIR = Path(os.environ.get("INITPIPELINE_CLUSTER_DIR", "/tmp/initpipeline-cluster"))
MODE_ENV = "INITPIPELINE_TEST_OPERATOR"
IMAGE_ENV = "INITPIPELINE_TEST_IMAGE"
MODES = ("process", "deployment")
NAMESPACE = "initpipeline-system"
DEPLOYMENT = "initpipeline-operator"
LEASE = "initpipeline-operator"
SELECTOR = "app.kubernetes.io/name=initpipeline,app.kubernetes.io/component=operator"
# What the test pipelines' Pods need under the namespaces' `restricted` Pod Security level.
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
# A test pipeline's template: an app that stops at once on SIGTERM.
APP_TEMPLATE = {
    "spec": {
        "securityContext": RESTRICTED,
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "app",
                "image": "docker.io/library/busybox:1.36.1-musl",
                "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
                "securityContext": CONTAINER_SECURITY,
            }
        ],
    }
}
AUDIT_LOG = CLUSTER_DIR / "logs" / "audit.log"
POD_NAME_CLAIM = "authentication.kubernetes.io/pod-name"
# The name under which deploy/base refers to the image (its kustomize `images:` entry).
BASE_IMAGE_NAME = "ghcr.io/initpipeline/initpipeline"


def mode() -> str:
    value = os.environ.get(MODE_ENV, "process")
    if value not in MODES:
        raise ValueError(f"{MODE_ENV}={value!r}: use one of {', '.join(MODES)}")
    return value


def operator_image(local_cluster: bool) -> str:
    """An image of this tree that the cluster's node has: built and imported when local."""
    explicit = os.environ.get(IMAGE_ENV, "")
    if explicit:
        return explicit
    if not local_cluster:
        raise AssertionError(
            f"{IMAGE_ENV} is not set: on a cluster other than hack/cluster.sh's, build the "
            "image (docker build -t initpipeline:test .), load it onto the nodes (kind load "
            f"docker-image initpipeline:test) and set {IMAGE_ENV}=initpipeline:test"
        )
    proc = subprocess.run(
        [str(REPO / "hack" / "images" / "operator.sh"), "import"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"building the operator image failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


def ctr() -> str:
    """The ctr built with the local node's containerd (hack/build/containerd)."""
    out = subprocess.run(
        [str(REPO / "hack" / "build.sh"), "--print", "containerd"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return str(Path(out.split()[1]) / "ctr")


def _render_image(image: str) -> str:
    """A strategic-merge patch setting the operator's INITPIPELINE_RENDER_IMAGE to `image`."""
    env = [{"name": "INITPIPELINE_RENDER_IMAGE", "value": image}]
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": DEPLOYMENT},
            "spec": {"template": {"spec": {"containers": [{"name": "operator", "env": env}]}}},
        }
    )


def kustomization(image: str, where: Path, of: Path = REPO / "deploy" / "base") -> Path:
    """An overlay of deploy/base (or `of`) that runs `image` (kustomize wants relative
    paths)."""
    name, _, tag = image.rpartition(":")
    where.mkdir(parents=True, exist_ok=True)
    base = os.path.relpath(of, where)
    (where / "kustomization.yaml").write_text(
        json.dumps(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [base],
                "images": [{"name": BASE_IMAGE_NAME, "newName": name, "newTag": tag}],
                # renderConfig steps run the operator's image too (deploy/base copies only its
                # own `images:` result into the variable).
                "patches": [{"target": {"kind": "Deployment"}, "patch": _render_image(image)}],
            },
            indent=2,
        )
    )
    return where


@dataclass
class Deployed:
    """The operator's Deployment in the test cluster, and what it logged since `since`."""

    kubectl: Kubectl
    since: str

    def pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = get(self.kubectl, NAMESPACE, "pods", "-l", SELECTOR)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def lease(self) -> dict[str, Any]:
        """The leader Lease's spec ({} before a first replica created it)."""
        proc = self.kubectl("get", "lease", LEASE, "-o", "json", namespace=NAMESPACE, check=False)
        if proc.returncode != 0 and "NotFound" in proc.stderr:
            return {}
        spec: dict[str, Any] = json.loads(proc.stdout).get("spec") or {}
        return spec

    def leader(self) -> str:
        """The Pod that holds the Lease ('' while nobody does); identities are `<pod>_<id>`."""
        holder = str(self.lease().get("holderIdentity") or "")
        return holder.rpartition("_")[0] if "_" in holder else holder

    def wait_ready(self, timeout: float = 180) -> str:
        """Every replica Ready and one of them leading; the leader's Pod name."""
        self.kubectl(
            "rollout",
            "status",
            f"deployment/{DEPLOYMENT}",
            f"--timeout={int(timeout)}s",
            namespace=NAMESPACE,
            timeout=timeout + 10,
        )
        names = {p["metadata"]["name"] for p in self.pods()}
        return eventually(lambda: self.leader() if self.leader() in names else None, timeout)

    @property
    def output(self) -> str:
        """Everything every operator container logged since the Deployment was applied."""
        texts = []
        for pod in self.pods():
            proc = self.kubectl(
                "logs",
                pod["metadata"]["name"],
                "--all-containers",
                f"--since-time={self.since}",
                namespace=NAMESPACE,
                check=False,
            )
            texts.append(proc.stdout)
        return "".join(texts)


@contextlib.contextmanager
def operator_deployed(
    kubectl: Kubectl, image: str, workdir: Path, of: Path = REPO / "deploy" / "base"
) -> Iterator[Deployed]:
    """deploy/base (or the overlay `of`) applied with `image`, until every replica of the
    base's Deployment is Ready; removed afterwards."""
    overlay = kustomization(image, workdir, of)
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # --force-conflicts: an earlier install (test_rbac scales it to 0) may own some fields.
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(overlay))
    deployed = Deployed(kubectl, since)
    try:
        deployed.wait_ready()
        yield deployed
    finally:
        started = time.monotonic()
        kubectl("delete", "-k", str(overlay), "--ignore-not-found", "--wait", timeout=300)
        print(f"operator Deployment removed in {time.monotonic() - started:.1f}s")


@dataclass(frozen=True)
class Write:
    """One write by the operator's ServiceAccount, from the API server's audit log."""

    at: str  # requestReceivedTimestamp (RFC 3339, microseconds: sorts as text)
    pod: str
    verb: str
    resource: str
    namespace: str
    name: str
    code: int


def audit_writes() -> list[Write]:
    """The operator replicas' writes, each with the Pod its token is bound to, in order
    (tokens bound to no Pod, such as test_rbac's, are other clients)."""
    writes = []
    for line in AUDIT_LOG.read_text().splitlines():
        event = json.loads(line)
        pods = event["user"].get("extra", {}).get(POD_NAME_CLAIM)
        if not event["user"]["username"].endswith(":initpipeline-operator") or not pods:
            continue
        ref = event.get("objectRef", {})
        resource = "/".join(filter(None, (ref.get("resource"), ref.get("subresource"))))
        writes.append(
            Write(
                at=event["requestReceivedTimestamp"],
                pod=pods[0],
                verb=event["verb"],
                resource=resource,
                namespace=ref.get("namespace", ""),
                name=ref.get("name", ""),
                code=event.get("responseStatus", {}).get("code", 0),
            )
        )
    return sorted(writes, key=lambda w: w.at)
