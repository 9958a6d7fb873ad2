"""The benchmark's pure parts: percentiles, tables, the API server metrics delta, the API
client comparison's figures."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from bench import apimetrics
from bench.clientload import CLIENTS, patched
from bench.common import PIPELINE_LABEL
from bench.operator import operator_env
from bench.report import Grid, Row, Table, at_most, markdown, number, ratio_at_most
from bench.scenarios import clients, whole
from bench.scenarios.clients import figures as clientload_figures
from bench.stats import percentile, ratio

pytestmark = pytest.mark.unit

# Recorded from the local cluster's kube-apiserver (v1.35.4), trimmed.
METRICS = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb...
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="",dry_run="",group="",resource="",scope="",subresource="/readyz",verb="GET",version=""} 5
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 12
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="initpipeline.io",resource="initpipelines",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 40
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="log",verb="GET",version="v1"} 7
apiserver_request_duration_seconds_count{verb="POST",resource="pods"} 99
"""  # noqa: E501
LATER = METRICS.replace("} 12", "} 22").replace("} 40", "} 70").replace("} 7\n", "} 9\n")


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [0.3, 0.1, 0.2, 0.4]
    assert percentile(values, 0) == 0.1
    assert percentile(values, 100) == 0.4
    assert percentile(values, 50) == pytest.approx(0.25)
    assert percentile(values, 99) == pytest.approx(0.397)
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_ratio_of_nothing_is_nan() -> None:
    assert ratio(3, 2) == 1.5
    assert math.isnan(ratio(1, 0))
    assert math.isnan(ratio(math.nan, 1))


def test_request_counts_sum_over_codes_and_skip_other_metrics() -> None:
    counts = apimetrics.request_counts(METRICS)
    assert counts[("POST", "pods", "")] == 15
    assert counts[("PATCH", "initpipelines", "status")] == 40
    assert counts[("GET", "", "/readyz")] == 5
    assert sum(counts.values()) == 67  # the duration histogram is not counted


def test_delta_takes_out_known_requests_and_counts_a_reset_from_zero() -> None:
    before, after = apimetrics.request_counts(METRICS), apimetrics.request_counts(LATER)
    ours = {("POST", "pods", ""): 4}
    assert apimetrics.delta(before, after, [ours]) == {
        ("GET", "pods", "log"): 2,
        ("PATCH", "initpipelines", "status"): 30,
        ("POST", "pods", ""): 6,
    }
    reset = {("POST", "pods", ""): 2}
    assert apimetrics.delta({("POST", "pods", ""): 50}, reset) == {("POST", "pods", ""): 2}
    assert apimetrics.only(apimetrics.delta(before, after), ["pods"]) == {
        ("GET", "pods", "log"): 2,
        ("POST", "pods", ""): 10,
    }


def test_labels_unescape_quotes() -> None:
    assert apimetrics.parse_labels(r'a="x\"y",b="z"') == {"a": 'x"y', "b": "z"}


def test_numbers_read_as_people_write_them() -> None:
    assert number(0.1234, "s") == "123 ms"
    assert number(2.5, "s") == "2.50 s"
    assert number(151.7, "MB") == "152 MB"
    assert number(2.9) == "2.90"
    assert number(3.0) == "3"
    assert number(math.nan, "s") == "-"


def test_table_has_ratio_target_and_verdict() -> None:
    t = Table("(a) burst of 1000 pipelines", "floor")
    t.add(Row("create->Pod p99", 0.25, 0.1, "s", at_most(0.3, "<= 300 ms")))
    t.add(Row("CR creation", 9.0, 5.0, "s", ratio_at_most(1.5, "<= 1.5x")))
    t.add(Row("RSS", math.nan, unit="MB", target=at_most(150, "<= 150 MB")))
    t.notes.append("a | note")
    assert markdown(t).splitlines() == [
        "### (a) burst of 1000 pipelines",
        "",
        "| figure | value | floor | ratio | target | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
        "| create->Pod p99 | 250 ms | 100 ms | 2.50x | <= 300 ms | met |",
        "| CR creation | 9.00 s | 5.00 s | 1.80x | <= 1.5x | not met |",
        "| RSS | - | - | - | <= 150 MB | not measured |",
        "",
        "- a | note",
    ]


def test_operator_settings_come_only_as_initpipeline_variables() -> None:
    assert operator_env("INITPIPELINE_WORKERS=16  INITPIPELINE_X=a=b") == {
        "INITPIPELINE_WORKERS": "16",
        "INITPIPELINE_X": "a=b",
    }
    assert operator_env("") == {}
    with pytest.raises(ValueError, match="KUBECONFIG"):
        operator_env("KUBECONFIG=/elsewhere")
    with pytest.raises(ValueError, match="INITPIPELINE_WORKERS"):
        operator_env("INITPIPELINE_WORKERS")


def test_whole_pipeline_table_sets_each_shape_against_its_pod_by_hand() -> None:
    created = {f"{who}-{shape}-{r}": 100.0 for who in ("hand", "ipl") for shape in whole.SHAPES
               for r in range(2)}  # fmt: skip
    pod_ready = {name: 110.0 if name.startswith("hand") else 111.0 for name in created}
    pipeline_ready = {name: 112.0 for name in created if name.startswith("ipl")}
    rows = whole.table(2, created, pod_ready, pipeline_ready).rows
    assert [(r.figure, r.value, r.baseline) for r in rows[:3]] == [
        ("sequential: created -> Pod Ready, p50", 11.0, 10.0),
        ("sequential: created -> Pod Ready, p99", 11.0, 10.0),
        ("sequential: created -> pipeline Ready (kubectl get ipl), p99", 12.0, 10.0),
    ]
    target = rows[0].target
    assert target is not None and target.verdict(rows[0].value, rows[0].baseline) == "met"
    assert target.verdict(13.1, 10.0) == "not met"  # 1.2 x 10 s + 1 s = 13 s


