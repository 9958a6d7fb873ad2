"""The operator in shards, as deploy/overlays/shards installs it: the base Deployment for the
pipelines without the label initpipeline.io/shard, a second one for those labelled
`shard-a`, each with two replicas electing a leader on its own Lease.

Runs only with INITPIPELINE_TEST_OPERATOR=deployment (tests/deployment.py). Both pipelines
must get going, and, from the API server's audit log, each pipeline's status must have been
written only by its shard's Deployment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests import deployment
from tests.deployment import APP_TEMPLATE, CONTAINER_SECURITY, NAMESPACE, Deployed, audit_writes
from tests.helpers import Kubectl, eventually, get, pods

pytestmark = [pytest.mark.e2e, pytest.mark.deployment]

SHARD_DEPLOYMENT = "initpipeline-operator-shard-a"


@pytest.fixture(scope="module")
def sharded_operator(
    kubectl: Kubectl, cluster_level: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    image = deployment.operator_image(cluster_level.local)
    overlay = deployment.REPO / "deploy" / "overlays" / "shards"
    workdir: Path = tmp_path_factory.mktemp("shards")
    with deployment.operator_deployed(kubectl, image, workdir, of=overlay) as deployed:
        kubectl(
            "rollout", "status", f"deployment/{SHARD_DEPLOYMENT}", "--timeout=180s",
            namespace=NAMESPACE, timeout=190,
        )  # fmt: skip
        yield deployed


def pipeline(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "initpipeline.io/v1alpha1",
        "kind": "InitPipeline",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "steps": [
                {
                    "name": "prepare",
                    "run": {
                        "image": "docker.io/library/busybox:1.36.1-musl",
                        "command": ["true"],
                        "securityContext": CONTAINER_SECURITY,
                    },
                }
            ],
            "template": APP_TEMPLATE,
        },
    }


def lease_holder(kubectl: Kubectl, name: str) -> str:
    lease = get(kubectl, NAMESPACE, "lease", name)
    return str(lease["spec"].get("holderIdentity") or "")


def ready(kubectl: Kubectl, namespace: str, name: str) -> bool:
    status = get(kubectl, namespace, "initpipeline", name).get("status") or {}
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def test_each_shards_deployment_writes_only_its_own_pipelines(
    sharded_operator: Deployed, kubectl: Kubectl, namespace: str
) -> None:
    kubectl("create", "-f", "-", namespace=namespace, input=json.dumps(pipeline("plain", {})))
    sharded = pipeline("sharded", {"initpipeline.io/shard": "shard-a"})
    kubectl("create", "-f", "-", namespace=namespace, input=json.dumps(sharded))
    eventually(lambda: ready(kubectl, namespace, "plain"), timeout=120)
    eventually(lambda: ready(kubectl, namespace, "sharded"), timeout=120)

    # Each Deployment leads on its own Lease.
    assert lease_holder(kubectl, "initpipeline-operator").startswith("initpipeline-operator-")
    assert not lease_holder(kubectl, "initpipeline-operator").startswith(SHARD_DEPLOYMENT)
    assert lease_holder(kubectl, "initpipeline-operator-shard-a").startswith(SHARD_DEPLOYMENT)
    (sharded_pod,) = [
        p
        for p in pods(kubectl, namespace)
        if p["metadata"]["labels"]["initpipeline.io/pipeline"] == "sharded"
    ]
    assert sharded_pod["metadata"]["labels"]["initpipeline.io/shard"] == "shard-a"

    writers: dict[str, set[bool]] = {"plain": set(), "sharded": set()}
    for write in audit_writes():
        if write.namespace == namespace and write.resource == "initpipelines/status":
            writers[write.name].add(write.pod.startswith(SHARD_DEPLOYMENT))
    # plain's status written by the base Deployment only; sharded's by shard-a's only
    assert writers == {"plain": {False}, "sharded": {True}}
