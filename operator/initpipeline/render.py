"""InitPipeline -> Pod manifests, and the Jobs of `once` run steps (plain dicts). Pure: no
I/O, same input -> equal output.

Pod shape:

- metadata: `<name>-<hash[:5]>-<index>` (see `pod_name`), the namespace of the pipeline,
  template labels plus PIPELINE_LABEL, SPEC_HASH_LABEL and REPLICA_LABEL (ours win; a
  retry also ATTEMPT_LABEL, and `-retry<N>` in its name; the pipeline's SHARD_LABEL when it
  has one), template annotations, and an
  ownerReference to the InitPipeline (controller, blockOwnerDeletion).
  The release annotation is not pre-set: the operator patches it when API-side targets hold.
- spec: the template's Pod spec as given (restartPolicy, serviceAccountName, securityContext
  ...), plus one init container per step in spec order, named after the step. In front of
  the first copied copyAssets step comes TOOLS_CONTAINER, which belongs to that step (the
  status reports it as that step). A mounted copyAssets step (`CopyAssets.mounted`) has no
  container: its image volume (`assets_volume`, sub-path `from`) is mounted read-only at
  `path` inside each later container's mount of the step's volume (in place of that mount
  when `path` is empty).
- volumes: the template's, then an emptyDir for each volume a step names (its target volume
  or a volumeMount) that the template lacks, then TOOLS_VOLUME (copied copyAssets), the
  image volume of each mounted copyAssets step and the SIGNAL_VOLUME downward API volume
  (wait steps with API-side targets).

Generated containers (wait, download, copyAssets, tools) are hardened to the "restricted"
Pod Security level: non-root uid/gid 65532, no privilege escalation, all capabilities
dropped, RuntimeDefault seccomp, read-only root filesystem, small resources,
FallbackToLogsOnError. prepareVolume is the exception (see `_prepare_volume`). run and
sidecar containers are the user's, taken as written.

A `once` run step is, in the Pods, a generated wait container on its Job (`step_targets`: a
`job` target the operator releases); the step's own container runs in that Job
(`render_job`), one per spec revision (`once_job_name`).
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Iterable
from typing import Any, Final

from initpipeline import renderconfig, scripts
from initpipeline.names import (
    ATTEMPT_LABEL,
    ONCE_LABEL,
    PIPELINE_LABEL,
    RELEASED_ANNOTATION,
    REPLICA_LABEL,
    SIGNAL_DIR,
    SIGNAL_FILE,
    SIGNAL_VOLUME,
    SPEC_HASH_LABEL,
    STEP_LABEL,
    TARGET_DIR,
    TOOLS_CONTAINER,
    TOOLS_DIR,
    TOOLS_VOLUME,
    assets_volume,
)
from initpipeline.settings import DEFAULT_RENDER_IMAGE
from initpipeline.spec import (
    API_VERSION,
    DNS_LABEL,
    KIND,
    SHARD_LABEL,
    AssetsMode,
    Pipeline,
    PipelineSpec,
    Step,
    StepType,
    Target,
)

MAX_NAME: Final = 63
GENERATED_UID: Final = 65532
# A sidecar's derived startupProbe gives up after this long when the step has no timeout.
DEFAULT_STARTUP_SECONDS: Final = 300

_PROBE_HANDLERS: Final = ("exec", "httpGet", "tcpSocket", "grpc")
# Pods a `once` step's Job may fail before the Job fails (render_job): none.
ONCE_BACKOFF_LIMIT: Final = 0


def spec_hash(spec: PipelineSpec) -> str:
    """The spec's revision (`PipelineSpec.revision`): the value of SPEC_HASH_LABEL."""
    return spec.revision


def pod_name(pipeline: Pipeline, index: int, attempt: int = 1) -> str:
    """`<name>-<hash[:5]>-<index>`, a DNS label of at most 63 characters; a later attempt of
    the replica (spec.retries) adds `-retry<attempt - 1>`.

    A name that does not fit (or is not a DNS label, e.g. has dots) is shortened, cleaned
    and given 4 hex digits of its own hash, so two long names sharing a prefix still differ.
    """
    suffix = f"-{spec_hash(pipeline.spec)[:5]}-{index}"
    if attempt > 1:
        suffix += f"-retry{attempt - 1}"
    return _fitted(pipeline.name, suffix)


