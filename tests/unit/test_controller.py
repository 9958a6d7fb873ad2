"""The controller keeps the newest InitPipeline it has seen, whichever way it arrived."""

from __future__ import annotations

from typing import Any

import pytest

from initpipeline.controller import Controller
from initpipeline.settings import Settings

pytestmark = pytest.mark.unit


def body(version: str, progress: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": "web", "resourceVersion": version},
        "status": {"progress": progress},
    }


def controller() -> Controller:
    return Controller(kube=None, settings=Settings(), unsupported_cluster=None)  # type: ignore[arg-type]


def test_an_older_watch_event_does_not_replace_our_newer_status_patch() -> None:
    ctl = controller()
    ctl._remember(("shop", "web"), body("120", "1/2"))  # the answer to our status patch
    ctl._remember(("shop", "web"), body("117", "0/2"))  # a watch event from before it
    assert ctl._bodies[("shop", "web")]["status"]["progress"] == "1/2"
    ctl._remember(("shop", "web"), body("121", "2/2"))
    assert ctl._bodies[("shop", "web")]["status"]["progress"] == "2/2"


def test_versions_that_are_not_numbers_are_taken_as_they_come() -> None:
    ctl = controller()
    ctl._remember(("shop", "web"), body("120", "1/2"))
    ctl._remember(("shop", "web"), body("opaque", "0/2"))
    assert ctl._bodies[("shop", "web")]["status"]["progress"] == "0/2"
