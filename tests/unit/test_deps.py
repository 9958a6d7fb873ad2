"""API-side wait targets, judged from objects shaped as the API server returns them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from initpipeline.deps import Obj, Watched, api_waiting, ready_endpoints, watches_for
from initpipeline.spec import Pipeline, parse_pipeline

pytestmark = pytest.mark.unit

SERVICES = Watched("v1", "Service", "shop")
SLICES = Watched("discovery.k8s.io/v1", "EndpointSlice", "shop")
JOBS = Watched("batch/v1", "Job", "shop")
CERTS = Watched("cert-manager.io/v1", "Certificate", "shop")


class FakeObjects:
    """The watch cache's view, filled by the test."""

    def __init__(self, served: dict[Watched, bool], objects: dict[Watched, list[Obj]]) -> None:
        self._served = served
        self._objects = objects

    def served(self, watched: Watched) -> bool | None:
        return self._served.get(watched)

    def get(self, watched: Watched, name: str) -> Obj | None:
        return next(
            (o for o in self._objects.get(watched, []) if o["metadata"]["name"] == name), None
        )

    def select(self, watched: Watched, label: str, value: str) -> Sequence[Obj]:
        return [
            o
            for o in self._objects.get(watched, [])
            if o["metadata"].get("labels", {}).get(label) == value
        ]


def pipeline(*targets: dict[str, Any]) -> Pipeline:
    return parse_pipeline(
        {
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "steps": [{"name": "deps", "waitFor": list(targets)}],
                "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
            },
        }
    )


def service(name: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.7"}}


def endpoint_slice(service_name: str, *ready: bool | None) -> Obj:
    endpoints = [
        {"addresses": [f"10.88.0.{i + 2}"], "conditions": {} if r is None else {"ready": r}}
        for i, r in enumerate(ready)
    ]
    return {
        "metadata": {
            "name": f"{service_name}-abcde",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
    }


def job(name: str, *conditions: tuple[str, str]) -> Obj:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": t, "status": s} for t, s in conditions]},
    }


def test_ready_endpoints_counts_unset_ready_as_ready() -> None:
    assert ready_endpoints([endpoint_slice("db", True, False, None)]) == 2
    assert ready_endpoints([{"metadata": {"name": "x"}, "endpoints": None}]) == 0


def test_watches_cover_services_jobs_and_resources_in_their_namespaces() -> None:
    p = pipeline(
        {"service": "db"},
        {"service": "infra/cache"},
        {"job": "migrate"},
        {"resource": {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "tls"}},
        {"tcp": "db:5432"},
    )
    assert watches_for(p) == {
        SERVICES,
        SLICES,
        Watched("v1", "Service", "infra"),
        Watched("discovery.k8s.io/v1", "EndpointSlice", "infra"),
        JOBS,
        CERTS,
    }


def test_in_pod_targets_need_no_release() -> None:
    assert api_waiting(pipeline({"tcp": "db:5432"}, {"dns": "db"}), FakeObjects({}, {})) == {}


def test_service_waits_for_existence_then_ready_endpoints() -> None:
    p = pipeline({"service": "mydb", "port": 5432})
    known = {SERVICES: True, SLICES: True}
    assert api_waiting(p, FakeObjects({}, {})) == {
        "deps": ["service mydb port 5432: not checked yet"]
    }
    absent = FakeObjects(known, {})
    assert api_waiting(p, absent) == {"deps": ["service mydb port 5432: service does not exist"]}
    not_ready = FakeObjects(
        known, {SERVICES: [service("mydb")], SLICES: [endpoint_slice("mydb", False)]}
    )
    assert api_waiting(p, not_ready) == {"deps": ["service mydb port 5432: no ready endpoints"]}
    other = FakeObjects(
        known, {SERVICES: [service("mydb")], SLICES: [endpoint_slice("other", True)]}
    )
    assert api_waiting(p, other) == {"deps": ["service mydb port 5432: no ready endpoints"]}
    ready = FakeObjects(
        known, {SERVICES: [service("mydb")], SLICES: [endpoint_slice("mydb", True)]}
    )
    assert api_waiting(p, ready) == {"deps": []}


def test_job_must_be_complete_and_a_failed_job_says_so() -> None:
    p = pipeline({"job": "migrate"})
    running = FakeObjects({JOBS: True}, {JOBS: [job("migrate")]})
    assert api_waiting(p, running) == {"deps": ["job migrate: job not complete"]}
    failed = FakeObjects({JOBS: True}, {JOBS: [job("migrate", ("Failed", "True"))]})
    assert api_waiting(p, failed) == {"deps": ["job migrate: job failed ()"]}
    done = FakeObjects({JOBS: True}, {JOBS: [job("migrate", ("Complete", "True"))]})
    assert api_waiting(p, done) == {"deps": []}


def test_resource_condition_and_unserved_kind() -> None:
    p = pipeline(
        {"resource": {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "tls"}}
    )
    unserved = FakeObjects({CERTS: False}, {})
    assert api_waiting(p, unserved) == {
        "deps": [
            "Certificate tls (Ready): "
            "cert-manager.io/v1 Certificate is not served by the API server"
        ]
    }
    cert: Obj = {
        "metadata": {"name": "tls"},
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Issuing"}]},
    }
    assert api_waiting(p, FakeObjects({CERTS: True}, {CERTS: [cert]})) == {
        "deps": ["Certificate tls (Ready): Ready is False Issuing"]
    }
    cert["status"]["conditions"][0]["status"] = "True"
    assert api_waiting(p, FakeObjects({CERTS: True}, {CERTS: [cert]})) == {"deps": []}


def test_every_unmet_target_is_listed() -> None:
    p = pipeline({"service": "a"}, {"service": "b"}, {"job": "c"})
    objects = FakeObjects({SERVICES: True, SLICES: True, JOBS: True}, {SERVICES: [service("a")]})
    assert api_waiting(p, objects) == {
        "deps": [
            "service a: no ready endpoints",
            "service b: service does not exist",
            "job c: job does not exist",
        ]
    }
