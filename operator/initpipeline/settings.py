"""Operator settings, read once at start-up from INITPIPELINE_* environment variables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from initpipeline.spec import SHARD_LABEL

PREFIX = "INITPIPELINE_"

# Where a Pod finds its own namespace (the ServiceAccount token volume).
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_LEASE_NAME = "initpipeline-operator"
# A standby waits a retry period times 1 to 1 + this between looks (client-go's JitterFactor),
# so candidates started together do not ask in lockstep.
ELECTION_JITTER = 1.2
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_LABEL_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_VALUES = rf"\(\s*{_LABEL_VALUE}(?:\s*,\s*{_LABEL_VALUE})*\s*\)"
# One requirement on SHARD_LABEL, in the API server's label selector syntax: the operator
# applies it to the Pods as well, which carry only that label of their pipeline's.
_SHARD_SELECTOR = re.compile(
    rf"!?{re.escape(SHARD_LABEL)}"
    rf"|{re.escape(SHARD_LABEL)}\s*(?:==?|!=)\s*{_LABEL_VALUE}"
    rf"|{re.escape(SHARD_LABEL)}\s+(?:in|notin)\s*{_VALUES}"
)

# The musl variant of the busybox image is statically linked, so copyAssets can copy its
# /bin/busybox into any image (the default glibc variant is not).
DEFAULT_STEP_IMAGE = "docker.io/library/busybox:1.36.1-musl"
# renderConfig steps run `initpipeline-render-config` from the operator's own image: by default
# the published image of this version (deploy/base and the chart run the same one).
DEFAULT_RENDER_IMAGE = "ghcr.io/initpipeline/initpipeline:0.1.0"

_Number = TypeVar("_Number", int, float)


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    step_image: str = DEFAULT_STEP_IMAGE
    render_image: str = DEFAULT_RENDER_IMAGE
    # Empty: every namespace (cluster-wide); otherwise only these.
    namespaces: tuple[str, ...] = field(default_factory=tuple)
    # Empty: every InitPipeline; otherwise those this label selector on SHARD_LABEL selects
    # (one operator Deployment per shard, as Flux's --watch-label-selector).
    shard_selector: str = ""
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    metrics_port: int = 9090
    # How often a pipeline is re-checked when nothing happens (dependency timeouts, log reports).
    resync_seconds: float = 10.0
    # Pipelines reconciled at the same time (controller-runtime's MaxConcurrentReconciles).
    workers: int = 4
    # Leader election on a coordination.k8s.io Lease; the defaults are controller-runtime's.
    leader_election: bool = False
    lease_name: str = DEFAULT_LEASE_NAME
    lease_namespace: str = ""
    lease_duration_seconds: int = 15
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0
    # The Pod's name (downward API): the Lease holder's identity starts with it.
    pod_name: str = ""

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
        render_image = get("RENDER_IMAGE", DEFAULT_RENDER_IMAGE)
        if not render_image:
            raise SettingsError(f"{PREFIX}RENDER_IMAGE must not be empty")
        namespaces = tuple(ns for ns in get("NAMESPACES", "").replace(",", " ").split() if ns)
        shard_selector = get("SHARD_SELECTOR", "")
        if shard_selector and not _SHARD_SELECTOR.fullmatch(shard_selector):
            raise SettingsError(
                f"{PREFIX}SHARD_SELECTOR must be one label selector requirement on "
                f"{SHARD_LABEL} (e.g. '{SHARD_LABEL}=shard1', '!{SHARD_LABEL}', "
                f"'{SHARD_LABEL} in (a,b)'), not {shard_selector!r}"
            )
        liveness = get("LIVENESS_ENDPOINT", cls.liveness_endpoint)
        if liveness and not _http_endpoint(liveness):
            raise SettingsError(
                f"{PREFIX}LIVENESS_ENDPOINT must be like http://0.0.0.0:8080/healthz, "
                f"not {liveness!r}"
            )
        # In a Pod (the API server's Service is in the environment) several replicas may run,
        # so elect; `make run` and the in-process tests run one operator and need no Lease.
        election = _flag(env, "LEADER_ELECTION", default="KUBERNETES_SERVICE_HOST" in env)
        lease_name = get("LEASE_NAME", DEFAULT_LEASE_NAME)
        if not _DNS_SUBDOMAIN.fullmatch(lease_name):
            raise SettingsError(
                f"{PREFIX}LEASE_NAME must be a lowercase DNS subdomain, not {lease_name!r}"
            )
        if election and shard_selector and not get("LEASE_NAME", ""):
            # Shards sharing the default Lease would elect one leader among them all.
            raise SettingsError(
                f"{PREFIX}LEASE_NAME must be set, one per shard, with {PREFIX}SHARD_SELECTOR"
            )
        lease_namespace = get("LEASE_NAMESPACE", "") or get("POD_NAMESPACE", "")
        if election and not lease_namespace:
            lease_namespace = _own_namespace()
        duration = _number(env, "LEASE_DURATION_SECONDS", cls.lease_duration_seconds, int)
        deadline = _number(env, "RENEW_DEADLINE_SECONDS", cls.renew_deadline_seconds, float)
        retry = _number(env, "RETRY_PERIOD_SECONDS", cls.retry_period_seconds, float)
        if election:
            _check_election_timing(duration, deadline, retry)
        workers = _number(env, "WORKERS", cls.workers, int)
        if workers < 1:
            raise SettingsError(f"{PREFIX}WORKERS must be at least 1")
        return cls(
            step_image=step_image,
            render_image=render_image,
            namespaces=namespaces,
            shard_selector=shard_selector,
            log_format=log_format,  # type: ignore[arg-type]  # checked above
            log_level=get("LOG_LEVEL", "INFO").upper(),
            liveness_endpoint=liveness,
            metrics_port=_number(env, "METRICS_PORT", cls.metrics_port, int),
            resync_seconds=_number(env, "RESYNC_SECONDS", cls.resync_seconds, float),
            workers=workers,
            leader_election=election,
            lease_name=lease_name,
            lease_namespace=lease_namespace,
            lease_duration_seconds=duration,
            renew_deadline_seconds=deadline,
            retry_period_seconds=retry,
            pod_name=get("POD_NAME", ""),
        )


def _http_endpoint(url: str) -> bool:
    parts = urlsplit(url)
    try:
        return parts.scheme == "http" and bool(parts.hostname) and parts.port is not None
    except ValueError:  # a port that is not a number
        return False


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    text = env.get(PREFIX + name, "").strip().lower()
    if not text:
        return default
    if text not in _TRUE + _FALSE:
        raise SettingsError(f"{PREFIX}{name} must be 'true' or 'false', not {text!r}")
    return text in _TRUE


def _own_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        raise SettingsError(
            f"{PREFIX}LEASE_NAMESPACE (or {PREFIX}POD_NAMESPACE) must be set for leader "
            f"election outside a Pod ({SERVICE_ACCOUNT_NAMESPACE} is missing)"
        ) from None


def _check_election_timing(duration: int, deadline: float, retry: float) -> None:
    """client-go's rules: a leader gives up (renew deadline) before its Lease expires for the
    others (lease duration), and tries to renew more than once within the deadline."""
    if duration < 1:
        raise SettingsError(f"{PREFIX}LEASE_DURATION_SECONDS must be at least 1")
    if retry <= 0:
        raise SettingsError(f"{PREFIX}RETRY_PERIOD_SECONDS must be positive")
    if not deadline < duration:
        raise SettingsError(
            f"{PREFIX}RENEW_DEADLINE_SECONDS ({deadline:g}) must be less than "
            f"{PREFIX}LEASE_DURATION_SECONDS ({duration})"
        )
    if not deadline > ELECTION_JITTER * retry:
        raise SettingsError(
            f"{PREFIX}RENEW_DEADLINE_SECONDS ({deadline:g}) must be more than "
            f"{ELECTION_JITTER:g} times {PREFIX}RETRY_PERIOD_SECONDS ({retry:g})"
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