def test_a_pipelines_pod_is_owned_by_the_pipeline_a_pod_by_hand_by_itself() -> None:
    by_pipeline = {"metadata": {"name": "ipl-a-0-x1-0", "labels": {PIPELINE_LABEL: "ipl-a-0"}}}
    assert whole.owner_of(by_pipeline) == "ipl-a-0"
    assert whole.owner_of({"metadata": {"name": "hand-a-0"}}) == "hand-a-0"


def test_grid_renders_rows_of_formatted_cells() -> None:
    grid = Grid("(g) clients", ["client", "GET p50 / p99"], [["initpipeline", "2.70 / 9.02 ms"]])
    grid.notes.append("medians")
    assert markdown(grid).splitlines() == [
        "### (g) clients",
        "",
        "| client | GET p50 / p99 |",
        "| --- | --- |",
        "| initpipeline | 2.70 / 9.02 ms |",
        "",
        "- medians",
    ]


def test_each_round_starts_one_client_further_on() -> None:
    assert clients.interleaved(["a", "b", "c"], 4) == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]


def _raw(count: int, cpu: float, imported: float) -> dict[str, Any]:
    """clientload's output with every request taking 2.5 ms and `cpu` seconds per phase."""
    one_by_one = {"latencies": [0.0025] * count, "seconds": 0.0025 * count, "cpu": cpu}
    return {
        "client": "initpipeline",
        "count": count,
        "phases": {
            "get": one_by_one,
            "get_in_flight": {"seconds": 0.5, "cpu": cpu},
            "list": one_by_one,
            "patch": one_by_one,
            "watch": {"latencies": [0.25], "seconds": 0.25, "cpu": cpu},
        },
        "rss": {"base": 20.0, "imported": imported, "used": imported + 4.0, "peak": 40.0},
    }


def test_figures_are_per_request_and_the_rss_the_client_added() -> None:
    f = clientload_figures(_raw(100, 0.2, 31.0))
    assert f["get_p50"] == pytest.approx(0.0025)
    assert f["get_cpu"] == pytest.approx(2.0)  # 0.2 s over 100 GETs: 2 s per 1000
    assert f["list_cpu"] == pytest.approx(1.0)  # each LIST is 2 pages
    assert f["all_cpu"] == pytest.approx(0.8 / 500 * 1000)  # 100+100 GETs, 200 pages, 100 PATCHes
    assert f["get_in_flight_rate"] == pytest.approx(200)
    assert f["watch_rate"] == pytest.approx(400)
    assert f["watch_cpu"] == pytest.approx(2.0)
    assert (f["rss_import"], f["rss_used"]) == (11.0, 15.0)


def test_medians_per_figure_over_rounds() -> None:
    runs = [{"get_p50": 3.0, "all_cpu": 1.0}, {"get_p50": 1.0, "all_cpu": 9.0}]
    runs.append({"get_p50": 2.0, "all_cpu": 2.0})
    assert clients.medians(runs) == {"get_p50": 2.0, "all_cpu": 2.0}
    assert clients.medians([]) == {}


def test_client_grids_compare_each_client_with_its_http_library_bare() -> None:
    ours = clientload_figures(_raw(100, 0.2, 31.0))
    floor = clientload_figures(_raw(100, 0.1, 30.0))
    speed, cost = clients.grids({"initpipeline": ours, "httpx2-bare": floor}, 100, 5)
    assert speed.rows[0] == [
        "initpipeline",
        "2.50 / 2.50 ms",
        "200 req/s",
        "2.50 / 2.50 ms",
        "2.50 / 2.50 ms",
        "400 events/s",
    ]
    assert cost.rows == [
        ["initpipeline", "2", "1", "2", "2", "1.60", "2.00x httpx2-bare", "11 MB", "15 MB"],
        ["httpx2-bare", "1", "0.50", "1", "1", "0.80", "", "10 MB", "14 MB"],
    ]


def test_each_client_patches_a_configmap_with_a_valid_name_of_its_own() -> None:
    names = {patched(c) for c in CLIENTS}
    assert len(names) == len(CLIENTS)
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", n) for n in names)


def test_sharded_bodies_are_labelled_for_each_shard_in_turn() -> None:
    from bench.scenarios.burst import bodies

    labels = [b["metadata"]["labels"].get("initpipeline.io/shard") for b in bodies(5, 2)]
    assert labels == ["s0", "s1", "s0", "s1", "s0"]
    assert all("initpipeline.io/shard" not in b["metadata"]["labels"] for b in bodies(3))


def test_the_shards_table_sets_two_shards_against_one_operator() -> None:
    from bench.scenarios.burst import OperatorBurst
    from bench.scenarios.shards import table

    def burst(latency: float, cpu: float) -> OperatorBurst:
        return OperatorBurst([latency] * 10, 5.0, 10.0, 0, 12.0, cpu, 1.0, 90.0, 95.0, 0, 170.0)

    text = markdown(table(10, burst(0.05, 30.0), burst(0.1, 20.0)))
    assert "(h) burst of 10 pipelines: 2 shards" in text
    # value: the shards; baseline: the one operator
    assert "| operator CPU, all processes | 20.00 s | 30.00 s | 0.67x |" in text
