"""Pod manifests rendered from InitPipelines: shape, order, volumes, hardening, names, hash."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from initpipeline import scripts
from initpipeline.names import (
    PIPELINE_LABEL,
    RELEASED_ANNOTATION,
    REPLICA_LABEL,
    SIGNAL_DIR,
    SIGNAL_FILE,
    SIGNAL_VOLUME,
    SPEC_HASH_LABEL,
    TARGET_DIR,
    TOOLS_CONTAINER,
    TOOLS_DIR,
    TOOLS_VOLUME,
)
from initpipeline.render import pod_name, render_pod, render_pods, spec_hash
from initpipeline.spec import Pipeline, StepType, parse_pipeline

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent.parent / "data"
SNAPSHOTS = Path(__file__).parent / "snapshots"
IMAGE = "registry.test/busybox:1.36.1-musl"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def example_body() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((DATA / "api-example.yaml").read_text())
    body["metadata"]["uid"] = "0b7d9a52-5c3e-4f7a-9a7e-1d2c3b4a5f60"
    return body


def pipeline_of(
    steps: list[dict[str, Any]],
    *,
    template: dict[str, Any] | None = None,
    name: str = "demo",
    **spec: Any,
) -> Pipeline:
    body = {
        "apiVersion": "initpipeline.io/v1alpha1",
        "kind": "InitPipeline",
        "metadata": {"name": name, "namespace": "ns1", "uid": "uid-1"},
        "spec": {
            "steps": steps,
            "template": template or {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
            **spec,
        },
    }
    return parse_pipeline(body)


def init_containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["spec"]["initContainers"]}


def volumes(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod["spec"].get("volumes", [])}


@pytest.fixture
def example() -> Pipeline:
    return parse_pipeline(example_body())


@pytest.fixture
def example_pod(example: Pipeline) -> dict[str, Any]:
    return render_pod(example, 0, IMAGE)


# --- the API.md example -----------------------------------------------------------------


def test_example_pod_identity(example: Pipeline, example_pod: dict[str, Any]) -> None:
    assert example_pod["apiVersion"] == "v1"
    assert example_pod["kind"] == "Pod"
    meta = example_pod["metadata"]
    assert meta["name"] == f"shop-web-{spec_hash(example.spec)[:5]}-0"
    assert meta["namespace"] == "shop"
    assert meta["labels"] == {
        "app": "shop-web",
        PIPELINE_LABEL: "shop-web",
        SPEC_HASH_LABEL: spec_hash(example.spec),
        REPLICA_LABEL: "0",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "initpipeline.io/v1alpha1",
            "kind": "InitPipeline",
            "name": "shop-web",
            "uid": "0b7d9a52-5c3e-4f7a-9a7e-1d2c3b4a5f60",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert RELEASED_ANNOTATION not in (meta.get("annotations") or {})


def test_example_init_containers_follow_the_steps(example_pod: dict[str, Any]) -> None:
    names = [c["name"] for c in example_pod["spec"]["initContainers"]]
    assert names == [
        "wait-deps",
        "fetch-config",
        TOOLS_CONTAINER,
        "site",
        "data-dir",
        "migrate",
        "log-shipper",
    ]
    assert example_pod["spec"]["containers"] == [
        {
            "name": "web",
            "image": "nginx:1.27",
            "volumeMounts": [{"name": "html", "mountPath": "/usr/share/nginx/html"}],
        }
    ]


def test_example_volumes_are_added(example_pod: dict[str, Any]) -> None:
    vols = volumes(example_pod)
    assert list(vols) == [
        "certs",
        "shared-config",
        "html",
        "redis-data",
        TOOLS_VOLUME,
        SIGNAL_VOLUME,
    ]
    for name in ("certs", "shared-config", "html", "redis-data", TOOLS_VOLUME):
        assert vols[name] == {"name": name, "emptyDir": {}}
    assert vols[SIGNAL_VOLUME]["downwardAPI"] == {
        "items": [
            {
                "path": SIGNAL_FILE,
                "fieldRef": {"fieldPath": f"metadata.annotations['{RELEASED_ANNOTATION}']"},
            }
        ]
    }


def test_init_containers_are_the_steps_with_tools_before_the_first_copy(
    example: Pipeline, example_pod: dict[str, Any]
) -> None:
    names = [c["name"] for c in example_pod["spec"]["initContainers"]]
    steps = [step.name for step in example.spec.steps]
    first_copy = next(s.name for s in example.spec.steps if s.type is StepType.COPY_ASSETS)
    assert first_copy == "site"
    at = steps.index(first_copy)
    assert names == [*steps[:at], TOOLS_CONTAINER, *steps[at:]]


def test_example_snapshot(example: Pipeline) -> None:
    """The whole rendered Pod; UPDATE_SNAPSHOTS=1 rewrites the file after a deliberate change."""
    rendered = yaml.safe_dump(render_pods(example, IMAGE), sort_keys=True, width=100)
    snapshot = SNAPSHOTS / "api-example-pods.yaml"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        snapshot.parent.mkdir(exist_ok=True)
        snapshot.write_text(rendered)
    assert snapshot.exists(), f"{snapshot} missing: run with UPDATE_SNAPSHOTS=1"
    assert rendered == snapshot.read_text(), "render changed: review, rerun with UPDATE_SNAPSHOTS=1"


# --- step types -------------------------------------------------------------------------


HARDENED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsGroup": 65532,
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.mark.parametrize("name", ["wait-deps", "fetch-config", TOOLS_CONTAINER, "site"])
def test_generated_containers_are_hardened(example_pod: dict[str, Any], name: str) -> None:
    container = init_containers(example_pod)[name]
    assert container["securityContext"] == HARDENED
    assert container["resources"] == {
        "requests": {"cpu": "10m", "memory": "16Mi"},
        "limits": {"memory": "64Mi"},
    }
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_generated_containers_use_the_step_image(example_pod: dict[str, Any]) -> None:
    containers = init_containers(example_pod)
    for name in ("wait-deps", "fetch-config", TOOLS_CONTAINER, "data-dir"):
        assert containers[name]["image"] == IMAGE
        assert containers[name]["imagePullPolicy"] == "IfNotPresent"
        assert containers[name]["command"][:2] == ["sh", "-c"]


def test_wait_step(example: Pipeline, example_pod: dict[str, Any]) -> None:
    wait = init_containers(example_pod)["wait-deps"]
    assert wait["command"] == ["sh", "-c", scripts.wait_script(example.spec.steps[0])]
    assert wait["volumeMounts"] == [
        {"name": "certs", "mountPath": "/certs"},
        {"name": SIGNAL_VOLUME, "mountPath": SIGNAL_DIR, "readOnly": True},
    ]


def test_wait_step_without_api_targets_has_no_signal() -> None:
    pipeline = pipeline_of(
        [
            {"name": "a", "waitFor": [{"tcp": "db:5432"}]},
            {"name": "b", "waitFor": [{"job": "migrate"}]},
        ]
    )
    pod = render_pod(pipeline, 0, IMAGE)
    assert "volumeMounts" not in init_containers(pod)["a"]
    assert init_containers(pod)["b"]["volumeMounts"] == [
        {"name": SIGNAL_VOLUME, "mountPath": SIGNAL_DIR, "readOnly": True}
    ]
    only_tcp = render_pod(pipeline_of([{"name": "a", "waitFor": [{"tcp": "db:1"}]}]), 0, IMAGE)
    assert "volumes" not in only_tcp["spec"]


def test_download_step(example_pod: dict[str, Any]) -> None:
    download = init_containers(example_pod)["fetch-config"]
    assert download["volumeMounts"] == [{"name": "shared-config", "mountPath": TARGET_DIR}]
    assert "http://config-server/nginx.conf" in download["command"][2]


def test_copy_assets_step(example_pod: dict[str, Any]) -> None:
    containers = init_containers(example_pod)
    tools, site = containers[TOOLS_CONTAINER], containers["site"]
    assert tools["volumeMounts"] == [{"name": TOOLS_VOLUME, "mountPath": TOOLS_DIR}]
    assert site["image"] == "registry.example/frontend-assets:1.2"
    assert site["command"][:3] == [f"{TOOLS_DIR}/busybox", "sh", "-c"]
    assert "imagePullPolicy" not in site  # the user's image: Kubernetes' default applies
    assert site["volumeMounts"] == [
        {"name": "html", "mountPath": TARGET_DIR},
        {"name": TOOLS_VOLUME, "mountPath": TOOLS_DIR, "readOnly": True},
    ]


def test_one_tools_container_for_many_copy_steps() -> None:
    steps = [
        {"name": "first", "run": {"image": "x:1"}},
        {"name": "css", "copyAssets": {"image": "a:1", "from": "/css", "volume": "web"}},
        {
            "name": "js",
            "copyAssets": {"image": "b:1", "from": "/js", "volume": "web", "path": "js"},
        },
    ]
    pipeline = pipeline_of(steps)
    pod = render_pod(pipeline, 0, IMAGE)
    names = [c["name"] for c in pod["spec"]["initContainers"]]
    assert names == ["first", TOOLS_CONTAINER, "css", "js"]
    assert list(volumes(pod)) == ["web", TOOLS_VOLUME]


def test_prepare_volume_runs_as_root_with_few_capabilities(example_pod: dict[str, Any]) -> None:
    context = init_containers(example_pod)["data-dir"]["securityContext"]
    assert context["runAsUser"] == 0
    assert context["runAsNonRoot"] is False
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {
        "drop": ["ALL"],
        "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER"],
    }


def test_prepare_volume_adds_only_needed_capabilities() -> None:
    pipeline = pipeline_of([{"name": "p", "prepareVolume": {"volume": "data", "path": "x"}}])
    context = init_containers(render_pod(pipeline, 0, IMAGE))["p"]["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["DAC_OVERRIDE"]}


def test_run_step_is_the_users_container(example_pod: dict[str, Any]) -> None:
    assert init_containers(example_pod)["migrate"] == {
        "name": "migrate",
        "image": "myapp:migrations",
        "command": ["./run-migrations.sh"],
    }


def test_run_step_volume_mounts_get_volumes() -> None:
    run = {"image": "x:1", "volumeMounts": [{"name": "work", "mountPath": "/work"}]}
    pipeline = pipeline_of(
        [
            {
                "name": "r",
                "run": run,
                "volumeMounts": [{"name": "extra", "mountPath": "/extra", "readOnly": True}],
            }
        ]
    )
    pod = render_pod(pipeline, 0, IMAGE)
    assert init_containers(pod)["r"]["volumeMounts"] == [
        {"name": "work", "mountPath": "/work"},
        {"name": "extra", "mountPath": "/extra", "readOnly": True},
    ]
    assert list(volumes(pod)) == ["work", "extra"]


def test_sidecar_gets_a_startup_probe_from_its_readiness_probe(example_pod: dict[str, Any]) -> None:
    sidecar = init_containers(example_pod)["log-shipper"]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["readinessProbe"] == {"tcpSocket": {"port": 2020}}
    assert sidecar["startupProbe"] == {
        "tcpSocket": {"port": 2020},
        "periodSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 300,
    }


def test_sidecar_startup_probe_follows_period_and_step_timeout() -> None:
    readiness = {
        "httpGet": {"path": "/ready", "port": 8080},
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "successThreshold": 3,
        "failureThreshold": 2,
    }
    pipeline = pipeline_of(
        [
            {
                "name": "proxy",
                "timeoutSeconds": 61,
                "sidecar": {"image": "proxy:1", "readinessProbe": readiness},
            }
        ]
    )
    sidecar = init_containers(render_pod(pipeline, 0, IMAGE))["proxy"]
    assert sidecar["startupProbe"] == {
        "httpGet": {"path": "/ready", "port": 8080},
        "timeoutSeconds": 2,
        "periodSeconds": 5,
        "successThreshold": 1,
        "failureThreshold": 13,
    }
    assert sidecar["readinessProbe"] == readiness


def test_sidecar_keeps_its_own_startup_probe_and_needs_no_probe() -> None:
    startup = {"exec": {"command": ["true"]}}
    pipeline = pipeline_of(
        [
            {
                "name": "a",
                "sidecar": {
                    "image": "a:1",
                    "readinessProbe": {"exec": {"command": ["x"]}},
                    "startupProbe": startup,
                },
            },
            {"name": "b", "sidecar": {"image": "b:1"}},
        ]
    )
    containers = init_containers(render_pod(pipeline, 0, IMAGE))
    assert containers["a"]["startupProbe"] == startup
    assert containers["b"] == {"name": "b", "image": "b:1", "restartPolicy": "Always"}


# --- volumes and template ---------------------------------------------------------------


def test_template_volumes_are_kept_not_duplicated() -> None:
    template = {
        "metadata": {"labels": {"app": "x"}, "annotations": {"a": "1"}},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "runner",
            "securityContext": {"fsGroup": 2000},
            "containers": [{"name": "app", "image": "app:1"}],
            "volumes": [{"name": "html", "persistentVolumeClaim": {"claimName": "site"}}],
        },
    }
    steps = [
        {"name": "copy", "copyAssets": {"image": "a:1", "from": "/dist", "volume": "html"}},
        {"name": "get", "download": {"url": "http://x/y", "volume": "html", "path": "y"}},
        {"name": "prep", "prepareVolume": {"volume": "data"}},
    ]
    pod = render_pod(pipeline_of(steps, template=template), 2, IMAGE)
    assert pod["spec"]["volumes"] == [
        {"name": "html", "persistentVolumeClaim": {"claimName": "site"}},
        {"name": "data", "emptyDir": {}},
        {"name": TOOLS_VOLUME, "emptyDir": {}},
    ]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["serviceAccountName"] == "runner"
    assert pod["spec"]["securityContext"] == {"fsGroup": 2000}
    assert pod["metadata"]["labels"][PIPELINE_LABEL] == "demo"
    assert pod["metadata"]["labels"]["app"] == "x"
    assert pod["metadata"]["labels"][REPLICA_LABEL] == "2"
    assert pod["metadata"]["annotations"] == {"a": "1"}


def test_rendering_leaves_the_pipeline_alone(example: Pipeline) -> None:
    before = copy.deepcopy(example.spec.template)
    pods = render_pods(example, IMAGE)
    pods[0]["spec"]["containers"][0]["image"] = "changed"
    pods[0]["metadata"]["labels"]["app"] = "changed"
    assert example.spec.template == before
    assert render_pods(example, IMAGE) != pods


RENDER_IN_A_PROCESS = """
import sys, yaml
from initpipeline.render import render_pods
from initpipeline.spec import parse_pipeline
from tests.unit.test_render import IMAGE, example_body
pods = render_pods(parse_pipeline(example_body()), IMAGE)
sys.stdout.write(yaml.safe_dump(pods, sort_keys=False, width=100))
"""


@pytest.mark.parametrize("seed", ["0", "4242"])
def test_output_is_the_same_in_another_process(seed: str) -> None:
    """Another interpreter (another string hash seed, so sets and dicts built from them may
    iterate in another order) renders the same bytes, key order included, as this one and
    as the stored snapshot (which test_example_snapshot compares with sorted keys)."""
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-c", RENDER_IN_A_PROCESS],
        capture_output=True, text=True, env=env, cwd=Path(__file__).parents[2], check=True,
    ).stdout  # fmt: skip
    here = render_pods(parse_pipeline(example_body()), IMAGE)
    assert out == yaml.safe_dump(here, sort_keys=False, width=100)
    snapshot = yaml.safe_load((SNAPSHOTS / "api-example-pods.yaml").read_text())
    assert yaml.safe_load(out) == snapshot


def test_one_pod_per_replica() -> None:
    steps = [{"name": "w", "waitFor": [{"dns": "db"}]}]
    pods = render_pods(pipeline_of(steps, replicas=3), IMAGE)
    assert [p["metadata"]["labels"][REPLICA_LABEL] for p in pods] == ["0", "1", "2"]
    assert len({p["metadata"]["name"] for p in pods}) == 3
    assert render_pods(pipeline_of(steps, replicas=0), IMAGE) == []


# --- hash and names ---------------------------------------------------------------------


def test_hash_is_stable_and_ignores_scaling_and_suspend() -> None:
    body = example_body()
    digest = spec_hash(parse_pipeline(body).spec)
    assert re.fullmatch(r"[0-9a-f]{10}", digest)
    body["spec"]["replicas"] = 5
    body["spec"]["suspend"] = True
    assert spec_hash(parse_pipeline(body).spec) == digest
    explicit = example_body()
    explicit["spec"]["steps"][2]["copyAssets"]["path"] = ""  # the default, written out
    assert spec_hash(parse_pipeline(explicit).spec) == digest
    reordered = example_body()
    reordered["spec"]["template"] = dict(reversed(list(reordered["spec"]["template"].items())))
    assert spec_hash(parse_pipeline(reordered).spec) == digest


@pytest.mark.parametrize(
    "change",
    [
        lambda spec: spec["steps"][0].update(timeoutSeconds=301),
        lambda spec: spec["steps"][1]["download"].update(path="other.conf"),
        lambda spec: spec["steps"].reverse(),
        lambda spec: spec["template"]["spec"]["containers"][0].update(image="nginx:1.28"),
        lambda spec: spec["template"]["metadata"]["labels"].update(tier="web"),
    ],
)
def test_hash_changes_with_the_pod_spec(change: Any) -> None:
    body = example_body()
    before = spec_hash(parse_pipeline(body).spec)
    change(body["spec"])
    assert spec_hash(parse_pipeline(body).spec) != before


def test_pod_name_is_deterministic(example: Pipeline) -> None:
    assert pod_name(example, 3) == pod_name(parse_pipeline(example_body()), 3)
    assert pod_name(example, 3).endswith("-3")


def test_long_names_are_shortened_to_valid_distinct_labels() -> None:
    steps = [{"name": "w", "waitFor": [{"dns": "db"}]}]
    # The longest names a pipeline may have (63 characters, metadata.name's rule), sharing
    # a prefix that leaves no room for the suffix.
    first = pipeline_of(steps, name="a" * 59 + ".one")
    second = pipeline_of(steps, name="a" * 59 + ".two")
    dotted = pipeline_of(steps, name="shop.web")
    for pipeline in (first, second, dotted):
        for index in (0, 12345):
            name = pod_name(pipeline, index)
            assert len(name) <= 63
            assert DNS_LABEL.match(name), name
            assert name.endswith(f"-{spec_hash(pipeline.spec)[:5]}-{index}")
    assert pod_name(first, 0) != pod_name(second, 0)
    assert pod_name(dotted, 0).startswith("shop-web-")
    exact = pipeline_of(steps, name="x" * (63 - len("-abcde-0")))
    assert pod_name(exact, 0).startswith(exact.name + "-")


def test_every_step_type_renders() -> None:
    body = example_body()
    # renderConfig is not in the example (tests/unit/pods/ was recorded from it).
    body["spec"]["steps"].append(
        {"name": "conf", "renderConfig": {"template": "x", "volume": "conf", "path": "a.conf"}}
    )
    pipeline = parse_pipeline(body)
    kinds = {step.type for step in pipeline.spec.steps}
    assert kinds == set(StepType)
    containers = init_containers(render_pod(pipeline, 0, IMAGE))
    assert set(containers) == {step.name for step in pipeline.spec.steps} | {TOOLS_CONTAINER}


# --------------------------------------------------------------------------- copyAssets Mount

WEB_TEMPLATE = {
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": "httpd:1",
                "volumeMounts": [{"name": "site", "mountPath": "/www"}],
            },
            {"name": "other", "image": "other:1"},
        ]
    }
}


def mount_pipeline(mode: str, path: str = "") -> Pipeline:
    assets = {"image": "assets:1", "from": "/dist", "volume": "site", "mode": mode}
    if path:
        assets["path"] = path
    steps = [
        {
            "name": "before",
            "run": {"image": "x:1", "volumeMounts": [{"name": "site", "mountPath": "/s"}]},
        },
        {"name": "assets", "copyAssets": assets},
        {
            "name": "after",
            "run": {"image": "y:1", "volumeMounts": [{"name": "site", "mountPath": "/s"}]},
        },
    ]
    return pipeline_of(steps, template=WEB_TEMPLATE)


def test_mount_mode_renders_an_image_volume_instead_of_the_tools_and_copy_containers() -> None:
    pod = render_pod(mount_pipeline("Mount"), 0, IMAGE)

    assert list(init_containers(pod)) == ["before", "after"]
    assert volumes(pod)["initpipeline-assets-1"] == {
        "name": "initpipeline-assets-1",
        "image": {"reference": "assets:1"},
    }
    assert TOOLS_VOLUME not in volumes(pod)


def test_mount_mode_puts_the_assets_at_path_in_later_containers_that_mount_the_volume() -> None:
    pod = render_pod(mount_pipeline("Mount", path="static/"), 0, IMAGE)
    assets_mount = {"name": "initpipeline-assets-1", "readOnly": True, "subPath": "dist"}

    assert init_containers(pod)["before"]["volumeMounts"] == [{"name": "site", "mountPath": "/s"}]
    assert init_containers(pod)["after"]["volumeMounts"] == [
        {"name": "site", "mountPath": "/s"},
        {**assets_mount, "mountPath": "/s/static"},
    ]
    web, other = pod["spec"]["containers"]
    assert web["volumeMounts"] == [
        {"name": "site", "mountPath": "/www"},
        {**assets_mount, "mountPath": "/www/static"},
    ]
    assert "volumeMounts" not in other


def test_mount_mode_with_an_empty_path_takes_the_place_of_the_volume_mount() -> None:
    pod = render_pod(mount_pipeline("Mount"), 0, IMAGE)

    (web, _) = pod["spec"]["containers"]
    assert web["volumeMounts"] == [
        {"name": "initpipeline-assets-1", "mountPath": "/www", "readOnly": True, "subPath": "dist"}
    ]


def test_from_root_mounts_the_whole_image() -> None:
    steps = [
        {
            "name": "a",
            "copyAssets": {"image": "i:1", "from": "/", "volume": "site", "mode": "Mount"},
        }
    ]
    pod = render_pod(pipeline_of(steps, template=WEB_TEMPLATE), 0, IMAGE)

    assert pod["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "initpipeline-assets-0", "mountPath": "/www", "readOnly": True}
    ]


@pytest.mark.parametrize(
    ("mode", "image_volumes", "copied"),
    [
        ("Auto", False, True),
        ("Auto", True, False),
        ("Copy", True, True),
        ("Mount", False, False),
    ],
)
def test_auto_mounts_only_where_image_volumes_are_supported(
    mode: str, image_volumes: bool, copied: bool
) -> None:
    pod = render_pod(mount_pipeline(mode), 0, IMAGE, image_volumes=image_volumes)

    assert ("assets" in init_containers(pod)) is copied
    assert ("initpipeline-assets-1" in volumes(pod)) is not copied


def test_a_mount_of_the_volume_without_mount_path_is_left_for_the_api_server_to_refuse() -> None:
    template = copy.deepcopy(WEB_TEMPLATE)
    template["spec"]["containers"][0]["volumeMounts"] = [{"name": "site"}]
    steps = [
        {
            "name": "a",
            "copyAssets": {"image": "i:1", "from": "/d", "volume": "site", "mode": "Mount"},
        }
    ]

    pod = render_pod(pipeline_of(steps, template=template), 0, IMAGE)

    assert pod["spec"]["containers"][0]["volumeMounts"] == [{"name": "site"}]


def test_auto_copies_where_a_container_mounts_the_volume_with_a_sub_path() -> None:
    # A mounted image would land at `path` of the whole volume's mount; a subPath mount of
    # the volume would not show it where a copy puts the files: Auto copies, Mount mounts.
    template = copy.deepcopy(WEB_TEMPLATE)
    template["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "site", "mountPath": "/www", "subPath": "static"}
    ]

    def pod(mode: str) -> dict[str, Any]:
        assets = {"image": "i:1", "from": "/d", "volume": "site", "path": "static", "mode": mode}
        steps = [{"name": "assets", "copyAssets": assets}]
        return render_pod(pipeline_of(steps, template=template), 0, IMAGE, image_volumes=True)

    assert "assets" in init_containers(pod("Auto"))
    assert "initpipeline-assets-0" not in volumes(pod("Auto"))
    assert "initpipeline-assets-0" in volumes(pod("Mount"))
