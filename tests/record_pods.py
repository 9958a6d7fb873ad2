"""Record the Pods of tests/unit/pods/ from a real kubelet.

    uv run python -m tests.record_pods [--out DIR]

Needs a cluster with a Ready node and the images of hack/images/build.sh: the local cluster
of `hack/cluster.sh up node` (its kubeconfig, or $KUBECONFIG). Applies crds/ when the
InitPipeline CRD is missing. Works in two namespaces of its own, `record-pods-<random>` and
`record-pods-<random>-b`, and deletes them at the end. Takes about five minutes: one moment
waits for wait-deps' timeoutSeconds (300).

Each file is one Pod of the pipeline of tests/data/api-example.yaml, created the way the
operator creates it: an InitPipeline object first (the Pod's ownerReference names a real
owner, so the garbage collector keeps the Pod), then the Pod `initpipeline.render` makes of
it with the operator's default step image. No operator runs (one may be testing in other
namespaces); the recorder acts as the operator: it writes the release annotation
(`plan.release_value`) that wait-deps waits for. Each Pod is followed with
`kubectl get pod --watch`; a moment is written when the Pod shows it (no sleeps), and the
recorder acts on it (creates a missing Secret, releases the wait step, starts the file
server) to reach the next.

What the example names but this cluster cannot run is swapped for local stand-ins, keeping
the step names, step types and generated scripts (wait-deps, fetch-config, the tools
container and data-dir run exactly the example's scripts; site's names its image):

- site copies from localhost/initpipeline/assets:1 (the example's image is kept for the
  ErrImagePull moment: nothing can be pulled here);
- migrate is busybox printing migration lines (FallbackToLogsOnError), failing where the
  moment needs it;
- log-shipper is busybox httpd on its readinessProbe's port 2020; web is
  localhost/initpipeline/httpd:1;
- the template gets the volumes the example's targets need: `certs` from the Secret
  web-tls (the Certificate's; missing at first for one Pod) and `work`, a ConfigMap with
  `ready`, mounted at /work in wait-deps so its command target can hold;
- Services mydb, mysql, config-server and myservice are busybox httpd servers in the
  namespace; config-server's port 80 (nginx.conf) answers only once the recorder starts
  its file server.

Normalised, so the tests can name them: the Pod's name, namespace, pipeline label,
spec-hash label and owner name become those of api-example.yaml's Pod (`shop-web-<hash>-0`
in `shop`; the stand-ins change the spec hash), also inside kubelet messages; and
`managedFields` are dropped, as `kubectl get -o json` prints them. Everything else (uids,
timestamps, IPs, container ids, image ids, the stand-ins' images and commands) is as the
API server returned it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from initpipeline.names import PIPELINE_LABEL, RELEASED_ANNOTATION, SPEC_HASH_LABEL
from initpipeline.plan import release_value
from initpipeline.render import pod_name, render_pod, spec_hash
from initpipeline.settings import DEFAULT_STEP_IMAGE
from initpipeline.spec import Pipeline, parse_pipeline
from tests.helpers import REPO, kubectl_binary

Pod = dict[str, Any]

EXAMPLE_FILE = REPO / "tests" / "data" / "api-example.yaml"
OUT = REPO / "tests" / "unit" / "pods"
CLUSTER_DIR = Path(os.environ.get("INITPIPELINE_CLUSTER_DIR", "/tmp/initpipeline-cluster"))
CRD = "initpipelines.initpipeline.io"

BUSYBOX = "docker.io/library/busybox:1.36.1"
HTTPD = "localhost/initpipeline/httpd:1"
ASSETS = "localhost/initpipeline/assets:1"
CERT_SECRET = "web-tls"
WORK = "work"
DEPS = {"app": "record-pods-deps"}
# A Pod's moments must all be seen within this many seconds (wait-deps times out after 300).
JOURNEY_SECONDS = 900

NGINX_CONF = """\
server {
    listen 8080;
    root /usr/share/nginx/html;
    location /healthz { return 200 "ok"; }
}
"""
# On one stream: the kubelet's FallbackToLogsOnError message may put stdout and stderr lines
# out of their order.
MIGRATIONS_OK = "echo 'applying 0001_init.sql ... ok'; echo 'applying 0002_orders.sql ... ok'"
MIGRATIONS_FAIL = (
    "echo 'applying 0001_init.sql ... ok'; echo 'applying 0002_orders.sql ...'; "
    """echo 'ERROR:  relation "users" does not exist (SQLSTATE 42P01)'; exit 1"""
)


def _example() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(EXAMPLE_FILE.read_text())
    return body


EXAMPLE: Pipeline = parse_pipeline(_example())
# What the recorded Pods are named after.
POD = pod_name(EXAMPLE, 0)
HASH = spec_hash(EXAMPLE.spec)
# The example's assets image: no registry answers here, so it cannot be pulled.
UNKNOWN_IMAGE = next(s.copy_assets.image for s in EXAMPLE.spec.steps if s.copy_assets)


class RecordError(Exception):
    pass


# --------------------------------------------------------------------------- the pipelines


def migrate(script: str) -> dict[str, Any]:
    return {
        "image": BUSYBOX,
        "command": ["sh", "-c", script],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


SIDECAR: dict[str, Any] = {
    "image": BUSYBOX,
    "command": ["httpd", "-f", "-p", "2020", "-h", "/tmp"],
    "readinessProbe": {"tcpSocket": {"port": 2020}},
}
# Started (its own startupProbe holds at once) but never ready: nothing listens on 2020.
SIDECAR_NEVER_READY: dict[str, Any] = {
    "image": BUSYBOX,
    "command": ["sleep", "86400"],
    "startupProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
    "readinessProbe": {"tcpSocket": {"port": 2020}},
}


def pipeline_body(
    name: str,
    namespace: str,
    *,
    restart_policy: str | None = None,
    assets: str = ASSETS,
    migrations: str = MIGRATIONS_OK,
    sidecar: Mapping[str, Any] = SIDECAR,
    web: Mapping[str, Any] | None = None,
    node_selector: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """api-example.yaml's InitPipeline with the local stand-ins (see the module's doc)."""
    body = _example()
    body["metadata"] = {"name": name, "namespace": namespace}
    steps = {step["name"]: step for step in body["spec"]["steps"]}
    steps["wait-deps"]["volumeMounts"].append({"name": WORK, "mountPath": "/work"})
    steps["site"]["copyAssets"]["image"] = assets
    steps["migrate"]["run"] = migrate(migrations)
    steps["log-shipper"]["sidecar"] = dict(sidecar)
    pod_spec = body["spec"]["template"]["spec"]
    pod_spec["containers"][0].update(web or {"image": HTTPD})
    pod_spec["volumes"] = [
        {"name": "certs", "secret": {"secretName": CERT_SECRET}},
        {"name": WORK, "configMap": {"name": WORK}},
    ]
    if restart_policy:
        pod_spec["restartPolicy"] = restart_policy
    if node_selector:
        pod_spec["nodeSelector"] = dict(node_selector)
    return body


# --------------------------------------------------------------------------- what the targets need


def _server(name: str, port: int, port_name: str, script: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": BUSYBOX,
        "command": ["sh", "-c", script],
        "ports": [{"name": port_name, "containerPort": port}],
    }


def _service(namespace: str, name: str, ports: Sequence[tuple[int, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": DEPS,
            "ports": [
                {"name": f"p{port}", "port": port, "targetPort": target} for port, target in ports
            ],
        },
    }


def dependencies(namespace: str, *, mysql: bool, certificate: bool) -> list[dict[str, Any]]:
    """The objects wait-deps' in-Pod targets need: mydb, mysql (unless not `mysql`),
    config-server's /health, myservice, the Certificate's Secret (if `certificate`) and the
    ConfigMap behind /work/ready."""
    meta = {"namespace": namespace}
    listen = "exec httpd -f -p {} -h /tmp"
    health = "mkdir -p /tmp/www && echo UP >/tmp/www/health && exec httpd -f -p 8888 -h /tmp/www"
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": WORK, **meta},
            "data": {"ready": "schema 0002\n"},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "dependencies", "labels": DEPS, **meta},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    _server("mydb", 5432, "postgres", listen.format(5432)),
                    _server("mysql", 3306, "mysql", listen.format(3306)),
                    _server("config-server", 8888, "health", health),
                ],
            },
        },
        _service(namespace, "mydb", [(5432, "postgres")]),
        _service(namespace, "config-server", [(8888, "health"), (80, "files")]),
        _service(namespace, "myservice", [(80, "health")]),
    ]
    if mysql:
        objects.append(_service(namespace, "mysql", [(3306, "mysql")]))
    if certificate:
        objects.append(certificate_secret(namespace))
    return objects


def certificate_secret(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": CERT_SECRET, "namespace": namespace},
        "stringData": {"tls.crt": "recorder's stand-in certificate\n"},
    }


def file_server(namespace: str) -> dict[str, Any]:
    """config-server's port 80: serves nginx.conf, fetch-config's download."""
    script = (
        'mkdir -p /tmp/www && printf %s "$CONF" >/tmp/www/nginx.conf && '
        "exec httpd -f -p 80 -h /tmp/www"
    )
    server = _server("files", 80, "files", script)
    server["env"] = [{"name": "CONF", "value": NGINX_CONF}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "config-files", "namespace": namespace, "labels": DEPS},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [server]},
    }


# --------------------------------------------------------------------------- kubectl


class Cluster:
    def __init__(self, kubectl: str, kubeconfig: str) -> None:
        self.argv = [kubectl, "--kubeconfig", kubeconfig]
        self._watches: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self.aborted = threading.Event()

    def run(self, *args: str, input: str | None = None) -> str:
        """kubectl's output; asked again while the API server refuses connections (it may
        be restarted by other tests), for up to a minute."""
        for _ in range(60):
            proc = subprocess.run(
                [*self.argv, *args], input=input, capture_output=True, text=True, timeout=120
            )
            if proc.returncode == 0:
                return proc.stdout
            if "connection refused" not in proc.stderr and "was refused" not in proc.stderr:
                break
            self.aborted.wait(1)
        raise RecordError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """`kubectl create -o json`: the object as the API server stored it."""
        created: dict[str, Any] = json.loads(
            self.run("create", "--filename=-", "--output=json", input=json.dumps(obj))
        )
        return created

    def pod(self, namespace: str, name: str, seconds: float) -> Generator[Pod]:
        """The Pod as it is, then after each change, for at most `seconds`. A watch that
        ends early (the API server restarted) is started again; it lists the Pod anew."""
        argv = [*self.argv, "--namespace", namespace, "get", "pod", name]
        argv += ["--watch", "--output-watch-events", "--output=json"]
        deadline = time.monotonic() + seconds
        while not self.aborted.is_set() and (left := deadline - time.monotonic()) > 0:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            timer = threading.Timer(left, proc.kill)
            timer.start()
            with self._lock:
                self._watches.add(proc)
            if self.aborted.is_set():
                proc.kill()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:  # one event a line
                    event = json.loads(line)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        yield event["object"]
            finally:
                timer.cancel()
                proc.kill()
                proc.wait()
                with self._lock:
                    self._watches.discard(proc)
            self.aborted.wait(1)  # the API server is away: ask again in a second

    def abort(self) -> None:
        """Ends every watch: another Pod failed, the recording is lost anyway."""
        self.aborted.set()
        with self._lock:
            for proc in self._watches:
                proc.kill()

    def check_untouched(self, pipeline: Pipeline) -> None:
        """An operator watching every namespace would reconcile the recorder's pipelines
        (and act on their Pods): the recording would not be the kubelet's alone."""
        owner = json.loads(
            self.run("get", "initpipeline", pipeline.name, "--namespace", pipeline.namespace,
                     "--output=json")
        )  # fmt: skip
        if owner.get("status") or owner["metadata"].get("finalizers"):
            raise RecordError(
                f"an operator reconciled {pipeline.namespace}/{pipeline.name}: record again "
                "while no operator watches every namespace"
            )

    def release(self, pipeline: Pipeline, pod: Pod) -> None:
        """What the operator does once a wait step's API-side targets hold."""
        holding: dict[str, list[str]] = {
            step.name: [] for step in pipeline.spec.steps if step.has_operator_targets
        }
        value = release_value(pipeline, pod, holding)
        if value is not None:
            patch = {"metadata": {"annotations": {RELEASED_ANNOTATION: value}}}
            meta = pod["metadata"]
            self.run(
                "patch", "pod", meta["name"], "--namespace", meta["namespace"],
                "--type=merge", "--patch", json.dumps(patch),
            )  # fmt: skip


