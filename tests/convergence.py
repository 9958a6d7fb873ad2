"""What must hold after any disruption (failover, faults): the checks of the failover and
chaos tests, on what the cluster shows and on what watches recorded meanwhile."""

from __future__ import annotations

from typing import Any

from tests.helpers import Kubectl, eventually, get

PIPELINE_LABEL = "initpipeline.io/pipeline"
REPLICA_LABEL = "initpipeline.io/replica"
Event = tuple[str, dict[str, Any]]


def _ready(pipeline: dict[str, Any]) -> bool:
    status = pipeline.get("status") or {}
    return status.get("observedGeneration") == pipeline["metadata"]["generation"] and any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
    )


def wait_all_ready(
    kubectl: Kubectl, namespace: str, count: int, timeout: float = 300
) -> list[dict[str, Any]]:
    """The namespace's `count` pipelines, once every one is Ready for its current spec."""

    def all_ready() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = get(kubectl, namespace, "initpipelines")["items"]
        return items if len(items) == count and all(_ready(p) for p in items) else None

    return eventually(all_ready, timeout=timeout, interval=1)


def pods_by_pipeline(
    kubectl: Kubectl, namespace: str, pipelines: list[dict[str, Any]]
) -> list[str]:
    """The owner of every live operator Pod, by pipeline name ('orphan' for no pipeline)."""
    owners = {p["metadata"]["uid"]: p["metadata"]["name"] for p in pipelines}
    pods = get(kubectl, namespace, "pods", "-l", PIPELINE_LABEL)["items"]
    return sorted(
        owners.get(p["metadata"]["ownerReferences"][0]["uid"], "orphan")
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    )


def most_live_pods_per_replica(events: list[Event]) -> int:
    """The largest number of Pods, not being deleted, that one (pipeline, replica) ever had."""
    live: dict[tuple[str, str], set[str]] = {}
    most = 0
    for kind, pod in events:
        if kind == "RELISTED":  # a fresh list follows: deletions in between were not seen
            live.clear()
            continue
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        if PIPELINE_LABEL not in labels:
            continue
        slot = live.setdefault((labels[PIPELINE_LABEL], labels.get(REPLICA_LABEL, "")), set())
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            slot.discard(meta["name"])
        else:
            slot.add(meta["name"])
        most = max(most, len(slot))
    return most


def backwards(events: list[Event], disrupted: frozenset[str] = frozenset()) -> list[str]:
    """Statuses that went backwards for the same spec generation: fewer steps done than an
    earlier status said, or not Ready after it had been; except for the `disrupted` pipelines,
    whose Pod was deleted on purpose (its replacement, of the same name, starts afresh)."""
    done: dict[tuple[str, int], int] = {}
    was_ready: set[tuple[str, int]] = set()
    found = []
    for _, pipeline in events:
        status = pipeline.get("status") or {}
        if "progress" not in status:  # no status yet, or a RELISTED mark
            continue
        if pipeline["metadata"]["name"] in disrupted:
            continue
        key = (pipeline["metadata"]["name"], status.get("observedGeneration", 0))
        steps = int(status["progress"].split("/")[0])
        ready = _ready(pipeline)
        if steps < done.get(key, 0) or (key in was_ready and not ready):
            found.append(f"{key[0]}: {status['progress']} ready={ready} after {done[key]}")
        done[key] = max(done.get(key, 0), steps)
        if ready:
            was_ready.add(key)
    return found


def started_over(pods: list[Event]) -> frozenset[str]:
    """The pipelines one of whose Pods the kubelet started over, as it does when it has to make
    the Pod a new sandbox: the same Pod (uid) later showed fewer init containers completed than
    before. Its pipeline's status rightly goes back with it."""
    completed: dict[str, int] = {}
    found = set()
    for kind, pod in pods:
        meta = pod.get("metadata") or {}
        pipeline = (meta.get("labels") or {}).get(PIPELINE_LABEL)
        if kind in ("RELISTED", "DELETED") or not pipeline:
            continue
        done = sum(
            1
            for c in (pod.get("status") or {}).get("initContainerStatuses", [])
            if ((c.get("state") or {}).get("terminated") or {}).get("exitCode") == 0
        )
        if done < completed.get(meta["uid"], 0):
            found.add(pipeline)
        completed[meta["uid"]] = max(done, completed.get(meta["uid"], 0))
    return frozenset(found)


def history(pipelines: list[Event], pods: list[Event], name: str) -> str:
    """What the watches recorded of pipeline `name` and its Pods, in order of resourceVersion:
    the status's progress and each step's state, the Pods' init containers (state, restarts).
    Printed with a status that went backwards, to tell a stale view of the operator's from a
    Pod that really started over (the kubelet re-runs every init container of a new sandbox)."""
    lines: list[tuple[int, str]] = []
    for kind, pipeline in pipelines:
        if kind != "RELISTED" and pipeline["metadata"]["name"] == name:
            status = pipeline.get("status") or {}
            steps = " ".join(f"{s['name']}={s.get('state')}" for s in status.get("steps", []))
            line = f"pipeline {kind} {status.get('progress')} {steps}"
            lines.append((int(pipeline["metadata"]["resourceVersion"]), line))
    for kind, pod in pods:
        meta = pod.get("metadata") or {}
        if kind == "RELISTED" or (meta.get("labels") or {}).get(PIPELINE_LABEL) != name:
            continue
        inits = " ".join(
            f"{c['name']}={next(iter(c.get('state') or {'?': 0}))}/{c.get('restartCount', 0)}"
            for c in (pod.get("status") or {}).get("initContainerStatuses", [])
        )
        line = f"pod {kind} {meta['name']} uid={meta['uid'][:8]} {inits}"
        lines.append((int(meta["resourceVersion"]), line))
    return "\n".join(f"{version} {line}" for version, line in sorted(lines))


def stalled(events: list[Event]) -> list[str]:
    """Every Stalled=True condition a watch recorded, as `pipeline: reason: message`."""
    return sorted(
        {
            f"{p['metadata']['name']}: {c.get('reason')}: {c.get('message')}"
            for _, p in events
            for c in (p.get("status") or {}).get("conditions", [])
            if c["type"] == "Stalled" and c["status"] == "True"
        }
    )
