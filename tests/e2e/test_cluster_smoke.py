"""Smoke test of a cluster with a real node: Pods run, Services and cluster DNS work.

Runs on the local cluster of hack/cluster.sh at node level (or another cluster allowed via
KUBECONFIG, see tests/conftest.py) with the images hack/images/build.sh imports.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

Kubectl = Callable[..., subprocess.CompletedProcess[str]]

BUSYBOX = "docker.io/library/busybox:1.36.1"
HTTPD = "localhost/initpipeline/httpd:1"
LOCAL_IMAGES = [
    BUSYBOX,
    "docker.io/library/busybox:1.36.1-musl",  # the operator's default step image
    "registry.k8s.io/pause:3.10.1",
    HTTPD,
    "localhost/initpipeline/assets:1",
    "localhost/initpipeline/assets-scratch:1",
]

# What the operator generates for its init containers: the "restricted" Pod Security profile.
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _container(name: str, image: str, script: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",  # images are imported, there is no registry
        "command": ["sh", "-c", script],
        "securityContext": RESTRICTED,
        "volumeMounts": [{"name": "work", "mountPath": "/work"}],
        **extra,
    }


def pipeline_pod(name: str) -> dict[str, Any]:
    """Two init steps, a native sidecar (restartPolicy: Always) and the main container.

    Each step waits for a file the test creates (kubectl exec), so every state the kubelet
    reports lasts until the test has seen it: the assertions are on transitions, not timing.
    """
    gate = "until [ -e /work/go-{0} ]; do sleep 0.2; done"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"fsGroup": 65532},
            "volumes": [{"name": "work", "emptyDir": {}}],
            "initContainers": [
                _container("step-1", BUSYBOX, f"{gate.format(1)}; echo one > /work/step-1"),
                _container("step-2", BUSYBOX, f"{gate.format(2)}; cat /work/step-1 > /work/step-2"),
                _container(
                    "sidecar",
                    BUSYBOX,
                    f"{gate.format(3)}; touch /work/sidecar-up; exec sleep 100000",
                    restartPolicy="Always",
                    startupProbe={
                        "exec": {"command": ["test", "-e", "/work/sidecar-up"]},
                        "periodSeconds": 1,
                        "failureThreshold": 600,
                    },
                ),
            ],
            "containers": [
                _container(
                    "main",
                    BUSYBOX,
                    "test -e /work/step-2 && test -e /work/sidecar-up && exec sleep 100000",
                    readinessProbe={
                        "exec": {"command": ["cat", "/work/step-2"]},
                        "periodSeconds": 1,
                    },
                )
            ],
        },
    }


def kubectl_status(pod: dict[str, Any]) -> str:
    """The STATUS column of `kubectl get pod` (same rules as kubectl's printer)."""
    spec, status = pod["spec"], pod.get("status", {})
    inits = {c["name"]: c for c in spec.get("initContainers", [])}
    reason = status.get("reason") or status.get("phase", "Pending")
    for i, cs in enumerate(status.get("initContainerStatuses", [])):
        state = cs.get("state", {})
        if state.get("terminated", {}).get("exitCode", 1) == 0 and "terminated" in state:
            continue
        if inits.get(cs["name"], {}).get("restartPolicy") == "Always" and cs.get("started"):
            continue
        if "terminated" in state:
            return f"Init:ExitCode:{state['terminated'].get('exitCode')}"
        waiting = state.get("waiting", {}).get("reason")
        if waiting and waiting != "PodInitializing":
            return f"Init:{waiting}"
        return f"Init:{i}/{len(inits)}"
    for cs in status.get("containerStatuses", []):
        state = cs.get("state", {})
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif "running" in state and cs.get("ready"):
            reason = "Running"
    return reason


class PodWatch:
    """Streams a Pod's updates (`kubectl get -w -o json`) and records every status seen."""

    def __init__(self, kubectl_argv: list[str]) -> None:
        self.proc = subprocess.Popen(kubectl_argv, stdout=subprocess.PIPE, text=True)
        self.decoder = json.JSONDecoder()
        self.buffer = ""
        self.seen: list[dict[str, Any]] = []

    def next(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            text = self.buffer.lstrip()
            if text:
                try:
                    obj, end = self.decoder.raw_decode(text)
                except json.JSONDecodeError:
                    pass
                else:
                    self.buffer = text[end:]
                    self.seen.append(obj)
                    return obj
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"pod watch ended (exit {self.proc.poll()})")
            self.buffer += line

    def until(
        self, what: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 120
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pod = self.next()
            if predicate(pod):
                return pod
        raise AssertionError(f"never saw: {what}; statuses seen: {self.statuses()}")

    def statuses(self) -> list[str]:
        out: list[str] = []
        for pod in self.seen:
            s = kubectl_status(pod)
            if not out or out[-1] != s:
                out.append(s)
        return out

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _state(pod: dict[str, Any], name: str, init: bool = True) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    for cs in pod.get("status", {}).get(key, []):
        if cs["name"] == name:
            return cs
    return {}


def running(cs: dict[str, Any]) -> bool:
    return "running" in cs.get("state", {})


def succeeded(cs: dict[str, Any]) -> bool:
    return bool(cs.get("state", {}).get("terminated", {}).get("exitCode") == 0)


def apply(kubectl: Kubectl, namespace: str, obj: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(obj))


def exec_until_ok(
    kubectl: Kubectl, namespace: str, pod: str, script: str, timeout: float = 60
) -> str:
    """Run a command in a Pod until it succeeds (Service rules and DNS take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        proc = kubectl(
            "exec",
            pod,
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            script,
            namespace=namespace,
            check=False,
            timeout=30,
        )
        if proc.returncode == 0:
            return proc.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"`{script}` in {pod} kept failing: {proc.stderr}{proc.stdout}")
        time.sleep(1)


def test_local_images_are_on_the_node(kubectl: Kubectl) -> None:
    # The kubelet refreshes the node's image list periodically: poll, don't race it.
    deadline = time.monotonic() + 90
    while True:
        nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
        names = {
            n for node in nodes for img in node["status"].get("images", []) for n in img["names"]
        }
        missing = [img for img in LOCAL_IMAGES if img not in names]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"images missing on the node: {missing}; node has {sorted(names)}")
        time.sleep(2)


def test_init_containers_sidecar_and_main_reach_ready(
    kubectl: Kubectl, namespace: str, kubeconfig: str, kube_context: str
) -> None:
    name = "pipeline"
    argv = [
        kubectl("version", "--client", "-o", "json", check=False).args[0],
        "--kubeconfig",
        kubeconfig,
        "--context",
        kube_context,
        "-n",
        namespace,
        "get",
        "pod",
        name,
        "-o",
        "json",
        "--watch",
    ]
    apply(kubectl, namespace, pipeline_pod(name))
    watch = PodWatch(argv)
    try:

        def release(step: int) -> None:
            kubectl(
                "exec",
                name,
                "-c",
                "sidecar" if step == 3 else f"step-{step}",
                "--",
                "touch",
                f"/work/go-{step}",
                namespace=namespace,
            )

        # Init:0/3 -- step-1 runs, everything after it waits.
        pod = watch.until("step-1 running", lambda p: running(_state(p, "step-1")))
        assert not _state(pod, "step-2").get("state", {}).get("running")
        assert kubectl_status(pod) == "Init:0/3"
        release(1)

        # Init:1/3 -- step-1 completed, step-2 runs.
        pod = watch.until("step-2 running", lambda p: running(_state(p, "step-2")))
        assert succeeded(_state(pod, "step-1"))
        assert kubectl_status(pod) == "Init:1/3"
        release(2)

        # Init:2/3 -- both steps completed; the sidecar runs but has not passed its startup probe.
        pod = watch.until("sidecar running", lambda p: running(_state(p, "sidecar")))
        assert succeeded(_state(pod, "step-2"))
        assert not _state(pod, "sidecar").get("started")
        assert not running(_state(pod, "main", init=False))
        assert kubectl_status(pod) == "Init:2/3"
        release(3)

        # Running -- the sidecar keeps running next to the main container; the Pod is Ready.
        pod = watch.until(
            "pod Ready",
            lambda p: any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions", [])
            ),
        )
        sidecar = _state(pod, "sidecar")
        assert running(sidecar) and sidecar.get("started") and sidecar.get("ready")
        assert running(_state(pod, "main", init=False))
        assert kubectl_status(pod) == "Running"

        # The same transitions, in order, as the STATUS column shows them.
        seen = watch.statuses()
        print("STATUS column as observed:", " -> ".join(seen))
        order = ["Init:0/3", "Init:1/3", "Init:2/3", "Running"]
        positions = [seen.index(s) for s in order]
        assert positions == sorted(positions), seen
        # Nothing failed on the way (no Init:Error, Init:CrashLoopBackOff, ErrImage...).
        bad = ("Error", "CrashLoop", "ExitCode", "ErrImage", "BackOff", "Unknown")
        assert not [s for s in seen if any(b in s for b in bad)], seen
    finally:
        watch.close()

    got = kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}", namespace=namespace)
    assert got.stdout == "Running"


def web_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": HTTPD,
                    "imagePullPolicy": "Never",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "securityContext": RESTRICTED,
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                }
            ],
        },
    }


def client_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "100000"],
                    "securityContext": RESTRICTED,
                }
            ],
        },
    }


def test_service_cluster_ip_and_dns_name_reach_another_pod(
    kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, namespace, web_pod("web"))
    apply(kubectl, namespace, client_pod("client"))
    apply(
        kubectl,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
    )
    kubectl(
        "wait",
        "--for=condition=Ready",
        "pod/web",
        "pod/client",
        "--timeout=120s",
        namespace=namespace,
        timeout=150,
    )
    cluster_ip = kubectl(
        "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}", namespace=namespace
    ).stdout
    assert cluster_ip.startswith("10.96."), cluster_ip

    # busybox wget has no reliable -T here: bound each try with `timeout`.
    fetch = "timeout 5 wget -q -O - http://{}/"
    body = exec_until_ok(kubectl, namespace, "client", fetch.format(cluster_ip))
    assert "busybox httpd" in body

    fqdn = f"web.{namespace}.svc.cluster.local"
    resolved = exec_until_ok(kubectl, namespace, "client", f"nslookup {fqdn}")
    assert cluster_ip in resolved, resolved
    for host in (fqdn, "web", f"web.{namespace}"):
        assert "busybox httpd" in exec_until_ok(kubectl, namespace, "client", fetch.format(host))
