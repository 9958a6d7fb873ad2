"""Every seed scenario, end to end, on a real node: deploy/examples/*.yaml as a user applies them.

Each test applies one example into its fresh namespace, runs the operator (in this process,
watching only that namespace; or, for the tests marked ``incluster`` under
INITPIPELINE_TEST_OPERATOR=deployment, the image deployed from deploy/), drives the world
(creates the Service, writes the file, starts the server ...) and checks what a user sees:
the CR's status and conditions over time, the `kubectl get ipl` columns, and what the Pod does.

The status is followed with `kubectl get -w -o json`: every status the operator writes is
recorded, the distinct (progress, currentStep, Ready reason) tuples are asserted in order,
and every recorded status must tell the truth (see `assert_truthful`). Nothing asserts on
timing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

import pytest
import yaml
from tests import deployment
from tests.helpers import (
    Kubectl,
    Stream,
    eventually,
    get,
    operator_running,
    replay_pods,
    revision_of,
)

from initpipeline import messages, renderconfig

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
PIPELINE_LABEL = "initpipeline.io/pipeline"
# Generous: two cores shared with the rest of the suite; no assertion depends on speed.
TIMEOUT = 120.0

Status = dict[str, Any]
Stage = tuple[str, str, str]  # (progress, currentStep, Ready reason)


# --------------------------------------------------------------------------- operator


class Operator(Protocol):
    @property
    def output(self) -> str: ...


@contextlib.contextmanager
def operator_for(
    request: pytest.FixtureRequest, namespace: str, **settings: str
) -> Iterator[Operator]:
    """The operator of this session's mode (tests/deployment.py): deployed from the image
    (for the test module), or in this process for this test's namespace only, with these
    INITPIPELINE_* `settings` (the deployed one has its own: tests/deployment.py)."""
    if deployment.mode() == "deployment":
        yield request.getfixturevalue("deployed_operator")
    else:
        kubeconfig = request.getfixturevalue("kubeconfig")
        with operator_running(kubeconfig, namespace, **settings) as runner:
            yield runner


@pytest.fixture
def operator(request: pytest.FixtureRequest, namespace: str) -> Iterator[Operator]:
    with operator_for(request, namespace) as running:
        yield running


# --------------------------------------------------------------------------- kubectl


def documents(example: str, *kinds: str) -> list[dict[str, Any]]:
    """The documents of deploy/examples/`example`, only those of `kinds` if given."""
    docs = [d for d in yaml.safe_load_all((EXAMPLES / example).read_text()) if d]
    return [d for d in docs if not kinds or d["kind"] in kinds]


def apply(kubectl: Kubectl, namespace: str, example: str, *kinds: str) -> None:
    """`kubectl apply -n NS -f deploy/examples/EXAMPLE` (only the documents of `kinds`)."""
    if not kinds:
        kubectl("apply", "-f", str(EXAMPLES / example), namespace=namespace)
        return
    text = yaml.safe_dump_all(documents(example, *kinds))
    kubectl("apply", "-f", "-", namespace=namespace, input=text)


def status(kubectl: Kubectl, namespace: str, name: str) -> Status:
    return get(kubectl, namespace, "initpipeline", name).get("status") or {}


def condition(st: Status, type_: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions") or [] if c.get("type") == type_), {})


def reason(st: Status) -> str:
    return str(condition(st, "Ready").get("reason", ""))


def step(st: Status, name: str) -> dict[str, Any]:
    return next((s for s in st.get("steps") or [] if s.get("name") == name), {})


def status_when(
    kubectl: Kubectl, namespace: str, name: str, check: Any, timeout: float = TIMEOUT
) -> Status:
    """The pipeline's status once `check(status)` is true."""

    def probe() -> Status | None:
        st = status(kubectl, namespace, name)
        return st if st and check(st) else None

    try:
        return eventually(probe, timeout=timeout)
    except AssertionError:
        raise AssertionError(
            f"{name}: condition not met within {timeout:.0f}s; last status:\n"
            + yaml.safe_dump(status(kubectl, namespace, name))
        ) from None


def ready(kubectl: Kubectl, namespace: str, name: str, why: str = "Running") -> Status:
    """The status once the Ready condition is True with reason `why`."""
    return status_when(
        kubectl,
        namespace,
        name,
        lambda st: condition(st, "Ready").get("status") == "True" and reason(st) == why,
    )


