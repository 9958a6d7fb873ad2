"""Names shared by the Pods the operator renders and the code that reads them back."""

from typing import Final

from initpipeline.spec import GROUP, RESERVED_PREFIX

# Labels on every generated Pod: which pipeline, which spec revision, which replica.
PIPELINE_LABEL: Final = f"{GROUP}/pipeline"
SPEC_HASH_LABEL: Final = f"{GROUP}/spec-hash"
REPLICA_LABEL: Final = f"{GROUP}/replica"
# ... and, on a replacement of a failed Pod (spec.retries), which attempt: "2" on the first
# retry; absent on the first attempt.
ATTEMPT_LABEL: Final = f"{GROUP}/attempt"

# Set by the operator on a Pod whose start-up outlived spec.activeDeadlineSeconds: the step
# it was on. With it the operator sets the Pod's own activeDeadlineSeconds to 1, so the
# kubelet stops the Pod (or, not scheduled yet, marks it Failed itself).
DEADLINE_ANNOTATION: Final = f"{GROUP}/deadline-exceeded"

# On the Job of a `once` run step and on its Pod: the pipeline and the step (with
# SPEC_HASH_LABEL: the revision it runs for). Not PIPELINE_LABEL: that selects the replicas
# (status.selector, the scale subresource), which the Job's Pod is not one of.
ONCE_LABEL: Final = f"{GROUP}/once-of"
STEP_LABEL: Final = f"{GROUP}/step"

# The operator's signal to a Pod: the comma-separated names of the wait steps whose
# API-side targets (service, job, resource) hold. Projected into the wait containers
# through a downward API volume, so Pods need no RBAC (as Tekton does).
RELEASED_ANNOTATION: Final = f"{GROUP}/released"
# The release value written again under this key when a released wait container still runs
# a while later: the kubelet can miss an annotation update when it refreshes a downward API
# volume (kubernetes#29633) and then projects it only at its next periodic sync, a minute
# or more later; any later update of the Pod makes it project the latest annotations.
NUDGED_ANNOTATION: Final = f"{GROUP}/release-nudged"
SIGNAL_VOLUME: Final = f"{RESERVED_PREFIX}signal"
SIGNAL_DIR: Final = "/var/run/initpipeline"
SIGNAL_FILE: Final = "released"

# copyAssets runs the assets image with a static busybox that this container copies in,
# so images without a shell or cp work too.
TOOLS_CONTAINER: Final = f"{RESERVED_PREFIX}tools"
TOOLS_VOLUME: Final = f"{RESERVED_PREFIX}tools"
TOOLS_DIR: Final = "/var/run/initpipeline-tools"

# Exit code of a wait step whose timeoutSeconds ran out (status reason WaitTimeout).
WAIT_TIMEOUT_EXIT_CODE: Final = 124

# Where download, copyAssets and prepareVolume steps mount their target volume.
TARGET_DIR: Final = "/var/run/initpipeline-volume"

# A copyAssets step in Mount mode: the image volume of step number <index> (0-based).
ASSETS_VOLUME_PREFIX: Final = f"{RESERVED_PREFIX}assets-"


def assets_volume(index: int) -> str:
    """The image volume that mounts the assets of the copyAssets step at `index`."""
    return f"{ASSETS_VOLUME_PREFIX}{index}"
