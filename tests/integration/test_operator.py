"""The operator against a real API server (no node needed: Pod statuses are written the way
the kubelet writes them, through the Pod status subresource)."""

from __future__ import annotations

import json
import re
from typing import Any, Final

import pytest
import yaml
from tests.helpers import (
    BAD_QUANTITY,
    Kubectl,
    Stream,
    eventually,
    get,
    kubelet_runs_everything,
    log_messages,
    operator_running,
    pods,
    status,
)

pytestmark = pytest.mark.integration

PIPELINE = """
apiVersion: initpipeline.io/v1alpha1
kind: InitPipeline
metadata:
  name: web
spec:
  replicas: 1
  steps:
    - name: wait-db
      waitFor:
        - service: mydb
        - tcp: mydb:5432
    - name: fetch
      download: {url: "http://config/app.conf", volume: config, path: app.conf}
  template:
    metadata:
      labels: {app: web}
    spec:
      # No scheduler serves this name: the Pods stay unscheduled and untouched, so no
      # scheduler or kubelet writes their status and the tests can write it as a kubelet would.
      schedulerName: initpipeline-tests-unscheduled
      containers:
        - name: app
          image: docker.io/library/busybox:1.36.1-musl
          command: ["sleep", "3600"]
"""


def apply(kubectl: Kubectl, namespace: str, manifest: str | dict[str, Any]) -> None:
    text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
    kubectl("apply", "-f", "-", namespace=namespace, input=text)


def condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions", []) if c["type"] == type_), {})


def status_when(kubectl: Kubectl, namespace: str, type_: str, **fields: str) -> dict[str, Any]:
    """The pipeline's status once its `type_` condition has these fields, else {}."""
    st = status(kubectl, namespace)
    found = condition(st, type_)
    return st if all(found.get(k) == v for k, v in fields.items()) else {}