def _fitted(base: str, suffix: str) -> str:
    """`base` + `suffix` as a DNS label of at most 63 characters: when it does not fit (or
    `base` is not a DNS label), `base` is shortened, cleaned and given 4 hex digits of its
    own hash. `suffix` (at most 40 characters) is kept as it is."""
    if len(base) + len(suffix) <= MAX_NAME and DNS_LABEL.match(base):
        return base + suffix
    digest = hashlib.sha256(base.encode()).hexdigest()[:4]
    room = MAX_NAME - len(suffix) - len(digest) - 1
    cleaned = re.sub(r"[^a-z0-9-]+", "-", base.lower())[:room].strip("-")
    return f"{cleaned}-{digest}{suffix}" if cleaned else f"{digest}{suffix}"


def once_job_name(pipeline: Pipeline, step: Step) -> str:
    """The Job of a `once` step for the current revision: `<name>-<step>-<hash[:5]>`,
    shortened as `pod_name` does when it does not fit in 63 characters (the Job controller
    puts it in a label of the Job's Pod)."""
    return _fitted(f"{pipeline.name}-{step.name}", f"-{spec_hash(pipeline.spec)[:5]}")


def step_targets(pipeline: Pipeline, step: Step) -> tuple[Target, ...]:
    """What the Pods wait on in this step: a wait step's targets; for a `once` run step, the
    completion of its Job (a `job` target, which the operator checks and releases)."""
    if step.is_once:
        return (Target(job=once_job_name(pipeline, step)),)
    return step.targets


def operator_released(pipeline: Pipeline, step: Step) -> bool:
    """True when the operator releases this step in the Pods (API-side targets, or a `once`
    step's Job)."""
    return any(target.checked_by_operator for target in step_targets(pipeline, step))


def render_pods(
    pipeline: Pipeline,
    step_image: str,
    *,
    render_image: str = DEFAULT_RENDER_IMAGE,
    image_volumes: bool = False,
) -> list[dict[str, Any]]:
    """The Pods of replicas 0 .. replicas-1 (suspend is the caller's business)."""
    return [
        render_pod(
            pipeline, index, step_image, render_image=render_image, image_volumes=image_volumes
        )
        for index in range(pipeline.spec.replicas)
    ]


def render_pod(
    pipeline: Pipeline,
    index: int,
    step_image: str,
    attempt: int = 1,
    *,
    render_image: str = DEFAULT_RENDER_IMAGE,
    image_volumes: bool = False,
) -> dict[str, Any]:
    """The Pod of replica `index` (its `attempt`: spec.retries); `step_image` runs the
    generated steps (needs busybox), `render_image` the renderConfig steps (the operator's
    image: `renderconfig`). `image_volumes`: the cluster and its nodes support image
    volumes, so copyAssets steps in Auto mode mount their image."""
    spec = pipeline.spec
    template = copy.deepcopy(spec.template)
    template_meta = template.get("metadata") or {}
    labels = {
        **(template_meta.get("labels") or {}),
        PIPELINE_LABEL: pipeline.name,
        SPEC_HASH_LABEL: spec_hash(spec),
        REPLICA_LABEL: str(index),
    }
    if attempt > 1:
        labels[ATTEMPT_LABEL] = str(attempt)
    if pipeline.shard:  # the shard's operator follows only its own Pods
        labels[SHARD_LABEL] = pipeline.shard
    metadata: dict[str, Any] = {
        "name": pod_name(pipeline, index, attempt),
        "namespace": pipeline.namespace,
        "labels": labels,
    }
    if template_meta.get("annotations"):
        metadata["annotations"] = template_meta["annotations"]
    metadata["ownerReferences"] = _owned_by(pipeline)
    pod_spec: dict[str, Any] = template["spec"]
    mounted = [i for i, step in enumerate(spec.steps) if mounts_assets(spec, step, image_volumes)]
    pod_spec["initContainers"] = _init_containers(pipeline, step_image, render_image, mounted)
    for position in mounted:
        _mount_assets(spec, position, pod_spec)
    volumes = _volumes(pipeline, pod_spec.get("volumes") or [], mounted)
    if volumes:
        pod_spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def _owned_by(pipeline: Pipeline) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": pipeline.name,
            "uid": pipeline.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def _hardened_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsGroup": GENERATED_UID,
        "runAsNonRoot": True,
        "runAsUser": GENERATED_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _generated(
    name: str,
    image: str,
    command: list[str],
    mounts: Iterable[dict[str, Any]],
    *,
    pull_policy: str | None = "IfNotPresent",
    env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image}
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    container["command"] = command
    if env:
        container["env"] = env
    volume_mounts = list(mounts)
    if volume_mounts:
        container["volumeMounts"] = volume_mounts
    container["resources"] = {
        "limits": {"memory": "64Mi"},
        "requests": {"cpu": "10m", "memory": "16Mi"},
    }
    container["securityContext"] = _hardened_security_context()
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    return container


