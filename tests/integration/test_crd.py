"""The InitPipeline CRD against a real kube-apiserver.

What users see at `kubectl apply` time: valid manifests are accepted (with defaults filled in),
invalid ones are refused with a message that names the field to fix. Also: status fields survive
a status patch (nothing pruned), the printer columns, the scale subresource and `kubectl explain`.

Fixtures (tests/conftest.py): `kubectl(*args, namespace=None, input=None, check=True)`,
`namespace` (a fresh namespace per test) and the CRDs of crds/ applied for the session.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from tests.helpers import eventually, operator_running, pods

from initpipeline import messages
from initpipeline.controller import Controller
from initpipeline.spec import InvalidSpec, parse_pipeline

pytestmark = pytest.mark.integration

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
Manifest = dict[str, Any]

# The full example of the API contract; `readinessProbe: {...}` made a real probe.
FULL_EXAMPLE = """
apiVersion: initpipeline.io/v1alpha1
kind: InitPipeline
metadata:
  name: shop-web
spec:
  replicas: 1
  suspend: false
  steps:
    - name: wait-deps
      timeoutSeconds: 300
      waitFor:
        - service: mydb
          port: 5432
        - tcp: mysql:3306
        - http: http://config-server:8888/health
          expectStatus: 200
          bodyContains: UP
        - dns: myservice
        - file: /certs/tls.crt
        - job: db-migrate
        - resource:
            apiVersion: cert-manager.io/v1
            kind: Certificate
            name: web-tls
            condition: Ready
        - command: ["sh", "-c", "test -s /work/ready"]
      volumeMounts:
        - {name: certs, mountPath: /certs}
    - name: fetch-config
      download:
        url: http://config-server/nginx.conf
        volume: shared-config
        path: nginx.conf
    - name: site
      copyAssets:
        image: registry.example/frontend-assets:1.2
        from: /dist
        volume: html
    - name: data-dir
      prepareVolume:
        volume: redis-data
        path: redis
        mode: "0750"
        owner: "999:999"
    - name: migrate
      run:
        image: myapp:migrations
        command: ["./run-migrations.sh"]
    - name: log-shipper
      sidecar:
        image: fluent/fluent-bit:3
        readinessProbe:
          tcpSocket: {port: 2020}
          periodSeconds: 5
  template:
    metadata:
      labels: {app: shop-web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          volumeMounts: [{name: html, mountPath: /usr/share/nginx/html}]
"""

# The smallest valid pipeline; the invalid cases below each break one thing in a copy of it.
MINIMAL = """
apiVersion: initpipeline.io/v1alpha1
kind: InitPipeline
metadata:
  name: minimal
spec:
  steps:
    - name: wait-db
      waitFor:
        - tcp: db:5432
  template:
    spec:
      containers:
        - name: app
          image: busybox:1.36
"""

ACTION_MESSAGE = (
    "each step needs exactly one of waitFor, download, copyAssets, prepareVolume, renderConfig, "
    "run, sidecar"
)


def minimal(name: str = "minimal", **spec: Any) -> Manifest:
    """MINIMAL, renamed, with top-level spec fields replaced by `spec`."""
    obj: Manifest = yaml.safe_load(MINIMAL)
    obj["metadata"]["name"] = name
    obj["spec"].update(copy.deepcopy(spec))
    return obj


def with_steps(*steps: Manifest) -> Manifest:
    return minimal(steps=list(steps))


def wait_step(name: str = "wait", **target: Any) -> Manifest:
    return {"name": name, "waitFor": [target]}


# After the API server's reasons for refusing an object as invalid, when some were found first.
NOT_ALL_CHECKED = (
    "<nil>: Invalid value: null: some validation rules were not checked because the object was "
    "invalid; correct the existing errors to complete validation"
)


def refusal(stderr: str, name: str = "minimal") -> list[str]:
    """The API server's reasons for refusing InitPipeline `name` as invalid (`FIELD: WHY`), as
    kubectl prints them after its `The InitPipeline "NAME" is invalid: `: one on that line, or
    several on `* ` lines below it."""
    head = f'The InitPipeline "{name}" is invalid: '
    assert stderr.startswith(head) and stderr.endswith("\n"), stderr
    reasons = stderr.removeprefix(head).removesuffix("\n")
    if not reasons.startswith("\n"):
        assert "\n" not in reasons, stderr
        return [reasons]
    lines = reasons.removeprefix("\n").split("\n")
    assert all(line.startswith("* ") for line in lines), stderr
    return [line.removeprefix("* ") for line in lines]


def apply(kubectl: Kubectl, namespace: str, obj: Manifest) -> subprocess.CompletedProcess[str]:
    # JSON, not YAML: no YAML 1.1 surprises (e.g. an unquoted 0750 would be an octal integer).
    return kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(obj), check=False)


def get(kubectl: Kubectl, namespace: str, name: str) -> Manifest:
    result = kubectl("get", "initpipeline", name, "-o", "json", namespace=namespace)
    obj: Manifest = json.loads(result.stdout)
    return obj


# ---------------------------------------------------------------------------------------------
# Accepted
# ---------------------------------------------------------------------------------------------


def test_full_api_example_is_accepted_unchanged(kubectl: Kubectl, namespace: str) -> None:
    sent = yaml.safe_load(FULL_EXAMPLE)
    result = apply(kubectl, namespace, sent)
    assert result.returncode == 0, result.stderr

    # Stored as sent (nothing pruned: step containers and the Pod template keep their Container
    # fields), plus the two defaults the example leaves out.
    expected = copy.deepcopy(sent["spec"])
    expected["steps"][2]["copyAssets"].update(path="", mode="Auto")
    assert get(kubectl, namespace, "shop-web")["spec"] == expected


def test_defaults_are_filled_in(kubectl: Kubectl, namespace: str) -> None:
    obj = minimal(
        "defaults",
        steps=[
            {
                "name": "site",
                "copyAssets": {"image": "assets:1", "from": "/dist", "volume": "html"},
            },
            wait_step(
                "cert",
                resource={"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "tls"},
            ),
        ],
    )
    result = apply(kubectl, namespace, obj)
    assert result.returncode == 0, result.stderr

    spec = get(kubectl, namespace, "defaults")["spec"]
    assert spec["replicas"] == 1
    assert spec["suspend"] is False
    assert spec["steps"][0]["copyAssets"]["path"] == ""
    assert spec["steps"][0]["copyAssets"]["mode"] == "Auto"
    assert spec["steps"][1]["waitFor"][0]["resource"]["condition"] == "Ready"


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(wait_step(tcp="10.0.0.7:5432"), id="tcp-ipv4"),
        pytest.param(wait_step(tcp="[fd00::7]:5432"), id="tcp-ipv6"),
        pytest.param(wait_step(tcp="db.other-ns.svc.cluster.local:5432"), id="tcp-fqdn"),
        pytest.param(wait_step(service="other-ns/mydb"), id="service-other-namespace"),
        pytest.param(wait_step(http="https://example.com"), id="https-no-path"),
        pytest.param(wait_step(http="http://10.0.0.1:8080/health?full=1"), id="http-query"),
        pytest.param(
            {"name": "data", "prepareVolume": {"volume": "data", "mode": "750"}},
            id="prepare-mode-only",
        ),
        pytest.param(
            {"name": "cfg", "download": {"url": "https://h/a", "volume": "v", "path": "a/b.conf"}},
            id="download-nested-path",
        ),
        pytest.param(
            {"name": "side", "sidecar": {"image": "envoy:1", "restartPolicy": "Always"}},
            id="sidecar-restart-always",
        ),
        pytest.param({"name": "migrate", "once": True, "run": {"image": "app:1"}}, id="once"),
    ],
)
def test_valid_variants_are_accepted(kubectl: Kubectl, namespace: str, step: Manifest) -> None:
    result = apply(kubectl, namespace, with_steps(step))
    assert result.returncode == 0, result.stderr


def test_zero_replicas_and_suspend_are_accepted(kubectl: Kubectl, namespace: str) -> None:
    result = apply(kubectl, namespace, minimal("idle", replicas=0, suspend=True))
    assert result.returncode == 0, result.stderr


def test_deadline_and_retries_under_never_are_accepted(kubectl: Kubectl, namespace: str) -> None:
    never = _template_with(restartPolicy="Never")
    result = apply(kubectl, namespace, minimal(activeDeadlineSeconds=60, retries=2, template=never))
    assert result.returncode == 0, result.stderr
    result = apply(kubectl, namespace, minimal("always", activeDeadlineSeconds=60))
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------------
# Refused, with a message naming the field
# ---------------------------------------------------------------------------------------------


def _template_with(**pod_spec: Any) -> Manifest:
    spec: Manifest = {"containers": [{"name": "app", "image": "busybox:1.36"}], **pod_spec}
    return {"spec": spec}


INVALID: list[Any] = [
    pytest.param(
        with_steps({"name": "wait", "waitFor": [{"tcp": "db:5432"}], "once": True}),
        [
            "spec.steps[0].once: Forbidden: only allowed on run steps (a Job runs the step once "
            "per spec revision)",
        ],
        id="once-on-a-wait-step",
    ),
    pytest.param(
        with_steps({"name": "both", "waitFor": [{"tcp": "db:5432"}], "run": {"image": "x"}}),
        [
            f'spec.steps[0]: Invalid value: {ACTION_MESSAGE}; step "both" has waitFor, run',
        ],
        id="two-actions",
    ),
    pytest.param(
        with_steps({"name": "nothing"}),
        [
            f'spec.steps[0]: Invalid value: {ACTION_MESSAGE}; step "nothing" has none',
        ],
        id="no-action",
    ),
    pytest.param(
        with_steps(wait_step("same", tcp="a:1"), wait_step("same", tcp="b:1")),
        [
            (
                'spec.steps: Invalid value: step names must be unique (spec.steps[].name): "same" '
                "is used more than once"
            ),
        ],
        id="duplicate-step-names",
    ),
    pytest.param(
        with_steps(wait_step("app", tcp="a:1")),
        [
            (
                "spec.steps: Invalid value: step names (spec.steps[].name) must differ from "
                'container names (spec.template.spec.containers[].name): "app" is both'
            ),
        ],
        id="step-name-clashes-with-container",
    ),
    pytest.param(
        with_steps(wait_step("initpipeline-wait", tcp="a:1")),
        [
            (
                'spec.steps[0].name: Invalid value: "initpipeline-wait": must not start with the '
                'reserved prefix "initpipeline-"'
            ),
        ],
        id="reserved-prefix",
    ),
    pytest.param(
        minimal(template=_template_with(initContainers=[{"name": "old", "image": "x"}])),
        [
            (
                "spec.template.spec.initContainers: Forbidden: use steps instead of "
                "template.spec.initContainers"
            ),
        ],
        id="template-init-containers",
    ),
    pytest.param(
        with_steps(wait_step(tcp="mysql")),
        [
            (
                'spec.steps[0].waitFor[0].tcp: Invalid value: "mysql": '
                "spec.steps[0].waitFor[0].tcp in body should match "
                "'^([a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?|\\[[0-9a-fA-F:.]+\\]):[0-9]{1,5}$'"
            ),
        ],
        id="tcp-without-port",
    ),
    pytest.param(
        with_steps(wait_step(tcp="mysql:70000")),
        [
            (
                'spec.steps[0].waitFor[0].tcp: Invalid value: "mysql:70000": port must be between '
                "1 and 65535 (host:port)"
            ),
        ],
        id="tcp-port-out-of-range",
    ),
    pytest.param(
        with_steps(wait_step(http="config-server:8888/health")),
        [
            (
                'spec.steps[0].waitFor[0].http: Invalid value: "config-server:8888/health": '
                "spec.steps[0].waitFor[0].http in body should match "
                "'^https?://[^/?#\\s]+([/?#]\\S*)?$'"
            ),
        ],
        id="http-without-scheme",
    ),
    pytest.param(
        with_steps(wait_step(http="ftp://files/x")),
        [
            (
                'spec.steps[0].waitFor[0].http: Invalid value: "ftp://files/x": '
                "spec.steps[0].waitFor[0].http in body should match "
                "'^https?://[^/?#\\s]+([/?#]\\S*)?$'"
            ),
        ],
        id="http-wrong-scheme",
    ),
    pytest.param(
        with_steps(wait_step(tcp="db:5432", port=5432)),
        [
            (
                "spec.steps[0].waitFor[0].port: Forbidden: port is only allowed with a service "
                "target (for any other host use tcp host:port)"
            ),
        ],
        id="port-on-tcp-target",
    ),
    pytest.param(
        with_steps(wait_step(service="mydb", expectStatus=200)),
        [
            (
                "spec.steps[0].waitFor[0].expectStatus: Forbidden: expectStatus is only allowed "
                "with an http target"
            ),
        ],
        id="expect-status-on-service",
    ),
    pytest.param(
        with_steps(wait_step(dns="db", bodyContains="UP")),
        [
            (
                "spec.steps[0].waitFor[0].bodyContains: Forbidden: bodyContains is only allowed "
                "with an http target"
            ),
        ],
        id="body-contains-on-dns",
    ),
    pytest.param(
        with_steps(wait_step(service="mydb", tcp="mysql:3306")),
        [
            (
                "spec.steps[0].waitFor[0]: Invalid value: each waitFor target needs exactly one "
                "of service, tcp, http, dns, file, job, resource, command; this one has service, "
                "tcp"
            ),
        ],
        id="two-kinds-in-one-target",
    ),
    pytest.param(
        with_steps(wait_step(port=5432)),
        [
            (
                "spec.steps[0].waitFor[0]: Invalid value: each waitFor target needs exactly one "
                "of service, tcp, http, dns, file, job, resource, command; this one has none"
            ),
            (
                "spec.steps[0].waitFor[0].port: Forbidden: port is only allowed with a service "
                "target (for any other host use tcp host:port)"
            ),
        ],
        id="target-without-kind",
    ),
    pytest.param(
        with_steps(wait_step(service="Bad_Name")),
        [
            (
                'spec.steps[0].waitFor[0].service: Invalid value: "Bad_Name": '
                "spec.steps[0].waitFor[0].service in body should match "
                "'^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"
            ),
        ],
        id="bad-service-name",
    ),
    pytest.param(
        with_steps(wait_step(file="certs/tls.crt")),
        [
            (
                'spec.steps[0].waitFor[0].file: Invalid value: "certs/tls.crt": '
                "spec.steps[0].waitFor[0].file in body should match '^/'"
            ),
        ],
        id="relative-file",
    ),
    pytest.param(
        with_steps(wait_step(file="/certs/tls.crt")),
        [
            (
                "spec.steps[0].waitFor: Invalid value: a file target must lie inside a volume "
                "mounted by this step: add it to spec.steps[].volumeMounts"
            ),
        ],
        id="file-without-volume-mount",
    ),
    pytest.param(
        with_steps(
            {
                "name": "wait",
                "waitFor": [{"file": "/certsx/tls.crt"}],
                "volumeMounts": [{"name": "certs", "mountPath": "/certs"}],
            }
        ),
        [
            (
                "spec.steps[0].waitFor: Invalid value: a file target must lie inside a volume "
                "mounted by this step: add it to spec.steps[].volumeMounts"
            ),
        ],
        id="file-outside-volume-mount",
    ),
    pytest.param(
        with_steps(
            {
                "name": "mig",
                "run": {"image": "x"},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        ),
        [
            (
                "spec.steps[0].volumeMounts: Forbidden: volumeMounts is only for waitFor steps "
                "(file and command targets); run and sidecar take volumeMounts inside the "
                "container; download, copyAssets, prepareVolume and renderConfig mount their "
                "volume themselves"
            ),
        ],
        id="volume-mounts-on-run-step",
    ),
    pytest.param(
        with_steps(
            {
                "name": "wait",
                "waitFor": [{"file": "/certs/tls.crt"}],
                "volumeMounts": [
                    {"name": "certs", "mountPath": "/certs"},
                    {"name": "other", "mountPath": "/certs"},
                ],
            }
        ),
        [
            'spec.steps[0].volumeMounts[1]: Duplicate value: {"mountPath":"/certs"}',
        ],
        id="volume-mounts-same-path",
    ),
    pytest.param(
        with_steps({"name": "mig", "run": {"name": "mig", "image": "x"}}),
        [
            (
                "spec.steps[0].run.name: Forbidden: must not be set, the step name "
                "(spec.steps[].name) is the container name"
            ),
        ],
        id="name-inside-run",
    ),
    pytest.param(
        with_steps({"name": "side", "sidecar": {"name": "side", "image": "x"}}),
        [
            (
                "spec.steps[0].sidecar.name: Forbidden: must not be set, the step name "
                "(spec.steps[].name) is the container name"
            ),
        ],
        id="name-inside-sidecar",
    ),
    pytest.param(
        with_steps({"name": "mig", "run": {"image": "x", "restartPolicy": "Always"}}),
        [
            (
                "spec.steps[0].run.restartPolicy: Forbidden: must not be set in run; use a "
                "sidecar step for a container that keeps running"
            ),
        ],
        id="restart-policy-in-run",
    ),
    pytest.param(
        with_steps({"name": "side", "sidecar": {"image": "x", "restartPolicy": "Never"}}),
        [
            (
                "spec.steps[0].sidecar.restartPolicy: Invalid value: a sidecar's restartPolicy "
                "can only be Always (it may be omitted)"
            ),
        ],
        id="sidecar-restart-never",
    ),
    pytest.param(
        with_steps({"name": "mig", "run": {"command": ["x"]}}),
        [
            "spec.steps[0].run.image: Required value",
            NOT_ALL_CHECKED,
        ],
        id="run-without-image",
    ),
    pytest.param(
        with_steps({"name": "data", "prepareVolume": {"volume": "data", "mode": "0999"}}),
        [
            (
                'spec.steps[0].prepareVolume.mode: Invalid value: "0999": '
                "spec.steps[0].prepareVolume.mode in body should match '^0?[0-7]{3}$'"
            ),
        ],
        id="bad-mode",
    ),
    pytest.param(
        with_steps({"name": "data", "prepareVolume": {"volume": "data", "owner": "redis"}}),
        [
            (
                'spec.steps[0].prepareVolume.owner: Invalid value: "redis": '
                "spec.steps[0].prepareVolume.owner in body should match '^[0-9]+(:[0-9]+)?$'"
            ),
        ],
        id="non-numeric-owner",
    ),
    pytest.param(
        with_steps({"name": "data", "prepareVolume": {"volume": "data"}}),
        [
            (
                "spec.steps[0].prepareVolume: Invalid value: prepareVolume needs at least one of "
                "path, mode, owner"
            ),
        ],
        id="prepare-volume-does-nothing",
    ),
    pytest.param(
        with_steps(
            {"name": "cfg", "download": {"url": "http://h/a", "volume": "v", "path": "../etc/a"}}
        ),
        [
            (
                'spec.steps[0].download.path: Invalid value: "../etc/a": must be a relative file '
                "path inside the volume, without a leading or trailing '/' and without '..'"
            ),
        ],
        id="download-path-dotdot",
    ),
    pytest.param(
        with_steps(
            {"name": "cfg", "download": {"url": "http://h/a", "volume": "v", "path": "/etc/a"}}
        ),
        [
            (
                'spec.steps[0].download.path: Invalid value: "/etc/a": must be a relative file '
                "path inside the volume, without a leading or trailing '/' and without '..'"
            ),
        ],
        id="download-path-absolute",
    ),
    pytest.param(
        with_steps(
            {
                "name": "site",
                "copyAssets": {"image": "a:1", "from": "/dist", "volume": "v", "path": "x/../.."},
            }
        ),
        [
            (
                'spec.steps[0].copyAssets.path: Invalid value: "x/../..": must be a relative path '
                "inside the volume, without a leading '/' and without '..'"
            ),
        ],
        id="copy-assets-path-dotdot",
    ),
    pytest.param(
        with_steps({"name": "site", "copyAssets": {"image": "a:1", "from": "/d", "volume": "V"}}),
        [
            (
                'spec.steps[0].copyAssets.volume: Invalid value: "V": '
                "spec.steps[0].copyAssets.volume in body should match "
                "'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"
            ),
        ],
        id="volume-not-a-dns-label",
    ),
    pytest.param(
        with_steps(wait_step("Wait_DB", tcp="db:1")),
        [
            (
                'spec.steps[0].name: Invalid value: "Wait_DB": spec.steps[0].name in body should '
                "match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"
            ),
        ],
        id="step-name-not-a-dns-label",
    ),
    pytest.param(
        with_steps({"name": "w", "timeoutSeconds": 0, "waitFor": [{"tcp": "db:1"}]}),
        [
            (
                "spec.steps[0].timeoutSeconds: Invalid value: 0: spec.steps[0].timeoutSeconds in "
                "body should be greater than or equal to 1"
            ),
        ],
        id="timeout-zero",
    ),
    pytest.param(
        with_steps({"name": "w", "waitFor": []}),
        [
            (
                "spec.steps[0].waitFor: Invalid value: 0: spec.steps[0].waitFor in body should "
                "have at least 1 items"
            ),
        ],
        id="empty-wait-for",
    ),
    pytest.param(
        with_steps(*[wait_step(f"s{i}", tcp="db:1") for i in range(33)]),
        [
            "spec.steps: Too many: 33: must have at most 32 items",
            NOT_ALL_CHECKED,
        ],
        id="too-many-steps",
    ),
    pytest.param(
        minimal(steps=[]),
        [
            "spec.steps: Invalid value: 0: spec.steps in body should have at least 1 items",
        ],
        id="no-steps",
    ),
    pytest.param(
        minimal(replicas=-1),
        [
            (
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than "
                "or equal to 0"
            ),
            ".spec.replicas: Invalid value: -1: should be a non-negative integer",
        ],
        id="negative-replicas",
    ),
    pytest.param(
        minimal(retries=2),
        [
            "spec.retries: Forbidden: "
            "only allowed with spec.template.spec.restartPolicy Never (here: Always)"
        ],
        id="retries-without-never",
    ),
    pytest.param(
        minimal(retries=1, template=_template_with(restartPolicy="OnFailure")),
        [
            "spec.retries: Forbidden: "
            "only allowed with spec.template.spec.restartPolicy Never (here: OnFailure)"
        ],
        id="retries-under-on-failure",
    ),
    pytest.param(
        minimal(retries=21, template=_template_with(restartPolicy="Never")),
        [
            "spec.retries: Invalid value: 21: "
            "spec.retries in body should be less than or equal to 20"
        ],
        id="too-many-retries",
    ),
    pytest.param(
        minimal(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
        [
            "spec.strategy.rollingUpdate: Forbidden: "
            "only allowed with spec.strategy.type RollingUpdate (here: Recreate)"
        ],
        id="recreate-with-rolling-update",
    ),
    pytest.param(
        minimal(strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}),
        [
            "spec.strategy.rollingUpdate: Invalid value: maxSurge and maxUnavailable must not "
            "both be 0: no Pod could be replaced"
        ],
        id="surge-and-unavailable-both-zero",
    ),
    pytest.param(
        minimal(strategy={"rollingUpdate": {"maxUnavailable": "101%"}}),
        [
            'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "101%": must be a number '
            'of Pods (0 or more) or a percentage from "0%" to "100%"',
        ],
        id="unavailable-over-100-percent",
    ),
    pytest.param(
        minimal(strategy={"rollingUpdate": {"maxSurge": "x"}}),
        [
            'spec.strategy.rollingUpdate.maxSurge: Invalid value: "x": must be a number of Pods '
            '(0 or more) or a percentage such as "25%"',
        ],
        id="surge-not-a-percentage",
    ),
    pytest.param(
        minimal(strategy={"rollingUpdate": {"maxSurge": -1}}),
        [
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be a number of "
            'Pods (0 or more) or a percentage such as "25%"',
        ],
        id="negative-surge",
    ),
    pytest.param(
        minimal(activeDeadlineSeconds=0),
        [
            "spec.activeDeadlineSeconds: Invalid value: 0: "
            "spec.activeDeadlineSeconds in body should be greater than or equal to 1"
        ],
        id="deadline-zero",
    ),
    pytest.param(
        with_steps(
            {
                "name": "site",
                "copyAssets": {"image": "a:1", "from": "/d", "volume": "v", "mode": "Link"},
            }
        ),
        [
            'spec.steps[0].copyAssets.mode: Unsupported value: "Link": supported values: '
            '"Auto", "Copy", "Mount"',
            NOT_ALL_CHECKED,
        ],
        id="copy-assets-unknown-mode",
    ),
    pytest.param(
        minimal(template={"metadata": {"labels": {"app": "x"}}}),
        [
            "spec.template.spec: Required value",
            NOT_ALL_CHECKED,
        ],
        id="template-without-spec",
    ),
    pytest.param(
        minimal(template=_template_with(volumes=[{"name": "initpipeline-signal", "emptyDir": {}}])),
        [
            (
                'spec.template.spec.volumes[0].name: Invalid value: "initpipeline-signal": must '
                'not start with the reserved prefix "initpipeline-"'
            ),
        ],
        id="template-volume-reserved-prefix",
    ),
]


@pytest.mark.parametrize(("manifest", "expected"), INVALID)
def test_invalid_spec_is_refused_naming_the_field(
    kubectl: Kubectl, namespace: str, manifest: Manifest, expected: list[str]
) -> None:
    result = apply(kubectl, namespace, manifest)
    assert result.returncode != 0, f"accepted:\n{yaml.safe_dump(manifest)}"
    assert refusal(result.stderr) == expected
    # Refused means nothing stored.
    listed = kubectl("get", "initpipelines", "-o", "name", namespace=namespace)
    assert listed.stdout.strip() == ""


def test_unquoted_mode_is_refused_as_a_number(kubectl: Kubectl, namespace: str) -> None:
    # YAML reads an unquoted 0750 as a number: the user learns to quote it.
    manifest = MINIMAL.replace(
        "- tcp: db:5432",
        "- tcp: db:5432\n    - name: data\n      prepareVolume: {volume: data, mode: 0750}",
    )
    result = kubectl("apply", "-f", "-", namespace=namespace, input=manifest, check=False)
    assert result.returncode != 0
    assert refusal(result.stderr) == [
        'spec.steps[1].prepareVolume.mode: Invalid value: "integer": '
        'spec.steps[1].prepareVolume.mode in body must be of type string: "integer"',
        NOT_ALL_CHECKED,
    ]


def test_unknown_spec_field_is_refused(kubectl: Kubectl, namespace: str) -> None:
    obj = minimal(replica=2)  # typo of replicas
    result = apply(kubectl, namespace, obj)
    assert result.returncode != 0
    # kubectl's words, then the API server's
    said = 'Error from server (BadRequest): error when creating "STDIN": '
    assert result.stderr.startswith(said), result.stderr
    assert result.stderr.removeprefix(said) == (
        'InitPipeline in version "v1alpha1" cannot be handled as a InitPipeline: '
        'strict decoding error: unknown field "spec.replica"\n'
    )


def test_a_name_longer_than_a_label_value_is_refused_naming_metadata_name(
    kubectl: Kubectl, namespace: str
) -> None:
    # The name is the value of the Pods' initpipeline.io/pipeline label (at most 63
    # characters): refused at apply time, as `initpipeline render -f` refuses it.
    too_long = minimal("n" * 64)
    result = apply(kubectl, namespace, too_long)
    assert result.returncode != 0, "a 64-character name was accepted"
    why = (
        "must be at most 63 characters "
        "(it is the value of the Pods' label initpipeline.io/pipeline)"
    )
    assert refusal(result.stderr, "n" * 64) == [f"<nil>: Invalid value: metadata.name {why}"]
    with pytest.raises(InvalidSpec) as raised:
        parse_pipeline(too_long)
    assert (raised.value.field, raised.value.message) == ("metadata.name", why)
    assert kubectl("get", "initpipelines", "-o", "name", namespace=namespace).stdout == ""

    longest = minimal("n" * 63)
    result = apply(kubectl, namespace, longest)
    assert result.returncode == 0, result.stderr
    assert get(kubectl, namespace, "n" * 63)["metadata"]["name"] == "n" * 63
    parse_pipeline(longest)


# ---------------------------------------------------------------------------------------------
# Status, printer columns, scale, explain
# ---------------------------------------------------------------------------------------------


# What the operator finds for the example's API-side targets on a cluster without cert-manager.
SHOP_WEB_WAITING = [
    "service mydb port 5432: service does not exist",
    "job db-migrate: job does not exist",
    "Certificate web-tls (Ready): cert-manager.io/v1 Certificate is not served by the API server",
]


@dataclass
class Written:
    """The example as the operator left it: its name and the last status the operator sent
    (the dict it patched the status subresource with)."""

    name: str
    status: Manifest


@pytest.fixture
def shop_web(
    kubeconfig: str, kubectl: Kubectl, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> Written:
    """The full example (its Pod kept off every node), with the status the operator really
    writes for it once its wait step runs: the operator ran in this process and every status
    it sent is recorded."""
    sent: list[Manifest] = []
    write = Controller._write_status

    async def recorded(
        self: Controller, body: Manifest, previous: Manifest, status: Manifest
    ) -> None:
        if body["metadata"]["namespace"] == namespace:
            sent.append(copy.deepcopy(status))
        await write(self, body, previous, status)

    monkeypatch.setattr(Controller, "_write_status", recorded)
    example = yaml.safe_load(FULL_EXAMPLE)
    # No scheduler serves this name: no kubelet writes the Pod's status, the test does.
    example["spec"]["template"]["spec"]["schedulerName"] = "initpipeline-tests-unscheduled"
    with operator_running(kubeconfig, namespace, INITPIPELINE_NAMESPACES=namespace):
        result = apply(kubectl, namespace, example)
        assert result.returncode == 0, result.stderr
        [pod] = eventually(lambda: pods(kubectl, namespace) or None)
        running = {"running": {"startedAt": "2026-11-25T10:00:01Z"}}
        kubelet = {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "initContainerStatuses": [
                {"name": "wait-deps", "image": "docker.io/library/busybox:1.36.1-musl",
                 "imageID": "", "ready": False, "restartCount": 0, "started": True,
                 "state": running, "lastState": {}},
            ],
        }  # fmt: skip
        kubectl(
            "patch", "pod", pod["metadata"]["name"], "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": kubelet}), namespace=namespace,
        )  # fmt: skip

        def settled() -> bool:
            """The wait step runs, its findings are in (not the placeholder of a watch that
            has not listed yet), and the last status sent is the one stored: no write of the
            operator is still on its way when the tests read."""
            if not sent or sent[-1]["steps"][0]["state"] != "Running":
                return False
            if messages.NOT_CHECKED_YET in " ".join(sent[-1]["steps"][0].get("waitingOn", [])):
                return False
            return bool(get(kubectl, namespace, "shop-web")["status"] == sent[-1])

        eventually(settled)
    return Written("shop-web", sent[-1])


def test_status_fields_survive_a_status_patch(
    kubectl: Kubectl, namespace: str, shop_web: Written
) -> None:
    stored = get(kubectl, namespace, shop_web.name)["status"]
    assert stored == shop_web.status  # nothing pruned, nothing changed
    assert stored["steps"][0]["waitingOn"] == SHOP_WEB_WAITING  # the findings, each one kept
    assert stored["pods"] and stored["conditions"] and stored["selector"]


def test_nulls_in_status_list_items_are_dropped(
    kubectl: Kubectl, namespace: str, shop_web: Written
) -> None:
    # A merge patch replaces lists whole, so None fields of a step reach the API server as
    # nulls: they are dropped (fields are not nullable), not refused.
    step = {"name": "site", "type": "CopyAssets", "state": "Pending", "startedAt": None,
            "finishedAt": None, "exitCode": None, "restartCount": 0}  # fmt: skip
    kubectl(
        "patch", "initpipeline", shop_web.name, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"steps": [step]}}), namespace=namespace,
    )  # fmt: skip
    stored = get(kubectl, namespace, shop_web.name)["status"]["steps"]
    assert stored == [{"name": "site", "type": "CopyAssets", "state": "Pending", "restartCount": 0}]


def test_status_is_not_writable_through_the_main_resource(
    kubectl: Kubectl, namespace: str, shop_web: Written
) -> None:
    kubectl(
        "patch", "initpipeline", shop_web.name, "--type=merge",
        "-p", json.dumps({"status": {"currentStep": "hacked"}}), namespace=namespace,
    )  # fmt: skip
    assert get(kubectl, namespace, shop_web.name)["status"]["currentStep"] == "wait-deps"


def test_invalid_status_is_refused(kubectl: Kubectl, namespace: str, shop_web: Written) -> None:
    bad = {"status": {"steps": [{"name": "site", "state": "Sleeping"}]}}
    result = kubectl(
        "patch", "initpipeline", shop_web.name, "--subresource=status", "--type=merge",
        "-p", json.dumps(bad), namespace=namespace, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert refusal(result.stderr, shop_web.name) == [
        'status.steps[0].state: Unsupported value: "Sleeping": supported values: "Pending", '
        '"Running", "Succeeded", "Failed", "Ready"',
        NOT_ALL_CHECKED,
    ]


def _table(text: str) -> dict[str, str]:
    """kubectl's one-row table by column heading (a cell runs from where its heading starts
    to where the next one starts, so a message with spaces stays whole)."""
    header, row = text.strip("\n").splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    ends = [*starts[1:], None]
    return {n: row[a:b].strip() for n, a, b in zip(header.split(), starts, ends, strict=True)}


def _columns(status: Manifest) -> dict[str, str]:
    """What the printer columns show for `status`."""
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    return {"NAME": "shop-web", "READY": status["ready"], "STEPS": status["progress"],
            "STATUS": ready["reason"], "CURRENT": status["currentStep"],
            "ATTEMPT": status["attempt"]}  # fmt: skip


def test_printer_columns(kubectl: Kubectl, namespace: str, shop_web: Written) -> None:
    row = _table(kubectl("get", "ipl", shop_web.name, namespace=namespace).stdout)
    assert list(row) == ["NAME", "READY", "STEPS", "STATUS", "CURRENT", "ATTEMPT", "AGE"]
    del row["AGE"]
    assert row == _columns(shop_web.status)
    assert row == {"NAME": "shop-web", "READY": "0/1", "STEPS": "0/6",
                   "STATUS": "WaitingForDependency", "CURRENT": "wait-deps",
                   "ATTEMPT": ""}  # fmt: skip


def test_wide_printer_columns(kubectl: Kubectl, namespace: str, shop_web: Written) -> None:
    out = kubectl("get", "ipl", shop_web.name, "-o", "wide", namespace=namespace).stdout
    row = _table(out)
    assert list(row) == [
        "NAME", "READY", "STEPS", "STATUS", "CURRENT", "ATTEMPT", "AGE", "UPDATED", "POD",
        "MESSAGE",
    ]  # fmt: skip
    del row["AGE"]
    [pod] = shop_web.status["pods"]
    assert row == {**_columns(shop_web.status), "UPDATED": "1", "POD": pod["name"],
                   "MESSAGE": shop_web.status["message"]}  # fmt: skip
    assert row["MESSAGE"] == "step 1/6 wait-deps: waiting for " + "; ".join(SHOP_WEB_WAITING)


def test_kubectl_scale(kubectl: Kubectl, namespace: str, shop_web: Written) -> None:
    kubectl("scale", "initpipeline", shop_web.name, "--replicas=3", namespace=namespace)
    assert get(kubectl, namespace, shop_web.name)["spec"]["replicas"] == 3
    scale = json.loads(
        kubectl(
            "get", "--raw",
            f"/apis/initpipeline.io/v1alpha1/namespaces/{namespace}/initpipelines/{shop_web.name}/scale",
        ).stdout
    )  # fmt: skip
    assert scale["spec"]["replicas"] == 3
    assert scale["status"] == {"replicas": 1, "selector": "initpipeline.io/pipeline=shop-web"}
    assert shop_web.status["selector"] == "initpipeline.io/pipeline=shop-web"


def test_kubectl_explain_describes_fields(kubectl: Kubectl) -> None:
    # The published OpenAPI document follows a CRD change after a short delay.
    deadline = time.monotonic() + 60
    while True:
        result = kubectl("explain", "initpipelines.spec.steps.waitFor", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert result.returncode == 0, result.stderr
    # kubectl wraps and indents the CRD's descriptions: words of them are looked for
    for text in ("concurrently", "service", "expectStatus", "bodyContains", "resource"):
        assert text in result.stdout
    result = kubectl("explain", "ipl.spec.steps.run")
    assert "except name" in result.stdout
