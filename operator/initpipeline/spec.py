"""The InitPipeline spec, parsed once into frozen models.

The CRD schema and its CEL rules refuse most bad input at `kubectl apply` time; these models
repeat the checks that matter for rendering so that `initpipeline render -f` (offline) and a
CR that slipped past an older CRD fail the same way: with one message naming the field.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from initpipeline import renderconfig

GROUP = "initpipeline.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InitPipeline"
PLURAL = "initpipelines"

# Step names become container names; generated helper containers use this prefix.
RESERVED_PREFIX = "initpipeline-"
# The label that assigns an InitPipeline to a shard: the operator Deployment whose
# INITPIPELINE_SHARD_SELECTOR selects it (the operator copies it onto the Pods).
SHARD_LABEL = f"{GROUP}/shard"

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# The CRD's patterns (crds/initpipelines.initpipeline.io.yaml). The API server's regular
# expressions (Go, RE2) end at `$` only at the end of the text, and their \s is ASCII: these
# are matched with `_matches`, which reads them the same way.
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_OBJECT_REF = rf"^({_LABEL}/)?{_LABEL}$"
SHA256_PATTERN = "^[0-9a-fA-F]{64}$"
_HOST_PORT = r"^([a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?|\[[0-9a-fA-F:.]+\]):[0-9]{1,5}$"
_API_VERSION = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?$"
_KIND = r"^[A-Z][A-Za-z0-9]*$"
_OBJECT_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# metadata.name of the InitPipeline: a DNS-1123 subdomain, as the API server requires.
_SUBDOMAIN = rf"^{_LABEL}(\.{_LABEL})*$"
# ... of at most 63 characters: it is the value of the Pods' label initpipeline.io/pipeline
# (names.PIPELINE_LABEL), and label values are at most 63 characters. The CRD's rule on
# metadata.name gives the same message.
MAX_PIPELINE_NAME = 63
PIPELINE_NAME_TOO_LONG = (
    f"must be at most {MAX_PIPELINE_NAME} characters "
    f"(it is the value of the Pods' label {GROUP}/pipeline)"
)
INT32_MAX = 2**31 - 1
# Hex digits of a spec revision (`PipelineSpec.revision`).
REVISION_LENGTH = 10


def _go_regex(pattern: str) -> re.Pattern[str]:
    """`pattern` as RE2 reads it: `$` is the end of the text (Python's also matches before a
    final newline), `\\s` (inside a class) and `\\S` are ASCII whitespace and its complement."""
    translated = (
        pattern.replace(r"\S", r"[^\t\n\f\r ]").replace(r"\s", r"\t\n\f\r ").replace("$", r"\Z")
    )
    return re.compile(translated)


def _matches(pattern: str, value: str) -> bool:
    return _go_regex(pattern).match(value) is not None


def _integer(value: Any) -> Any:
    """A JSON integer, as the CRD's `type: integer`: not a boolean, not a string ("5")."""
    if isinstance(value, bool | str):
        raise ValueError("must be an integer")
    return value


def _boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be a boolean (true or false)")
    return value


def _whole(value: Any) -> Any:
    """An integer written as one (the scale subresource's replicas refuses 2.0)."""
    if isinstance(value, bool | str | float):
        raise ValueError("must be an integer")
    return value


Integer = Annotated[int, BeforeValidator(_integer)]
Boolean = Annotated[bool, BeforeValidator(_boolean)]


class InvalidSpec(ValueError):
    """A spec that cannot be rendered; `field` is the path a user must fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_absent(cls, data: Any) -> Any:
        """A field set to null is left out, as the API server prunes it (the schema's fields
        are not nullable)."""
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


def _dns_label(value: str) -> str:
    if len(value) > 63 or not DNS_LABEL.fullmatch(value):
        raise ValueError(f"{value!r} is not a DNS-1123 label (lower case, digits, '-')")
    return value


def _not_reserved(value: str) -> str:
    if value.startswith(RESERVED_PREFIX):
        raise ValueError(f"names starting with {RESERVED_PREFIX!r} are reserved")
    return value


def _must_match(pattern: str, must: str) -> Callable[[str | None], str | None]:
    """A field validator: the value (unless unset) matches `pattern` (as the API server
    reads it), else "'<value>' <must>"."""
    compiled = _go_regex(pattern)

    def check(value: str | None) -> str | None:
        if value is not None and not compiled.match(value):
            raise ValueError(f"{value!r} {must}")
        return value

    return check


_DOTDOT = re.compile(r"(^|/)\.\.(/|\Z)")


def _relative(value: str | None) -> str | None:
    """The CRD's rule: not starting with '/', no '..' component."""
    if value is not None and (value.startswith("/") or _DOTDOT.search(value)):
        raise ValueError(f"{value!r} must be a relative path without '..'")
    return value