def _step_mounts(step: Step) -> list[dict[str, Any]]:
    return [mount.manifest() for mount in step.volume_mounts]


def _target_mount(volume: str) -> dict[str, Any]:
    return {"name": volume, "mountPath": TARGET_DIR}


def mounts_assets(spec: PipelineSpec, step: Step, image_volumes: bool) -> bool:
    """Whether a copyAssets step mounts its image instead of copying it: Mount, or Auto
    where `image_volumes` and no container mounts the step's volume with a subPath (a
    mounted image is placed at `path` of each mount of the volume, which a subPath mount
    would not show where a copy puts the files)."""
    assets = step.copy_assets
    if assets is None or not assets.mounted(image_volumes):
        return False
    if assets.mode is AssetsMode.MOUNT:
        return True
    return not any(
        isinstance(mount, dict) and mount.get("name") == assets.volume and mount.get("subPath")
        for container in _containers_of(spec)
        for mount in container.get("volumeMounts") or ()
    )


def _containers_of(spec: PipelineSpec) -> list[dict[str, Any]]:
    """The template's containers and init containers, and the run and sidecar steps'
    containers (any step's own volumeMounts included)."""
    pod = spec.template.get("spec") or {}
    found = [
        c
        for key in ("containers", "initContainers")
        for c in pod.get(key) or ()
        if isinstance(c, dict)
    ]
    found += [_user_container(step, step.run or step.sidecar or {}) for step in spec.steps]
    return found


def _mount_assets(spec: PipelineSpec, position: int, pod_spec: dict[str, Any]) -> None:
    """Mount the image volume of the copyAssets step at `position` where its copy would be:
    at `path` inside the step's volume, in every later init container and every main
    container that mounts that volume."""
    assets = spec.steps[position].copy_assets
    assert assets is not None
    later = {step.name for step in spec.steps[position + 1 :]}
    containers = [
        *(c for c in pod_spec["initContainers"] if c["name"] in later),
        *(pod_spec.get("containers") or []),
    ]
    sub_path, path = assets.from_.strip("/"), assets.path.strip("/")
    for container in containers:
        mounts = container.get("volumeMounts") if isinstance(container, dict) else None
        if not isinstance(mounts, list):
            continue
        for i, mount in enumerate(list(mounts)):
            # A malformed mount (no mountPath ...) is left as written: the API server refuses
            # the Pod naming the field.
            where = mount.get("mountPath") if isinstance(mount, dict) else None
            if not isinstance(where, str) or mount.get("name") != assets.volume:
                continue
            target = {
                "name": assets_volume(position),
                "mountPath": f"{where.rstrip('/')}/{path}" if path else where,
                "readOnly": True,
            }
            if sub_path:
                target["subPath"] = sub_path
            if path:
                mounts.append(target)
            else:
                mounts[i] = target


def _init_containers(
    pipeline: Pipeline, step_image: str, render_image: str, mounted: list[int]
) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = []
    tools_added = False
    for position, step in enumerate(pipeline.spec.steps):
        kind = step.type
        if position in mounted:
            continue
        if kind is StepType.COPY_ASSETS and not tools_added:
            tools_added = True
            containers.append(
                _generated(
                    TOOLS_CONTAINER,
                    step_image,
                    ["sh", "-c", scripts.tools_script()],
                    [{"name": TOOLS_VOLUME, "mountPath": TOOLS_DIR}],
                )
            )
        if kind is StepType.WAIT_FOR:
            containers.append(_wait_for(step, step_image))
        elif kind is StepType.DOWNLOAD:
            containers.append(_download(step, step_image))
        elif kind is StepType.COPY_ASSETS:
            containers.append(_copy_assets(step))
        elif kind is StepType.PREPARE_VOLUME:
            containers.append(_prepare_volume(step, step_image))
        elif kind is StepType.RENDER_CONFIG:
            containers.append(_render_config(step, render_image))
        elif kind is StepType.RUN and step.is_once:
            containers.append(_wait_for(_waiting_for_job(pipeline, step), step_image))
        elif kind is StepType.RUN:
            containers.append(_user_container(step, step.run))
        else:
            containers.append(_sidecar(step))
    return containers