# --------------------------------------------------------------------------- moments


def _status(pod: Pod, container: str) -> dict[str, Any]:
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for entry in status.get(key) or ():
            if entry.get("name") == container:
                found: dict[str, Any] = entry
                return found
    return {}


def _state(pod: Pod, container: str, which: str) -> dict[str, Any]:
    state: dict[str, Any] = (_status(pod, container).get("state") or {}).get(which) or {}
    return state


def _condition(pod: Pod, kind: str) -> dict[str, Any]:
    for entry in (pod.get("status") or {}).get("conditions") or ():
        if entry.get("type") == kind:
            found: dict[str, Any] = entry
            return found
    return {}


def _phase(pod: Pod) -> str:
    return str((pod.get("status") or {}).get("phase", ""))


def summary(pod: Pod | None) -> str:
    """One line about a Pod's state, for errors."""
    if pod is None:
        return "no Pod seen"
    status = pod.get("status") or {}
    parts = [_phase(pod)]
    for entry in [
        *(status.get("initContainerStatuses") or ()),
        *(status.get("containerStatuses") or ()),
    ]:
        state = entry.get("state") or {}
        for which, detail in state.items():
            parts.append(f"{entry['name']}={which}:{detail.get('reason', '')}")
    return " ".join(parts)


@dataclass(frozen=True)
class Moment:
    file: str  # under tests/unit/pods/, without .json
    until: Callable[[Pod], bool]
    then: Callable[[Pipeline, Pod], None] | None = None  # what the recorder does once seen


