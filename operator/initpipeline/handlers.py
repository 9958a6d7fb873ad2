"""Kopf glue: the operator's start (behind the Lease when electing) and stop.

Kopf runs the process (signals, logging, start-up and clean-up handlers, the gate that keeps a
standby from reading or writing anything); the InitPipelines and their Pods are followed by
the Controller's own informers, which forget what a relist no longer shows (Kopf's watches
and indexes are not replaced on a relist, so an object deleted during a watch gap would stay
in them). See the README's design decisions."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

import kopf

from initpipeline import metrics
from initpipeline.controller import Controller
from initpipeline.kube import FencedKube, Kube
from initpipeline.leader import Elector
from initpipeline.settings import Settings
from initpipeline.spec import GROUP

log = logging.getLogger(__name__)


def configure(settings: kopf.OperatorSettings) -> None:
    """Kopf's own bookkeeping under the project's prefix, and watches that cannot stall."""
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Kopf watches nothing of ours (the Controller's informers do), but should a handler
    # ever be added: without these a silently dropped watch is never noticed (kopf#1120).
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.WARNING
    settings.peering.standalone = True
    # Kopf needs no access to CRDs or namespaces: the watched namespaces are fixed at start-up.
    settings.scanning.disabled = True


def exit_on_lost_lease(reason: str) -> None:
    """Stop at once, reconciles in flight included: another replica may take over as soon as
    the Lease expires. The kubelet restarts the container, as a standby."""
    log.critical("Exiting: leadership lost (%s)", reason)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(1)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure(settings)
    operator_settings = Settings.from_env()
    if operator_settings.metrics_port:  # a standby too: it says it is one
        metrics.serve(operator_settings.metrics_port)
    elector: Elector | None = None
    if operator_settings.leader_election:
        if "elector" not in memo:  # kept across Kopf's retries of this handler
            memo.elector = Elector(Kube.from_environment(), operator_settings, exit_on_lost_lease)
        elector = memo.elector
    try:
        if elector is None:
            metrics.set_leader(True)
            kube = Kube.from_environment()
        else:
            # The gate: a standby waits here. The Controller's informers and workers start
            # only below, and Kopf starts nothing of its own (not even its event poster)
            # before every startup handler has returned: a standby reads no pipeline and
            # writes nothing.
            await elector.acquire()
            kube = FencedKube.around(Kube.from_environment(), elector.may_write)
        memo.controller = await Controller.start(kube, operator_settings)
    except asyncio.CancelledError:
        # SIGTERM before the start-up finished: Kopf cancels this handler and runs no cleanup.
        if elector is not None:
            await elector.close()
        raise


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.controller.close()
    # Released only now that no reconcile runs: a standby may take over at once.
    if "elector" in memo:
        await memo.elector.close()