def _wait_for(step: Step, step_image: str) -> dict[str, Any]:
    mounts = _step_mounts(step)
    if step.has_operator_targets:
        mounts.append({"name": SIGNAL_VOLUME, "mountPath": SIGNAL_DIR, "readOnly": True})
    return _generated(step.name, step_image, ["sh", "-c", scripts.wait_script(step)], mounts)


def _waiting_for_job(pipeline: Pipeline, step: Step) -> Step:
    """A `once` step as the Pods run it: a wait step on its Job, released by the operator."""
    return Step(name=step.name, wait_for=step_targets(pipeline, step))


def _download(step: Step, step_image: str) -> dict[str, Any]:
    assert step.download is not None
    script = scripts.download_script(step.download, timeout_seconds=step.timeout_seconds)
    mounts = [_target_mount(step.download.volume), *_step_mounts(step)]
    return _generated(step.name, step_image, ["sh", "-c", script], mounts)


def _copy_assets(step: Step) -> dict[str, Any]:
    """The assets image, run with the busybox that TOOLS_CONTAINER copied in.

    imagePullPolicy is left to Kubernetes (Always for `:latest`): the image is the user's.
    """
    assert step.copy_assets is not None
    mounts = [
        _target_mount(step.copy_assets.volume),
        {"name": TOOLS_VOLUME, "mountPath": TOOLS_DIR, "readOnly": True},
        *_step_mounts(step),
    ]
    command = [scripts.BUSYBOX, "sh", "-c", scripts.copy_assets_script(step.copy_assets)]
    return _generated(step.name, step.copy_assets.image, command, mounts, pull_policy=None)


def _prepare_volume(step: Step, step_image: str) -> dict[str, Any]:
    """mkdir/chown/chmod on a volume: the one generated step that runs as root.

    It is therefore not "restricted" PodSecurity-compatible (runAsUser 0, runAsNonRoot
    false, capabilities added): a namespace enforcing `restricted` refuses such a Pod;
    `baseline` admits it. It still drops every capability except what the job needs:
    DAC_OVERRIDE (create and enter directories owned by others), CHOWN when `owner` is
    set, FOWNER when `mode` is set (chmod a directory it does not own).
    """
    prepare = step.prepare_volume
    assert prepare is not None
    script = scripts.prepare_volume_script(prepare)
    mounts = [_target_mount(prepare.volume), *_step_mounts(step)]
    container = _generated(step.name, step_image, ["sh", "-c", script], mounts)
    add = ["DAC_OVERRIDE"]
    if prepare.owner:
        add.append("CHOWN")
    if prepare.mode:
        add.append("FOWNER")
    container["securityContext"].update(
        {
            "capabilities": {"add": sorted(add), "drop": ["ALL"]},
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "runAsUser": 0,
        }
    )
    return container


_EXPANDED: Final = re.compile(r"\$(?=[$(])")


def _literal(text: str) -> str:
    """`text` such that the kubelet passes it on unchanged: it expands `$(VAR)` in env values,
    command and args and turns `$$` into `$`, so a `$` before `(` or `$` is doubled (any
    other `$` it keeps as it is)."""
    return _EXPANDED.sub("$$", text)


