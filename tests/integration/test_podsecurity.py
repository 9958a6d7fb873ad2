"""Pod Security admission `enforce: restricted`: the Pods the operator generates are admitted.

Every generated step (waitFor, download, copyAssets with its tools container) and the user's
run/sidecar steps written restricted-compliant pass; prepareVolume runs as root to chown and
is refused, and the pipeline says so (Stalled, PodCreationFailed, naming that container).
Admission happens at Pod creation, so the control plane is enough.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.helpers import Kubectl, eventually, get

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
PIPELINE_LABEL = "initpipeline.io/pipeline"
# Admission is all these tests look at: no scheduler serves this name, so even on a cluster
# with a node the Pods are never started.
UNSCHEDULED = "initpipeline-tests-unscheduled"

SECURE = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

EVERY_STEP_TYPE = {
    "apiVersion": "initpipeline.io/v1alpha1",
    "kind": "InitPipeline",
    "metadata": {"name": "every-step"},
    "spec": {
        "steps": [
            {"name": "wait", "timeoutSeconds": 60, "waitFor": [
                {"service": "mydb", "port": 5432},
                {"tcp": "mysql:3306"},
                {"http": "http://config-server:8888/health", "expectStatus": 200,
                 "bodyContains": "UP"},
                {"dns": "myservice"},
                {"file": "/certs/tls.crt"},
                {"job": "db-migrate"},
                {"command": ["sh", "-c", "test -s /certs/tls.crt"]},
            ], "volumeMounts": [{"name": "certs", "mountPath": "/certs"}]},
            {"name": "fetch", "download": {
                "url": "http://config-server/nginx.conf", "volume": "config",
                "path": "nginx.conf"}},
            # Copy: its tools and copy containers are what must be admitted (Auto would mount
            # on a node whose runtime supports image volumes: no container then).
            {"name": "assets", "copyAssets": {
                "image": "localhost/initpipeline/assets:1", "from": "/dist", "volume": "html",
                "mode": "Copy"}},
            {"name": "migrate", "run": {
                "image": "docker.io/library/busybox:1.36.1-musl", "command": ["true"],
                "securityContext": SECURE}},
            {"name": "shipper", "sidecar": {
                "image": "docker.io/library/busybox:1.36.1-musl", "command": ["sleep", "3600"],
                "securityContext": SECURE}},
        ],
        "template": {
            "metadata": {"labels": {"app": "every-step"}},
            "spec": {
                "schedulerName": UNSCHEDULED,
                "securityContext": {
                    "runAsNonRoot": True, "runAsUser": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "volumes": [{"name": "certs", "emptyDir": {}}],
                "containers": [{
                    "name": "web", "image": "localhost/initpipeline/httpd:1",
                    "volumeMounts": [{"name": "html", "mountPath": "/www"}],
                    "securityContext": SECURE,
                }],
            },
        },
    },
}  # fmt: skip


def example_pipelines() -> list[dict[str, Any]]:
    docs = [
        doc
        for path in sorted(EXAMPLES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    pipelines = [doc for doc in docs if doc.get("kind") == "InitPipeline"]
    for pipeline in pipelines:
        pipeline["spec"]["template"]["spec"]["schedulerName"] = UNSCHEDULED
    return pipelines


def prepare_volume_steps(pipeline: dict[str, Any]) -> set[str]:
    return {step["name"] for step in pipeline["spec"]["steps"] if "prepareVolume" in step}


def pods_of(kubectl: Kubectl, namespace: str, pipeline: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(
        kubectl, namespace, "pods", "-l", f"{PIPELINE_LABEL}={pipeline}"
    )["items"]
    return items


def ready_condition(kubectl: Kubectl, namespace: str, pipeline: str) -> dict[str, Any]:
    st = get(kubectl, namespace, "initpipeline", pipeline).get("status") or {}
    return {c["type"]: c for c in st.get("conditions", [])}


@pytest.fixture
def restricted(kubectl: Kubectl, namespace: str) -> str:
    kubectl(
        "label", "namespace", namespace, "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )  # fmt: skip
    return namespace


def test_the_namespace_really_enforces_restricted(kubectl: Kubectl, restricted: str) -> None:
    """The baseline of this file: a plain Pod without a securityContext is refused."""
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"},
        "spec": {"containers": [{"name": "c", "image": "docker.io/library/busybox:1.36.1-musl"}]},
    }  # fmt: skip
    refused = kubectl("apply", "-f", "-", namespace=restricted, input=json.dumps(pod), check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr


def test_every_step_type_is_admitted(operator: None, kubectl: Kubectl, restricted: str) -> None:
    kubectl("apply", "-f", "-", namespace=restricted, input=yaml.safe_dump(EVERY_STEP_TYPE))
    [pod] = eventually(lambda: pods_of(kubectl, restricted, "every-step") or None)
    init = [c["name"] for c in pod["spec"]["initContainers"]]
    assert {"wait", "fetch", "assets", "migrate", "shipper"} <= set(init)
    for container in pod["spec"]["initContainers"] + pod["spec"]["containers"]:
        context = container.get("securityContext") or {}
        assert context.get("allowPrivilegeEscalation") is False, container["name"]
        assert "ALL" in (context.get("capabilities") or {}).get("drop", []), container["name"]
    conditions = ready_condition(kubectl, restricted, "every-step")
    assert conditions["Ready"]["reason"] != "PodCreationFailed"
    assert conditions["Stalled"]["status"] == "False"


def test_pods_of_every_example_are_admitted_but_prepare_volume(
    operator: None, kubectl: Kubectl, restricted: str
) -> None:
    pipelines = example_pipelines()
    assert len(pipelines) >= 10, "deploy/examples/ went missing"
    assert any(prepare_volume_steps(p) for p in pipelines), "no prepareVolume example left"
    kubectl("apply", "-f", "-", namespace=restricted, input=yaml.safe_dump_all(pipelines))
    for pipeline in pipelines:
        name = pipeline["metadata"]["name"]
        root_steps = prepare_volume_steps(pipeline)
        if not root_steps:
            assert eventually(lambda: pods_of(kubectl, restricted, name)), name  # noqa: B023
            continue
        stalled = eventually(
            lambda: (c := ready_condition(kubectl, restricted, name))  # noqa: B023
            and c["Stalled"]["status"] == "True" and c
        )  # fmt: skip
        ready = stalled["Ready"]
        assert ready["reason"] == "PodCreationFailed", ready
        # `pod NAME: ` and the API server's refusal; the violations after it are the
        # admission plugin's wording, of which only the containers it names are checked.
        refusal = re.fullmatch(
            rf'pod (?P<pod>{name}-[0-9a-f]{{5}}-0): pods "(?P=pod)" is forbidden: '
            r'violates PodSecurity "restricted:latest": (?P<violations>.+)',
            ready["message"],
        )
        assert refusal, ready["message"]
        named = set(re.findall(r'container "([^"]+)"', refusal["violations"]))
        assert named and named <= root_steps, (named, ready["message"])
        assert stalled["Stalled"]["message"] == ready["message"]
        assert pods_of(kubectl, restricted, name) == []


def test_prepare_volume_is_admitted_under_baseline(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    """The documented way out: a namespace at `baseline` admits the root chown step."""
    kubectl(
        "label", "namespace", namespace, "--overwrite",
        "pod-security.kubernetes.io/enforce=baseline",
    )  # fmt: skip
    [redis] = [p for p in example_pipelines() if prepare_volume_steps(p)][:1]
    kubectl("apply", "-f", "-", namespace=namespace, input=yaml.safe_dump(redis))
    name = redis["metadata"]["name"]
    assert eventually(lambda: pods_of(kubectl, namespace, name))


def test_the_job_of_a_once_step_is_admitted_with_no_security_context_of_its_own(
    operator: None, kubectl: Kubectl, restricted: str
) -> None:
    """The migrate container and the Pod say nothing: the Job's Pod gets what restricted asks
    for from the operator, so the Job controller's Pod is admitted."""
    locked = {**SECURE, "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    pipeline = {
        "apiVersion": "initpipeline.io/v1alpha1",
        "kind": "InitPipeline",
        "metadata": {"name": "once"},
        "spec": {
            "steps": [{"name": "migrate", "once": True, "run": {
                "image": "docker.io/library/busybox:1.36.1-musl", "command": ["true"]}}],
            "template": {"spec": {
                "schedulerName": UNSCHEDULED,
                "containers": [{
                    "name": "app", "image": "docker.io/library/busybox:1.36.1-musl",
                    "securityContext": {**locked, "runAsUser": 65532},
                }],
            }},
        },
    }  # fmt: skip
    kubectl("apply", "-f", "-", namespace=restricted, input=yaml.safe_dump(pipeline))
    assert eventually(lambda: pods_of(kubectl, restricted, "once"))
    [job_pod] = eventually(
        lambda: get(kubectl, restricted, "pods", "-l", "initpipeline.io/once-of=once")["items"]
    )
    [container] = job_pod["spec"]["containers"]
    assert container["securityContext"] == {**SECURE, **locked}