def pods(kubectl: Kubectl, namespace: str, pipeline: str) -> list[dict[str, Any]]:
    items = get(kubectl, namespace, "pods", "-l", f"{PIPELINE_LABEL}={pipeline}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def the_pod(kubectl: Kubectl, namespace: str, pipeline: str) -> dict[str, Any]:
    [pod] = eventually(lambda: pods(kubectl, namespace, pipeline) or None, timeout=TIMEOUT)
    return pod


def ipl_columns(kubectl: Kubectl, namespace: str, name: str, wide: bool = False) -> dict[str, str]:
    """One row of `kubectl get ipl NAME` (or `-o wide`), by column header."""
    args = ["get", "ipl", name, *(["-o", "wide"] if wide else [])]
    header, row = kubectl(*args, namespace=namespace).stdout.splitlines()[:2]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    ends = [*starts[1:], None]
    return {n: row[s:e].strip() for n, s, e in zip(names, starts, ends, strict=True)}


def exec_in(kubectl: Kubectl, namespace: str, pod: str, container: str, *cmd: str) -> str:
    return kubectl("exec", pod, "-c", container, "--", *cmd, namespace=namespace).stdout


def logs(kubectl: Kubectl, namespace: str, pod: str, container: str) -> str:
    return kubectl("logs", pod, "-c", container, namespace=namespace).stdout


def events_of(
    kubectl: Kubectl, namespace: str, pipeline: str, why: str = "StepSucceeded"
) -> list[str]:
    """The messages of the Events with reason `why` about InitPipeline `pipeline`, sorted."""
    return sorted(
        e["message"]
        for e in get(kubectl, namespace, "events")["items"]
        if e["involvedObject"]["kind"] == "InitPipeline"
        and e["involvedObject"]["name"] == pipeline
        and e["reason"] == why
    )


def container_status(pod: dict[str, Any], name: str) -> dict[str, Any]:
    st = pod.get("status") or {}
    entries = [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]
    return next(e for e in entries if e["name"] == name)


# --------------------------------------------------------------------------- status over time


class Recorder:
    """Every status written to one InitPipeline, as `kubectl get -w` streams it."""

    def __init__(self, argv: Sequence[str], namespace: str, name: str) -> None:
        self.name = name
        self._stream = Stream(
            argv, namespace, "initpipelines", "--field-selector", f"metadata.name={name}"
        )

    def stop(self) -> None:
        self._stream.stop()

    @property
    def statuses(self) -> list[Status]:
        statuses = (obj.get("status") or {} for _, obj in self._stream.events)
        return [st for st in statuses if st.get("conditions")]

    def stages(self) -> list[Stage]:
        """The distinct consecutive (progress, currentStep, Ready reason) seen so far."""
        seen: list[Stage] = []
        for st in self.statuses:
            stage = (st.get("progress", ""), st.get("currentStep", ""), reason(st))
            if not seen or seen[-1] != stage:
                seen.append(stage)
        return seen


@pytest.fixture
def record(kubectl_argv: list[str], namespace: str) -> Iterator[Any]:
    """record(name) starts following the status of InitPipeline `name` (before applying it)."""
    recorders: list[Recorder] = []

    def start(name: str) -> Recorder:
        recorder = Recorder(kubectl_argv, namespace, name)
        recorders.append(recorder)
        return recorder

    yield start
    for recorder in recorders:
        recorder.stop()


def assert_in_order(stages: Sequence[Stage], *expected: tuple[str | None, ...]) -> None:
    """`expected` occurs in `stages` in this order (not necessarily adjacent); None = any."""
    position = 0
    for want in expected:
        while position < len(stages) and not all(
            w is None or w == got for w, got in zip(want, stages[position], strict=True)
        ):
            position += 1
        assert position < len(stages), f"{want} not found in order in {stages}"
        position += 1


def _done(progress: str) -> int:
    return int(progress.split("/")[0])


def assert_truthful(
    statuses: Iterable[Status],
    *,
    allowed: Iterable[str] = ("Pending", "WaitingForDependency", "Initializing", "Running"),
    monotonic: bool = True,
) -> None:
    """What every recorded status must satisfy: only the expected Ready reasons, never
    Stalled unless the reason says a user must act, conditions consistent with each other,
    the counts consistent, and (unless the Pod is re-created) progress never going back."""
    allowed = set(allowed)
    last = 0
    for st in statuses:
        r, ready_c = reason(st), condition(st, "Ready")
        stalled, reconciling = condition(st, "Stalled"), condition(st, "Reconciling")
        context = yaml.safe_dump(st)
        assert r in allowed, f"unexpected Ready reason {r}:\n{context}"
        assert [ready_c["status"], stalled["status"], reconciling["status"]].count("True") == 1, (
            context
        )
        if stalled["status"] == "True":  # a user must act
            assert r in ("StepFailed", "WaitTimeout"), context
        if r in ("Pending", "WaitingForDependency", "Initializing"):
            assert reconciling["status"] == "True", context
        done, total = map(int, st["progress"].split("/"))
        assert 0 <= done <= total == len(st["steps"]), context
        assert (st["currentStep"] == "") == (done == total) or not st["pods"], context
        assert st["readyReplicas"] <= st["replicas"], context
        assert st["ready"] == f"{st['readyReplicas']}/{st['replicas']}", context
        if monotonic:
            assert done >= last, f"progress went back to {st['progress']}:\n{context}"
        last = done


def step_times_in_order(st: Status) -> list[str]:
    """startedAt/finishedAt of every step in spec order; asserts they never go back."""
    times = []
    for entry in st["steps"]:
        times += [entry["startedAt"], entry["finishedAt"]]
    assert times == sorted(times), st["steps"]  # RFC 3339 UTC strings sort as times
    return times


# --------------------------------------------------------------------------- scenarios


@pytest.mark.incluster
def test_01_wait_for_services_needs_ready_endpoints_dns_only_needs_the_service(
    operator: Operator, kubectl: Kubectl, namespace: str, record: Any
) -> None:
    services, dns = record("myapp"), record("myapp-dns")
    apply(kubectl, namespace, "01-wait-for-services.yaml")
    apply(kubectl, namespace, "01-wait-for-dns.yaml")

    # Nothing exists: both wait at step 1, saying why.
    st = status_when(
        kubectl,
        namespace,
        "myapp",
        lambda s: (
            step(s, "init-myservice")["state"] == "Running"  # the init container really runs
            and step(s, "init-myservice").get("waitingOn")
            == ["service myservice: service does not exist"]
        ),
    )
    assert (st["progress"], st["currentStep"], reason(st)) == (
        "0/2",
        "init-myservice",
        "WaitingForDependency",
    )
    assert condition(st, "Ready")["message"] == (
        "step 1/2 init-myservice: waiting for service myservice: service does not exist"
    )
    columns = ipl_columns(kubectl, namespace, "myapp")
    assert columns["STEPS"] == "0/2" and columns["STATUS"] == "WaitingForDependency"
    assert columns["CURRENT"] == "init-myservice" and columns["READY"] == "0/1"
    # The why after the label is the resolver's own text (nslookup's, as the script read it).
    status_when(
        kubectl,
        namespace,
        "myapp-dns",
        lambda s: (
            len(waiting := step(s, "init-myservice").get("waitingOn", [])) == 1
            and re.fullmatch(r"dns myservice: \S.*", waiting[0])
        ),
    )

    # The Services exist, nothing behind them is ready: DNS resolves, endpoints are missing.
    apply(kubectl, namespace, "01-services.yaml", "Service")
    ready(kubectl, namespace, "myapp-dns")
    st = status_when(
        kubectl,
        namespace,
        "myapp",
        lambda s: (
            step(s, "init-myservice").get("waitingOn") == ["service myservice: no ready endpoints"]
        ),
    )
    assert (st["progress"], st["currentStep"]) == ("0/2", "init-myservice")
    pod = the_pod(kubectl, namespace, "myapp")
    assert "initpipeline.io/released" not in (pod["metadata"].get("annotations") or {})

    # Backing Pods become ready: the operator releases the steps, the Pod runs its app.
    apply(kubectl, namespace, "01-services.yaml", "Pod")
    st = ready(kubectl, namespace, "myapp")
    assert (st["progress"], st["currentStep"], st["readyReplicas"]) == ("2/2", "", 1)
    first, second = st["steps"]
    assert first["state"] == second["state"] == "Succeeded"
    # The scripts' termination messages: each check's result and when it held.
    assert re.fullmatch(r"service myservice confirmed by the operator after \d+s", first["message"])
    assert re.fullmatch(
        r"mydb:80 reachable after \d+s; service mydb port 80 confirmed by the operator after \d+s",
        second["message"],
    ), second["message"]
    assert not first.get("waitingOn") and not second.get("waitingOn")
    step_times_in_order(st)
    pod = the_pod(kubectl, namespace, "myapp")
    released = pod["metadata"]["annotations"]["initpipeline.io/released"]
    assert released == "init-myservice,init-mydb"
    assert "The app is running!" in logs(
        kubectl, namespace, pod["metadata"]["name"], "myapp-container"
    )
    columns = ipl_columns(kubectl, namespace, "myapp", wide=True)
    assert (columns["READY"], columns["STEPS"], columns["STATUS"], columns["CURRENT"]) == (
        "1/1",
        "2/2",
        "Running",
        "",
    )
    assert columns["POD"] == pod["metadata"]["name"]

    assert_in_order(
        services.stages(),
        ("0/2", "init-myservice", "WaitingForDependency"),
        ("2/2", "", "Running"),
    )
    assert_truthful(services.statuses)
    assert_in_order(
        dns.stages(), ("0/1", "init-myservice", "WaitingForDependency"), ("1/1", "", "Running")
    )
    assert_truthful(dns.statuses)


def test_02_wait_until_files_appear(
    operator: Operator, kubectl: Kubectl, namespace: str, record: Any
) -> None:
    rec = record("files")
    apply(kubectl, namespace, "02-wait-for-files.yaml")
    st = status_when(
        kubectl,
        namespace,
        "files",
        lambda s: step(s, "init-myapp").get("waitingOn") == ["file /root/myapp: does not exist"],
    )
    assert (st["progress"], st["currentStep"]) == ("0/2", "init-myapp")
    pod = the_pod(kubectl, namespace, "files")["metadata"]["name"]
    exec_in(kubectl, namespace, pod, "init-myapp", "touch", "/root/myapp")

    st = status_when(
        kubectl,
        namespace,
        "files",
        lambda s: step(s, "init-mydb").get("waitingOn") == ["file /root/mydb: does not exist"],
    )
    assert (st["progress"], st["currentStep"], reason(st)) == (
        "1/2",
        "init-mydb",
        "WaitingForDependency",
    )
    assert step(st, "init-myapp")["state"] == "Succeeded"
    assert re.fullmatch(r"file /root/myapp exists after \d+s", step(st, "init-myapp")["message"])
    exec_in(kubectl, namespace, pod, "init-mydb", "touch", "/root/mydb")

    st = ready(kubectl, namespace, "files")
    assert re.fullmatch(r"file /root/mydb exists after \d+s", step(st, "init-mydb")["message"])
    step_times_in_order(st)
    assert_in_order(
        rec.stages(),
        ("0/2", "init-myapp", "WaitingForDependency"),
        ("1/2", "init-mydb", "WaitingForDependency"),
        ("2/2", "", "Running"),
    )
    assert_truthful(rec.statuses)


def test_03_download_a_page_that_the_web_container_serves(
    operator: Operator, kubectl: Kubectl, namespace: str, record: Any
) -> None:
    rec = record("download")
    apply(kubectl, namespace, "03-page-server.yaml")
    apply(kubectl, namespace, "03-download.yaml")
    st = ready(kubectl, namespace, "download")
    page = documents("03-page-server.yaml", "ConfigMap")[0]["data"]["index.html"]
    fetch = step(st, "fetch-page")
    assert fetch["state"] == "Succeeded"
    assert fetch["message"] == f"downloaded http://page-server/index.html ({len(page)} bytes)"

    pod = the_pod(kubectl, namespace, "download")
    # Fetched back over HTTP from the Pod's own web server, on the Pod's IP.
    url = f"http://{pod['status']['podIP']}:8080/index.html"
    served = exec_in(kubectl, namespace, "page-server", "web", "wget", "-q", "-O", "-", url)
    assert served == page
    assert_in_order(rec.stages(), ("0/1", "fetch-page", "Initializing"), ("1/1", "", "Running"))
    assert_truthful(rec.statuses)


def test_04_sequential_steps(
    operator: Operator, kubectl: Kubectl, namespace: str, record: Any, kubectl_argv: list[str]
) -> None:
    rec = record("sequential")
    watch = subprocess.Popen(
        [*kubectl_argv, "--namespace", namespace, "get", "ipl", "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed: list[str] = []

    def read() -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            printed.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def watch_shows_ready() -> bool:
        return any(line.split()[:4] == ["sequential", "1/1", "2/2", "Running"] for line in printed)

    try:
        apply(kubectl, namespace, "04-sequential.yaml")
        st = ready(kubectl, namespace, "sequential")
        ipl_columns(kubectl, namespace, "sequential")
        eventually(watch_shows_ready, timeout=30)  # the watch has printed it too
    finally:
        watch.terminate()
        watch.wait(timeout=10)
        reader.join(timeout=10)
    table = "".join(printed)

    assert [s["state"] for s in st["steps"]] == ["Succeeded", "Succeeded"]
    first_started, first_finished, second_started, second_finished = step_times_in_order(st)
    assert first_started < first_finished <= second_started < second_finished  # 2s, then 5s
    assert_in_order(
        rec.stages(),
        ("0/2", "first", "Initializing"),
        ("1/2", "second", "Initializing"),
        ("2/2", "", "Running"),
    )
    assert_truthful(rec.statuses)
    # What `kubectl get ipl -w` shows a user: STEPS 0/2 -> 1/2 -> 2/2, READY 0/1 -> 1/1.
    rows = [line.split() for line in table.splitlines()[1:] if line.startswith("sequential ")]
    steps = [row[2] for row in rows if len(row) > 3]
    assert_in_order([(s,) for s in dict.fromkeys(steps)], ("0/2",), ("1/2",), ("2/2",))
    assert rows[-1][1:4] == ["1/1", "2/2", "Running"], table


def test_05_prepare_volume_for_redis(
    operator: Operator, kubectl: Kubectl, namespace: str, record: Any
) -> None:
    rec = record("redis")
    apply(kubectl, namespace, "05-prepare-volume.yaml")
    st = ready(kubectl, namespace, "redis")
    data_dir = step(st, "data-dir")
    assert data_dir["state"] == "Succeeded"
    assert data_dir["message"] == "prepared volume redis-data/redis: mode 0750, owner 999:999"

    pod = the_pod(kubectl, namespace, "redis")["metadata"]["name"]
    listing = exec_in(kubectl, namespace, pod, "redis", "ls", "-lnd", "/data/redis")
    assert re.match(r"drwxr-x---\s+\d+\s+999\s+999\s", listing), listing
    # The server (uid 999, no capabilities) writes into the directory the step prepared.
    assert exec_in(kubectl, namespace, pod, "redis", "cat", "/data/redis/dump.rdb") == "dump\n"
    assert_truthful(rec.statuses)


@pytest.mark.incluster
def test_06_copy_assets_from_an_image_with_and_without_a_shell(
    operator: Operator, kubectl: Kubectl, namespace: str, record: Any
) -> None:
    recs = [record("site"), record("site-scratch")]
    apply(kubectl, namespace, "06-copy-assets.yaml")
    for name, image, prefix in (
        ("site", "assets", ""),
        ("site-scratch", "assets-scratch", "/static"),
    ):
        st = ready(kubectl, namespace, name)
        assets = step(st, "assets")
        assert (assets["state"], assets["mode"], assets["message"]) == (
            "Succeeded",
            "Copy",
            f"copied 2 files from localhost/initpipeline/{image}:1:/dist to volume html{prefix}",
        )
        assert_serves_assets(kubectl, namespace, name, prefix)
    for rec in recs:
        assert_in_order(rec.stages(), ("0/1", "assets", None), ("1/1", "", "Running"))
        assert_truthful(rec.statuses)


def assert_serves_assets(kubectl: Kubectl, namespace: str, name: str, prefix: str) -> None:
    """The pipeline's web server serves the assets image's two files under `prefix`."""
    pod = the_pod(kubectl, namespace, name)
    base = f"http://{pod['status']['podIP']}:8080{prefix}"
    web = pod["metadata"]["name"]
    page = exec_in(kubectl, namespace, web, "web", "wget", "-q", "-O", "-", f"{base}/index.html")
    css = exec_in(kubectl, namespace, web, "web", "wget", "-q", "-O", "-", f"{base}/css/site.css")
    assert "<h1>InitPipeline assets</h1>" in page
    assert "h1 { color: #326ce5; }" in css


def test_17_copy_assets_copied_or_mounted_from_a_scratch_image(
    operator: Operator, kubectl: Kubectl, namespace: str, record: Any
) -> None:
    """Copy and Mount serve the same files; Auto mounts on this node (Kubernetes 1.35+,
    containerd 2.4). Prints each Pod's time from creation to Ready (no timed assertion)."""
    recs = [record(name) for name in ("assets-copy", "assets-mount", "assets-auto")]
    apply(kubectl, namespace, "17-copy-assets-mount.yaml")
    source = "localhost/initpipeline/assets-scratch:1:/dist"
    expected = {
        "assets-copy": ("Copy", f"copied 2 files from {source} to volume html/static"),
        "assets-mount": ("Mount", f"mounted {source} read-only at volume html/static"),
        "assets-auto": ("Mount", f"mounted {source} read-only at volume html/static"),
    }
    for name, (mode, message) in expected.items():
        assets = step(ready(kubectl, namespace, name), "assets")
        assert (assets["state"], assets["mode"], assets["message"]) == ("Succeeded", mode, message)
        assert_serves_assets(kubectl, namespace, name, "/static")
        pod = the_pod(kubectl, namespace, name)
        init = [c["name"] for c in pod["spec"].get("initContainers") or []]
        assert init == ([] if mode == "Mount" else ["initpipeline-tools", "assets"])
        created = datetime.fromisoformat(pod["metadata"]["creationTimestamp"])
        became_ready = next(
            c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "Ready"
        )
        seconds = (datetime.fromisoformat(became_ready) - created).total_seconds()
        print(f"{name} ({mode}): Pod Ready {seconds:.0f}s after its creation")
    for rec in recs:
        assert_in_order(rec.stages(), ("1/1", "", "Running"))
        assert_truthful(rec.statuses)


@pytest.mark.incluster
def test_07_health_wait_then_migration_with_a_secret_that_never_leaks(
    request: pytest.FixtureRequest, kubectl: Kubectl, namespace: str, record: Any
) -> None:
    secret = documents("07-config-server.yaml", "Secret")[0]["stringData"]["password"]
    encoded = base64.b64encode(secret.encode()).decode()
    rec = record("orders")
    with operator_for(request, namespace) as runner:
        apply(kubectl, namespace, "07-config-server.yaml", "Secret")
        apply(kubectl, namespace, "07-health-then-migrate.yaml")
        st = status_when(
            kubectl,
            namespace,
            "orders",
            # the why after the label is wget's own text (the script keeps its last line)
            lambda s: (
                len(waiting := step(s, "wait-config").get("waitingOn", [])) == 1
                and re.fullmatch(r"http http://config-server/health: \S.*", waiting[0])
            ),
        )
        assert (st["progress"], st["currentStep"], reason(st)) == (
            "0/2",
            "wait-config",
            "WaitingForDependency",
        )
        apply(kubectl, namespace, "07-config-server.yaml")  # the config server starts
        st = ready(kubectl, namespace, "orders")
        wait, migrate = st["steps"]
        assert re.fullmatch(r"http://config-server/health answered after \d+s", wait["message"])
        assert (migrate["state"], migrate["message"]) == ("Succeeded", "migrated schema to v42")
        step_times_in_order(st)
        pod = the_pod(kubectl, namespace, "orders")["metadata"]["name"]
        assert "migrated schema to v42" in logs(kubectl, namespace, pod, "migrate")
        # (the events of a status are posted once it is written: the last may still be on its way)
        succeeded = eventually(
            lambda: m if len(m := events_of(kubectl, namespace, "orders")) == 2 else None
        )
        assert re.fullmatch(
            r"Step 1/2 wait-config succeeded after \d+s: "
            r"http://config-server/health answered after \d+s",
            succeeded[0],
        ), succeeded
        assert re.fullmatch(
            r"Step 2/2 migrate succeeded after \d+s: migrated schema to v42", succeeded[1]
        ), succeeded
        events = kubectl("get", "events", "-o", "json", namespace=namespace).stdout
        cr = kubectl("get", "ipl", "orders", "-o", "json", namespace=namespace).stdout
    log = runner.output  # Kopf's runner has it once the operator stopped
    assert_in_order(
        rec.stages(),
        ("0/2", "wait-config", "WaitingForDependency"),
        ("2/2", "", "Running"),
    )
    assert_truthful(rec.statuses)
    for where, text in (
        ("the CR", cr),
        ("the recorded statuses", json.dumps(rec.statuses)),
        ("the events", events),
        ("the operator's log", log),
    ):
        assert secret not in text and encoded not in text, f"the Secret's value is in {where}"
    assert "Activity 'start' succeeded" in log  # the log was captured at all


def test_08_wait_for_a_certificate_a_sidecar_issues(
    operator: Operator, kubectl: Kubectl, namespace: str, record: Any
) -> None:
    rec = record("tls-app")
    apply(kubectl, namespace, "08-wait-for-certificate.yaml")
    st = ready(kubectl, namespace, "tls-app")
    issuer, wait = st["steps"]
    # Still running; without a readinessProbe the kubelet counts it ready once started.
    assert (issuer["type"], issuer["state"]) == ("Sidecar", "Ready")
    assert wait["state"] == "Succeeded"
    assert re.fullmatch(
        r"file /certs/tls\.crt exists after \d+s; "
        r"command grep -q BEGIN CERTIFICATE /certs/tls\.crt succeeded after \d+s",
        wait["message"],
    ), wait["message"]
    pod = the_pod(kubectl, namespace, "tls-app")["metadata"]["name"]
    assert logs(kubectl, namespace, pod, "app").startswith("-----BEGIN CERTIFICATE-----")
    assert_in_order(
        rec.stages(),
        ("0/2", "cert-issuer", None),
        ("1/2", "wait-cert", "WaitingForDependency"),
        ("2/2", "", "Running"),
    )
    assert_truthful(rec.statuses)


@pytest.mark.incluster
def test_09_log_shipper_sidecar_and_a_pod_that_completes(
    operator: Operator, kubectl: Kubectl, namespace: str, record: Any
) -> None:
    rec = record("batch-report")
    apply(kubectl, namespace, "09-log-shipper.yaml")
    st = ready(kubectl, namespace, "batch-report", "Succeeded")
    assert condition(st, "Stalled")["status"] == "False"
    assert condition(st, "Reconciling")["status"] == "False"
    assert st["pods"][0]["phase"] == "Succeeded"
    pod = the_pod(kubectl, namespace, "batch-report")
    shipper, report = container_status(pod, "log-shipper"), container_status(pod, "report")
    assert report["state"]["terminated"]["exitCode"] == 0
    # Started before the app, stopped by the kubelet only after the app had finished.
    assert shipper["state"]["terminated"]["startedAt"] <= report["state"]["terminated"]["startedAt"]
    assert (
        shipper["state"]["terminated"]["finishedAt"] >= report["state"]["terminated"]["finishedAt"]
    )
    shipped = logs(kubectl, namespace, pod["metadata"]["name"], "log-shipper")
    for i in (1, 2, 3):
        assert f"report line {i}" in shipped
    assert_in_order(
        rec.stages(), ("0/1", "log-shipper", None), ("1/1", "", "Running"), ("1/1", "", "Succeeded")
    )
    assert_truthful(rec.statuses, allowed=("Pending", "Initializing", "Running", "Succeeded"))


def test_10_init_steps_and_several_sidecars(
    operator: Operator, kubectl: Kubectl, namespace: str, record: Any
) -> None:
    rec = record("storefront")
    apply(kubectl, namespace, "10-steps-and-sidecars.yaml", "InitPipeline")
    status_when(
        kubectl,
        namespace,
        "storefront",
        # the operator's finding comes first; the Pod's own connect attempt may follow it
        lambda s: (
            step(s, "wait-cache").get("waitingOn", [])[:1]
            == ["service cache port 80: service does not exist"]
        ),
    )
    apply(kubectl, namespace, "10-steps-and-sidecars.yaml")  # the cache starts
    st = ready(kubectl, namespace, "storefront")
    wait, warmer, shipper = st["steps"]
    assert wait["state"] == "Succeeded"
    assert (warmer["type"], warmer["state"]) == ("Sidecar", "Ready")
    assert (shipper["type"], shipper["state"]) == ("Sidecar", "Ready")  # no probe: started
    pod = the_pod(kubectl, namespace, "storefront")
    name = pod["metadata"]["name"]
    assert all(c["ready"] for c in pod["status"]["containerStatuses"])
    eventually(lambda: "serving with a warm cache" in logs(kubectl, namespace, name, "log-shipper"))
    assert_in_order(
        rec.stages(),
        ("0/3", "wait-cache", "WaitingForDependency"),
        ("3/3", "", "Running"),
    )
    progress = [stage[0] for stage in rec.stages()]
    assert progress == sorted(progress)
    assert_truthful(rec.statuses)


@pytest.mark.incluster
def test_11_failures_step_failed_restarts_and_wait_timeout(
    operator: Operator, kubectl: Kubectl, namespace: str, record: Any
) -> None:
    recs = {name: record(name) for name in ("fails-once", "keeps-failing", "times-out")}
    apply(kubectl, namespace, "11-failures.yaml")

    def stalled(why: str) -> Any:
        return lambda s: condition(s, "Stalled").get("status") == "True" and reason(s) == why

    # restartPolicy Never: the Pod fails, the pipeline stalls with the exit code and message.
    st = status_when(kubectl, namespace, "fails-once", stalled("StepFailed"))
    check = step(st, "check-schema")
    assert (check["state"], check["exitCode"], check["reason"]) == ("Failed", 1, "Error")
    assert check["message"] == "schema v41 found, v42 required"
    failed = "step 1/1 check-schema: exit code 1 (Error): schema v41 found, v42 required"
    assert condition(st, "Ready")["message"] == condition(st, "Stalled")["message"] == failed
    assert ipl_columns(kubectl, namespace, "fails-once")["STATUS"] == "StepFailed"

    # restartPolicy Always: the kubelet retries; restartCount rises in the status.
    st = status_when(
        kubectl,
        namespace,
        "keeps-failing",
        lambda s: reason(s) == "StepFailed" and step(s, "check-schema").get("restartCount", 0) >= 1,
    )
    first = step(st, "check-schema")["restartCount"]
    st = status_when(
        kubectl,
        namespace,
        "keeps-failing",
        lambda s: (
            step(s, "check-schema").get("restartCount", 0) > first
            and step(s, "check-schema")["state"] == "Failed"
        ),
    )
    assert condition(st, "Stalled")["status"] == "False"  # nobody has to act: it retries
    assert condition(st, "Reconciling")["status"] == "True"
    assert step(st, "check-schema")["exitCode"] == 1

    # A wait with timeoutSeconds: WaitTimeout, naming the target that was not met.
    st = status_when(kubectl, namespace, "times-out", stalled("WaitTimeout"))
    wait = step(st, "wait-db")
    assert (wait["state"], wait["reason"]) == ("Failed", "WaitTimeout")
    assert wait["message"] == "WaitTimeout: tcp nowhere:5432 not met after 5s"  # the script's
    assert condition(st, "Ready")["message"] == (
        "step 1/1 wait-db: timed out after 5s waiting for tcp nowhere:5432"
    )

    def warnings(name: str, why: str) -> set[str]:
        return set(events_of(kubectl, namespace, name, why))

    # (the events of a status are posted once it is written: the last may still be on its way)
    assert eventually(lambda: warnings("fails-once", "StepFailed")) == {
        "Step 1/1 check-schema failed: exit code 1 (Error): schema v41 found, v42 required"
    }
    assert eventually(lambda: warnings("times-out", "WaitTimeout")) == {
        "Step 1/1 wait-db timed out after 5s waiting for tcp nowhere:5432"
    }
    again = warnings("keeps-failing", "StepFailed")
    assert again, "no StepFailed event for keeps-failing"
    for message in again:  # one per failed run: the kubelet restarts it
        assert re.fullmatch(
            r"Step 1/1 check-schema failed: exit code 1 \(Error\)(, restart \d+)?: "
            r"schema v41 found, v42 required",
            message,
        ), again
    failing = ("Pending", "Initializing", "StepFailed")
    assert_truthful(recs["fails-once"].statuses, allowed=failing)
    assert_truthful(recs["keeps-failing"].statuses, allowed=failing)
    assert_truthful(
        recs["times-out"].statuses, allowed=("Pending", "WaitingForDependency", "WaitTimeout")
    )


REPORTS_DB: Final = [
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "reports-db"},
        "spec": {"selector": {"app": "reports-db"}, "ports": [{"port": 5432, "targetPort": 8080}]},
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "reports-db", "labels": {"app": "reports-db"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "db", "image": "localhost/initpipeline/httpd:1"}],
        },
    },
]


