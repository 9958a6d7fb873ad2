"""The install in deploy/ on a real API server, and the operator running with its account.

The operator runs as a child process with `initpipeline run` (the image's entrypoint), the
settings the Deployment sets (JSON logs, liveness and metrics endpoints) and a kubeconfig that
holds nothing but a token of the deploy/ ServiceAccount (TokenRequest, `kubectl create token`):
whatever it needs beyond the ClusterRole would show as a 403 in its log or a step that never
moves. The kubelet's part (Pod statuses) is played by the admin kubeconfig, as in
test_operator.py, so only the control plane is needed.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests import helpers
from tests.helpers import Kubectl, OperatorProcess, eventually, get, http_get, pods, status

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SYSTEM_NAMESPACE = "initpipeline-system"
ACCOUNT = "initpipeline-operator"
SUBJECT = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{ACCOUNT}"
AGGREGATE_LABEL = "initpipeline.io/aggregate-to-operator"
REFUSED_LINE = re.compile(r"\b403\b|forbidden", re.IGNORECASE)

RESTRICTED_POD = {
    "securityContext": {
        "runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"},
    },
}  # fmt: skip
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

PIPELINE = """
apiVersion: initpipeline.io/v1alpha1
kind: InitPipeline
metadata:
  name: web
spec:
  steps:
    - name: wait-db
      waitFor:
        - service: mydb
    - name: wait-backend
      waitFor:
        - resource: {apiVersion: apps/v1, kind: Deployment, name: backend, condition: Available}
    - name: wait-migration
      waitFor:
        - job: db-migrate
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


# --------------------------------------------------------------------------- helpers


def waiting_on(kubectl: Kubectl, namespace: str, step: str) -> list[str]:
    for entry in status(kubectl, namespace).get("steps") or []:
        if entry["name"] == step:
            return list(entry.get("waitingOn") or [])
    return []


def released(kubectl: Kubectl, namespace: str, pod: str) -> list[str]:
    meta = get(kubectl, namespace, "pod", pod)["metadata"]
    value: str = (meta.get("annotations") or {}).get("initpipeline.io/released", "")
    return value.split(",") if value else []


def can_i(
    kubectl: Kubectl, verb: str, resource: str, namespace: str | None = None, name: str = ""
) -> bool:
    """`kubectl auth can-i` for the operator's ServiceAccount (impersonated by the admin).
    `resource` may name a subresource ("pods/log"); `name`: one object of that resource."""
    resource, _, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, f"{resource}/{name}" if name else resource, "--as", SUBJECT]
    args += [f"--subresource={subresource}"] if subresource else []
    args += ["--namespace", namespace] if namespace else ["--all-namespaces"]
    answer = kubectl(*args, check=False).stdout.strip()
    assert answer in ("yes", "no"), answer
    return answer == "yes"


def token_kubeconfig(
    kubectl: Kubectl, admin_kubeconfig: str, path: Path, account: str = ACCOUNT
) -> str:
    return helpers.token_kubeconfig(kubectl, admin_kubeconfig, path, account, SYSTEM_NAMESPACE)


def problems(operator: OperatorProcess, namespace: str) -> list[str]:
    """Log lines about refused API calls in `namespace` or cluster-wide. (Pipelines left in
    namespaces that other tests are deleting get 403s from the namespace lifecycle.)"""
    return [
        line
        for line in operator.lines()
        if REFUSED_LINE.search(line)
        and (namespace in line or not re.search(r"namespaces/|namespace \S", line))
    ]


def unexpected_problems(operator: OperatorProcess, namespace: str) -> list[str]:
    """Refusals other than those of the Deployments read before their grant."""
    return [line for line in problems(operator, namespace) if "deployment" not in line.lower()]


def operator_process(
    kubeconfig: str, log: Path, **env: str
) -> contextlib.AbstractContextManager[OperatorProcess]:
    """`initpipeline run` as the container runs it, with the Deployment's settings."""
    return helpers.operator_process(kubeconfig, log, INITPIPELINE_LOG_FORMAT="json", **env)