def _render_config(step: Step, render_image: str) -> dict[str, Any]:
    """`renderconfig` in the operator's image, no shell: the template and each variable in
    the environment (a variable's valueFrom as written, so a Secret stays a reference that
    the kubelet resolves), the destination, mode and variable names as arguments."""
    config = step.render_config
    assert config is not None
    template: dict[str, Any] = {"name": renderconfig.TEMPLATE_ENV}
    if config.template_from is not None:
        key = config.template_from.config_map_key_ref.model_dump(by_alias=True)
        template["valueFrom"] = {"configMapKeyRef": key}
    else:
        assert config.template is not None
        template["value"] = _literal(config.template)
    env = [template]
    for variable in config.env:
        entry: dict[str, Any] = {"name": renderconfig.VARIABLE_PREFIX + variable.name}
        if variable.value_from is not None:
            entry["valueFrom"] = variable.value_from.model_dump(by_alias=True, exclude_none=True)
        else:
            assert variable.value is not None
            entry["value"] = _literal(variable.value)
        env.append(entry)
    command = [
        renderconfig.COMMAND,
        "--to",
        _literal(f"{TARGET_DIR}/{config.path}"),
        "--mode",
        f"{config.mode:04o}",
        "--label",
        _literal(scripts.display(f"volume {config.volume}/{config.path}")),
        *(variable.name for variable in config.env),
    ]
    mounts = [_target_mount(config.volume)]
    return _generated(step.name, render_image, command, mounts, env=env)


def _user_container(step: Step, fields: dict[str, Any] | None) -> dict[str, Any]:
    assert fields is not None
    container: dict[str, Any] = {"name": step.name, **copy.deepcopy(fields)}
    if step.volume_mounts:
        container["volumeMounts"] = [*container.get("volumeMounts", []), *_step_mounts(step)]
    return container


def _sidecar(step: Step) -> dict[str, Any]:
    """A native sidecar. With a readinessProbe and no startupProbe it gets a startupProbe
    with the same handler, so the next step starts only once the sidecar is ready: every
    `periodSeconds` of the readinessProbe (default 1), for the step's timeoutSeconds
    (default DEFAULT_STARTUP_SECONDS) before the kubelet restarts it."""
    container = _user_container(step, step.sidecar)
    container["restartPolicy"] = "Always"
    readiness = container.get("readinessProbe")
    if isinstance(readiness, dict) and "startupProbe" not in container:
        period = int(readiness.get("periodSeconds") or 1)
        budget = step.timeout_seconds or DEFAULT_STARTUP_SECONDS
        probe = {key: copy.deepcopy(readiness[key]) for key in _PROBE_HANDLERS if key in readiness}
        for key in ("initialDelaySeconds", "timeoutSeconds"):
            if key in readiness:
                probe[key] = readiness[key]
        probe["periodSeconds"] = period
        probe["successThreshold"] = 1
        probe["failureThreshold"] = max(1, math.ceil(budget / period))
        container["startupProbe"] = probe
    return container


def once_steps(pipeline: Pipeline) -> list[Step]:
    return [step for step in pipeline.spec.steps if step.is_once]


