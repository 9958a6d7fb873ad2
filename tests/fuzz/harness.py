"""What the API server, `initpipeline render -f` and the operator say about generated documents.

`create_all` POSTs documents to the API server as `kubectl create`/`apply` does (strict field
validation: an unknown field is refused, not pruned), a few at a time; `render_verdict` runs
the CLI's `render` on one document in this process, as `initpipeline render -f FILE` does.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml

from initpipeline import cli, connect
from initpipeline.settings import DEFAULT_STEP_IMAGE, SettingsError
from initpipeline.spec import InvalidSpec

# Documents with more replicas than this are rendered by the CLI as a process, with a limit.
MANY_REPLICAS = 50
RENDER_TIMEOUT = 30
TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
RETRY_SECONDS = 120.0
PLURAL_PATH = "/apis/initpipeline.io/v1alpha1/namespaces/{namespace}/initpipelines"
# A field path in a message: spec.steps[0].name, .spec.replicas, metadata.name, spec ...
# or a top-level unknown field (`strict decoding error: unknown field "Name"`).
FIELD_PATH = re.compile(
    r"(?<![A-Za-z0-9])\.?(spec|metadata)(?![A-Za-z0-9])|unknown field \"[^\"]+\""
)


def names_a_field(message: str) -> bool:
    return FIELD_PATH.search(message) is not None


@dataclass(frozen=True)
class Created:
    """The API server's answer to one create."""

    status: int  # HTTP status: 201 created, 4xx refused
    message: str  # the refusal's message ("" when created)
    body: dict[str, Any] | None = None  # the object as stored

    @property
    def accepted(self) -> bool:
        return self.status in (200, 201)


async def _send(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    """One request, sent again while the API server is away or busy (other tiers restart it
    and throttle it): a lost connection, 429, 5xx; for up to RETRY_SECONDS."""
    delay, waited = 0.5, 0.0
    while True:
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.TransportError:
            if waited > RETRY_SECONDS:
                raise
        else:
            if response.status_code not in TRANSIENT or waited > RETRY_SECONDS:
                return response
        await asyncio.sleep(delay)  # backoff between attempts, not a synchronization
        waited += delay
        delay = min(delay * 2, 5.0)


async def _create(
    client: Any,
    namespace: str,
    document: dict[str, Any],
    limit: asyncio.Semaphore,
    dry_run: bool,
) -> Created:
    params = {"fieldValidation": "Strict", "fieldManager": "initpipeline-fuzz"}
    if dry_run:
        params["dryRun"] = "All"
    async with limit:
        response = await _send(
            client,
            "POST",
            PLURAL_PATH.format(namespace=namespace),
            params=params,
            content=json.dumps(document),
            headers={"Content-Type": "application/json"},
        )
    try:
        answer = response.json()
    except ValueError:
        answer = {"message": response.text}
    if response.status_code in (200, 201):
        return Created(response.status_code, "", answer)
    return Created(response.status_code, str(answer.get("message", answer)))


async def _create_all(
    documents: Sequence[tuple[str, dict[str, Any]]], parallel: int, dry_run: bool
) -> list[Created]:
    clients = connect.clients(connect.load())
    limit = asyncio.Semaphore(parallel)
    try:
        return await asyncio.gather(
            *(_create(clients.requests, ns, doc, limit, dry_run) for ns, doc in documents)
        )
    finally:
        await clients.aclose()


def create_all(
    documents: Sequence[tuple[str, dict[str, Any]]], parallel: int = 4, dry_run: bool = False
) -> list[Created]:
    """POST each (namespace, document); KUBECONFIG names the cluster. `dry_run`: validated
    and admitted, not stored."""
    return asyncio.run(_create_all(documents, parallel, dry_run))


async def _list(path: str) -> list[dict[str, Any]]:
    clients = connect.clients(connect.load())
    try:
        response = await _send(clients.requests, "GET", path)
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items
    finally:
        await clients.aclose()


def list_objects(path: str) -> list[dict[str, Any]]:
    """GET a list path (e.g. /api/v1/namespaces/ns/pods): its items."""
    return asyncio.run(_list(path))


@dataclass(frozen=True)
class Rendered:
    """What `initpipeline render -f` says about one document."""

    error: str | None  # its one-line error ("initpipeline: <field>: <message>"), None: rendered
    crash: str | None = None  # a traceback: anything but the CLI's expected errors
    pods: int = 0


def _render_process(path: Path) -> Rendered:
    """The CLI as a process, with a time limit: it renders `replicas` Pods, suspended or not."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "initpipeline.cli", "render", "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=RENDER_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return Rendered("hang", f"render -f did not finish in {RENDER_TIMEOUT}s")
    if done.returncode == 0:
        return Rendered(None, pods=done.stdout.count("\nkind: Pod\n"))
    if "Traceback" in done.stderr:
        return Rendered("crash", done.stderr)
    return Rendered(done.stderr.strip())


def render_verdict(document: dict[str, Any], workdir: Path | None = None) -> Rendered:
    """`initpipeline render -f FILE` on a file holding only this document, in this process:
    `cli.render`, with the errors `cli.main` turns into its exit status 1."""
    with tempfile.NamedTemporaryFile(
        "w", suffix=".yaml", dir=workdir, encoding="utf-8", delete=False
    ) as out:
        yaml.safe_dump(document, out, sort_keys=False)
    path = Path(out.name)
    spec = document.get("spec")
    replicas = spec.get("replicas") if isinstance(spec, dict) else None
    if isinstance(replicas, int) and replicas > MANY_REPLICAS:
        try:
            return _render_process(path)
        finally:
            path.unlink()
    try:
        text = cli.render(str(path), DEFAULT_STEP_IMAGE)
    except (InvalidSpec, SettingsError, OSError, yaml.YAMLError) as error:
        return Rendered(f"initpipeline: {error}")
    except Exception:
        return Rendered("crash", traceback.format_exc())
    finally:
        path.unlink()
    return Rendered(None, pods=len([d for d in yaml.safe_load_all(text) if d]))