def apply_install(kubectl: Kubectl) -> None:
    kubectl("apply", "-k", str(REPO / "deploy"))


def render(kubectl: Kubectl, kustomization: Path) -> list[dict[str, Any]]:
    return [
        doc for doc in yaml.safe_load_all(kubectl("kustomize", str(kustomization)).stdout) if doc
    ]


# --------------------------------------------------------------------------- the install


@pytest.fixture(scope="module")
def installed(kubectl: Kubectl) -> dict[str, Any]:
    """`kubectl apply -k deploy/` (crds/ are applied by conftest). The operator Deployment is
    scaled to 0 once its Pod was admitted, so that only the operator under test runs."""
    apply_install(kubectl)
    selector = "app.kubernetes.io/name=initpipeline,app.kubernetes.io/component=operator"

    def admitted_or_refused() -> dict[str, Any] | None:
        found = get(kubectl, SYSTEM_NAMESPACE, "pods", "-l", selector)["items"]
        if found:
            return {"pod": found[0]}
        events = get(kubectl, SYSTEM_NAMESPACE, "events", "--field-selector", "reason=FailedCreate")
        messages = [e["message"] for e in events["items"]]
        return {"refused": messages} if messages else None

    outcome = eventually(admitted_or_refused, timeout=60)
    kubectl("scale", "deployment", ACCOUNT, "--replicas=0", namespace=SYSTEM_NAMESPACE)
    return outcome


