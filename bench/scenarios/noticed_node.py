"""(d) on the node: dependency ready -> the wait step's container exits, for every target kind,
early in a wait and after a long one, with the kubelet and the operator in the loop.

Each round starts, for every kind and phase, one InitPipeline whose first step waits on a
dependency of its own and, for the in-Pod kinds, one Pod written by hand as the articles
write it (an init container `until CHECK; do sleep 2; done`: the baseline) waiting on the same
dependency. Once both wait containers run, the dependency comes up BENCH_NOTICED_EARLY
(default 1) or BENCH_NOTICED_LATE (default 20) seconds later; the figure is the watch event
that shows the wait container terminated minus the moment the dependency was ready:
- service, tcp, http: a web server Pod behind Service `dep-*` turns Ready (its watch event);
- dns: Service `dep-*` is created (the create's answer);
- file, command: a file appears in a hostPath directory both Pods mount (written here);
- job: Job `dep-*` completes (its watch event), checked by the operator only: no baseline;
- resource: a Pod's Ready condition (its watch event), checked by the operator only.
BENCH_NOTICED_ROUNDS rounds (default 3). Needs the node level of the local cluster.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import operator
from bench.common import BUSYBOX, Watcher, namespaces, pipeline
from bench.context import Context, env_float, env_int
from bench.kube import JOBS, PIPELINES, PODS, ROLEBINDINGS, ROLES, SERVICES, Obj
from bench.report import Table
from bench.scenarios import noticed
from bench.scenarios.whole import APP, HTTPD, NO_GRACE, owner_of, pod_ready

KINDS = ("service", "job", "resource", "tcp", "http", "dns", "file", "command")
BY_OPERATOR = ("job", "resource")  # no hand-written baseline: it would need kubectl and RBAC
WAIT = "wait"


def _init_state(pod: Obj, state: str) -> bool:
    for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if status.get("name") == WAIT:
            return state in (status.get("state") or {})
    return False


def waiting(pod: Obj) -> bool:
    return _init_state(pod, "running")


def finished(pod: Obj) -> bool:
    for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if status.get("name") == WAIT:
            return ((status.get("state") or {}).get("terminated") or {}).get("exitCode") == 0
    return False


def job_complete(job: Obj) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions)


@dataclass
class Case:
    kind: str
    phase: str
    number: int
    namespace: str
    flag_dir: Path

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.phase}-{self.number}"

    @property
    def dep(self) -> str:
        return f"dep-{self.name}"

    @property
    def flag(self) -> str:
        return f"/flags/{self.name}"

    def target(self) -> Obj:
        host = f"{self.dep}.{self.namespace}.svc.cluster.local"
        targets: dict[str, Obj] = {
            "service": {"service": self.dep},
            "job": {"job": self.dep},
            "resource": {"resource": {"apiVersion": "v1", "kind": "Pod", "name": self.dep}},
            "tcp": {"tcp": f"{self.dep}:80"},
            "http": {"http": f"http://{self.dep}/"},
            "dns": {"dns": host},
            "file": {"file": self.flag},
            "command": {"command": ["test", "-e", self.flag]},
        }
        return targets[self.kind]

    def check(self) -> str:
        """The articles' shell check for the same dependency (the baseline's loop), in the
        forms the node's busybox takes (no `nc -z`; its `wget -T` crashes: `timeout` instead)."""
        return {
            "service": f"timeout 1 wget -q -O /dev/null http://{self.dep}/",
            "tcp": f"nc -w 1 {self.dep} 80 -e true </dev/null",
            "http": f"timeout 1 wget -q -O /dev/null http://{self.dep}/",
            "dns": f"nslookup {self.dep}.{self.namespace}.svc.cluster.local",
            "file": f"[ -e {self.flag} ]",
            "command": f"test -e {self.flag}",
        }[self.kind]

    def _flags_volume(self) -> Obj:
        return {"name": "flags", "hostPath": {"path": str(self.flag_dir), "type": "Directory"}}

    def pipeline(self) -> Obj:
        step: Obj = {"name": WAIT, "waitFor": [self.target()]}
        pod_spec: Obj = {**NO_GRACE, "containers": [APP]}
        if self.kind in ("file", "command"):
            step["volumeMounts"] = [{"name": "flags", "mountPath": "/flags"}]
            pod_spec["volumes"] = [self._flags_volume()]
        return pipeline(f"ipl-{self.name}", [step], pod_spec)

    def by_hand(self) -> Obj:
        loop = f"until {self.check()}; do sleep 2; done"
        init: Obj = {"name": WAIT, "image": BUSYBOX, "command": ["sh", "-c", loop]}
        spec: Obj = {**NO_GRACE, "initContainers": [init], "containers": [APP]}
        if self.kind in ("file", "command"):
            init["volumeMounts"] = [{"name": "flags", "mountPath": "/flags"}]
            spec["volumes"] = [self._flags_volume()]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"hand-{self.name}"},
            "spec": spec,
        }

    def service(self) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": self.dep},
            "spec": {"selector": {"app": self.dep}, "ports": [{"port": 80, "targetPort": 8080}]},
        }

    def server(self) -> Obj:
        probe = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
        container = {"name": "httpd", "image": HTTPD, "readinessProbe": probe}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.dep, "labels": {"app": self.dep}},
            "spec": {**NO_GRACE, "containers": [container]},
        }

    def job(self) -> Obj:
        container = {"name": "done", "image": BUSYBOX, "command": ["true"]}
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": self.dep},
            "spec": {"template": {"spec": {**NO_GRACE, "restartPolicy": "Never",
                                           "containers": [container]}}},
        }  # fmt: skip