def render_jobs(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The Jobs of the pipeline's `once` steps, for its current revision."""
    return [render_job(pipeline, step) for step in once_steps(pipeline)]


def render_job(pipeline: Pipeline, step: Step) -> dict[str, Any]:
    """The Job that runs a `once` run step for the pipeline's current revision.

    Named by `once_job_name`, labelled ONCE_LABEL, STEP_LABEL and SPEC_HASH_LABEL (and the
    pipeline's SHARD_LABEL) on the Job and its Pod (not the template's labels, which a Service
    may select), owned by the pipeline.
    Its Pod is the template's Pod spec (serviceAccountName, securityContext, nodeSelector,
    imagePullSecrets ...) with the step's container as its only container, the sidecar steps
    before it as native sidecars, the volumes those mount (the template's, else an emptyDir),
    and restartPolicy Never. Every container gets what the `restricted` Pod Security level
    asks for where neither it nor the Pod says otherwise (`_restricted`).

    backoffLimit ONCE_BACKOFF_LIMIT: the step runs once; a failure is the pipeline's, not
    retried behind the user's back (a migration may have half-run). A Pod that failed only
    because it was evicted or preempted (condition DisruptionTarget) is replaced without
    counting. The step's timeoutSeconds becomes the Job's activeDeadlineSeconds.
    """
    assert step.run is not None
    spec = pipeline.spec
    labels = {ONCE_LABEL: pipeline.name, STEP_LABEL: step.name, SPEC_HASH_LABEL: spec_hash(spec)}
    if pipeline.shard:  # the shard's operator follows only its own Jobs and their Pods
        labels[SHARD_LABEL] = pipeline.shard
    pod_spec: dict[str, Any] = copy.deepcopy(spec.template["spec"])
    pod_security = pod_spec.get("securityContext") or {}
    earlier = spec.steps[: spec.steps.index(step)]
    sidecars = [_sidecar(s) for s in earlier if s.type is StepType.SIDECAR]
    containers = [_user_container(step, step.run)]
    for container in (*sidecars, *containers):
        container["securityContext"] = _restricted(container, pod_security)
    pod_spec.pop("initContainers", None)
    if sidecars:
        pod_spec["initContainers"] = sidecars
    pod_spec["containers"] = containers
    pod_spec["restartPolicy"] = "Never"
    mounted = {
        str(mount.get("name"))
        for container in (*sidecars, *containers)
        for mount in container.get("volumeMounts") or []
        if isinstance(mount, dict)
    }
    given = {v.get("name"): v for v in pod_spec.get("volumes") or [] if isinstance(v, dict)}
    volumes = [given.get(name) or {"name": name, "emptyDir": {}} for name in sorted(mounted)]
    pod_spec.pop("volumes", None)
    if volumes:
        pod_spec["volumes"] = volumes
    job_spec: dict[str, Any] = {
        "backoffLimit": ONCE_BACKOFF_LIMIT,
        "podFailurePolicy": {
            "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
        },
    }
    if step.timeout_seconds is not None:
        job_spec["activeDeadlineSeconds"] = step.timeout_seconds
    job_spec["template"] = {"metadata": {"labels": dict(labels)}, "spec": pod_spec}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": once_job_name(pipeline, step),
            "namespace": pipeline.namespace,
            "labels": labels,
            "ownerReferences": _owned_by(pipeline),
        },
        "spec": job_spec,
    }


def _restricted(container: dict[str, Any], pod_security: dict[str, Any]) -> dict[str, Any]:
    """The container's securityContext with what the `restricted` Pod Security level asks
    for added where neither the container nor the Pod sets it: no privilege escalation, all
    capabilities dropped, non-root, the RuntimeDefault seccomp profile. What the user wrote
    wins (an image that must run as root says runAsNonRoot: false)."""
    security = dict(container.get("securityContext") or {})
    security.setdefault("allowPrivilegeEscalation", False)
    security.setdefault("capabilities", {"drop": ["ALL"]})
    for key, value in (("runAsNonRoot", True), ("seccompProfile", {"type": "RuntimeDefault"})):
        if key not in pod_security:
            security.setdefault(key, value)
    return security


def _volumes(
    pipeline: Pipeline, template_volumes: list[dict[str, Any]], mounted: list[int]
) -> list[dict[str, Any]]:
    spec = pipeline.spec
    volumes = list(template_volumes)
    present = {volume.get("name") for volume in volumes}

    def add(name: str, volume: dict[str, Any]) -> None:
        if name not in present:
            present.add(name)
            volumes.append({"name": name, **volume})

    for step in spec.steps:
        for name in [] if step.is_once else _volume_names(step):  # a Job's, not the Pods'
            add(name, {"emptyDir": {}})
    copied = [i for i, s in enumerate(spec.steps) if s.copy_assets and i not in mounted]
    if copied:
        add(TOOLS_VOLUME, {"emptyDir": {}})
    for position in mounted:
        assets = spec.steps[position].copy_assets
        assert assets is not None
        add(assets_volume(position), {"image": {"reference": assets.image}})
    if any(operator_released(pipeline, step) for step in spec.steps):
        field = f"metadata.annotations['{RELEASED_ANNOTATION}']"
        add(
            SIGNAL_VOLUME,
            {"downwardAPI": {"items": [{"path": SIGNAL_FILE, "fieldRef": {"fieldPath": field}}]}},
        )
    return volumes


def _volume_names(step: Step) -> list[str]:
    """Volumes a step uses: its target volume and its volumeMounts (step or container)."""
    names: list[str] = []
    for action in (step.download, step.copy_assets, step.prepare_volume, step.render_config):
        if action is not None:
            names.append(action.volume)
    for fields in (step.run, step.sidecar):
        for mount in (fields or {}).get("volumeMounts") or []:
            if isinstance(mount, dict) and isinstance(mount.get("name"), str):
                names.append(mount["name"])
    names += [mount.name for mount in step.volume_mounts]
    return names