_url = _must_match(r"^https?://[^/\s]+", "must be an http:// or https:// URL")
_absolute = _must_match(r"^/", "must be an absolute path")


class ObjectRef(_Model):
    """`[namespace/]name` of an object checked through the Kubernetes API."""

    namespace: str | None = None
    name: str

    @classmethod
    def parse(cls, text: str, default_namespace: str | None) -> ObjectRef:
        namespace, _, name = text.rpartition("/")
        return cls(namespace=namespace or default_namespace, name=name)

    @property
    def host(self) -> str:
        """The Service's DNS name from inside a Pod: `name`, or `name.namespace.svc`."""
        return f"{self.name}.{self.namespace}.svc" if self.namespace else self.name

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class ResourceTarget(_Model):
    api_version: str = Field(alias="apiVersion", min_length=1, max_length=316)
    kind: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(default=None, max_length=63)
    condition: str = Field(default="Ready", min_length=1, max_length=316)

    _api_version = field_validator("api_version")(
        _must_match(_API_VERSION, "must be an API version such as v1 or cert-manager.io/v1")
    )
    _kind = field_validator("kind")(_must_match(_KIND, "must be a kind such as Certificate"))
    _name = field_validator("name")(_must_match(_OBJECT_NAME, "must be an object name"))
    _namespace = field_validator("namespace")(_must_match(f"^{_LABEL}$", "must be a namespace"))


class TargetKind(enum.StrEnum):
    SERVICE = "service"
    TCP = "tcp"
    HTTP = "http"
    DNS = "dns"
    FILE = "file"
    JOB = "job"
    RESOURCE = "resource"
    COMMAND = "command"


# Targets the operator checks through the API; the Pod only waits for its signal.
API_TARGETS = frozenset({TargetKind.SERVICE, TargetKind.JOB, TargetKind.RESOURCE})


class Target(_Model):
    """One condition of a waitFor step; exactly one kind is set."""

    service: str | None = Field(default=None, max_length=127)
    port: Integer | None = Field(default=None, ge=1, le=65535)
    tcp: str | None = Field(default=None, max_length=261)
    http: str | None = Field(default=None, max_length=2048)
    expect_status: Integer | None = Field(default=None, alias="expectStatus", ge=100, le=599)
    body_contains: str | None = Field(default=None, alias="bodyContains", max_length=1024)
    dns: str | None = Field(default=None, max_length=253)
    file: str | None = Field(default=None, max_length=1024)
    job: str | None = Field(default=None, max_length=127)
    resource: ResourceTarget | None = None
    command: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Target:
        kinds = [kind for kind in TargetKind if getattr(self, kind.value) is not None]
        if len(kinds) != 1:
            names = ", ".join(kind.value for kind in TargetKind)
            raise ValueError(f"a target needs exactly one of {names}")
        kind = kinds[0]
        if self.port is not None and kind is not TargetKind.SERVICE:
            raise ValueError("port is only allowed with service")
        if kind is not TargetKind.HTTP and (
            self.expect_status is not None or self.body_contains is not None
        ):
            raise ValueError("expectStatus and bodyContains are only allowed with http")
        return self

    _object_ref = field_validator("service", "job")(
        _must_match(_OBJECT_REF, "must be [namespace/]name")
    )
    _http = field_validator("http")(_url)
    _file = field_validator("file")(_absolute)

    @field_validator("tcp")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            port = int(value.rpartition(":")[2]) if _matches(_HOST_PORT, value) else 0
            if not 1 <= port <= 65535:
                raise ValueError(f"{value!r} must be host:port with a port from 1 to 65535")
        return value

    @field_validator("command")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("command needs at least one word")
        return value

    @property
    def kind(self) -> TargetKind:
        return next(kind for kind in TargetKind if getattr(self, kind.value) is not None)

    @property
    def checked_by_operator(self) -> bool:
        return self.kind in API_TARGETS

    def describe(self) -> str:
        """The short label users see in waitingOn and messages, e.g. `tcp mysql:3306`."""
        kind = self.kind
        if kind is TargetKind.RESOURCE:
            assert self.resource is not None
            return f"{self.resource.kind} {self.resource.name} ({self.resource.condition})"
        if kind is TargetKind.COMMAND:
            assert self.command is not None
            return "command " + " ".join(self.command)
        label = f"{kind.value} {getattr(self, kind.value)}"
        return f"{label} port {self.port}" if self.port else label


