"""`initpipeline run` (the operator), `initpipeline render -f FILE` (offline Pod manifests),
`initpipeline describe NAME [--watch]` (one pipeline's steps on a time axis) and
`initpipeline graph` (what the namespace's pipelines wait on). Also installed as the kubectl
plugin `kubectl-initpipeline` (`kubectl initpipeline describe NAME`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from initpipeline import connect, graph, health
from initpipeline.controller import PIPELINES
from initpipeline.describe import describe
from initpipeline.kube import EVENTS, PODS, ApiError, Kube, Obj, WatchExpired
from initpipeline.names import PIPELINE_LABEL
from initpipeline.render import mounts_assets, render_jobs, render_pods
from initpipeline.settings import DEFAULT_RENDER_IMAGE, Settings, SettingsError
from initpipeline.spec import API_VERSION, KIND, InvalidSpec, parse_pipeline


def render(
    path: str,
    step_image: str,
    render_image: str = DEFAULT_RENDER_IMAGE,
    image_volumes: bool = False,
) -> str:
    """YAML of the Pods the operator would create for every InitPipeline in the file (none
    for a suspended one), each pipeline's Pods followed by the Jobs of its `once` steps,
    after a comment naming how each copyAssets step gets its files (`image_volumes`: as on
    a cluster whose nodes support image volumes)."""
    with open(sys.stdin.fileno() if path == "-" else path, encoding="utf-8") as stream:
        documents = [doc for doc in yaml.safe_load_all(stream) if doc]
    pipelines = [
        parse_pipeline(doc)
        for doc in documents
        if doc.get("apiVersion") == API_VERSION and doc.get("kind") == KIND
    ]
    if not pipelines:
        raise InvalidSpec("kind", f"no {KIND} ({API_VERSION}) found in {path}")
    # A suspended pipeline has no Pods: the operator deletes them (spec.suspend).
    objects: list[dict[str, Any]] = [
        obj
        for p in pipelines
        if not p.spec.suspend
        for obj in (
            *render_pods(p, step_image, render_image=render_image, image_volumes=image_volumes),
            *render_jobs(p),
        )
    ]
    modes = [
        f"# {p.name}: copyAssets step {step.name}: "
        f"{'Mount' if mounts_assets(p.spec, step, image_volumes) else 'Copy'} "
        f"(mode {step.copy_assets.mode})\n"
        for p in pipelines
        for step in p.spec.steps
        if step.copy_assets is not None
    ]
    return "".join(modes) + yaml.safe_dump_all(objects, sort_keys=False)


def run(settings: Settings) -> None:
    import kopf

    from initpipeline import handlers  # noqa: F401  (importing registers the handlers)

    kopf.configure(
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL
    )
    logging.getLogger().setLevel(settings.log_level)
    if settings.log_level != "DEBUG":
        # Otherwise one line per API request and per handled watch event.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(_operate(settings))


async def _operate(settings: Settings) -> None:
    import kopf

    # Our liveness endpoint, not Kopf's: Kopf serves its own only after the startup handlers,
    # and a standby replica stays in the startup handler until it gets the Lease.
    async with health.serving(settings.liveness_endpoint):
        await kopf.operator(clusterwide=not settings.namespaces, namespaces=settings.namespaces)


# Clears the terminal before a redraw (cursor home, erase display).
CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _colour() -> bool:
    """Colour only on a terminal, and never under NO_COLOR (no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _connect(namespace: str | None) -> tuple[Kube, str]:
    """A client from the kubeconfig, and the namespace: given, else the context's."""
    config = connect.load()
    return Kube(connect.clients(config)), namespace or config.namespace


async def _read(kube: Kube, namespace: str, name: str) -> tuple[Obj, list[Obj], list[Obj]]:
    """The pipeline, its Pods, and the Events about any of them (read-only calls)."""
    body = await kube.get(PIPELINES.path(namespace, name))
    if body is None:
        raise LookupError(f"initpipeline {namespace}/{name} not found")
    pods, _ = await kube.list(PODS.path(namespace), label_selector=f"{PIPELINE_LABEL}={name}")
    uids = [obj["metadata"]["uid"] for obj in (body, *pods)]
    found = await asyncio.gather(
        *(
            kube.list(EVENTS.path(namespace), field_selector=f"involvedObject.uid={uid}")
            for uid in uids
        )
    )
    return body, pods, [event for items, _ in found for event in items]


async def _describe(namespace: str | None, name: str, watch: bool) -> None:
    kube, namespace = _connect(namespace)
    colour = _colour()

    def draw(seen: tuple[Obj, list[Obj], list[Obj]], again: bool) -> None:
        lines = describe(*seen, datetime.now(UTC), colour=colour)
        prefix = (CLEAR_SCREEN if colour else "\n") if again else ""
        sys.stdout.write(prefix + "\n".join(lines) + "\n")
        sys.stdout.flush()

    try:
        seen = await _read(kube, namespace, name)
        draw(seen, again=False)
        while watch:  # a watch on this one object; a new one when the server ends it
            version = seen[0]["metadata"]["resourceVersion"]
            try:
                async for kind, obj in kube.watch(
                    PIPELINES.path(namespace), version, field_selector=f"metadata.name={name}"
                ):
                    if kind == "DELETED":
                        print(f"initpipeline {namespace}/{name} was deleted")
                        return
                    changed = obj.get("status") != seen[0].get("status")
                    seen = await _read(kube, namespace, name) if changed else (obj, *seen[1:])
                    if changed:
                        draw(seen, again=True)
            except WatchExpired:
                seen = await _read(kube, namespace, name)
                draw(seen, again=True)
    finally:
        await kube.close()


async def _graph(namespace: str | None, form: str) -> str:
    kube, namespace = _connect(namespace)
    try:
        pipelines, _ = await kube.list(PIPELINES.path(namespace))
    finally:
        await kube.close()
    return graph.FORMATS[form](graph.build_graph(pipelines))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="initpipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the operator (settings from INITPIPELINE_* variables)")
    render_parser = commands.add_parser("render", help="print the Pods for an InitPipeline file")
    render_parser.add_argument("-f", "--filename", required=True, help="YAML file, or - for stdin")
    render_parser.add_argument(
        "--image-volumes",
        action="store_true",
        help="render for a cluster whose nodes support image volumes (copyAssets Auto mounts)",
    )
    describe_parser = commands.add_parser(
        "describe", help="one pipeline: steps on a time axis, waits, conditions, events"
    )
    describe_parser.add_argument("name")
    describe_parser.add_argument("--watch", "-w", action="store_true", help="redraw on changes")
    graph_parser = commands.add_parser("graph", help="what the namespace's pipelines wait on")
    graph_parser.add_argument("--format", choices=sorted(graph.FORMATS), default="text")
    for sub in (describe_parser, graph_parser):
        sub.add_argument("-n", "--namespace", help="default: the kubeconfig context's")
    args = parser.parse_args(argv)
    try:
        if args.command == "describe":
            asyncio.run(_describe(args.namespace, args.name, args.watch))
        elif args.command == "graph":
            sys.stdout.write(asyncio.run(_graph(args.namespace, args.format)))
        elif args.command == "render":
            settings = Settings.from_env()
            sys.stdout.write(
                render(
                    args.filename, settings.step_image, settings.render_image, args.image_volumes
                )
            )
        else:
            run(Settings.from_env())
    except KeyboardInterrupt:
        return 0  # Ctrl-C ends a --watch: nothing went wrong
    except (
        ApiError,
        LookupError,
        connect.ConfigurationError,
        InvalidSpec,
        SettingsError,
        OSError,
        yaml.YAMLError,
    ) as error:
        print(f"initpipeline: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
