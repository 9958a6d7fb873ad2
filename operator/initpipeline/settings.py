"""Operator settings, read once at start-up from INITPIPELINE_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

PREFIX = "INITPIPELINE_"

# The musl variant of the busybox image is statically linked, so copyAssets can copy its
# /bin/busybox into any image (the default glibc variant is not).
DEFAULT_STEP_IMAGE = "docker.io/library/busybox:1.36.1-musl"

_Number = TypeVar("_Number", int, float)


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    step_image: str = DEFAULT_STEP_IMAGE
    # Empty: every namespace (cluster-wide); otherwise only these.
    namespaces: tuple[str, ...] = field(default_factory=tuple)
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    metrics_port: int = 9090
    # How often a pipeline is re-checked when nothing happens (dependency timeouts, log reports).
    resync_seconds: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str) -> str:
            return env.get(PREFIX + name, default).strip()

        log_format = get("LOG_FORMAT", "text")
        if log_format not in ("text", "json"):
            raise SettingsError(f"{PREFIX}LOG_FORMAT must be 'text' or 'json', not {log_format!r}")
        step_image = get("STEP_IMAGE", DEFAULT_STEP_IMAGE)
        if not step_image:
            raise SettingsError(f"{PREFIX}STEP_IMAGE must not be empty")
        namespaces = tuple(ns for ns in get("NAMESPACES", "").replace(",", " ").split() if ns)
        return cls(
            step_image=step_image,
            namespaces=namespaces,
            log_format=log_format,  # type: ignore[arg-type]  # checked above
            log_level=get("LOG_LEVEL", "INFO").upper(),
            liveness_endpoint=get("LIVENESS_ENDPOINT", cls.liveness_endpoint),
            metrics_port=_number(env, "METRICS_PORT", cls.metrics_port, int),
            resync_seconds=_number(env, "RESYNC_SECONDS", cls.resync_seconds, float),
        )


def _number(env: Mapping[str, str], name: str, default: _Number, kind: type[_Number]) -> _Number:
    text = env.get(PREFIX + name)
    if text is None:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be a number, not {text!r}") from None
    if value < 0:
        raise SettingsError(f"{PREFIX}{name} must not be negative")
    return value