def cli(kubeconfig: str, *args: str) -> str:
    """`initpipeline ARGS` as a user runs it (not a terminal: plain text)."""
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    done = subprocess.run(
        [sys.executable, "-m", "initpipeline.cli", *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_12_start_in_order_api_starts_once_db_is_ready_and_graph_and_describe_show_it(
    operator: Operator, kubectl: Kubectl, namespace: str, kubeconfig: str
) -> None:
    apply(kubectl, namespace, "12-start-in-order.yaml")
    db = ready(kubectl, namespace, "db")
    api = ready(kubectl, namespace, "api")
    # api's wait step ended only after db was Ready (db's schema step takes 5 s)
    db_ready_at = condition(db, "Ready")["lastTransitionTime"]
    assert step(api, "wait-db")["finishedAt"] >= db_ready_at, (db, api)
    assert step(api, "wait-db")["startedAt"] < db_ready_at, (db, api)

    rows = [
        re.split(r"\s{2,}", line.strip())
        for line in cli(kubeconfig, "graph", "-n", namespace).splitlines()
    ]
    [edge] = [row for row in rows if row[:2] == ["api", "wait-db"]]
    assert edge[2:4] == ["held", "InitPipeline db (Ready)"], rows

    lines = cli(kubeconfig, "describe", "api", "-n", namespace).splitlines()
    assert lines[:2] == [f"InitPipeline {namespace}/api", "Status:  Running: 1/1 pods ready"]
    [bar] = [line for line in lines if line.startswith("  wait-db ")]
    assert re.match(r"  wait-db  Succeeded  \+\S+ +\S+ +\|[ =]*=+[ ]*\|", bar), bar
    assert "Waiting on:" not in lines


def test_13_a_start_up_past_its_deadline_fails_the_attempt_and_the_retry_goes_on(
    operator: Operator, kubectl: Kubectl, namespace: str, kubeconfig: str
) -> None:
    apply(kubectl, namespace, "13-deadline-and-retries.yaml")
    # No reports-db: the first attempt's start-up outlives its 30 s and is stopped.
    st = status_when(
        kubectl,
        namespace,
        "nightly-report",
        lambda s: len(s.get("retriesStatus") or []) == 1 and s.get("attempt") == "2/3",
    )
    [first] = st["retriesStatus"]
    deadline = (
        "step 1/2 wait-db: start-up not done within 30s of the pod's creation"
        " (spec.activeDeadlineSeconds)"
    )
    assert (first["attempt"], first["reason"], first["message"]) == (
        1,
        "DeadlineExceeded",
        deadline,
    )
    assert step(first, "wait-db")["state"] == "Failed"
    assert ipl_columns(kubectl, namespace, "nightly-report")["ATTEMPT"] == "2/3"
    # The failed attempt's Pod is kept for its logs; the kubelet stopped it.
    stopped = eventually(
        lambda: next(
            (
                p
                for p in pods(kubectl, namespace, "nightly-report")
                if p["metadata"]["name"] == first["podName"]
                and (p.get("status") or {}).get("phase") == "Failed"
            ),
            None,
        ),
        timeout=TIMEOUT,
    )
    assert stopped["status"]["reason"] == "DeadlineExceeded"

    # reports-db comes up: the running attempt goes on, within its own 30 s.
    kubectl(
        "apply",
        "-f",
        "-",
        namespace=namespace,
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": REPORTS_DB}),
    )
    st = status_when(kubectl, namespace, "nightly-report", lambda s: s.get("progress") == "2/2")
    assert st["attempt"] == "2/3"
    assert [e["attempt"] for e in st["retriesStatus"]] == [1]
    assert step(st, "check-schema")["message"] == "schema v42 found"
    assert eventually(lambda: events_of(kubectl, namespace, "nightly-report", "Retrying")) == [
        f"pod {first['podName']} (attempt 1) failed and was replaced: {deadline}"
    ]
    # describe lists the failed attempt under the one running
    lines = cli(kubeconfig, "describe", "nightly-report", "-n", namespace).splitlines()
    at = lines.index("Attempts: now 2/3, failed:")
    row = re.split(r"\s{2,}", lines[at + 2].strip())
    assert (row[:3], row[-1]) == (["1", first["podName"], "DeadlineExceeded"], deadline), lines


def test_12_deleted_pod_is_recreated_and_runs_every_step_again(
    operator: Operator, kubectl: Kubectl, namespace: str, record: Any
) -> None:
    rec = record("sequential")
    apply(kubectl, namespace, "04-sequential.yaml")
    before = ready(kubectl, namespace, "sequential")
    old = the_pod(kubectl, namespace, "sequential")
    seen = len(rec.stages())

    # The app (sh running sleep) ignores SIGTERM: no need to wait out the 30s grace period.
    kubectl("delete", "pod", old["metadata"]["name"], "--grace-period=1", namespace=namespace)
    new = eventually(
        lambda: next(
            (
                p
                for p in pods(kubectl, namespace, "sequential")
                if p["metadata"]["uid"] != old["metadata"]["uid"]
            ),
            None,
        ),
        timeout=TIMEOUT,
    )
    assert new["metadata"]["name"] == old["metadata"]["name"]
    after = status_when(
        kubectl,
        namespace,
        "sequential",
        lambda s: (
            reason(s) == "Running"
            and condition(s, "Ready")["status"] == "True"
            and s["pods"][0]["name"] == new["metadata"]["name"]
            and step(s, "first").get("startedAt", "") > step(before, "first")["startedAt"]
        ),
    )
    for name in ("first", "second"):
        assert step(after, name)["startedAt"] > step(before, name)["finishedAt"]
    step_times_in_order(after)
    again = rec.stages()[seen:]
    assert_in_order(
        again,
        ("0/2", None, None),
        ("1/2", "second", "Initializing"),
        ("2/2", "", "Running"),
    )
    assert_truthful(rec.statuses, monotonic=False)


@pytest.mark.incluster
def test_14_a_migration_runs_once_in_a_job_both_replicas_start_after_it(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, namespace, "14-run-once-migration.yaml")
    st = ready(kubectl, namespace, "shop")
    migrate = step(st, "migrate")
    assert (migrate["state"], migrate["exitCode"], migrate["message"]) == (
        "Succeeded",
        0,
        "migrated schema to v43",
    )
    # One Job, one Pod of it, succeeded once: the migration ran exactly once.
    [job] = get(kubectl, namespace, "jobs")["items"]
    name = job["metadata"]["name"]
    assert re.fullmatch(r"shop-migrate-[0-9a-f]{5}", name)
    assert (job["status"]["succeeded"], job["status"].get("failed", 0)) == (1, 0)
    runs = get(kubectl, namespace, "pods", "-l", f"batch.kubernetes.io/job-name={name}")["items"]
    assert len(runs) == 1
    job_pod = runs[0]["metadata"]["name"]
    assert "migrated schema to v43" in logs(kubectl, namespace, job_pod, "migrate")
    # Both replicas waited for it (the operator released them) and started after it.
    replicas = pods(kubectl, namespace, "shop")
    assert len(replicas) == 2
    finished = job["status"]["completionTime"]
    for pod in replicas:
        waited = container_status(pod, "migrate")["state"]["terminated"]
        assert re.fullmatch(
            rf"job {name} confirmed by the operator after \d+s", waited["message"].strip()
        )
        assert container_status(pod, "app")["state"]["running"]["startedAt"] >= finished
    assert [p["currentStep"] for p in st["pods"]] == ["", ""]


def test_15_a_spec_change_replaces_the_pods_one_at_a_time_and_keeps_three_serving(
    operator: Operator,
    kubectl: Kubectl,
    kubectl_argv: list[str],
    namespace: str,
    record: Any,
) -> None:
    rec = record("greeter")
    apply(kubectl, namespace, "15-rolling-update.yaml")
    status_when(kubectl, namespace, "greeter", lambda s: s.get("readyReplicas") == 3)
    [old] = {revision_of(p) for p in pods(kubectl, namespace, "greeter")}
    watch = Stream(kubectl_argv, namespace, "pods", "-l", f"{PIPELINE_LABEL}=greeter")
    try:
        eventually(lambda: len(watch.events) >= 3, timeout=TIMEOUT)  # listed the old Pods
        page = "echo 'hello from revision 2' > /www/index.html"
        kubectl(
            "patch", "ipl", "greeter", "--type=json",
            "-p", json.dumps([{"op": "replace", "path": "/spec/steps/0/run/command/2",
                               "value": page}]),
            namespace=namespace,
        )  # fmt: skip
        st = status_when(
            kubectl,
            namespace,
            "greeter",
            lambda s: (
                s["updatedReplicas"] == s["readyReplicas"] == 3
                and condition(s, "Ready")["status"] == "True"
            ),
        )
        [new] = {revision_of(p) for p in pods(kubectl, namespace, "greeter")}
        # Every old Pod's deletion has been watched to its end.
        eventually(lambda: replay_pods(watch.events)[-1][2] == {new}, timeout=TIMEOUT)
    finally:
        watch.stop()

    assert new != old
    assert st["replicas"] == 3
    seen = replay_pods(watch.events)[2:]  # from when the watch had listed the 3 old Pods
    assert max(total for total, _, _ in seen) <= 4  # replicas + maxSurge
    assert min(serving for _, serving, _ in seen) >= 3  # replicas - maxUnavailable
    assert seen[-1] == (3, 3, {new})
    for pod in pods(kubectl, namespace, "greeter"):
        answer = exec_in(
            kubectl, namespace, pod["metadata"]["name"], "web", "cat", "/www/index.html"
        )
        assert answer == "hello from revision 2\n"
    messages = [condition(s, "Ready")["message"] for s in rec.statuses]
    assert [m for m in messages if m.startswith("rolling out ")], messages
    assert ipl_columns(kubectl, namespace, "greeter", wide=True)["UPDATED"] == "3"
    assert_truthful(rec.statuses, monotonic=False)


@pytest.fixture(scope="session")
def render_image(cluster_level: Any) -> str:
    """The operator's image of this tree, on the node: renderConfig steps run it."""
    return deployment.operator_image(cluster_level.local)


@pytest.mark.incluster
def test_16_render_the_nginx_configuration_from_a_template_variables_and_a_secret(
    request: pytest.FixtureRequest,
    kubectl: Kubectl,
    namespace: str,
    record: Any,
    render_image: str,
    kubeconfig: str,
) -> None:
    secret = documents("16-render-config.yaml", "Secret")[0]["stringData"]["token"]
    encoded = base64.b64encode(secret.encode()).decode()
    # The same pipeline with a variable left out of env: the ConfigMap's template still uses it.
    [typo] = documents("16-render-config.yaml", "InitPipeline")
    typo["metadata"]["name"] = "nginx-config-typo"
    config = typo["spec"]["steps"][0]["renderConfig"]
    config["env"] = [v for v in config["env"] if v["name"] != "POD_IP"]
    recs = [record("nginx-config"), record("nginx-config-typo")]
    with operator_for(request, namespace, INITPIPELINE_RENDER_IMAGE=render_image) as runner:
        apply(kubectl, namespace, "16-render-config.yaml")
        kubectl("apply", "-f", "-", namespace=namespace, input=yaml.safe_dump(typo))
        st = ready(kubectl, namespace, "nginx-config")
        [rendered] = st["steps"]
        assert rendered["state"] == "Succeeded"
        assert re.fullmatch(
            r"rendered volume nginx-conf/default\.conf \(\d+ bytes, mode 0440\) with POD_NAME, "
            r"POD_IP, LISTEN_PORT, SERVER_NAME, UPSTREAM_TOKEN",
            rendered["message"],
        ), rendered["message"]
        pod = the_pod(kubectl, namespace, "nginx-config")
        name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
        assert container_status(pod, "render-nginx-conf")["image"].endswith(
            render_image.rpartition("/")[2]
        )
        # The web container reads the file the step wrote, through its read-only mount.
        path = "/etc/nginx/conf.d/default.conf"
        conf = exec_in(kubectl, namespace, name, "web", "cat", path)
        assert conf.startswith(
            "# Rendered by the InitPipeline step render-nginx-conf "
            f"for Pod {name} ({ip}).\nserver {{\n    listen 8080;\n"
            "    server_name shop.example.com;\n"
        ), conf
        assert "        proxy_set_header Host $host;\n" in conf  # nginx's own variable, kept
        assert f'        proxy_set_header Authorization "Bearer {secret}";\n' in conf
        assert "${" not in conf
        assert exec_in(kubectl, namespace, name, "web", "stat", "-c", "%a %u", path) == (
            "440 65532\n"
        )
        touch = kubectl(
            "exec", name, "-c", "web", "--", "touch", path, namespace=namespace, check=False
        )
        assert touch.returncode != 0 and "Read-only file system" in touch.stderr, touch.stderr
        step_log = logs(kubectl, namespace, name, "render-nginx-conf")
        assert step_log == rendered["message"] + "\n"

        # The typo: the step fails naming the variable; the kubelet retries it (restartPolicy
        # Always) and the status keeps the failure's reason and message.
        broken = status_when(
            kubectl,
            namespace,
            "nginx-config-typo",
            lambda s: step(s, "render-nginx-conf").get("reason") == messages.MISSING_VARIABLE,
        )
        failed = step(broken, "render-nginx-conf")
        assert (failed["state"], failed["exitCode"], failed["message"]) == (
            "Failed",
            1,
            "MissingVariable: ${POD_IP} (line 1) is not in env",
        )
        assert reason(broken) == "StepFailed"
        typo_pod = the_pod(kubectl, namespace, "nginx-config-typo")["metadata"]["name"]
        typo_log = kubectl(
            "logs", typo_pod, "-c", "render-nginx-conf", namespace=namespace, check=False
        ).stdout

        events = kubectl("get", "events", "-o", "json", namespace=namespace).stdout
        crs = kubectl("get", "ipl", "-o", "json", namespace=namespace).stdout
        rendered_pods = cli(kubeconfig, "render", "-f", str(EXAMPLES / "16-render-config.yaml"))
    log = runner.output
    assert_in_order(recs[0].stages(), ("0/1", "render-nginx-conf", None), ("1/1", "", "Running"))
    assert_truthful(recs[0].statuses)
    assert_truthful(recs[1].statuses, allowed=("Pending", "Initializing", "StepFailed"))
    for where, text in (
        ("the CRs", crs),
        ("the recorded statuses", json.dumps([r.statuses for r in recs])),
        ("the events", events),
        ("the step's log", step_log + typo_log),
        ("initpipeline render", rendered_pods),
        ("the operator's log", log),
    ):
        assert secret not in text and encoded not in text, f"the Secret's value is in {where}"
    assert renderconfig.COMMAND in rendered_pods