def follow(
    cluster: Cluster,
    body: dict[str, Any],
    moments: Sequence[Moment],
    *,
    release: bool = True,
    created: str | None = None,
) -> dict[str, Pod]:
    """Create the pipeline and its Pod, then record its moments in order (normalised).

    release: release the wait step at once (its API-side targets hold); created: record
    the Pod as the create call returned it, under this name."""
    owner = cluster.create(body)
    pipeline = parse_pipeline(owner)
    made = cluster.create(render_pod(pipeline, 0, DEFAULT_STEP_IMAGE))
    seen: dict[str, Pod] = {created: made} if created else {}
    if release:
        cluster.release(pipeline, made)
    meta = made["metadata"]
    pods = cluster.pod(meta["namespace"], meta["name"], JOURNEY_SECONDS)
    last: Pod | None = None
    try:
        for moment in moments:
            found = None
            for pod in pods:
                last = pod
                if moment.until(pod):
                    found = pod
                    break
                if _phase(pod) in ("Succeeded", "Failed"):
                    raise RecordError(f"{moment.file}: the Pod ended before: {summary(pod)}")
            if found is None:
                why = "aborted" if cluster.aborted.is_set() else f"not within {JOURNEY_SECONDS}s"
                raise RecordError(f"{moment.file}: {why}; last seen: {summary(last)}")
            cluster.check_untouched(pipeline)
            seen[moment.file] = found
            log(f"seen {moment.file}")
            if moment.then is not None:
                moment.then(pipeline, found)
    finally:
        pods.close()
    return {file: normalise(pod) for file, pod in seen.items()}


