"""Shards: operators that each own the pipelines their INITPIPELINE_SHARD_SELECTOR selects.

Three pipelines in one namespace: `plain` (no shard label), `one` (initpipeline.io/shard=s1)
and `two` (=s2). Operators run as child processes, as their Deployments would: the default
one with `!initpipeline.io/shard` (Flux's convention: it leaves the shards' pipelines alone)
and one per shard. Each pipeline is handled by exactly one of them; a pipeline moved to
another shard keeps its Pod (the new shard takes it over) and is followed by its new shard
only. Pods stay unscheduled (control plane only): their progress is written as the kubelet
would.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import (
    Kubectl,
    OperatorProcess,
    eventually,
    kubelet_runs_everything,
    operator_process,
    pods,
    status,
)

pytestmark = pytest.mark.integration

SHARD = "initpipeline.io/shard"


def pipeline(name: str, shard: str | None) -> dict[str, Any]:
    labels = {SHARD: shard} if shard else {}
    return {
        "apiVersion": "initpipeline.io/v1alpha1",
        "kind": "InitPipeline",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "steps": [{"name": "prepare", "run": {"image": "busybox", "command": ["true"]}}],
            "template": {
                "spec": {
                    "schedulerName": "initpipeline-tests-unscheduled",
                    "containers": [{"name": "app", "image": "busybox"}],
                }
            },
        },
    }


@contextlib.contextmanager
def shard_operator(
    kubeconfig: str, namespace: str, selector: str, log: Path
) -> Iterator[OperatorProcess]:
    with operator_process(
        kubeconfig, log, INITPIPELINE_NAMESPACES=namespace, INITPIPELINE_SHARD_SELECTOR=selector
    ) as operator:
        yield operator


def pods_of(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        p
        for p in pods(kubectl, namespace)
        if p["metadata"]["labels"].get("initpipeline.io/pipeline") == name
    ]


def followed(operator: OperatorProcess) -> float:
    """How many pipelines the operator counts (its initpipeline_pipelines gauge)."""
    return sum(operator.metric("initpipeline_pipelines").values())


def test_each_pipeline_is_handled_by_its_shards_operator_only(
    kubeconfig: str, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    for name, shard in (("plain", None), ("one", "s1"), ("two", "s2")):
        kubectl("create", "-f", "-", input=json.dumps(pipeline(name, shard)), namespace=namespace)
    with (
        shard_operator(kubeconfig, namespace, f"!{SHARD}", tmp_path / "default.log") as default,
        shard_operator(kubeconfig, namespace, f"{SHARD}=s1", tmp_path / "s1.log") as s1,
    ):
        eventually(lambda: len(pods_of(kubectl, namespace, "plain")) == 1)
        eventually(lambda: len(pods_of(kubectl, namespace, "one")) == 1)
        eventually(lambda: status(kubectl, namespace, "one").get("progress") == "0/1")
        (pod,) = pods_of(kubectl, namespace, "one")
        assert pod["metadata"]["labels"][SHARD] == "s1"  # the shard's Pods carry its label
        # Both operators have written their pipelines' status; neither touched s2's.
        assert status(kubectl, namespace, "two") == {}
        assert pods_of(kubectl, namespace, "two") == []
        assert (followed(default), followed(s1)) == (1, 1)

        # `one` moves to shard s2: s1 lets it go; s2's operator takes its Pod over.
        kubectl("label", "initpipeline", "one", f"{SHARD}=s2", "--overwrite", namespace=namespace)
        with shard_operator(kubeconfig, namespace, f"{SHARD}=s2", tmp_path / "s2.log") as s2:
            eventually(lambda: len(pods_of(kubectl, namespace, "two")) == 1)
            eventually(
                lambda: (
                    [p["metadata"]["labels"][SHARD] for p in pods_of(kubectl, namespace, "one")]
                    == ["s2"]
                )
            )
            (moved,) = pods_of(kubectl, namespace, "one")
            assert moved["metadata"]["uid"] == pod["metadata"]["uid"]  # the same Pod
            assert f"Pod {namespace}/{pod['metadata']['name']}: taken over from another shard" in (
                s2.text()
            )
            # Only s2 follows it now: the Pod's progress reaches the pipeline's status.
            kubelet_runs_everything(kubectl, namespace, moved)
            eventually(lambda: status(kubectl, namespace, "one").get("progress") == "1/1")
            assert len(pods_of(kubectl, namespace, "one")) == 1
            assert (followed(default), followed(s1), followed(s2)) == (1, 0, 2)
            for operator in (default, s1, s2):
                assert "Traceback" not in operator.text()