@dataclass
class Watches:
    waiting: Watcher  # Pods whose wait container runs
    finished: Watcher  # Pods whose wait container exited 0
    ready: Watcher  # Pods Ready (the dependencies' web servers)
    jobs: Watcher  # Jobs Complete

    def all(self) -> list[Watcher]:
        return [self.waiting, self.finished, self.ready, self.jobs]


async def _seen(watcher: Watcher, owner: str, within: float) -> float:
    """When a Pod of `owner` (a Pod or pipeline name) first matched `watcher`."""
    deadline = time.monotonic() + within
    while True:
        for name, at in watcher.seen.items():
            if owner_of(watcher.objects[name]) == owner:
                return at
        if time.monotonic() > deadline:
            last = [o.get("status") for o in watcher.objects.values() if owner_of(o) == owner]
            raise RuntimeError(f"{owner}: not seen by the {watcher.resource.plural} watch: {last}")
        await watcher.wait_for(len(watcher.seen) + 1, 1)


async def _flip(ctx: Context, case: Case, watches: Watches) -> float:
    """Make the case's dependency ready; the moment it was."""
    ns = case.namespace
    if case.kind in ("service", "tcp", "http", "resource"):
        await ctx.kube.create(PODS, ns, case.server())
        return await _seen(watches.ready, case.dep, 120)
    if case.kind == "dns":
        await ctx.kube.create(SERVICES, ns, case.service())
        return time.monotonic()
    if case.kind == "job":
        await ctx.kube.create(JOBS, ns, case.job())
        if not await watches.jobs.wait_for({case.dep}, 120):
            raise RuntimeError(f"Job {case.dep} did not complete within 120 s")
        return watches.jobs.seen[case.dep]
    (case.flag_dir / case.name).touch()
    return time.monotonic()


