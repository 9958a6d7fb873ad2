"""Reading fields of Kubernetes objects as the API returns them, without trusting their types.

Shared by the pure modules that read objects (status, deps) and by the metrics: one copy of
"find a condition by type" and of Kubernetes' time format.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def as_mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_str(value: object) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def find_condition(status: object, type_: str) -> Mapping[str, Any] | None:
    """The entry of `status.conditions` (of any object, or of our own status) of that type."""
    for condition in as_mapping(status).get("conditions") or ():
        if as_mapping(condition).get("type") == type_:
            return as_mapping(condition)
    return None


def condition_true(status: object, type_: str) -> bool:
    return (find_condition(status, type_) or {}).get("status") == "True"


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with whole seconds and a 'Z', as Kubernetes writes times."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """A Kubernetes timestamp (`2026-11-25T10:00:01Z`) as an aware datetime; None when it is
    missing or not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def seconds_between(start: object, end: object) -> float | None:
    """Seconds from one Kubernetes timestamp (`2026-11-25T10:00:01Z`) to another; None
    when either is missing or not a timestamp."""
    began, ended = parse_time(start), parse_time(end)
    if began is None or ended is None:
        return None
    return (ended - began).total_seconds()