def name_of(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def set_pod_status(kubectl: Kubectl, namespace: str, pod: str, pod_status: dict[str, Any]) -> None:
    """Write a Pod status as the kubelet would (it owns the status subresource)."""
    kubectl(
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": pod_status}),
        namespace=namespace,
    )


def test_pipeline_becomes_a_pod_with_one_init_container_per_step(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, namespace, PIPELINE)
    [pod] = eventually(lambda: pods(kubectl, namespace) or None)
    owner = pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("InitPipeline", "web", True)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["wait-db", "fetch"]
    assert pod["metadata"]["labels"]["app"] == "web"
    assert pod["metadata"]["labels"]["initpipeline.io/pipeline"] == "web"
    # The pass that created the Pod writes a status that lists it (the API server's answer).
    st = eventually(lambda: (s := status(kubectl, namespace)).get("pods") and s)
    assert [p["name"] for p in st["pods"]] == [name_of(pod)]
    assert st["progress"] == "0/2"
    assert st["currentStep"] == "wait-db"
    assert [s["name"] for s in st["steps"]] == ["wait-db", "fetch"]
    assert condition(st, "Ready")["status"] == "False"
    assert condition(st, "Reconciling")["status"] == "True"
    assert condition(st, "Stalled")["status"] == "False"


ASSETS = """
apiVersion: initpipeline.io/v1alpha1
kind: InitPipeline
metadata:
  name: {name}
spec:
  steps:
    - name: site
      copyAssets:
        {{image: "localhost/initpipeline/assets-scratch:1", from: /dist, volume: html, {mode}}}
  template:
    spec:
      schedulerName: initpipeline-tests-unscheduled
      containers:
        - name: web
          image: localhost/initpipeline/httpd:1
          volumeMounts: [{{name: html, mountPath: /www}}]
"""


def test_copy_assets_mount_is_an_image_volume_and_auto_copies_without_nodes(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    """The API server takes the image volume with its subPath; a cluster without nodes (no
    runtime known to mount image volumes) makes Auto copy, and where Auto mounts (a node
    level on containerd 2.1+) its Pod and status say so alike."""
    apply(kubectl, namespace, ASSETS.format(name="mount", mode="mode: Mount"))
    apply(kubectl, namespace, ASSETS.format(name="auto", mode=""))
    by_pipeline = eventually(
        lambda: (
            len(found := pods(kubectl, namespace)) == 2
            and {p["metadata"]["labels"]["initpipeline.io/pipeline"]: p for p in found}
        )
    )
    mount, auto = by_pipeline["mount"]["spec"], by_pipeline["auto"]["spec"]
    assert "initContainers" not in mount or mount["initContainers"] == []
    assert {
        "name": "initpipeline-assets-0",
        "image": {
            "reference": "localhost/initpipeline/assets-scratch:1",
            "pullPolicy": "IfNotPresent",
        },
    } in mount["volumes"]
    assert mount["containers"][0]["volumeMounts"][0] == {
        "name": "initpipeline-assets-0",
        "mountPath": "/www",
        "readOnly": True,
        "subPath": "dist",
    }
    auto_copies = [c["name"] for c in auto.get("initContainers") or []] == [
        "initpipeline-tools",
        "site",
    ]
    if not get(kubectl, None, "nodes")["items"]:
        assert auto_copies, auto
    if not auto_copies:
        assert "initpipeline-assets-0" in {v["name"] for v in auto["volumes"]}, auto
    auto_mode = "Copy" if auto_copies else "Mount"
    for name, mode in (("mount", "Mount"), ("auto", auto_mode)):
        st = eventually(lambda n=name: (s := status(kubectl, namespace, n)).get("pods") and s)
        assert (st["steps"][0]["state"], st["steps"][0]["mode"]) == ("Pending", mode)


def test_service_target_is_released_once_it_has_ready_endpoints(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, namespace, PIPELINE)
    [pod] = eventually(lambda: pods(kubectl, namespace) or None)
    # "not checked yet" until the Services' watch has listed; then what the README shows
    missing = ["service mydb: service does not exist"]
    eventually(lambda: _waiting_on(kubectl, namespace) == missing)
    apply(
        kubectl,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "mydb"},
            "spec": {"ports": [{"port": 5432}], "selector": {"app": "mydb"}},
        },
    )
    eventually(lambda: _waiting_on(kubectl, namespace) == ["service mydb: no ready endpoints"])
    annotations = get(kubectl, namespace, "pod", pod["metadata"]["name"])["metadata"]
    assert "initpipeline.io/released" not in (annotations.get("annotations") or {})
    apply(
        kubectl,
        namespace,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "mydb-manual", "labels": {"kubernetes.io/service-name": "mydb"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.88.0.42"], "conditions": {"ready": True}}],
            "ports": [{"port": 5432, "protocol": "TCP"}],
        },
    )
    released = eventually(
        lambda: (
            get(kubectl, namespace, "pod", pod["metadata"]["name"])["metadata"]
            .get("annotations", {})
            .get("initpipeline.io/released")
        )
    )
    assert released == "wait-db"


def _waiting_on(kubectl: Kubectl, namespace: str) -> list[str]:
    steps = status(kubectl, namespace).get("steps") or [{}]
    return list(steps[0].get("waitingOn") or [])


def _init_status(name: str, state: dict[str, Any], restarts: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "image": "docker.io/library/busybox:1.36.1-musl",
        "imageID": "",
        "ready": False,
        "restartCount": restarts,
        "started": "running" in state,
        "state": state,
        "lastState": {},
    }


# The kubelet's report of a Pod whose first step, wait-db, runs.
WAIT_DB_RUNNING: Final = {
    "phase": "Pending",
    "conditions": [{"type": "PodScheduled", "status": "True"}],
    "initContainerStatuses": [
        _init_status("wait-db", {"running": {"startedAt": "2026-11-25T10:00:01Z"}}),
        _init_status("fetch", {"waiting": {"reason": "PodInitializing"}}),
    ],
}


