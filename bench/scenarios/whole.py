"""(e) A whole pipeline against the same Pod written by hand, on the node: time to Ready.

Two of the articles' Pods, each written by hand as the articles write it (the baseline) and as
an InitPipeline:
- sequential (seed 04): init containers `sleep 2`, then `sleep 5`, then the app;
- service: wait for Service `dep` (its Pod Ready before the round starts); by hand the
  articles' `until nslookup dep...; do sleep 2; done`, as a pipeline a `service` target,
  checked by the operator (ready endpoints) and released through the Pod's annotation.
Each round (BENCH_WHOLE_ROUNDS, default 5) creates every hand-written Pod and every pipeline
at the same moment; the figure is creation -> the Pod's Ready condition, seen on a watch
(the pipeline's own Ready condition, which `kubectl get ipl` shows, is reported beside it).
Needs the node level of the local cluster (Pods really run).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bench import operator
from bench.common import BUSYBOX, PIPELINE_LABEL, Watcher, namespaces, pipeline, ready_reason
from bench.context import Context, env_int
from bench.kube import PIPELINES, PODS, SERVICES, Obj
from bench.report import Row, Table, ratio_at_most
from bench.stats import percentile

HTTPD = "localhost/initpipeline/httpd:1"
APP: Obj = {
    "name": "app",
    "image": BUSYBOX,
    "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
}
NO_GRACE: Obj = {"terminationGracePeriodSeconds": 1}


def _sleep(seconds: int) -> Obj:
    return {"image": BUSYBOX, "command": ["sleep", str(seconds)]}


def _by_hand(init_containers: list[Obj]) -> Obj:
    return {**NO_GRACE, "initContainers": init_containers, "containers": [APP]}


# shape -> (the Pod's spec written by hand, the pipeline's steps); `{ns}`: the namespace.
SHAPES: dict[str, tuple[Callable[[str], Obj], list[Obj]]] = {
    "sequential": (
        lambda _ns: _by_hand([{"name": "first", **_sleep(2)}, {"name": "second", **_sleep(5)}]),
        [
            {"name": "first", "run": _sleep(2)},
            {"name": "second", "run": _sleep(5)},
        ],
    ),
    "service": (
        lambda ns: _by_hand(
            [
                {
                    "name": "wait-dep",
                    "image": BUSYBOX,
                    "command": [
                        "sh",
                        "-c",
                        f"until nslookup dep.{ns}.svc.cluster.local; do sleep 2; done",
                    ],
                }
            ]
        ),
        [{"name": "wait-dep", "waitFor": [{"service": "dep"}]}],
    ),
}


def pod_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pipeline_ready(obj: Obj) -> bool:
    return ready_reason(obj).startswith("True/")


def owner_of(pod: Obj) -> str:
    """The pipeline a Pod belongs to, else the Pod's own name (written by hand)."""
    return str((pod["metadata"].get("labels") or {}).get(PIPELINE_LABEL) or pod["metadata"]["name"])


async def _dependency(ctx: Context, namespace: str, pods: Watcher) -> None:
    service = {
        "metadata": {"name": "dep"},
        "spec": {"selector": {"app": "dep"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    dep = {
        "metadata": {"name": "dep", "labels": {"app": "dep"}},
        "spec": {
            **NO_GRACE,
            "containers": [
                {
                    "name": "httpd",
                    "image": HTTPD,
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                }
            ],
        },
    }
    await ctx.kube.create(SERVICES, namespace, service)
    await ctx.kube.create(PODS, namespace, dep)
    if not await pods.wait_for({"dep"}, 120):
        raise RuntimeError("the dependency's Pod was not Ready within 120 s")


async def _all_ready(pods: Watcher, owners: set[str], within: float) -> bool:
    """Until a Pod of each of `owners` (Pod or pipeline names) is Ready; False after `within`."""
    deadline = time.monotonic() + within
    while not owners <= {owner_of(pods.objects[name]) for name in pods.seen}:
        if time.monotonic() > deadline:
            return False
        await pods.wait_for(len(pods.seen) + 1, 1)  # the next Pod to turn Ready, or a second
    return True


async def run(ctx: Context) -> None:
    rounds = env_int("BENCH_WHOLE_ROUNDS", 5)
    async with namespaces(ctx.kube, "bench-whole") as (namespace,):
        pods = await Watcher(ctx.kube, PODS, namespace, pod_ready).start()
        crs = await Watcher(ctx.kube, PIPELINES, namespace, pipeline_ready).start()
        log = ctx.operator_log("whole")
        try:
            await _dependency(ctx, namespace, pods)
            created: dict[str, float] = {}
            with operator.running([namespace], log) as op:
                for r in range(rounds):
                    names: set[str] = set()
                    creates = []
                    for shape, (by_hand, steps) in SHAPES.items():
                        hand, ipl = f"hand-{shape}-{r}", f"ipl-{shape}-{r}"
                        body = pipeline(ipl, steps, {**NO_GRACE, "containers": [APP]})
                        hand_pod = {
                            "apiVersion": "v1",
                            "kind": "Pod",
                            "metadata": {"name": hand},
                            "spec": by_hand(namespace),
                        }
                        creates += [
                            (hand, ctx.kube.create(PODS, namespace, hand_pod)),
                            (ipl, ctx.kube.create(PIPELINES, namespace, body)),
                        ]
                        names |= {hand, ipl}
                    for name, _ in creates:
                        created[name] = time.monotonic()
                    await asyncio.gather(*(create for _, create in creates))
                    if not await _all_ready(pods, names, 180) or not await crs.wait_for(
                        {n for n in names if n.startswith("ipl-")}, 60
                    ):
                        raise RuntimeError(f"round {r}: not all Ready within 180 s: {names}")
                    ctx.log(f"(e) round {r + 1}/{rounds} done")
                op.check()
            ready_at = {owner_of(pods.objects[n]): at for n, at in pods.seen.items()}
            ctx.tables.append(table(rounds, created, ready_at, crs.seen))
        finally:
            await pods.stop()
            await crs.stop()


def table(
    rounds: int,
    created: dict[str, float],
    pod_ready: dict[str, float],
    pipeline_ready: dict[str, float],
) -> Table:
    """Creation -> Ready per shape, from the moments (by Pod or pipeline name) each was created,
    its Pod turned Ready and the pipeline did: the pipeline's Pod against the Pod by hand."""
    result = Table(f"(e) whole pipeline against the same Pod by hand, {rounds} rounds", "by hand")
    target = ratio_at_most(1.2, "<= 1.2x by hand + 1 s", plus=1.0)
    for shape in SHAPES:

        def took(name: str, ready: dict[str, float]) -> list[float]:
            return [ready[f"{name}-{r}"] - created[f"{name}-{r}"] for r in range(rounds)]

        hand = took(f"hand-{shape}", pod_ready)
        pod = took(f"ipl-{shape}", pod_ready)
        status = took(f"ipl-{shape}", pipeline_ready)
        for q in (50, 99):
            result.add(
                Row(
                    f"{shape}: created -> Pod Ready, p{q}",
                    percentile(pod, q),
                    percentile(hand, q),
                    "s",
                    target,
                )
            )
        result.add(
            Row(
                f"{shape}: created -> pipeline Ready (kubectl get ipl), p99",
                percentile(status, 99),
                percentile(hand, 99),
                "s",
            )
        )
    return result