class VolumeMount(_Model):
    name: str
    mount_path: str = Field(alias="mountPath", min_length=1, max_length=256)
    read_only: Boolean | None = Field(default=None, alias="readOnly")
    sub_path: str | None = Field(default=None, alias="subPath", max_length=1024)

    _name = field_validator("name")(_dns_label)
    _mount_path = field_validator("mount_path")(_absolute)
    _sub_path = field_validator("sub_path")(_relative)

    def manifest(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


def _a_file(value: str) -> str:
    if value.endswith("/"):
        raise ValueError(f"{value!r} must be a file path, without a trailing '/'")
    return value


class Download(_Model):
    url: str = Field(max_length=2048)
    volume: str
    path: str = Field(min_length=1, max_length=1024)
    sha256: str | None = None  # hex digest the file must have (stored in lower case)

    _volume = field_validator("volume")(_dns_label)
    _volume_reserved = field_validator("volume")(_not_reserved)
    _path = field_validator("path")(_relative)
    _path_file = field_validator("path")(_a_file)

    _url_check = field_validator("url")(_url)
    _sha256_check = field_validator("sha256")(
        _must_match(SHA256_PATTERN, "must be a sha256 digest: 64 hexadecimal digits")
    )

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None


class AssetsMode(enum.StrEnum):
    """How a copyAssets step puts the image's files in place (`copyAssets.mode`)."""

    COPY = "Copy"  # the assets image runs and copies them into the volume
    MOUNT = "Mount"  # an image volume (subPath `from`) is mounted read-only, nothing runs
    AUTO = "Auto"  # Mount where the cluster and every node support image volumes, else Copy


class CopyAssets(_Model):
    image: str = Field(min_length=1)
    from_: str = Field(alias="from", min_length=1, max_length=1024)
    volume: str
    path: str = Field(default="", max_length=1024)
    mode: AssetsMode = AssetsMode.AUTO

    def mounted(self, image_volumes: bool) -> bool:
        """Whether this step mounts its image (Mount, or Auto where `image_volumes`: the
        cluster and its nodes support image volumes)."""
        return self.mode is AssetsMode.MOUNT or (self.mode is AssetsMode.AUTO and image_volumes)

    _volume = field_validator("volume")(_dns_label)
    _volume_reserved = field_validator("volume")(_not_reserved)
    _from = field_validator("from_")(_absolute)
    _path = field_validator("path")(_relative)


class PrepareVolume(_Model):
    volume: str
    path: str = Field(default="", max_length=1024)
    mode: str | None = None
    owner: str | None = Field(default=None, max_length=21)

    _volume = field_validator("volume")(_dns_label)
    _volume_reserved = field_validator("volume")(_not_reserved)

    _path = field_validator("path")(_relative)
    _mode = field_validator("mode")(
        _must_match(r"^0?[0-7]{3}$", 'must be an octal mode such as "0750"')
    )
    _owner = field_validator("owner")(
        _must_match(r"^[0-9]+(:[0-9]+)?$", "must be uid or uid:gid (numbers)")
    )


# The Pod fields an env variable may take from the downward API (Kubernetes' list for env).
_FIELD_PATH = (
    r"^(metadata\.(name|namespace|uid|labels\['[^']+'\]|annotations\['[^']+'\])"
    r"|spec\.(nodeName|serviceAccountName)|status\.(hostIP|hostIPs|podIP|podIPs))$"
)
_KEY = r"^[-._a-zA-Z0-9]+$"
# An inline template reaches the container in one environment variable: Linux takes at most
# 128 KiB per variable, and every `$` is doubled on the way (see `renderconfig`).
MAX_TEMPLATE = 65536
MAX_VARIABLES = 64


class ConfigMapKey(_Model):
    """A key of a ConfigMap in the pipeline's namespace."""

    name: str = Field(min_length=1, max_length=253)
    key: str = Field(min_length=1, max_length=253)

    _name = field_validator("name")(_must_match(_OBJECT_NAME, "must be an object name"))
    _key = field_validator("key")(
        _must_match(_KEY, "must be a ConfigMap or Secret key (letters, digits, '-', '_', '.')")
    )


class OptionalKey(ConfigMapKey):
    """A key of a ConfigMap or Secret; `optional`: its absence leaves the variable unset."""

    optional: Boolean | None = None


class FieldRef(_Model):
    field_path: str = Field(alias="fieldPath", max_length=316)
    api_version: Literal["v1"] | None = Field(default=None, alias="apiVersion")

    _field_path = field_validator("field_path")(
        _must_match(
            _FIELD_PATH,
            "must be one of metadata.name, metadata.namespace, metadata.uid, "
            "metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, "
            "spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, status.podIPs",
        )
    )


class ValueFrom(_Model):
    """Where Kubernetes takes a variable's value from (an EnvVarSource): the kubelet resolves
    it when it starts the container, so the operator never reads a Secret."""

    field_ref: FieldRef | None = Field(default=None, alias="fieldRef")
    config_map_key_ref: OptionalKey | None = Field(default=None, alias="configMapKeyRef")
    secret_key_ref: OptionalKey | None = Field(default=None, alias="secretKeyRef")

    @model_validator(mode="after")
    def _one_source(self) -> ValueFrom:
        sources = (self.field_ref, self.config_map_key_ref, self.secret_key_ref)
        if sum(source is not None for source in sources) != 1:
            raise ValueError(
                "valueFrom needs exactly one of fieldRef, configMapKeyRef, secretKeyRef"
            )
        return self


class Variable(_Model):
    """One template variable, shaped like a container's env entry."""

    name: str = Field(min_length=1, max_length=128)
    value: str | None = None
    value_from: ValueFrom | None = Field(default=None, alias="valueFrom")

    _name = field_validator("name")(
        _must_match(
            renderconfig.NAME_PATTERN,
            "must be a variable name: letters, digits and _, not starting with a digit",
        )
    )

    @model_validator(mode="after")
    def _one_value(self) -> Variable:
        if (self.value is None) == (self.value_from is None):
            raise ValueError("needs exactly one of value, valueFrom")
        return self


class TemplateFrom(_Model):
    config_map_key_ref: ConfigMapKey = Field(alias="configMapKeyRef")


class RenderConfig(_Model):
    """Render a template into a file of a volume (see `renderconfig` for the syntax)."""

    env: tuple[Variable, ...] = Field(default=(), max_length=MAX_VARIABLES)
    template: str | None = Field(default=None, max_length=MAX_TEMPLATE)
    template_from: TemplateFrom | None = Field(default=None, alias="templateFrom")
    volume: str
    path: str = Field(min_length=1, max_length=1024)
    mode: Integer = Field(default=0o644, ge=0, le=0o777)

    _volume = field_validator("volume")(_dns_label)
    _volume_reserved = field_validator("volume")(_not_reserved)
    _path = field_validator("path")(_relative)
    _path_file = field_validator("path")(_a_file)

    @field_validator("env")
    @classmethod
    def _unique(cls, value: tuple[Variable, ...]) -> tuple[Variable, ...]:
        seen: set[str] = set()
        for variable in value:
            if variable.name in seen:
                raise ValueError(f"env {variable.name}: declared more than once")
            seen.add(variable.name)
        return value

    @field_validator("template")
    @classmethod
    def _readable(cls, value: str | None, info: ValidationInfo) -> str | None:
        """An inline template is checked here already: its syntax, and that env declares
        every variable it uses (a ConfigMap's template only when the step runs)."""
        if value is None:
            return value
        try:
            used = renderconfig.references(value)
        except renderconfig.TemplateError as error:
            raise ValueError(str(error)) from None
        env = info.data.get("env")
        if env is not None:
            declared = {variable.name for variable in env}
            missing = [ref for ref in used if ref.name not in declared]
            if missing:
                names = ", ".join(f"${{{ref.name}}} (line {ref.line})" for ref in missing)
                raise ValueError(f"uses {names}, which env does not declare")
        return value

    @model_validator(mode="after")
    def _one_template(self) -> RenderConfig:
        if (self.template is None) == (self.template_from is None):
            raise ValueError("renderConfig needs exactly one of template, templateFrom")
        return self


class StepType(enum.StrEnum):
    WAIT_FOR = "WaitFor"
    DOWNLOAD = "Download"
    COPY_ASSETS = "CopyAssets"
    PREPARE_VOLUME = "PrepareVolume"
    RENDER_CONFIG = "RenderConfig"
    RUN = "Run"
    SIDECAR = "Sidecar"


_ACTIONS: dict[str, StepType] = {
    "wait_for": StepType.WAIT_FOR,
    "download": StepType.DOWNLOAD,
    "copy_assets": StepType.COPY_ASSETS,
    "prepare_volume": StepType.PREPARE_VOLUME,
    "render_config": StepType.RENDER_CONFIG,
    "run": StepType.RUN,
    "sidecar": StepType.SIDECAR,
}


class Step(_Model):
    name: str
    timeout_seconds: Integer | None = Field(
        default=None, alias="timeoutSeconds", ge=1, le=INT32_MAX
    )
    volume_mounts: tuple[VolumeMount, ...] = Field(default=(), alias="volumeMounts")
    wait_for: tuple[Target, ...] | None = Field(default=None, alias="waitFor", min_length=1)
    download: Download | None = None
    copy_assets: CopyAssets | None = Field(default=None, alias="copyAssets")
    prepare_volume: PrepareVolume | None = Field(default=None, alias="prepareVolume")
    render_config: RenderConfig | None = Field(default=None, alias="renderConfig")
    run: dict[str, Any] | None = None
    sidecar: dict[str, Any] | None = None
    # A run step that runs once per spec revision, as a Job the replicas share (render.py).
    once: Boolean | None = None

    _name = field_validator("name")(_dns_label)

    _name_reserved = field_validator("name")(_not_reserved)

    @field_validator("run", "sidecar", mode="before")
    @classmethod
    def _declared_nulls(cls, value: Any) -> Any:
        """The API server prunes nulls of the fields the CRD declares in a container."""
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None or k not in _DECLARED}
            probe = value.get("readinessProbe")
            if isinstance(probe, dict) and probe.get("periodSeconds", 0) is None:
                value["readinessProbe"] = {k: v for k, v in probe.items() if v is not None}
        return value

    @field_validator("run", "sidecar")
    @classmethod
    def _container(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        if "name" in value:
            raise ValueError("do not set name here: the step name is the container name")
        if not isinstance(value.get("image"), str) or not value["image"]:
            raise ValueError("image is required")
        policy = value.get("restartPolicy")
        if policy is not None and not isinstance(policy, str):
            raise ValueError("restartPolicy must be a string")
        probe = value.get("readinessProbe")
        if probe is not None:
            if not isinstance(probe, dict):
                raise ValueError("readinessProbe must be an object (a Probe)")
            period = probe.get("periodSeconds")
            if isinstance(period, float) and period.is_integer():
                # The API server stores a whole JSON number (2.0) of `type: integer` as 2.
                period = int(period)
                value = {**value, "readinessProbe": {**probe, "periodSeconds": period}}
            if period is not None and (
                isinstance(period, bool) or not isinstance(period, int) or period > INT32_MAX
            ):
                raise ValueError("readinessProbe.periodSeconds must be an integer")
        return value

    @field_validator("run")
    @classmethod
    def _no_restart_policy(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and "restartPolicy" in value:
            raise ValueError("restartPolicy must not be set in run; use a sidecar step")
        return value

    @field_validator("sidecar")
    @classmethod
    def _always(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("restartPolicy", "Always") != "Always":
            raise ValueError("a sidecar's restartPolicy can only be Always (it may be omitted)")
        return value

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        if sum(getattr(self, field) is not None for field in _ACTIONS) != 1:
            raise ValueError(
                "each step needs exactly one of waitFor, download, copyAssets, "
                "prepareVolume, renderConfig, run, sidecar"
            )
        return self

    @field_validator("once")
    @classmethod
    def _once_on_run(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value is not None and info.data.get("run") is None:
            raise ValueError(ONCE_ONLY_ON_RUN)
        return value

    @property
    def is_once(self) -> bool:
        """A run step the operator runs once per spec revision, as a Job."""
        return bool(self.once) and self.run is not None

    @property
    def type(self) -> StepType:
        return next(kind for field, kind in _ACTIONS.items() if getattr(self, field) is not None)

    @property
    def targets(self) -> tuple[Target, ...]:
        return self.wait_for or ()

    @property
    def has_operator_targets(self) -> bool:
        """True when the operator must release this wait step (service, job, resource)."""
        return any(target.checked_by_operator for target in self.targets)

    @property
    def has_pod_checks(self) -> bool:
        """True when this wait step's container checks something itself (an in-Pod target,
        or a service's `port`): only then does its log say more than "checked by the
        operator"."""
        return any(
            not target.checked_by_operator
            or (target.kind is TargetKind.SERVICE and target.port is not None)
            for target in self.targets
        )


ONCE_ONLY_ON_RUN = "only allowed on run steps (a Job runs the step once per spec revision)"
# spec.strategy: the words of the CRD's rules, so `initpipeline render -f` says the same.
_PERCENT = re.compile(r"^[0-9]+%\Z")
_ZERO = re.compile(r"^0+%?\Z")
MAX_SURGE_MUST = 'must be a number of Pods (0 or more) or a percentage such as "25%"'
MAX_UNAVAILABLE_MUST = 'must be a number of Pods (0 or more) or a percentage from "0%" to "100%"'
BOTH_ZERO = "maxSurge and maxUnavailable must not both be 0: no Pod could be replaced"
DEFAULT_SURGE = DEFAULT_UNAVAILABLE = "25%"


def _int_or_percent(most_percent: int | None, must: str) -> Callable[[Any], Any]:
    """A validator of an int-or-string field: an integer from 0 (not a boolean), or a
    percentage `N%` (at most `most_percent`, when given)."""

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(must)
        if isinstance(value, int):
            if not 0 <= value <= INT32_MAX:
                raise ValueError(must)
        elif not _PERCENT.match(value) or (
            most_percent is not None and int(value[:-1]) > most_percent
        ):
            raise ValueError(must)
        return value

    return check


def resolve_int_or_percent(value: int | str, total: int, round_up: bool) -> int:
    """An int-or-percent value as a number of Pods: a percentage of `total`, rounded up
    (maxSurge) or down (maxUnavailable), as a Deployment does."""
    if isinstance(value, int):
        return value
    scaled = int(value[:-1]) * total
    return -(-scaled // 100) if round_up else scaled // 100


class RollingUpdate(_Model):
    # Pods over spec.replicas while replacing; Pods under it that may be unavailable.
    max_surge: Annotated[int | str, BeforeValidator(_int_or_percent(None, MAX_SURGE_MUST))] = Field(
        default=DEFAULT_SURGE, alias="maxSurge"
    )
    max_unavailable: Annotated[
        int | str, BeforeValidator(_int_or_percent(100, MAX_UNAVAILABLE_MUST))
    ] = Field(default=DEFAULT_UNAVAILABLE, alias="maxUnavailable")

    @model_validator(mode="after")
    def _not_both_zero(self) -> RollingUpdate:
        if _ZERO.match(str(self.max_surge)) and _ZERO.match(str(self.max_unavailable)):
            raise InvalidSpec("spec.strategy.rollingUpdate", BOTH_ZERO)
        return self

    def bounds(self, replicas: int) -> tuple[int, int]:
        """(surge, unavailable) in Pods for `replicas`: maxSurge rounded up, maxUnavailable
        rounded down; when both come to 0 (e.g. maxSurge 0, maxUnavailable 10% of 3),
        unavailable is 1, as a Deployment makes it, so the rollout can progress."""
        surge = resolve_int_or_percent(self.max_surge, replicas, round_up=True)
        unavailable = resolve_int_or_percent(self.max_unavailable, replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return surge, unavailable


class StrategyType(enum.StrEnum):
    RECREATE = "Recreate"
    ROLLING_UPDATE = "RollingUpdate"


def rolling_update_needs_type(kind: str) -> str:
    """Why spec.strategy.rollingUpdate is refused; the CRD's rule says the same."""
    return f"only allowed with spec.strategy.type RollingUpdate (here: {kind})"


def _strategy_type(value: Any) -> Any:
    if value not in tuple(StrategyType):
        raise ValueError(f"{value!r} must be one of {', '.join(StrategyType)}")
    return value


class Strategy(_Model):
    """How a spec change replaces the Pods (a Deployment's strategy)."""

    type: Annotated[StrategyType, BeforeValidator(_strategy_type)] = StrategyType.ROLLING_UPDATE
    rolling_update: RollingUpdate | None = Field(default=None, alias="rollingUpdate")

    @model_validator(mode="after")
    def _rolling_update_only_when_rolling(self) -> Strategy:
        if self.rolling_update is not None and self.type is not StrategyType.ROLLING_UPDATE:
            raise InvalidSpec("spec.strategy.rollingUpdate", rolling_update_needs_type(self.type))
        return self

    @property
    def rolling(self) -> RollingUpdate | None:
        """The rolling update's parameters (defaults filled in); None under Recreate."""
        if self.type is StrategyType.RECREATE:
            return None
        return self.rolling_update or RollingUpdate()


_DECLARED = ("name", "image", "restartPolicy", "readinessProbe")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")


# spec.retries: at most this many replacements of a failed Pod (each attempt's Pod is kept).
MAX_RETRIES = 20


class PipelineSpec(_Model):
    replicas: Annotated[int, BeforeValidator(_whole)] = Field(default=1, ge=0, le=INT32_MAX)
    suspend: Boolean = False
    # Seconds from a Pod's creation until every step must be done (None: no limit).
    active_deadline_seconds: Integer | None = Field(
        default=None, alias="activeDeadlineSeconds", ge=1, le=INT32_MAX
    )
    # Under restartPolicy Never: how often a failed Pod is replaced (None: never).
    retries: Integer | None = Field(default=None, ge=0, le=MAX_RETRIES)
    strategy: Strategy = Strategy()
    steps: tuple[Step, ...] = Field(min_length=1)
    template: dict[str, Any]

    @field_validator("template", mode="before")
    @classmethod
    def _template_nulls(cls, value: Any) -> Any:
        return _pruned_template(value)

    @field_validator("template")
    @classmethod
    def _template(cls, value: dict[str, Any]) -> dict[str, Any]:
        pod_spec = value.get("spec")
        if not isinstance(pod_spec, dict) or not pod_spec.get("containers"):
            raise ValueError("template.spec.containers needs at least one container")
        if pod_spec.get("initContainers"):
            raise ValueError("use steps instead of template.spec.initContainers")
        _check_template(value)
        return value

    @model_validator(mode="after")
    def _no_operator_labels(self) -> PipelineSpec:
        # The operator finds its Pods by these labels; a template must not fake them.
        labels = (self.template.get("metadata") or {}).get("labels") or {}
        for key in labels:
            if key.startswith(f"{GROUP}/"):
                raise InvalidSpec(
                    "spec.template.metadata.labels",
                    f"{key!r}: labels under {GROUP}/ are set by the operator",
                )
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> PipelineSpec:
        taken = {c.get("name") for c in self.template["spec"]["containers"]}
        for index, step in enumerate(self.steps):
            if step.name in taken:
                raise InvalidSpec(
                    f"spec.steps[{index}].name",
                    f"{step.name!r} is already used by another step or a template container",
                )
            taken.add(step.name)
        return self

    @model_validator(mode="after")
    def _retries_only_under_never(self) -> PipelineSpec:
        # A Pod is replaced only when nothing restarts it: the CRD's rule on spec.retries.
        if self.retries is not None and self.restart_policy != "Never":
            raise InvalidSpec("spec.retries", retries_need_never(self.restart_policy))
        return self

    @property
    def attempts(self) -> int:
        """Attempts a replica gets: the first and `retries` more."""
        return 1 + (self.retries or 0)

    @functools.cached_property
    def revision(self) -> str:
        """10 hex digits of sha256 over the canonical JSON of `steps` and `template`.

        `replicas`, `suspend` and `strategy` are left out, so scaling, suspending or changing
        how Pods are replaced never replaces Pods.
        Fields left at their defaults are left out too: writing a default explicitly, or a
        new optional field in a later version, does not replace running Pods. Computed once
        per parsed spec (the model is frozen): a reconcile asks for it several times.
        """
        data = self.model_dump(
            mode="json",
            by_alias=True,
            exclude_defaults=True,
            exclude_none=True,
            include={"steps", "template"},
        )
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]

    @property
    def restart_policy(self) -> Literal["Always", "OnFailure", "Never"]:
        policy: Literal["Always", "OnFailure", "Never"] = self.template["spec"].get(
            "restartPolicy", "Always"
        )
        return policy


def retries_need_never(policy: str) -> str:
    """Why spec.retries is refused; the CRD's rule says the same."""
    return f"only allowed with spec.template.spec.restartPolicy Never (here: {policy})"


class Pipeline(_Model):
    """What rendering and status derivation need of one InitPipeline object."""

    name: str
    namespace: str
    uid: str = ""
    generation: int = 0
    # Its SHARD_LABEL ("" when unlabelled), carried onto its Pods.
    shard: str = ""
    spec: PipelineSpec


def _pruned_template(value: Any) -> Any:
    """The template as the API server stores it: nulls of the fields the CRD declares
    (metadata, its labels and annotations, spec.containers/initContainers/volumes/restartPolicy
    and their names) left out; other fields are kept as written."""
    if not isinstance(value, dict):
        return value
    template = {k: v for k, v in value.items() if v is not None or k not in ("metadata", "spec")}
    meta = template.get("metadata")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if v is not None}
        for key in ("labels", "annotations"):
            if isinstance(meta.get(key), dict):
                meta[key] = {k: v for k, v in meta[key].items() if v is not None}
        template["metadata"] = meta
    pod = template.get("spec")
    if isinstance(pod, dict):
        declared = ("containers", "initContainers", "volumes", "restartPolicy")
        pod = {k: v for k, v in pod.items() if v is not None or k not in declared}
        for key in ("containers", "volumes"):
            if isinstance(pod.get(key), list):
                pod[key] = [
                    {k: v for k, v in item.items() if v is not None or k != "name"}
                    if isinstance(item, dict)
                    else item
                    for item in pod[key]
                ]
        template["spec"] = pod
    return template


def _check_template(template: dict[str, Any]) -> None:
    """What the CRD's schema says of the template, with the field's path."""
    where = "spec.template"
    meta = template.get("metadata", {})
    if not isinstance(meta, dict):
        raise InvalidSpec(f"{where}.metadata", "must be an object")
    for key in meta:
        if key not in ("labels", "annotations"):
            raise InvalidSpec(f"{where}.metadata.{key}", "unknown field: only labels, annotations")
    for key in ("labels", "annotations"):
        entries = meta.get(key, {})
        if not isinstance(entries, dict):
            raise InvalidSpec(f"{where}.metadata.{key}", "must be a map of strings")
        for name, text in entries.items():
            if not isinstance(text, str):
                raise InvalidSpec(f"{where}.metadata.{key}.{name}", "must be a string")
    pod = template["spec"]
    for key, limit in (("containers", 64), ("volumes", 256)):
        items = pod.get(key, [])
        if not isinstance(items, list):
            raise InvalidSpec(f"{where}.spec.{key}", "must be a list")
        if len(items) > limit:
            raise InvalidSpec(f"{where}.spec.{key}", f"must have at most {limit} items")
        for index, item in enumerate(items):
            field = f"{where}.spec.{key}[{index}]"
            if not isinstance(item, dict):
                raise InvalidSpec(field, "must be an object")
            name = item.get("name")
            if not isinstance(name, str) or len(name) > 63:
                raise InvalidSpec(f"{field}.name", "required: a name of at most 63 characters")
            if name.startswith(RESERVED_PREFIX):
                raise InvalidSpec(
                    f"{field}.name", f"names starting with {RESERVED_PREFIX!r} are reserved"
                )
    if "initContainers" in pod and not isinstance(pod["initContainers"], list):
        raise InvalidSpec(f"{where}.spec.initContainers", "must be a list")
    policy = pod.get("restartPolicy", "Always")
    if policy not in _RESTART_POLICIES:
        raise InvalidSpec(
            f"{where}.spec.restartPolicy",
            f"{policy!r} must be one of {', '.join(_RESTART_POLICIES)}",
        )


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = "spec"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("function-after", "function-before") and not part.startswith("_"):
            path += f".{part}"
    return path


def _step_hint(body: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    """` (step "name")` when the error is inside a named step, so users find it by name."""
    if len(loc) < 2 or loc[0] != "steps" or not isinstance(loc[1], int):
        return ""
    steps = (body.get("spec") or {}).get("steps") or []
    step = steps[loc[1]] if loc[1] < len(steps) else None
    name = step.get("name") if isinstance(step, dict) else None
    return f' (step "{name}")' if isinstance(name, str) and name else ""


def parse_pipeline(body: dict[str, Any]) -> Pipeline:
    """Parse an InitPipeline object; raises InvalidSpec naming the first bad field."""
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidSpec("metadata", "must be an object")
    name = metadata.get("name")
    if name is not None and (
        not isinstance(name, str) or len(name) > 253 or not _matches(_SUBDOMAIN, name)
    ):
        raise InvalidSpec(
            "metadata.name", f"{name!r} must be a lowercase DNS-1123 subdomain (RFC 1123)"
        )
    if isinstance(name, str) and len(name) > MAX_PIPELINE_NAME:
        raise InvalidSpec("metadata.name", PIPELINE_NAME_TOO_LONG)
    try:
        spec = PipelineSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        cause = (first.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidSpec):
            raise cause from None
        message = first["msg"].removeprefix("Value error, ") + _step_hint(body, first["loc"])
        raise InvalidSpec(_field_path(first["loc"]), message) from None
    return Pipeline(
        name=metadata.get("name", ""),
        namespace=metadata.get("namespace") or "default",
        uid=metadata.get("uid", ""),
        generation=metadata.get("generation", 0),
        shard=str((metadata.get("labels") or {}).get(SHARD_LABEL) or ""),
        spec=spec,
    )