def normalise(pod: Pod) -> Pod:
    """The Pod as if it were api-example.yaml's (see the module's doc)."""
    name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(name, POD).replace(namespace, EXAMPLE.namespace)
        if isinstance(value, dict):
            return {key: fix(item) for key, item in value.items()}
        if isinstance(value, list):
            return [fix(item) for item in value]
        return value

    result: Pod = fix(pod)
    meta = result["metadata"]
    meta.pop("managedFields", None)
    meta["labels"].update({PIPELINE_LABEL: EXAMPLE.name, SPEC_HASH_LABEL: HASH})
    for owner in meta["ownerReferences"]:
        owner["name"] = EXAMPLE.name
    return result


def journeys(cluster: Cluster, main: str, other: str) -> list[Callable[[], dict[str, Pod]]]:
    """One function a Pod: creates it and returns its moments. `main` has every dependency
    but the Certificate's Secret (the first Pod's journey creates it); `other` has all but
    mysql (for the timeout)."""

    def step_running(name: str) -> Callable[[Pod], bool]:
        return lambda pod: bool(_state(pod, name, "running"))

    def waiting(name: str, reason: str) -> Callable[[Pod], bool]:
        return lambda pod: _state(pod, name, "waiting").get("reason") == reason

    def phase(value: str) -> Callable[[Pod], bool]:
        return lambda pod: _phase(pod) == value

    def unschedulable(pod: Pod) -> bool:
        return _condition(pod, "PodScheduled").get("reason") == "Unschedulable"

    def initializing(pod: Pod) -> bool:
        statuses = (pod.get("status") or {}).get("initContainerStatuses") or ()
        return bool(statuses) and all(
            (s.get("state") or {}).get("waiting", {}).get("reason") == "PodInitializing"
            for s in statuses
        )

    def fetching(pod: Pod) -> bool:
        done = _state(pod, "wait-deps", "terminated").get("exitCode") == 0
        return done and bool(_state(pod, "fetch-config", "running"))

    def crash_looping(pod: Pod) -> bool:
        return _status(pod, "migrate").get("restartCount") == 3 and waiting(
            "migrate", "CrashLoopBackOff"
        )(pod)

    def timed_out(pod: Pod) -> bool:
        return phase("Failed")(pod) and (
            _state(pod, "wait-deps", "terminated").get("exitCode") == 124
        )

    def sidecar_not_ready(pod: Pod) -> bool:
        sidecar = _status(pod, "log-shipper")
        return (
            sidecar.get("started") is True
            and sidecar.get("ready") is False
            and (_status(pod, "web").get("ready") is True)
        )

    def web_exited(pod: Pod) -> bool:
        return (
            phase("Running")(pod)
            and bool(_state(pod, "web", "terminated"))
            and (step_running("log-shipper")(pod))
        )

    def issue_certificate(pipeline: Pipeline, pod: Pod) -> None:
        cluster.create(certificate_secret(main))

    def serve_files(pipeline: Pipeline, pod: Pod) -> None:
        cluster.create(file_server(main))

    def journey(
        name: str,
        moments: Sequence[Moment],
        *,
        namespace: str = main,
        release: bool = True,
        created: str | None = None,
        **variant: Any,
    ) -> Callable[[], dict[str, Pod]]:
        body = pipeline_body(name, namespace, **variant)
        return lambda: follow(cluster, body, moments, release=release, created=created)

    return [
        journey(
            "progress",
            [
                Moment("init-first-step-waiting", initializing, issue_certificate),
                Moment("wait-step-running", step_running("wait-deps"), cluster.release),
                Moment("step-2-running", fetching, serve_files),
                Moment("ready", lambda pod: _condition(pod, "Ready").get("status") == "True"),
            ],
            release=False,
            created="created",
        ),
        journey(
            "unschedulable",
            [Moment("unschedulable", unschedulable)],
            release=False,
            node_selector={"pool": "gpu"},
        ),
        journey(
            "image-pull",
            [Moment("copyassets-errimagepull", waiting("site", "ErrImagePull"))],
            assets=UNKNOWN_IMAGE,
        ),
        journey(
            "crash-loop", [Moment("always-crashloop", crash_looping)], migrations=MIGRATIONS_FAIL
        ),
        journey(
            "step-fails",
            [Moment("never-step-failed", phase("Failed"))],
            restart_policy="Never",
            migrations=MIGRATIONS_FAIL,
        ),
        journey(
            "wait-timeout",
            [Moment("never-wait-timeout", timed_out)],
            namespace=other,
            release=False,
            restart_policy="Never",
        ),
        journey(
            "sidecar-not-ready",
            [Moment("sidecar-started-not-ready", sidecar_not_ready)],
            sidecar=SIDECAR_NEVER_READY,
        ),
        journey(
            "sidecar-running",
            [
                # The kubelet keeps the phase Running until it has stopped the sidecar.
                Moment("never-web-exited-sidecar-stopping", web_exited),
                Moment("never-succeeded", phase("Succeeded")),
            ],
            restart_policy="Never",
            web={"image": BUSYBOX, "command": ["true"]},
        ),
    ]


