"""What a GitOps tool sees: no drift once Ready, no Kopf bookkeeping, kstatus health.

Flux and Argo CD apply the manifests from Git (server-side) and compare them with the live
objects; the operator must not write anything they would fight over, and its status must let
them tell Healthy from Progressing from Degraded. The kubelet's part (Pod statuses) is played
through the Pod status subresource, so the control plane is enough.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from tests.helpers import (
    BAD_QUANTITY,
    Kubectl,
    eventually,
    get,
    kubelet_runs_everything,
    pod_ready,
    pods,
)

pytestmark = pytest.mark.integration

PIPELINE = """\
apiVersion: initpipeline.io/v1alpha1
kind: InitPipeline
metadata:
  name: web
  labels: {app.kubernetes.io/part-of: shop}
  annotations: {team: storefront}
spec:
  replicas: 1
  steps:
    - name: wait-config
      waitFor:
        - tcp: config:8888
    - name: fetch
      download: {url: "http://config/app.conf", volume: config, path: app.conf}
  template:
    metadata:
      labels: {app: web}
    spec:
      # No scheduler serves this name: the Pods stay unscheduled even with a node, so no
      # kubelet writes their status and the test writes it as a kubelet would.
      schedulerName: initpipeline-tests-unscheduled
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: app
          image: docker.io/library/busybox:1.36.1-musl
          command: ["sleep", "3600"]
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
"""
MANAGER = "gitops-test"  # stands in for Flux's kustomize-controller or Argo CD


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}


def server_side_apply(kubectl: Kubectl, namespace: str, manifest: str) -> None:
    kubectl("apply", "--server-side", f"--field-manager={MANAGER}", "-f", "-",
            namespace=namespace, input=manifest)  # fmt: skip


def server_side_diff(kubectl: Kubectl, namespace: str, manifest: str) -> tuple[int, str]:
    proc = kubectl("diff", "--server-side", f"--field-manager={MANAGER}", "-f", "-",
                   namespace=namespace, input=manifest, check=False)  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def _ready_pipeline(kubectl: Kubectl, namespace: str, manifest: str = PIPELINE) -> dict[str, Any]:
    server_side_apply(kubectl, namespace, manifest)
    generation = get(kubectl, namespace, "ipl", "web")["metadata"]["generation"]

    def current_pod() -> dict[str, Any] | None:
        # The new Pod: after a change, the old one serves until it is Ready (RollingUpdate).
        found = [pod for pod in pods(kubectl, namespace) if not pod_ready(pod)]
        st = get(kubectl, namespace, "ipl", "web").get("status") or {}
        if len(found) == 1 and st.get("observedGeneration") == generation:
            return found[0]
        return None

    kubelet_runs_everything(kubectl, namespace, eventually(current_pod))
    return eventually(
        lambda: conditions(cr := get(kubectl, namespace, "ipl", "web"))
        .get("Ready", {}).get("status") == "True" and cr
    )  # fmt: skip


def test_server_side_diff_is_clean_once_ready(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    cr = _ready_pipeline(kubectl, namespace)
    assert cr["status"]["readyReplicas"] == 1
    code, diff = server_side_diff(kubectl, namespace, PIPELINE)
    assert code == 0, diff
    # A change in Git shows as a diff (the check can fail), and is followed to Ready again.
    changed = PIPELINE.replace("http://config/app.conf", "http://config/v2.conf")
    code, diff = server_side_diff(kubectl, namespace, changed)
    assert code == 1 and "v2.conf" in diff, diff
    cr = _ready_pipeline(kubectl, namespace, changed)
    assert cr["status"]["observedGeneration"] == cr["metadata"]["generation"] == 2
    assert server_side_diff(kubectl, namespace, changed)[0] == 0


def test_operator_owns_only_the_status(operator: None, kubectl: Kubectl, namespace: str) -> None:
    """Every field the operator manages is under the status subresource: nothing to fight."""
    cr = _ready_pipeline(kubectl, namespace)
    kubectl("get", "ipl", "web", namespace=namespace)
    managed = get(kubectl, namespace, "ipl", "web", "--show-managed-fields")["metadata"][
        "managedFields"
    ]
    others = [m for m in managed if m["manager"] != MANAGER]
    assert others, managed
    for entry in others:
        assert entry.get("subresource") == "status", entry
    assert cr["metadata"]["labels"] == {"app.kubernetes.io/part-of": "shop"}
    assert cr["metadata"]["annotations"] == {"team": "storefront"}


def test_no_kopf_bookkeeping_on_pipelines_or_pods(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    cr = _ready_pipeline(kubectl, namespace)
    # A spec change and a scale: the points where Kopf would store progress or diff-bases.
    kubectl("scale", "ipl", "web", "--replicas=2", namespace=namespace)
    eventually(lambda: len(pods(kubectl, namespace)) == 2)
    cr = get(kubectl, namespace, "ipl", "web")
    everything = [cr, *pods(kubectl, namespace)]
    for obj in everything:
        meta = obj["metadata"]
        keys = [*(meta.get("annotations") or {}), *(meta.get("labels") or {})]
        assert not [k for k in keys if "kopf" in k], meta
        assert not meta.get("finalizers"), meta
    assert not (cr["metadata"].get("annotations") or {}).keys() - {"team"}
    for pod in everything[1:]:
        annotations = pod["metadata"].get("annotations") or {}
        assert set(annotations) <= {"initpipeline.io/released"}, annotations


def test_status_speaks_kstatus(operator: None, kubectl: Kubectl, namespace: str) -> None:
    """observedGeneration plus Ready/Reconciling/Stalled in metav1.Condition shape."""
    server_side_apply(kubectl, namespace, PIPELINE)
    cr = eventually(
        lambda: (c := get(kubectl, namespace, "ipl", "web")).get("status", {}).get("conditions")
        and c
    )  # fmt: skip
    st = cr["status"]
    assert st["observedGeneration"] == cr["metadata"]["generation"]
    found = conditions(cr)
    assert set(found) == {"Ready", "Reconciling", "Stalled"}
    for condition in found.values():
        assert {"type", "status", "reason", "message", "lastTransitionTime",
                "observedGeneration"} <= condition.keys()  # fmt: skip
        assert condition["status"] in ("True", "False")
        assert condition["observedGeneration"] == cr["metadata"]["generation"]
    # In progress: kstatus InProgress (Reconciling=True), Argo CD Progressing.
    assert (found["Ready"]["status"], found["Reconciling"]["status"]) == ("False", "True")
    assert found["Stalled"]["status"] == "False"
    assert _argocd_health(cr)["status"] == "Progressing"
    # Ready: kstatus Current, Argo CD Healthy.
    cr = _ready_pipeline(kubectl, namespace)
    found = conditions(cr)
    assert (found["Reconciling"]["status"], found["Stalled"]["status"]) == ("False", "False")
    assert _argocd_health(cr)["status"] == "Healthy"
    # Suspended: Argo CD Suspended.
    kubectl("patch", "ipl", "web", "--type=merge", "-p", '{"spec":{"suspend":true}}',
            namespace=namespace)  # fmt: skip
    cr = eventually(
        lambda: (c := get(kubectl, namespace, "ipl", "web"))["status"]["observedGeneration"]
        == c["metadata"]["generation"] and conditions(c)["Ready"]["reason"] == "Suspended" and c
    )  # fmt: skip
    assert _argocd_health(cr)["status"] == "Suspended"


def test_stalled_pipeline_is_degraded_for_argocd(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    body = yaml.safe_load(PIPELINE)
    body["spec"]["steps"].append(
        {"name": "bad", "run": {"image": "app:1", "resources": {"limits": {"cpu": "lots"}}}}
    )
    server_side_apply(kubectl, namespace, yaml.safe_dump(body))
    cr = eventually(
        lambda: conditions(c := get(kubectl, namespace, "ipl", "web"))
        .get("Stalled", {}).get("status") == "True" and c
    )  # fmt: skip
    health = _argocd_health(cr)
    assert health["status"] == "Degraded"
    # the Stalled condition's reason and message: the API server's refusal of the Pod
    message = re.escape(f"PodCreationFailed: pod web-HASH-0: {BAD_QUANTITY}")
    assert re.fullmatch(message.replace("HASH", "[0-9a-f]{5}"), health["message"]), health


def _argocd_health(obj: dict[str, Any]) -> dict[str, str]:
    from tests.unit.test_argocd_health import health

    return health(obj)
