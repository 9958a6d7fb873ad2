"""`initpipeline run` (the operator) and `initpipeline render -f FILE` (offline Pod manifests)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from initpipeline import health
from initpipeline.render import render_pods
from initpipeline.settings import Settings, SettingsError
from initpipeline.spec import API_VERSION, KIND, InvalidSpec, parse_pipeline


def render(path: str, step_image: str) -> str:
    """YAML of the Pods the operator would create for every InitPipeline in the file (none
    for a suspended one)."""
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
    pods: list[dict[str, Any]] = [
        pod for p in pipelines if not p.spec.suspend for pod in render_pods(p, step_image)
    ]
    return yaml.safe_dump_all(pods, sort_keys=False)


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="initpipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the operator (settings from INITPIPELINE_* variables)")
    render_parser = commands.add_parser("render", help="print the Pods for an InitPipeline file")
    render_parser.add_argument("-f", "--filename", required=True, help="YAML file, or - for stdin")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "render":
            sys.stdout.write(render(args.filename, settings.step_image))
        else:
            run(settings)
    except (InvalidSpec, SettingsError, OSError, yaml.YAMLError) as error:
        print(f"initpipeline: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