# --------------------------------------------------------------------------- main

_START = time.monotonic()


def log(text: str) -> None:
    print(f"[{time.monotonic() - _START:5.0f}s] {text}", file=sys.stderr, flush=True)


def prepare(cluster: Cluster) -> str:
    """Checks the cluster can run Pods, applies the CRD if missing; returns the node's
    kubelet and runtime versions."""
    nodes = json.loads(cluster.run("get", "nodes", "--output=json"))["items"]
    ready = [
        node
        for node in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    ]
    if not ready:
        raise RecordError("no Ready node: start one with `hack/cluster.sh up node`")
    if subprocess.run([*cluster.argv, "get", "crd", CRD], capture_output=True).returncode != 0:
        cluster.run("apply", "--server-side", "--filename", str(REPO / "crds"))
        cluster.run("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD}")
    info = ready[0]["status"]["nodeInfo"]
    return f"kubelet {info['kubeletVersion']}, {info['containerRuntimeVersion']}"


def record(cluster: Cluster) -> dict[str, Pod]:
    main = f"record-pods-{secrets.token_hex(3)}"
    other = f"{main}-b"
    try:
        for namespace in (main, other):
            cluster.create(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            )
        for obj in dependencies(main, mysql=True, certificate=False):
            cluster.create(obj)
        for obj in dependencies(other, mysql=False, certificate=True):
            cluster.create(obj)
        recorded: dict[str, Pod] = {}
        runs = journeys(cluster, main, other)
        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            futures: list[Future[dict[str, Pod]]] = [pool.submit(run) for run in runs]
            errors: list[BaseException] = []
            for future in as_completed(futures):
                error = future.exception()
                if error is not None:
                    if not errors:
                        cluster.abort()
                    errors.append(error)
                else:
                    recorded.update(future.result())
        if errors:
            raise errors[0]
        return recorded
    finally:
        delete = ["delete", "namespace", main, other, "--wait=false", "--ignore-not-found"]
        try:
            cluster.run(*delete)
        except RecordError:
            log(f"could not delete the namespaces: run kubectl {' '.join(delete)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.record_pods", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default: {OUT})")
    args = parser.parse_args(argv)
    kubeconfig = os.environ.get("KUBECONFIG") or str(CLUSTER_DIR / "kubeconfig")
    cluster = Cluster(kubectl_binary(), kubeconfig)
    try:
        versions = prepare(cluster)
        log(f"recording from {versions}")
        pods = record(cluster)
    except RecordError as error:
        print(f"record_pods: {error}", file=sys.stderr)
        return 1
    for file, pod in sorted(pods.items()):
        text = json.dumps(pod, indent=4, sort_keys=True, ensure_ascii=False) + "\n"
        (args.out / f"{file}.json").write_text(text)
    log(f"wrote {len(pods)} Pods to {args.out} ({versions})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
