"""Tenancy against the real API server: `AccessReviews` asks real (Local)SubjectAccessReviews
and `deps` turns the answers into findings, for a pipeline in tenant-a whose targets are in
tenant-b (the issue's scenario), before the controller is wired to them.

Two namespaces: tenant-a (the `namespace` fixture) and tenant-b (created here, deleted
afterwards). tenant-b has the Service private-db (no endpoints) and no Service `nothing`;
tenant-a has the ServiceAccount `reader`, which a Role in tenant-b lets `get` private-db only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
import yaml
from tests.helpers import Kubectl

from initpipeline.access import AccessReviews
from initpipeline.deps import Answer, Obj, Review, Watched, api_waiting
from initpipeline.kube import Kube
from initpipeline.spec import Pipeline, parse_pipeline

pytestmark = pytest.mark.integration


def refused(namespace: str, account: str, resource: str, where: str) -> str:
    return f"not checked: serviceaccount {namespace}/{account} may not get {resource} in {where}"


def apply(kubectl: Kubectl, namespace: str, *docs: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", namespace=namespace, input=yaml.safe_dump_all(docs))


@pytest.fixture
def tenant_b(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """The second tenant's namespace, with private-db and a Role that lets tenant-a's
    `reader` get it; deleted afterwards."""
    name = f"t-tenant-b-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    try:
        apply(
            kubectl,
            namespace,
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}},
        )
        apply(
            kubectl,
            name,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "private-db"},
                "spec": {"ports": [{"port": 5432}], "selector": {"app": "private-db"}},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "read-private-db"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["services"],
                        "verbs": ["get"],
                        "resourceNames": ["private-db"],
                    },
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "tenant-a-reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-private-db",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        )
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@contextlib.asynccontextmanager
async def connected(kubeconfig: str) -> AsyncIterator[Kube]:
    """The operator's API client on the test cluster (as the kubeconfig's admin)."""
    saved = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = kubeconfig
    try:
        client = Kube.from_environment()
    finally:
        if saved is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = saved
    try:
        yield client
    finally:
        await client.close()


class Listed:
    """deps' view of the objects, listed from the API server once (the watch cache's role)."""

    def __init__(self, objects: dict[Watched, list[Obj]]) -> None:
        self._objects = objects

    @classmethod
    async def of(cls, kube: Kube, *watched: Watched) -> Listed:
        objects = {}
        for w in watched:
            resource = await kube.discover(w.api_version, w.kind)
            assert resource is not None, w
            objects[w] = (await kube.list(resource.path(w.namespace)))[0]
        return cls(objects)

    def served(self, watched: Watched) -> bool | None:
        return True if watched in self._objects else None

    def get(self, watched: Watched, name: str) -> Obj | None:
        return next(
            (o for o in self._objects.get(watched, []) if o["metadata"]["name"] == name), None
        )

    def select(self, watched: Watched, label: str, value: str) -> Sequence[Obj]:
        return [
            o
            for o in self._objects.get(watched, [])
            if (o["metadata"].get("labels") or {}).get(label) == value
        ]


def pipeline(namespace: str, *targets: dict[str, Any], account: str | None = None) -> Pipeline:
    pod_spec: dict[str, Any] = {"containers": [{"name": "app", "image": "app:1"}]}
    if account:
        pod_spec["serviceAccountName"] = account
    return parse_pipeline(
        {
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "steps": [{"name": "wait-db", "waitFor": list(targets)}],
                "template": {"spec": pod_spec},
            },
        }
    )


async def settled(access: AccessReviews, review: Review, want: bool) -> Answer:
    """The answer once it is `want` (RBAC changes reach the authorizer within moments)."""
    deadline = time.monotonic() + 30
    while True:
        answer = await access.ask(review)
        if answer.allowed is want or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.2)


def service_review(tenant_a: str, account: str, tenant_b: str, name: str) -> Review:
    return Review(tenant_a, account, "v1", "Service", tenant_b, name)


async def test_subject_access_reviews_answer_for_the_pods_service_account(
    kubeconfig: str, namespace: str, tenant_b: str
) -> None:
    async with connected(kubeconfig) as kube:
        access = AccessReviews(kube, refused_ttl=0)
        reader = service_review(namespace, "reader", tenant_b, "private-db")
        assert await settled(access, reader, True) == Answer(True)
        assert await access.ask(service_review(namespace, "default", tenant_b, "private-db")) == (
            Answer(False, refused(namespace, "default", "services", tenant_b))
        )
        # resourceNames: reader may get private-db only, so it learns nothing about other names.
        assert await access.ask(service_review(namespace, "reader", tenant_b, "nothing")) == (
            Answer(False, refused(namespace, "reader", "services", tenant_b))
        )
        await access.close()


async def test_a_pipeline_in_tenant_a_learns_nothing_about_tenant_b(
    kubeconfig: str, namespace: str, tenant_b: str
) -> None:
    """The issue's oracle: unreviewed, private-db reads `no ready endpoints` and nothing
    `service does not exist`; reviewed, the default account reads the same refusal for both."""
    async with connected(kubeconfig) as kube:
        targets = ({"service": f"{tenant_b}/private-db"}, {"service": f"{tenant_b}/nothing"})
        objects = await Listed.of(
            kube,
            Watched("v1", "Service", tenant_b),
            Watched("discovery.k8s.io/v1", "EndpointSlice", tenant_b),
        )
        p = pipeline(namespace, *targets)
        assert api_waiting(p, objects) == {
            "wait-db": [
                f"service {tenant_b}/private-db: no ready endpoints",
                f"service {tenant_b}/nothing: service does not exist",
            ]
        }
        access = AccessReviews(kube)
        assert api_waiting(p, objects, access) == {
            "wait-db": [
                f"service {tenant_b}/private-db: not checked yet",
                f"service {tenant_b}/nothing: not checked yet",
            ]
        }
        for target in targets:
            name = target["service"].partition("/")[2]
            await access.ask(service_review(namespace, "default", tenant_b, name))
        why = refused(namespace, "default", "services", tenant_b)
        assert api_waiting(p, objects, access) == {
            "wait-db": [
                f"service {tenant_b}/private-db: {why}",
                f"service {tenant_b}/nothing: {why}",
            ]
        }
        # With the account tenant-b granted, private-db is checked; `nothing` stays refused.
        as_reader = pipeline(namespace, *targets, account="reader")
        await settled(access, service_review(namespace, "reader", tenant_b, "private-db"), True)
        await access.ask(service_review(namespace, "reader", tenant_b, "nothing"))
        assert api_waiting(as_reader, objects, access) == {
            "wait-db": [
                f"service {tenant_b}/private-db: no ready endpoints",
                f"service {tenant_b}/nothing: {refused(namespace, 'reader', 'services', tenant_b)}",
            ]
        }
        await access.close()


async def test_a_grant_to_the_tenants_group_counts(
    kubectl: Kubectl, kubeconfig: str, namespace: str, tenant_b: str
) -> None:
    """The review carries the account's groups: a RoleBinding to every ServiceAccount of
    tenant-a (group system:serviceaccounts:<ns>) lets the default account in."""
    async with connected(kubeconfig) as kube:
        access = AccessReviews(kube, refused_ttl=0)
        review = service_review(namespace, "default", tenant_b, "private-db")
        assert not (await access.ask(review)).allowed
        apply(
            kubectl,
            tenant_b,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "tenant-a-all"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-private-db",
                },
                "subjects": [
                    {
                        "kind": "Group",
                        "apiGroup": "rbac.authorization.k8s.io",
                        "name": f"system:serviceaccounts:{namespace}",
                    }
                ],
            },
        )
        assert await settled(access, review, True) == Answer(True)
        await access.close()


async def test_resource_targets_are_reviewed_even_in_kube_system(
    kubeconfig: str, namespace: str
) -> None:
    """`resource` targets of any kind the operator can read: a Pod in kube-system."""
    async with connected(kubeconfig) as kube:
        target = {"resource": {"apiVersion": "v1", "kind": "Pod", "name": "anything",
                               "namespace": "kube-system"}}  # fmt: skip
        p = pipeline(namespace, target)
        access = AccessReviews(kube)
        await access.ask(Review(namespace, "default", "v1", "Pod", "kube-system", "anything"))
        assert api_waiting(p, Listed({}), access) == {
            "wait-db": [
                "Pod anything (Ready): " + refused(namespace, "default", "pods", "kube-system")
            ]
        }
        await access.close()


async def test_with_watched_namespaces_local_reviews_and_unwatched_namespaces(
    kubeconfig: str, namespace: str, tenant_b: str
) -> None:
    async with connected(kubeconfig) as kube:
        both = AccessReviews(kube, namespaces=(namespace, tenant_b), refused_ttl=0)
        reader = service_review(namespace, "reader", tenant_b, "private-db")
        assert await settled(both, reader, True) == Answer(True)
        assert await both.ask(service_review(namespace, "default", tenant_b, "private-db")) == (
            Answer(False, refused(namespace, "default", "services", tenant_b))
        )
        await both.close()
        only_a = AccessReviews(kube, namespaces=(namespace,))
        p = pipeline(namespace, {"service": f"{tenant_b}/private-db"}, account="reader")
        assert api_waiting(p, Listed({}), only_a) == {
            "wait-db": [
                f"service {tenant_b}/private-db: not checked: the operator does not watch "
                f"namespace {tenant_b} (INITPIPELINE_NAMESPACES)"
            ]
        }
        assert only_a.calls == 0
        await only_a.close()
