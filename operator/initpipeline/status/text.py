"""One-line messages for the status: what a step message or condition may hold."""

from __future__ import annotations

import re
from typing import Final

MAX_MESSAGE: Final = 256  # one step message, one waitingOn entry
MAX_CONDITION_MESSAGE: Final = 1024

_RPC_PREFIX: Final = re.compile(r"^rpc error: code = \w+ desc = ")


def one_line(text: object, limit: int = MAX_MESSAGE) -> str:
    """The last non-empty line of `text`, shortened in the middle to `limit` characters.

    gRPC's "rpc error: code = X desc = " prefix (kubelet messages) is dropped; the middle,
    not the end, goes, so the cause at the end stays.
    """
    if not isinstance(text, str):
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = _RPC_PREFIX.sub("", lines[-1])
    if len(line) <= limit:
        return line
    head = (limit - 1) // 3
    tail = limit - 1 - head
    return f"{line[:head]}…{line[-tail:]}"


def shorten(text: str, limit: int = MAX_CONDITION_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def deadline_exceeded(seconds: int | None) -> str:
    """Why a Pod's start-up was stopped (spec.activeDeadlineSeconds; None once removed)."""
    if seconds is None:
        return "start-up not done within spec.activeDeadlineSeconds"
    return f"start-up not done within {seconds}s of the pod's creation (spec.activeDeadlineSeconds)"
