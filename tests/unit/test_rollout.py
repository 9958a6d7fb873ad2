"""spec.strategy: how many new Pods one pass creates and which old ones it deletes, and the
whole rollout driven pass by pass through `plan_pods` with Pods as the API returns them."""

from __future__ import annotations

from typing import Any

import pytest

from initpipeline.names import SPEC_HASH_LABEL
from initpipeline.plan import plan_pods
from initpipeline.render import render_pod
from initpipeline.rollout import available, replace_pods
from initpipeline.spec import Pipeline, PipelineSpec, parse_pipeline

pytestmark = pytest.mark.unit

IMAGE = "busybox"


def pipeline(
    replicas: int = 4, image: str = "app:1", policy: str = "Always", **spec: Any
) -> Pipeline:
    return parse_pipeline(
        {
            "metadata": {"namespace": "shop", "name": "web", "uid": "u1"},
            "spec": {
                "replicas": replicas,
                "steps": [{"name": "wait-db", "waitFor": [{"tcp": "db:5432"}]}],
                "template": {
                    "spec": {
                        "restartPolicy": policy,
                        "containers": [{"name": "app", "image": image}],
                    }
                },
                **spec,
            },
        }
    )


def rolling(surge: int | str, unavailable: int | str) -> dict[str, Any]:
    return {"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}


READY = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
NOT_READY = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
PENDING = {"phase": "Pending"}


def pod(name: str, status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def pods(prefix: str, *statuses: dict[str, Any]) -> list[dict[str, Any]]:
    return [pod(f"{prefix}{i}", status) for i, status in enumerate(statuses)]


def decide(spec: PipelineSpec, **given: Any) -> tuple[int, list[str]]:
    """(Pods created, names of the old Pods deleted) of one pass."""
    args: dict[str, Any] = {"missing": 0, "updated": [], "old": [], "leaving": 0}
    args.update(given)
    args.setdefault("old_leaving", args["leaving"])
    answer = replace_pods(spec, **args)
    return answer.create, [p["metadata"]["name"] for p in answer.delete]


# --------------------------------------------------------------------------- one pass


@pytest.mark.parametrize(
    ("strategy", "created", "deleted"),
    [
        # 4 ready old Pods, none new yet.
        pytest.param(None, 1, ["old0"], id="default-25%-surge-1-unavailable-1"),
        pytest.param(rolling(1, 0), 1, [], id="surge-only-waits-for-the-new-pod"),
        pytest.param(rolling(0, 1), 0, ["old0"], id="unavailable-only-deletes-first"),
        pytest.param(rolling(2, 2), 2, ["old0", "old1"], id="two-and-two"),
        pytest.param(rolling("50%", "50%"), 2, ["old0", "old1"], id="percent"),
        pytest.param(rolling("100%", 0), 4, [], id="all-new-first"),
        pytest.param(rolling(0, "100%"), 0, ["old0", "old1", "old2", "old3"], id="all-at-once"),
        pytest.param(rolling(0, "10%"), 0, ["old0"], id="both-round-to-0-one-unavailable"),
        pytest.param(
            rolling("100%", "100%"),
            4,
            ["old0", "old1", "old2", "old3"],
            id="everything-in-one-pass-as-before-strategy",
        ),
        pytest.param({"type": "Recreate"}, 0, ["old0", "old1", "old2", "old3"], id="recreate"),
    ],
)
def test_the_first_pass_of_a_spec_change(
    strategy: dict[str, Any] | None, created: int, deleted: list[str]
) -> None:
    spec = pipeline(**({"strategy": strategy} if strategy else {})).spec
    old = pods("old", READY, READY, READY, READY)
    assert decide(spec, missing=4, old=old) == (created, deleted)


def test_never_more_pods_than_replicas_plus_surge_also_counting_those_being_deleted() -> None:
    spec = pipeline(strategy=rolling(1, 1)).spec
    # 3 old + 1 new + 1 old on its way out: 5 Pods, the most allowed.
    state = {"missing": 3, "updated": pods("new", PENDING), "leaving": 1}
    assert decide(spec, old=pods("old", READY, READY, READY), **state) == (0, [])
    # Once it is gone, one more; still 3 available (4 - 1), so no old Pod goes.
    state["leaving"] = 0
    assert decide(spec, old=pods("old", READY, READY, READY), **state) == (1, [])


def test_old_pods_are_deleted_only_while_enough_stay_available() -> None:
    spec = pipeline(strategy=rolling(1, 1)).spec
    old = pods("old", READY, READY, READY)
    # The new Pod is ready: 4 available, 3 needed: one old Pod may go (and a new one come).
    assert decide(spec, missing=3, updated=pods("new", READY), old=old) == (1, ["old0"])
    # It is not: 3 available, none may go.
    assert decide(spec, missing=3, updated=pods("new", NOT_READY), old=old) == (1, [])


def test_unavailable_old_pods_go_first_and_are_not_counted_as_serving() -> None:
    spec = pipeline(strategy=rolling(1, 1)).spec
    old = [pod("old0", READY), pod("old1", PENDING), pod("old2", READY), pod("old3", NOT_READY)]
    # 2 available, 3 needed: no ready Pod may go. Of the two that serve nothing, one: the
    # new Pod, not available yet either, takes the room of the other (5 - 3 - 1).
    assert decide(spec, missing=4, old=old) == (1, ["old1"])
    assert decide(spec, missing=3, updated=pods("new", READY), old=old) == (0, ["old1", "old3"])


def test_unavailable_old_pods_stay_while_the_new_ones_are_not_available_either() -> None:
    # A Deployment's rule: the new revision's unavailable Pods use up the room first.
    spec = pipeline(replicas=2, strategy=rolling(1, 0)).spec
    old = pods("old", PENDING, PENDING)
    assert decide(spec, missing=2, old=old) == (1, [])
    assert decide(spec, missing=1, updated=pods("new", PENDING), old=old) == (0, [])
    assert decide(spec, missing=1, updated=pods("new", READY), old=old) == (0, ["old0"])


def test_recreate_creates_only_once_every_old_pod_is_gone() -> None:
    spec = pipeline(strategy={"type": "Recreate"}).spec
    assert decide(spec, missing=4, leaving=2) == (0, [])
    assert decide(spec, missing=4) == (4, [])
    # Pods of the current revision being deleted (scaling down) do not hold it up.
    assert decide(spec, missing=1, updated=pods("new", READY), leaving=1, old_leaving=0) == (1, [])


def test_without_a_rollout_the_missing_pods_are_created_up_to_the_surge() -> None:
    assert decide(pipeline(replicas=10).spec, missing=10) == (10, [])
    # Scaling 4 -> 10 with 25%: 3 over 10 are allowed, 6 are missing.
    assert decide(pipeline(replicas=10).spec, missing=6, updated=pods("n", *[READY] * 4)) == (
        6,
        [],
    )


def test_scaling_during_a_rollout_moves_its_bounds() -> None:
    old = pods("old", READY, READY, READY)
    updated = pods("new", READY)
    # Up to 8 (surge 2, unavailable 2): 10 Pods allowed, 6 available needed.
    assert decide(pipeline(replicas=8).spec, missing=7, updated=updated, old=old) == (
        6,
        [],
    )
    # Down to 2 (surge 1, unavailable 0): 3 Pods allowed; 2 available needed of 4.
    assert decide(pipeline(replicas=2).spec, missing=1, updated=updated, old=old) == (
        0,
        ["old0", "old1"],
    )
    # Down to 0: every old Pod goes.
    assert decide(pipeline(replicas=0).spec, old=old) == (0, ["old0", "old1", "old2"])


def test_suspending_deletes_every_old_pod_at_once() -> None:
    spec = pipeline(suspend=True, strategy=rolling(1, 0)).spec
    assert decide(spec, old=pods("old", READY, READY)) == (0, ["old0", "old1"])


def test_a_succeeded_pod_is_available_when_the_pipeline_runs_to_completion() -> None:
    succeeded = {"phase": "Succeeded", "conditions": [{"type": "Ready", "status": "False"}]}
    assert available(pod("p", succeeded), run_to_completion=True)
    assert not available(pod("p", succeeded), run_to_completion=False)
    assert available(pod("p", READY), run_to_completion=True)
    assert not available(pod("p", {"phase": "Failed"}), run_to_completion=True)
    spec = pipeline(replicas=2, policy="Never", strategy=rolling(1, 0)).spec
    done = pods("old", succeeded, succeeded)
    assert decide(spec, missing=1, updated=pods("new", succeeded), old=done) == (0, ["old0"])


# --------------------------------------------------------------------------- whole rollouts


def run(old: Pipeline, new: Pipeline, passes: int = 40) -> list[tuple[int, int]]:
    """Roll `old`'s ready Pods over to `new`, pass by pass: the Pods `plan_pods` asks for
    are created (and become ready on the next pass), the ones it deletes are gone at once.
    (Pods, ready Pods) after each pass, until nothing changes."""

    def ready(manifest: dict[str, Any]) -> dict[str, Any]:
        return {**manifest, "status": READY}

    live = {p["metadata"]["name"]: ready(p) for p in (render_pod(old, i, IMAGE) for i in range(4))}
    seen = []
    for _ in range(passes):
        plan = plan_pods(new, list(live.values()), IMAGE)
        if not plan.create and not plan.delete:
            break
        for gone in plan.delete:
            del live[gone["metadata"]["name"]]
        seen.append((len(live) + len(plan.create), sum(available(p, False) for p in live.values())))
        live.update((p["metadata"]["name"], ready(p)) for p in plan.create)
    else:
        raise AssertionError("the rollout does not end")
    revisions = {p["metadata"]["labels"][SPEC_HASH_LABEL] for p in live.values()}
    assert (len(live), revisions) == (new.spec.replicas, {new.spec.revision})
    return seen


@pytest.mark.parametrize(
    ("strategy", "most", "fewest"),
    [
        pytest.param(None, 5, 3, id="default"),
        pytest.param(rolling(1, 0), 5, 4, id="surge-1"),
        pytest.param(rolling(0, 1), 4, 3, id="unavailable-1"),
        pytest.param(rolling("50%", "25%"), 6, 3, id="percent"),
        pytest.param({"type": "Recreate"}, 4, 0, id="recreate"),
    ],
)
def test_a_rollout_keeps_its_bounds_and_ends_on_the_new_revision(
    strategy: dict[str, Any] | None, most: int, fewest: int
) -> None:
    chosen = {"strategy": strategy} if strategy else {}
    seen = run(pipeline(**chosen), pipeline(image="app:2", **chosen))
    assert max(total for total, _ in seen) <= most
    assert min(ready for _, ready in seen) >= fewest