async def _one(ctx: Context, case: Case, after: float, watches: Watches) -> dict[bool, float]:
    """Seconds from the dependency being ready to each wait container's exit, by generated."""
    ns = case.namespace
    if case.kind in ("service", "tcp", "http"):
        await ctx.kube.create(SERVICES, ns, case.service())
    owners = {True: f"ipl-{case.name}"}
    await ctx.kube.create(PIPELINES, ns, case.pipeline())
    if case.kind not in BY_OPERATOR:
        owners[False] = f"hand-{case.name}"
        await ctx.kube.create(PODS, ns, case.by_hand())
    for owner in owners.values():
        await _seen(watches.waiting, owner, 180)
    await asyncio.sleep(after)
    ready = await _flip(ctx, case, watches)
    took = {
        generated: await _seen(watches.finished, owner, 120) - ready
        for generated, owner in owners.items()
    }
    await _clean_up(ctx, case)
    return took


async def _clean_up(ctx: Context, case: Case) -> None:
    """Delete what the case created: the node runs at most 110 Pods."""
    ns = case.namespace
    await ctx.kube.delete(PIPELINES, ns, f"ipl-{case.name}")
    for resource, name in ((PODS, f"hand-{case.name}"), (PODS, case.dep), (SERVICES, case.dep)):
        await ctx.kube.delete(resource, ns, name)
    if case.kind == "job":
        await ctx.kube.delete(JOBS, ns, case.dep)  # its Pod has completed: not counted


async def _grant_pod_reads(ctx: Context, namespace: str) -> None:
    """The Pods' ServiceAccount may read Pods: a `resource` target is checked only then."""
    role = {
        "metadata": {"name": "read-pods"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    }
    binding = {
        "metadata": {"name": "read-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
    }
    await ctx.kube.create(ROLES, namespace, role)
    await ctx.kube.create(ROLEBINDINGS, namespace, binding)


def _flag_dir() -> Path:
    """A host directory the Pods mount (hostPath: this host is the node), readable by all."""
    path = Path(tempfile.mkdtemp(prefix="initpipeline-bench-flags-"))
    path.chmod(0o755)
    return path


async def run(ctx: Context) -> None:
    phases = {
        "early": env_float("BENCH_NOTICED_EARLY", 1),
        "late": env_float("BENCH_NOTICED_LATE", 20),
    }
    rounds = env_int("BENCH_NOTICED_ROUNDS", 3)
    flag_dir = _flag_dir()
    seen: dict[tuple[str, str, bool], list[float]] = {}
    async with namespaces(ctx.kube, "bench-noticed") as (ns,):
        await _grant_pod_reads(ctx, ns)
        watches = Watches(
            *[
                await Watcher(ctx.kube, resource, ns, match).start()
                for resource, match in (
                    (PODS, waiting),
                    (PODS, finished),
                    (PODS, pod_ready),
                    (JOBS, job_complete),
                )
            ]
        )
        try:
            with operator.running([ns], ctx.operator_log("noticed-node")) as op:
                for number in range(rounds):
                    cases = [
                        (Case(kind, phase, number, ns, flag_dir), after)
                        for kind in KINDS
                        for phase, after in phases.items()
                    ]
                    took = await asyncio.gather(*(_one(ctx, c, a, watches) for c, a in cases))
                    for (case, _), times in zip(cases, took, strict=True):
                        for generated, seconds in times.items():
                            seen.setdefault((case.kind, case.phase, generated), []).append(seconds)
                    ctx.log(f"(d) on the node: round {number + 1}/{rounds} done")
                op.check()
        finally:
            for watcher in watches.all():
                await watcher.stop()
            shutil.rmtree(flag_dir, ignore_errors=True)
    ctx.tables.append(table(rounds, phases, seen))


def table(
    rounds: int, phases: dict[str, float], seen: dict[tuple[str, str, bool], list[float]]
) -> Table:
    """One row per kind and phase: the generated step's p99 against the loop by hand."""
    result = Table(
        f"(d) on the node: dependency ready -> wait container exits, {rounds} rounds",
        "init container by hand (until CHECK; do sleep 2; done)",
    )
    noticed.add_rows(result, KINDS, phases, seen)
    result.notes.append(
        "job and resource are checked by the operator only (a loop by hand would need kubectl"
        " and RBAC in the Pod); the figures include the kubelet's status relist (about 1 s)"
    )
    return result