def test_status_follows_the_pod_as_the_kubelet_reports_it(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, namespace, PIPELINE)
    [pod] = eventually(lambda: pods(kubectl, namespace) or None)
    name = pod["metadata"]["name"]
    finished = {
        "terminated": {
            "exitCode": 0,
            "reason": "Completed",
            "message": "mydb:5432 reachable after 3s",
            "startedAt": "2026-11-25T10:00:01Z",
            "finishedAt": "2026-11-25T10:00:04Z",
        }
    }
    set_pod_status(
        kubectl,
        namespace,
        name,
        {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized"},
            ],
            "initContainerStatuses": [
                _init_status("wait-db", finished),
                _init_status("fetch", {"running": {"startedAt": "2026-11-25T10:00:05Z"}}),
            ],
        },
    )
    st = eventually(lambda: (s := status(kubectl, namespace)).get("progress") == "1/2" and s)
    assert st["currentStep"] == "fetch"
    first, second = st["steps"]
    assert (first["state"], first["exitCode"], first["message"]) == (
        "Succeeded",
        0,
        "mydb:5432 reachable after 3s",
    )
    assert second["state"] == "Running"
    assert condition(st, "Ready")["reason"] == "Initializing"
    events = get(kubectl, namespace, "events", "--field-selector", "involvedObject.name=web")
    reasons = {e["reason"] for e in events["items"]}
    assert {"StepSucceeded", "StepStarted"} <= reasons