def test_install_applies_and_its_pod_meets_restricted(
    installed: dict[str, Any], kubectl: Kubectl
) -> None:
    assert "refused" not in installed, installed.get("refused")
    ns = get(kubectl, None, "namespace", SYSTEM_NAMESPACE)["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = get(kubectl, SYSTEM_NAMESPACE, "deployment", ACCOUNT)["spec"]
    # Two replicas with leader election; a rolling update never stops the standby first.
    assert deployment["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }  # fmt: skip
    budget = get(kubectl, SYSTEM_NAMESPACE, "poddisruptionbudget", ACCOUNT)["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["selector"] == deployment["selector"]
    pod = deployment["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["run"]
    env = {e["name"]: e for e in container["env"]}
    assert env["INITPIPELINE_LEADER_ELECTION"]["value"] == "true"
    assert env["INITPIPELINE_LEASE_NAME"]["value"] == ACCOUNT  # the Lease the Role grants
    for name, field in [
        ("INITPIPELINE_POD_NAME", "metadata.name"),
        ("INITPIPELINE_POD_NAMESPACE", "metadata.namespace"),
    ]:
        assert env[name]["valueFrom"]["fieldRef"]["fieldPath"] == field
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # Any running replica is ready, leader or standby (a leader-only readiness would deadlock
    # a RollingUpdate with maxUnavailable 0).
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["serviceAccountName"] == ACCOUNT
    # Applying again is accepted (checked without effect: the Deployment stays scaled down).
    kubectl("apply", "-k", str(REPO / "deploy"), "--dry-run=server")


def test_every_rule_has_a_comment_saying_why() -> None:
    for path in (
        REPO / "deploy/base/clusterrole.yaml",
        REPO / "deploy/base/role-leader-election.yaml",
        REPO / "deploy/overlays/single-namespace/role.yaml",
    ):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip().startswith("- apiGroups:"):
                assert lines[number - 1].strip().startswith("#"), f"{path.name}:{number + 1}"


ALLOWED = [
    ("list", "initpipelines.initpipeline.io"),
    ("watch", "initpipelines.initpipeline.io"),
    ("patch", "initpipelines.initpipeline.io/status"),
    ("get", "pods"),  # a create refused as existing: whose Pod is it? (shards)
    ("list", "pods"),
    ("watch", "pods"),
    ("create", "pods"),
    ("delete", "pods"),
    ("patch", "pods"),
    ("get", "pods/log"),
    ("patch", "pods/status"),  # an unscheduled Pod past spec.activeDeadlineSeconds: Failed
    ("list", "services"),
    ("watch", "services"),
    ("list", "endpointslices.discovery.k8s.io"),
    ("watch", "endpointslices.discovery.k8s.io"),
    ("list", "jobs.batch"),
    ("watch", "jobs.batch"),
    ("create", "jobs.batch"),  # the Job of a `once` step
    ("delete", "jobs.batch"),  # ... of an older spec revision
    ("create", "events"),
    # tenancy: may the Pods' ServiceAccount get a target? (operator/initpipeline/access.py)
    ("create", "subjectaccessreviews.authorization.k8s.io"),
    # copyAssets Auto: do the nodes' runtimes mount image volumes? (at start-up)
    ("list", "nodes"),
]
REFUSED = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("get", "configmaps"),
    ("create", "pods/exec"),
    ("create", "pods/attach"),
    ("create", "pods/portforward"),
    ("update", "pods"),
    ("update", "initpipelines.initpipeline.io"),
    ("patch", "initpipelines.initpipeline.io"),
    ("create", "initpipelines.initpipeline.io"),
    ("delete", "initpipelines.initpipeline.io"),
    ("update", "initpipelines.initpipeline.io/status"),
    ("create", "services"),
    ("update", "jobs.batch"),
    ("patch", "jobs.batch"),
    ("create", "deployments.apps"),
    ("list", "namespaces"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "serviceaccounts/token"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("patch", "events"),
    ("get", "nodes"),
    ("watch", "nodes"),
    # It asks about a target; it reads no RBAC object and asks no namespaced review.
    ("list", "rolebindings.rbac.authorization.k8s.io"),
    ("get", "roles.rbac.authorization.k8s.io"),
    ("create", "localsubjectaccessreviews.authorization.k8s.io"),
]


# Leader election: one Lease (INITPIPELINE_LEASE_NAME) in the operator's own namespace; create
# cannot be limited by name, so any Lease may be created there, and nowhere else.
# (verb, name of the Lease or "" for the collection)
LEASES = "leases.coordination.k8s.io"
ALLOWED_IN_SYSTEM_NAMESPACE = [
    ("get", ACCOUNT), ("watch", ACCOUNT), ("update", ACCOUNT), ("create", ""),
]  # fmt: skip
REFUSED_IN_SYSTEM_NAMESPACE = [
    ("get", "kube-scheduler"), ("watch", "kube-scheduler"), ("update", "kube-scheduler"),
    ("patch", ACCOUNT), ("delete", ACCOUNT), ("list", ACCOUNT), ("get", ""), ("list", ""),
    ("watch", ""),
]  # fmt: skip
REFUSED_IN_OTHER_NAMESPACES = ALLOWED_IN_SYSTEM_NAMESPACE


def _lease_id(case: tuple[str, str]) -> str:
    return f"{case[0]} leases/{case[1] or '*'}"


@pytest.mark.parametrize(("verb", "resource"), ALLOWED, ids=[" ".join(a) for a in ALLOWED])
def test_account_may(installed: dict[str, Any], kubectl: Kubectl, verb: str, resource: str) -> None:
    assert can_i(kubectl, verb, resource), f"{SUBJECT} cannot {verb} {resource}"


@pytest.mark.parametrize(("verb", "resource"), REFUSED, ids=[" ".join(r) for r in REFUSED])
def test_account_may_not(
    installed: dict[str, Any], kubectl: Kubectl, verb: str, resource: str
) -> None:
    assert not can_i(kubectl, verb, resource), f"{SUBJECT} can {verb} {resource}"


@pytest.mark.parametrize(
    ("verb", "name"),
    ALLOWED_IN_SYSTEM_NAMESPACE,
    ids=[_lease_id(c) for c in ALLOWED_IN_SYSTEM_NAMESPACE],
)
def test_account_may_use_its_lease(
    installed: dict[str, Any], kubectl: Kubectl, verb: str, name: str
) -> None:
    assert can_i(kubectl, verb, LEASES, SYSTEM_NAMESPACE, name), (
        f"{SUBJECT} cannot {verb} lease {name!r} in {SYSTEM_NAMESPACE}"
    )


@pytest.mark.parametrize(
    ("verb", "name"),
    REFUSED_IN_SYSTEM_NAMESPACE,
    ids=[_lease_id(c) for c in REFUSED_IN_SYSTEM_NAMESPACE],
)
def test_account_may_not_use_other_leases(
    installed: dict[str, Any], kubectl: Kubectl, verb: str, name: str
) -> None:
    assert not can_i(kubectl, verb, LEASES, SYSTEM_NAMESPACE, name), (
        f"{SUBJECT} can {verb} lease {name!r} in {SYSTEM_NAMESPACE}"
    )


@pytest.mark.parametrize(
    ("verb", "name"),
    REFUSED_IN_OTHER_NAMESPACES,
    ids=[_lease_id(c) for c in REFUSED_IN_OTHER_NAMESPACES],
)
def test_account_may_not_use_leases_in_other_namespaces(
    installed: dict[str, Any], kubectl: Kubectl, namespace: str, verb: str, name: str
) -> None:
    assert not can_i(kubectl, verb, LEASES, namespace, name), f"{SUBJECT} can {verb} leases"
    assert not can_i(kubectl, verb, LEASES, name=name), f"{SUBJECT} can {verb} leases anywhere"


def test_account_cannot_write_a_pipeline_spec_even_when_it_tries(
    installed: dict[str, Any], kubectl: Kubectl, kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    kubectl("apply", "-f", "-", namespace=namespace, input=PIPELINE)
    as_operator = token_kubeconfig(kubectl, kubeconfig, tmp_path / "operator.kubeconfig")
    patch = json.dumps({"spec": {"replicas": 3}})
    refused = kubectl(
        "--kubeconfig", as_operator, "--context", ACCOUNT, "patch", "ipl", "web",
        "--type=merge", "-p", patch, namespace=namespace, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()
    secret = kubectl(
        "--kubeconfig", as_operator, "--context", ACCOUNT, "get", "secrets",
        namespace=namespace, check=False,
    )  # fmt: skip
    assert "forbidden" in secret.stderr.lower()


# --------------------------------------------------------------------------- lifecycle


def _container(name: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name, "image": "docker.io/library/busybox:1.36.1-musl", "imageID": "",
        "ready": False, "restartCount": 0, "started": "running" in state,
        "state": state, "lastState": {},
    }  # fmt: skip


def _kubelet_reports(
    kubectl: Kubectl, namespace: str, pod: str, done: list[str], running: str
) -> None:
    """As the kubelet would: steps `done` succeeded, `running` runs (its log is read)."""
    finished = {"terminated": {
        "exitCode": 0, "reason": "Completed", "startedAt": "2026-11-25T10:00:01Z",
        "finishedAt": "2026-11-25T10:00:03Z",
    }}  # fmt: skip
    statuses = [_container(step, finished) for step in done]
    statuses.append(_container(running, {"running": {"startedAt": "2026-11-25T10:00:04Z"}}))
    pod_status = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"},
                       {"type": "Initialized", "status": "False"}],
        "initContainerStatuses": statuses,
    }  # fmt: skip
    kubectl(
        "patch", "pod", pod, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": pod_status}), namespace=namespace,
    )  # fmt: skip


def test_full_lifecycle_with_the_operators_own_token(
    installed: dict[str, Any], kubectl: Kubectl, kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    as_operator = token_kubeconfig(kubectl, kubeconfig, tmp_path / "operator.kubeconfig")
    grant = f"initpipeline-test-deployments-{namespace}"[:63]
    # Tenancy: the resource target is checked only if the Pods' ServiceAccount may get it.
    kubectl("apply", "-f", "-", namespace=namespace, input=yaml.safe_dump_all([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "get-backend"},
         "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"],
                    "resourceNames": ["backend"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "default-gets-backend"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "get-backend"},
         "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}]},
    ]))  # fmt: skip
    with operator_process(as_operator, tmp_path / "operator.log") as operator:
        # create: the Pod, owned by the pipeline, and a status.
        kubectl("apply", "-f", "-", namespace=namespace, input=PIPELINE)
        [pod] = eventually(lambda: pods(kubectl, namespace) or None)
        name = pod["metadata"]["name"]
        assert pod["metadata"]["ownerReferences"][0]["name"] == "web"
        st = eventually(lambda: status(kubectl, namespace).get("observedGeneration") == 1)
        assert st

        # status follows the Pod; the running wait step's log is read (pods/log).
        _kubelet_reports(kubectl, namespace, name, done=[], running="wait-db")
        eventually(lambda: status(kubectl, namespace).get("currentStep") == "wait-db")

        # service target: Service + ready EndpointSlice -> the Pod is annotated (pods patch).
        # "not checked yet" until the Services' watch has listed
        missing = ["service mydb: service does not exist"]
        eventually(lambda: waiting_on(kubectl, namespace, "wait-db") == missing)
        kubectl("apply", "-f", "-", namespace=namespace, input=yaml.safe_dump_all([
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mydb"},
             "spec": {"ports": [{"port": 5432}], "selector": {"app": "mydb"}}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": "mydb-1", "labels": {"kubernetes.io/service-name": "mydb"}},
             "addressType": "IPv4",
             "endpoints": [{"addresses": ["10.88.0.42"], "conditions": {"ready": True}}],
             "ports": [{"port": 5432, "protocol": "TCP"}]},
        ]))  # fmt: skip
        eventually(lambda: "wait-db" in released(kubectl, namespace, name))

        # resource target of a kind the base role does not grant: refused, so never released ...
        assert not can_i(kubectl, "list", "deployments.apps", namespace)
        kubectl("create", "deployment", "backend", "--image=docker.io/library/busybox:1.36.1-musl",
                "--replicas=0", namespace=namespace)  # fmt: skip
        eventually(lambda: [line for line in problems(operator, namespace) if "Deployment" in line])
        assert unexpected_problems(operator, namespace) == []
        assert "wait-backend" not in released(kubectl, namespace, name)

        # job target: listed and watched (jobs list/watch), so "does not exist" is known.
        _kubelet_reports(kubectl, namespace, name, done=["wait-db", "wait-backend"],
                         running="wait-migration")  # fmt: skip
        eventually(
            lambda: (
                waiting_on(kubectl, namespace, "wait-migration")
                == ["job db-migrate: job does not exist"]
            )
        )

        # ... until an admin adds a ClusterRole with the aggregation label: no edit of deploy/.
        kubectl("apply", "-f", "-", input=yaml.safe_dump({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": grant, "labels": {AGGREGATE_LABEL: "true"}},
            "rules": [{"apiGroups": ["apps"], "resources": ["deployments"],
                       "verbs": ["list", "watch"]}],
        }))  # fmt: skip
        try:
            eventually(lambda: can_i(kubectl, "list", "deployments.apps", namespace), timeout=60)
            eventually(lambda: "wait-backend" in released(kubectl, namespace, name), timeout=90)
        finally:
            kubectl("delete", "clusterrole", grant, "--ignore-not-found", check=False)

        # spec change: the Pod is replaced, observedGeneration follows.
        body = yaml.safe_load(PIPELINE)
        body["spec"]["steps"][3]["download"]["url"] = "http://config/other.conf"
        kubectl("apply", "-f", "-", namespace=namespace, input=yaml.safe_dump(body))
        eventually(
            lambda: (
                [p["metadata"]["uid"] for p in pods(kubectl, namespace)]
                not in ([], [pod["metadata"]["uid"]])
            )
        )
        eventually(lambda: status(kubectl, namespace).get("observedGeneration") == 2)

        # events on the pipeline (events create).
        events = get(kubectl, namespace, "events", "--field-selector", "involvedObject.name=web")
        assert {"initpipeline-operator"} & {e["source"].get("component") for e in events["items"]}

        # the endpoints of a running operator: liveness and Prometheus metrics.
        assert http_get(operator.liveness_url)[0] == 200
        code, text = http_get(operator.metrics_url)
        assert code == 200
        assert "initpipeline_pipelines{" in text
        assert "# TYPE initpipeline_step_duration_seconds histogram" in text.splitlines()

        # delete: the Pods go with the pipeline (ownerReferences, garbage collector).
        kubectl("delete", "ipl", "web", "--wait=true", namespace=namespace)
        eventually(lambda: pods(kubectl, namespace) == [], timeout=90)

    assert operator.process.returncode == 0, "\n".join(operator.lines()[-30:])
    # Nothing was refused, but the Deployments read before the grant.
    refused = unexpected_problems(operator, namespace)
    assert refused == [], "\n".join(refused)
    # Every log line is one JSON object (INITPIPELINE_LOG_FORMAT=json).
    records = [json.loads(line) for line in operator.lines() if line.strip()]
    assert records and all("message" in record for record in records)


# --------------------------------------------------------------------------- one namespace


def test_single_namespace_overlay_needs_no_cluster_wide_rights(
    installed: dict[str, Any], kubectl: Kubectl, kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    """deploy/overlays/single-namespace, watching the test's namespace, with its own account."""
    account = f"ipl-{namespace}"[:63]
    docs = render(kubectl, REPO / "deploy/overlays/single-namespace")
    kinds = {doc["kind"] for doc in docs}
    assert "ClusterRoleBinding" not in kinds
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"] == [
        "initpipeline-operator-wait-targets"
    ]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    [env] = [
        e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"] == "INITPIPELINE_NAMESPACES"
    ]  # fmt: skip
    watched = env["value"]
    rbac = []
    for doc in docs:
        if doc["metadata"]["name"] == f"{ACCOUNT}-leader-election":
            # The Lease stays in the operator's namespace, and so do its rights.
            assert doc["metadata"]["namespace"] == SYSTEM_NAMESPACE
        elif doc["kind"] in ("Role", "RoleBinding"):
            assert doc["metadata"]["namespace"] == watched
            doc["metadata"]["namespace"] = namespace
            for subject in doc.get("subjects", []):
                subject["name"] = account
            rbac.append(doc)
    kubectl("create", "serviceaccount", account, namespace=SYSTEM_NAMESPACE)
    try:
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
        as_operator = token_kubeconfig(kubectl, kubeconfig, tmp_path / "ns.kubeconfig", account)
        subject = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{account}"
        for verb, resource, where, want in [
            ("list", "pods", "default", "no"),
            ("list", "initpipelines.initpipeline.io", "default", "no"),
            # tenancy: reviews in the watched namespace only, none cluster-wide
            ("create", "localsubjectaccessreviews.authorization.k8s.io", namespace, "yes"),
            ("create", "localsubjectaccessreviews.authorization.k8s.io", "default", "no"),
            ("create", "subjectaccessreviews.authorization.k8s.io", namespace, "no"),
        ]:
            answer = kubectl(
                "auth", "can-i", verb, resource, "--as", subject, "-n", where, check=False
            )
            assert answer.stdout.strip() == want, (verb, resource, where)
        with operator_process(
            as_operator, tmp_path / "operator.log", INITPIPELINE_NAMESPACES=namespace
        ) as operator:
            kubectl("apply", "-f", "-", namespace=namespace, input=PIPELINE)
            [pod] = eventually(lambda: pods(kubectl, namespace) or None)
            eventually(lambda: status(kubectl, namespace).get("observedGeneration") == 1)
            kubectl("delete", "ipl", "web", "--wait=true", namespace=namespace)
            eventually(lambda: pods(kubectl, namespace) == [], timeout=90)
        refused = unexpected_problems(operator, namespace)
        assert refused == [], "\n".join(refused)
        assert pod["metadata"]["ownerReferences"][0]["name"] == "web"
    finally:
        kubectl("delete", "serviceaccount", account, namespace=SYSTEM_NAMESPACE, check=False)
