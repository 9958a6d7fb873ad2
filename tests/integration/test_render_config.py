"""renderConfig against a real API server: what the CRD accepts and refuses (with the words
`initpipeline render -f` uses), the Pod the operator creates, and a missing variable's
failure in the status.

No node runs the Pod: the renderConfig container's program runs here, with the environment
the Pod gives it, and its exit code and termination message are written into the Pod's
status as the kubelet would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.helpers import Kubectl, eventually, get, operator_running, pods, status
from tests.integration.test_crd import refusal
from tests.integration.test_operator import _init_status, condition, set_pod_status

from initpipeline import renderconfig
from initpipeline.names import TARGET_DIR
from initpipeline.spec import InvalidSpec, parse_pipeline

pytestmark = pytest.mark.integration

RENDER_IMAGE = "registry.test/initpipeline:render"
SECRET = "s3cr3t-never-shown"
TEMPLATE = "server_name ${SERVER_NAME};\nupstream ${DB_HOST}:5432;\ntoken ${TOKEN};\n"

PIPELINE = f"""
apiVersion: initpipeline.io/v1alpha1
kind: InitPipeline
metadata:
  name: web
spec:
  steps:
    - name: render-conf
      renderConfig:
        templateFrom:
          configMapKeyRef: {{name: web-template, key: app.conf}}
        env:
          - {{name: SERVER_NAME, value: shop.example.com}}
          - name: TOKEN
            valueFrom:
              secretKeyRef: {{name: web-token, key: token}}
          - name: POD_NAME
            valueFrom:
              fieldRef: {{fieldPath: metadata.name}}
        volume: config
        path: conf.d/app.conf
        mode: 0640
  template:
    spec:
      # No scheduler serves this name: the tests write the Pod's status as a kubelet would.
      schedulerName: initpipeline-tests-unscheduled
      restartPolicy: Never
      containers:
        - name: app
          image: docker.io/library/busybox:1.36.1-musl
          volumeMounts: [{{name: config, mountPath: /etc/app, readOnly: true}}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-template
data:
  app.conf: {json.dumps(TEMPLATE)}
---
apiVersion: v1
kind: Secret
metadata:
  name: web-token
stringData:
  token: {SECRET}
"""


@pytest.fixture
def operator(kubeconfig: str) -> Iterator[None]:
    with operator_running(kubeconfig, INITPIPELINE_RENDER_IMAGE=RENDER_IMAGE):
        yield


def minimal(**render_config: Any) -> dict[str, Any]:
    fields = {"template": "port ${PORT}\n", "env": [{"name": "PORT", "value": "80"}]}
    fields.update({"volume": "conf", "path": "app.conf", **render_config})
    return {
        "apiVersion": "initpipeline.io/v1alpha1",
        "kind": "InitPipeline",
        "metadata": {"name": "minimal"},
        "spec": {
            "steps": [{"name": "conf", "renderConfig": {k: v for k, v in fields.items() if v}}],
            "template": {"spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}},
        },
    }


def apply(kubectl: Kubectl, namespace: str, obj: Any) -> subprocess.CompletedProcess[str]:
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return kubectl("apply", "-f", "-", namespace=namespace, input=text, check=False)


# --------------------------------------------------------------------------- the CRD


def test_accepted_with_the_mode_defaulted(kubectl: Kubectl, namespace: str) -> None:
    result = apply(kubectl, namespace, minimal())
    assert result.returncode == 0, result.stderr
    stored = get(kubectl, namespace, "initpipeline", "minimal")["spec"]["steps"][0]
    assert stored["renderConfig"]["mode"] == 0o644


def test_every_kind_of_variable_and_a_configmap_template_are_accepted(
    kubectl: Kubectl, namespace: str
) -> None:
    body = yaml.safe_load(PIPELINE.split("---")[0])
    result = apply(kubectl, namespace, body)
    assert result.returncode == 0, result.stderr
    stored = get(kubectl, namespace, "initpipeline", "web")["spec"]
    assert stored["steps"][0]["renderConfig"]["mode"] == 0o640  # 0640 in YAML
    assert stored["steps"] == body["spec"]["steps"]


VALUE_AND_FROM = {"name": "PORT", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}
TWO_SOURCES = {
    "name": "PORT",
    "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"},
        "secretKeyRef": {"name": "s", "key": "k"},
    },
}
FIELD_PATH = (
    "'^(metadata\\.(name|namespace|uid|labels\\['[^']+'\\]|annotations\\['[^']+'\\])"
    "|spec\\.(nodeName|serviceAccountName)|status\\.(hostIP|hostIPs|podIP|podIPs))$'"
)


@pytest.mark.parametrize(
    ("render_config", "refused", "said"),
    [
        pytest.param(
            {"templateFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
            [
                "spec.steps[0].renderConfig: Invalid value: "
                "renderConfig needs exactly one of template, templateFrom"
            ],
            "spec.steps[0].renderConfig: renderConfig needs exactly one of template, templateFrom",
            id="template-and-template-from",
        ),
        pytest.param(
            {"template": None, "env": None},
            [
                "spec.steps[0].renderConfig: Invalid value: "
                "renderConfig needs exactly one of template, templateFrom"
            ],
            "spec.steps[0].renderConfig: renderConfig needs exactly one of template, templateFrom",
            id="no-template",
        ),
        pytest.param(
            {"env": [{"name": "PORT"}]},
            [
                "spec.steps[0].renderConfig.env[0]: Invalid value: "
                "needs exactly one of value, valueFrom"
            ],
            "spec.steps[0].renderConfig.env[0]: needs exactly one of value, valueFrom",
            id="variable-without-value",
        ),
        pytest.param(
            {"env": [TWO_SOURCES]},
            [
                "spec.steps[0].renderConfig.env[0].valueFrom: Invalid value: "
                "valueFrom needs exactly one of fieldRef, configMapKeyRef, secretKeyRef"
            ],
            "spec.steps[0].renderConfig.env[0].valueFrom: valueFrom needs exactly one of "
            "fieldRef, configMapKeyRef, secretKeyRef",
            id="two-sources",
        ),
        pytest.param(
            {"env": [{"name": "PORT", "valueFrom": {"fieldRef": {"fieldPath": "spec.x"}}}]},
            [
                "spec.steps[0].renderConfig.env[0].valueFrom.fieldRef.fieldPath: Invalid "
                'value: "spec.x": spec.steps[0].renderConfig.env[0].valueFrom.fieldRef.'
                f"fieldPath in body should match {FIELD_PATH}"
            ],
            None,
            id="field-path",
        ),
        pytest.param(
            {"mode": 0o1000},
            [
                "spec.steps[0].renderConfig.mode: Invalid value: 512: "
                "spec.steps[0].renderConfig.mode in body should be less than or equal to 511"
            ],
            None,
            id="mode-above-0777",
        ),
        pytest.param(
            {"path": "../app.conf"},
            [
                'spec.steps[0].renderConfig.path: Invalid value: "../app.conf": must be a '
                "relative file path inside the volume, without a leading or trailing '/' and "
                "without '..'"
            ],
            None,
            id="path-outside-the-volume",
        ),
        pytest.param(
            {"env": [{"name": "1PORT", "value": "1"}]},
            [
                'spec.steps[0].renderConfig.env[0].name: Invalid value: "1PORT": '
                "spec.steps[0].renderConfig.env[0].name in body should match "
                "'^[A-Za-z_][A-Za-z0-9_]*$'",
            ],
            None,
            id="variable-name",
        ),
    ],
)
def test_refused_naming_the_field_as_render_does(
    kubectl: Kubectl,
    namespace: str,
    render_config: dict[str, Any],
    refused: list[str],
    said: str | None,
) -> None:
    obj = minimal(**render_config)
    result = apply(kubectl, namespace, obj)
    assert result.returncode != 0, "accepted"
    assert refusal(result.stderr) == refused
    assert kubectl("get", "initpipelines", "-o", "name", namespace=namespace).stdout == ""
    with pytest.raises(InvalidSpec) as raised:
        parse_pipeline(obj)
    if said is not None:  # the CEL rules' words (schema patterns are pydantic's own)
        assert str(raised.value) == f'{said} (step "conf")'


def test_duplicate_variable_names_are_refused(kubectl: Kubectl, namespace: str) -> None:
    obj = minimal(env=[{"name": "PORT", "value": "1"}, {"name": "PORT", "value": "2"}])
    result = apply(kubectl, namespace, obj)
    assert result.returncode != 0
    [reason] = refusal(result.stderr)
    assert reason.startswith("spec.steps[0].renderConfig.env[1]: Duplicate value:"), reason


# --------------------------------------------------------------------------- the operator


def render_container(pod: dict[str, Any]) -> dict[str, Any]:
    [container] = pod["spec"]["initContainers"]
    assert container["name"] == "render-conf"
    return container  # type: ignore[no-any-return]


def test_the_pod_runs_the_render_image_with_references_and_the_volume(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    kubectl("apply", "-f", "-", namespace=namespace, input=PIPELINE)
    [pod] = eventually(lambda: pods(kubectl, namespace) or None)
    container = render_container(pod)
    assert container["image"] == RENDER_IMAGE
    assert container["command"][0] == renderconfig.COMMAND
    prefix = renderconfig.VARIABLE_PREFIX
    assert container["env"] == [
        {
            "name": renderconfig.TEMPLATE_ENV,
            "valueFrom": {"configMapKeyRef": {"name": "web-template", "key": "app.conf"}},
        },
        {"name": f"{prefix}SERVER_NAME", "value": "shop.example.com"},
        {
            "name": f"{prefix}TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "web-token", "key": "token"}},
        },
        {
            "name": f"{prefix}POD_NAME",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        },
    ]
    # (and the ServiceAccount token's, which the API server adds)
    assert container["volumeMounts"][0] == {"name": "config", "mountPath": TARGET_DIR}
    assert {"name": "config", "emptyDir": {}} in pod["spec"]["volumes"]
    assert SECRET not in json.dumps(pod)


def kubelet_runs(container: dict[str, Any], tmp_path: Path, template: str) -> tuple[int, str]:
    """The container's program, run here with the environment the kubelet would give it: the
    template, the literal values, the Pod's name; TOKEN's Secret key resolved to SECRET.
    Its exit code and termination message."""
    program = shutil.which(container["command"][0])
    assert program, f"{container['command'][0]} is not installed (uv sync)"
    env = {"PATH": os.environ["PATH"], renderconfig.TEMPLATE_ENV: template}
    for entry in container["env"][1:]:
        source = entry.get("valueFrom", {})
        if "secretKeyRef" in source:
            env[entry["name"]] = SECRET
        elif "fieldRef" in source:
            env[entry["name"]] = "web-pod"
        else:
            env[entry["name"]] = entry["value"]
    args = [a.replace(TARGET_DIR, str(tmp_path)) for a in container["command"][1:]]
    log = tmp_path / "termination-log"
    result = subprocess.run(
        [program, "--termination-log", str(log), *args], env=env, capture_output=True, text=True
    )
    return result.returncode, log.read_text()


def test_a_missing_variable_fails_the_step_naming_it_and_no_secret_is_shown(
    operator: None, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    kubectl("apply", "-f", "-", namespace=namespace, input=PIPELINE)
    [pod] = eventually(lambda: pods(kubectl, namespace) or None)
    # The ConfigMap's template uses DB_HOST, which env does not declare.
    code, message = kubelet_runs(render_container(pod), tmp_path, TEMPLATE)
    assert code == 1
    assert message == "MissingVariable: ${DB_HOST} (line 2) is not in env\n"
    assert not (tmp_path / "conf.d" / "app.conf").exists()
    terminated = {
        "exitCode": code,
        "reason": "Error",
        "message": message,
        "startedAt": "2026-12-06T10:00:01Z",
        "finishedAt": "2026-12-06T10:00:02Z",
    }
    set_pod_status(
        kubectl,
        namespace,
        pod["metadata"]["name"],
        {
            "phase": "Failed",
            "initContainerStatuses": [_init_status("render-conf", {"terminated": terminated})],
        },
    )
    st = eventually(lambda: (s := status(kubectl, namespace))["steps"][0].get("exitCode") and s)
    step = st["steps"][0]
    assert (step["type"], step["state"], step["reason"]) == (
        "RenderConfig",
        "Failed",
        "MissingVariable",
    )
    assert step["message"] == "MissingVariable: ${DB_HOST} (line 2) is not in env"

    def failed() -> dict[str, Any]:
        ready = condition(status(kubectl, namespace), "Ready")
        return ready if ready.get("reason") == "StepFailed" else {}

    ready = eventually(failed)
    assert "${DB_HOST} (line 2) is not in env" in ready["message"]
    events = get(kubectl, namespace, "events")
    shown = json.dumps([status(kubectl, namespace), events, get(kubectl, namespace, "pods")])
    assert SECRET not in shown