def test_failed_step_under_never_stalls_with_exit_code_and_message(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    body = yaml.safe_load(PIPELINE)
    body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    apply(kubectl, namespace, body)
    [pod] = eventually(lambda: pods(kubectl, namespace) or None)
    set_pod_status(
        kubectl,
        namespace,
        pod["metadata"]["name"],
        {
            "phase": "Failed",
            "initContainerStatuses": [
                _init_status(
                    "wait-db",
                    {
                        "terminated": {
                            "exitCode": 1,
                            "reason": "Error",
                            "message": "mydb:5432 unreachable",
                            "startedAt": "2026-11-25T10:00:01Z",
                            "finishedAt": "2026-11-25T10:00:04Z",
                        }
                    },
                )
            ],
        },
    )
    st = eventually(lambda: status_when(kubectl, namespace, "Stalled", status="True"))
    assert condition(st, "Ready")["reason"] == "StepFailed"
    assert st["steps"][0]["exitCode"] == 1
    assert st["steps"][0]["message"] == "mydb:5432 unreachable"  # the termination message
    assert condition(st, "Reconciling")["status"] == "False"


def test_deleted_pod_is_recreated_and_spec_change_replaces_pods(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, namespace, PIPELINE)
    [pod] = eventually(lambda: pods(kubectl, namespace) or None)
    kubectl("delete", "pod", pod["metadata"]["name"], "--wait=false", namespace=namespace)
    [again] = eventually(
        lambda: (
            [p for p in pods(kubectl, namespace) if p["metadata"]["uid"] != pod["metadata"]["uid"]]
            or None
        )
    )
    assert again["metadata"]["name"] == pod["metadata"]["name"]
    body = yaml.safe_load(PIPELINE)
    body["spec"]["steps"][1]["download"]["url"] = "http://config/other.conf"
    apply(kubectl, namespace, body)
    [replaced] = eventually(
        lambda: (
            [
                p
                for p in pods(kubectl, namespace)
                if p["metadata"]["name"] != pod["metadata"]["name"]
            ]
            or None
        )
    )
    # RollingUpdate (the default): the old Pod goes once the new one is Ready.
    kubelet_runs_everything(kubectl, namespace, replaced)
    eventually(
        lambda: (
            [p["metadata"]["name"] for p in pods(kubectl, namespace)]
            == [replaced["metadata"]["name"]]
        )
    )
    assert eventually(lambda: status(kubectl, namespace)["observedGeneration"] == 2)


def settled(kubectl: Kubectl, namespace: str, replicas: int) -> dict[str, str]:
    """The pipeline's Pods (name -> uid) once the operator is done with a spec: every Pod in
    the namespace, those being deleted included, is one of `replicas` Pods named after their
    index, and the status written for this generation lists exactly those; else {}."""
    every = get(kubectl, namespace, "pods")["items"]
    body = get(kubectl, namespace, "ipl", "web")
    st = body.get("status") or {}
    names = sorted(name_of(p) for p in every)
    if (
        len(every) != replicas
        or any(p["metadata"].get("deletionTimestamp") for p in every)
        or [n.rsplit("-", 1)[1] for n in names] != [str(i) for i in range(replicas)]
        or st.get("observedGeneration") != body["metadata"]["generation"]
        or st.get("replicas") != replicas
        or [p["name"] for p in st.get("pods", [])] != names
    ):
        return {}
    return {name_of(p): p["metadata"]["uid"] for p in every}


def test_replicas_suspend_and_scale(operator: None, kubectl: Kubectl, namespace: str) -> None:
    body = yaml.safe_load(PIPELINE)
    body["spec"]["replicas"] = 2
    apply(kubectl, namespace, body)
    first = eventually(lambda: settled(kubectl, namespace, 2))
    kubectl(
        "patch",
        "ipl",
        "web",
        "--type=merge",
        "-p",
        '{"spec":{"suspend":true}}',
        namespace=namespace,
    )
    eventually(lambda: get(kubectl, namespace, "pods")["items"] == [])
    st = eventually(lambda: status_when(kubectl, namespace, "Ready", reason="Suspended"))
    assert condition(st, "Stalled")["status"] == "False"
    assert (st["replicas"], st["pods"]) == (2, [])
    kubectl(
        "patch",
        "ipl",
        "web",
        "--type=merge",
        "-p",
        '{"spec":{"suspend":false}}',
        namespace=namespace,
    )
    again = eventually(lambda: settled(kubectl, namespace, 2))
    assert sorted(again) == sorted(first)  # the same names: same spec, same indexes
    assert not set(again.values()) & set(first.values())  # new Pods
    kubectl("scale", "ipl", "web", "--replicas=1", namespace=namespace)
    after = eventually(lambda: settled(kubectl, namespace, 1))
    [kept] = [name for name in again if name.endswith("-0")]
    assert after == {kept: again[kept]}  # replica 0 kept as it was, replica 1 deleted


def test_restarted_operator_resumes_without_duplicating_pods(
    kubeconfig: str, kubectl: Kubectl, kubectl_argv: list[str], namespace: str
) -> None:
    only_here = {"INITPIPELINE_NAMESPACES": namespace}  # no other test's pipeline in its log
    with operator_running(kubeconfig, namespace, **only_here):
        apply(kubectl, namespace, PIPELINE)
        [pod] = eventually(lambda: pods(kubectl, namespace) or None)
        before = eventually(lambda: status(kubectl, namespace).get("steps"))
    assert before[0]["state"] == "Pending"  # the Pod has no status yet
    uid = pod["metadata"]["uid"]
    watch = Stream(kubectl_argv, namespace, "pods")
    try:
        with operator_running(kubeconfig, namespace, **only_here) as second:
            kubectl("annotate", "ipl", "web", "touched=yes", namespace=namespace)
            # The Pod moves on only now: a status that shows it is the second operator's.
            set_pod_status(kubectl, namespace, name_of(pod), WAIT_DB_RUNNING)
            st = eventually(
                lambda: (s := status(kubectl, namespace))["steps"][0]["state"] == "Running" and s
            )
            current = pods(kubectl, namespace)
    finally:
        watch.stop()
    assert st["steps"][0]["startedAt"] == "2026-11-25T10:00:01Z"
    assert condition(st, "Ready")["reason"] == "WaitingForDependency"
    # It started knowing the Pod, and in all its life no other Pod came or went.
    started = re.compile(r"Following 1 InitPipelines and 1 of their Pods; \d+ workers")
    assert [m for m in log_messages(second.output) if started.fullmatch(m)], second.output
    assert [p["metadata"]["uid"] for p in current] == [uid]
    seen = [(kind, obj["metadata"]["uid"]) for kind, obj in watch.events if kind != "RELISTED"]
    assert {uid for _, uid in seen} == {uid}, seen
    assert "DELETED" not in {kind for kind, _ in seen}, seen
    cr = get(kubectl, namespace, "ipl", "web")
    assert not cr["metadata"].get("finalizers")
    bookkeeping = [k for k in cr["metadata"].get("annotations", {}) if "kopf" in k]
    assert bookkeeping == []
    assert not [k for k in pod["metadata"].get("annotations") or {} if "kopf" in k]


def test_pod_the_api_server_refuses_stalls_with_pod_creation_failed(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    body = yaml.safe_load(PIPELINE)
    body["spec"]["steps"].append(
        {"name": "migrate", "run": {"image": "app:1", "resources": {"limits": {"cpu": "lots"}}}}
    )
    apply(kubectl, namespace, body)
    st = eventually(lambda: status_when(kubectl, namespace, "Ready", reason="PodCreationFailed"))
    assert condition(st, "Stalled")["status"] == "True"
    refused = re.escape(f"pod web-HASH-0: {BAD_QUANTITY}").replace("HASH", "[0-9a-f]{5}")
    assert re.fullmatch(refused, condition(st, "Ready")["message"]), st
    assert pods(kubectl, namespace) == []


def test_deleting_the_pipeline_garbage_collects_its_pods(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, namespace, PIPELINE)
    eventually(lambda: pods(kubectl, namespace) or None)
    kubectl("delete", "ipl", "web", "--wait=true", namespace=namespace)
    eventually(lambda: pods(kubectl, namespace) == [], timeout=90)


def test_printer_columns(operator: None, kubectl: Kubectl, namespace: str) -> None:
    apply(kubectl, namespace, PIPELINE)
    [pod] = eventually(lambda: pods(kubectl, namespace) or None)
    set_pod_status(kubectl, namespace, name_of(pod), WAIT_DB_RUNNING)
    st = eventually(
        lambda: (
            status_when(kubectl, namespace, "Ready", reason="WaitingForDependency")
            if _waiting_on(kubectl, namespace) == ["service mydb: service does not exist"]
            else {}
        )
    )
    message = "step 1/2 wait-db: waiting for service mydb: service does not exist"
    assert st["message"] == condition(st, "Ready")["message"] == message
    row = {"NAME": "web", "READY": "0/1", "STEPS": "0/2", "STATUS": "WaitingForDependency"}
    row["CURRENT"] = "wait-db"
    row["ATTEMPT"] = ""  # no spec.retries
    [plain] = table(kubectl("get", "ipl", namespace=namespace).stdout)
    assert list(plain) == ["NAME", "READY", "STEPS", "STATUS", "CURRENT", "ATTEMPT", "AGE"]
    assert {k: v for k, v in plain.items() if k != "AGE"} == row
    [wide] = table(kubectl("get", "ipl", "-o", "wide", namespace=namespace).stdout)
    assert list(wide) == [*plain, "UPDATED", "POD", "MESSAGE"]
    assert {k: v for k, v in wide.items() if k != "AGE"} == {
        **row,
        "UPDATED": "1",
        "POD": name_of(pod),
        "MESSAGE": message,
    }


def table(text: str) -> list[dict[str, str]]:
    """kubectl's table output, each row by column heading (a cell is read from where its
    heading starts to where the next one starts, so cells with spaces stay whole)."""
    header, *rows = text.splitlines()
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    names = header.split()
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [
        {name: row[a:b].strip() for name, (a, b) in zip(names, bounds, strict=True)} for row in rows
    ]


def test_spec_the_schema_accepts_but_the_operator_cannot_use_is_stalled_invalid_spec(
    operator: None, kubectl: Kubectl, namespace: str
) -> None:
    body = yaml.safe_load(PIPELINE)
    body["spec"]["template"]["metadata"]["labels"]["initpipeline.io/pipeline"] = "other"
    apply(kubectl, namespace, body)
    st = eventually(lambda: status_when(kubectl, namespace, "Ready", reason="InvalidSpec"))
    assert condition(st, "Stalled")["status"] == "True"
    assert condition(st, "Ready")["message"] == (
        "spec.template.metadata.labels: 'initpipeline.io/pipeline': labels under initpipeline.io/ "
        "are set by the operator"
    )
    assert pods(kubectl, namespace) == []
    del body["spec"]["template"]["metadata"]["labels"]["initpipeline.io/pipeline"]
    apply(kubectl, namespace, body)
    eventually(lambda: pods(kubectl, namespace))
    eventually(lambda: status_when(kubectl, namespace, "Stalled", status="False"))
