"""The InitPipeline spec, parsed once into frozen models.

The CRD schema and its CEL rules refuse most bad input at `kubectl apply` time; these models
repeat the checks that matter for rendering so that `initpipeline render -f` (offline) and a
CR that slipped past an older CRD fail the same way: with one message naming the field.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

GROUP = "initpipeline.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InitPipeline"
PLURAL = "initpipelines"

# Step names become container names; generated helper containers use this prefix.
RESERVED_PREFIX = "initpipeline-"

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_OBJECT_REF = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# The CRD's pattern for download.sha256 (crds/initpipelines.initpipeline.io.yaml).
SHA256_PATTERN = "^[0-9a-fA-F]{64}$"
_HOST_PORT = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?:[0-9]{1,5}$")


class InvalidSpec(ValueError):
    """A spec that cannot be rendered; `field` is the path a user must fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _dns_label(value: str) -> str:
    if len(value) > 63 or not DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a DNS-1123 label (lower case, digits, '-')")
    return value


def _must_match(pattern: str, must: str) -> Callable[[str | None], str | None]:
    """A field validator: the value (unless unset) matches `pattern`, else "'<value>' <must>"."""
    compiled = re.compile(pattern)

    def check(value: str | None) -> str | None:
        if value is not None and not compiled.match(value):
            raise ValueError(f"{value!r} {must}")
        return value

    return check


_url = _must_match(r"^https?://[^/\s]+", "must be an http:// or https:// URL")
_absolute = _must_match(r"^/", "must be an absolute path")
_relative = _must_match(r"^(?!/)(?!(.*/)?\.\.(/|$))", "must be a relative path without '..'")


class ObjectRef(_Model):
    """`[namespace/]name` of an object checked through the Kubernetes API."""

    namespace: str | None
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
    api_version: str = Field(alias="apiVersion", min_length=1)
    kind: str = Field(min_length=1)
    name: str = Field(min_length=1)
    namespace: str | None = None
    condition: str = "Ready"


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

    service: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    tcp: str | None = None
    http: str | None = None
    expect_status: int | None = Field(default=None, alias="expectStatus", ge=100, le=599)
    body_contains: str | None = Field(default=None, alias="bodyContains")
    dns: str | None = None
    file: str | None = None
    job: str | None = None
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
        _must_match(_OBJECT_REF.pattern, "must be [namespace/]name")
    )
    _http = field_validator("http")(_url)
    _file = field_validator("file")(_absolute)

    @field_validator("tcp")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            port = int(value.rpartition(":")[2]) if _HOST_PORT.match(value) else 0
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
    mount_path: str = Field(alias="mountPath")
    read_only: bool | None = Field(default=None, alias="readOnly")
    sub_path: str | None = Field(default=None, alias="subPath")

    def manifest(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class Download(_Model):
    url: str
    volume: str
    path: str = Field(min_length=1)
    sha256: str | None = None  # hex digest the file must have (stored in lower case)

    _volume = field_validator("volume")(_dns_label)
    _path = field_validator("path")(_relative)
    _url_check = field_validator("url")(_url)
    _sha256_check = field_validator("sha256")(
        _must_match(SHA256_PATTERN, "must be a sha256 digest: 64 hexadecimal digits")
    )

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None


class CopyAssets(_Model):
    image: str = Field(min_length=1)
    from_: str = Field(alias="from")
    volume: str
    path: str = ""

    _volume = field_validator("volume")(_dns_label)
    _from = field_validator("from_")(_absolute)
    _path = field_validator("path")(_relative)


class PrepareVolume(_Model):
    volume: str
    path: str = ""
    mode: str | None = None
    owner: str | None = None

    _volume = field_validator("volume")(_dns_label)
    _path = field_validator("path")(_relative)
    _mode = field_validator("mode")(
        _must_match(r"^0?[0-7]{3}$", 'must be an octal mode such as "0750"')
    )
    _owner = field_validator("owner")(
        _must_match(r"^[0-9]+(:[0-9]+)?$", "must be uid or uid:gid (numbers)")
    )


class StepType(enum.StrEnum):
    WAIT_FOR = "WaitFor"
    DOWNLOAD = "Download"
    COPY_ASSETS = "CopyAssets"
    PREPARE_VOLUME = "PrepareVolume"
    RUN = "Run"
    SIDECAR = "Sidecar"


_ACTIONS: dict[str, StepType] = {
    "wait_for": StepType.WAIT_FOR,
    "download": StepType.DOWNLOAD,
    "copy_assets": StepType.COPY_ASSETS,
    "prepare_volume": StepType.PREPARE_VOLUME,
    "run": StepType.RUN,
    "sidecar": StepType.SIDECAR,
}


class Step(_Model):
    name: str
    timeout_seconds: int | None = Field(default=None, alias="timeoutSeconds", ge=1)
    volume_mounts: tuple[VolumeMount, ...] = Field(default=(), alias="volumeMounts")
    wait_for: tuple[Target, ...] | None = Field(default=None, alias="waitFor", min_length=1)
    download: Download | None = None
    copy_assets: CopyAssets | None = Field(default=None, alias="copyAssets")
    prepare_volume: PrepareVolume | None = Field(default=None, alias="prepareVolume")
    run: dict[str, Any] | None = None
    sidecar: dict[str, Any] | None = None

    _name = field_validator("name")(_dns_label)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.startswith(RESERVED_PREFIX):
            raise ValueError(f"names starting with {RESERVED_PREFIX!r} are reserved")
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
        return value

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        if sum(getattr(self, field) is not None for field in _ACTIONS) != 1:
            raise ValueError(
                "each step needs exactly one of waitFor, download, copyAssets, "
                "prepareVolume, run, sidecar"
            )
        return self

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


class PipelineSpec(_Model):
    replicas: int = Field(default=1, ge=0)
    suspend: bool = False
    steps: tuple[Step, ...] = Field(min_length=1)
    template: dict[str, Any]

    @field_validator("template")
    @classmethod
    def _template(cls, value: dict[str, Any]) -> dict[str, Any]:
        pod_spec = value.get("spec")
        if not isinstance(pod_spec, dict) or not pod_spec.get("containers"):
            raise ValueError("template.spec.containers needs at least one container")
        if pod_spec.get("initContainers"):
            raise ValueError("use steps instead of template.spec.initContainers")
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

    @property
    def restart_policy(self) -> Literal["Always", "OnFailure", "Never"]:
        policy: Literal["Always", "OnFailure", "Never"] = self.template["spec"].get(
            "restartPolicy", "Always"
        )
        return policy


class Pipeline(_Model):
    """What rendering and status derivation need of one InitPipeline object."""

    name: str
    namespace: str
    uid: str = ""
    generation: int = 0
    spec: PipelineSpec


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
        spec=spec,
    )
