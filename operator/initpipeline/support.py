"""What the cluster supports, decided from what the API server reports. Pure: no I/O.

The supported Kubernetes range is the one the test matrix runs (`make test-matrix`, see
hack/README.md): OLDEST_TESTED (integration and e2e tiers) to NEWEST_TESTED (the default
local cluster, every tier). Older servers are refused (pipelines report
Stalled/UnsupportedCluster); newer ones run, with a warning at start-up.

copyAssets in Auto mode mounts an image volume when `image_volumes` says the cluster can: the
API server's version (the ImageVolume feature is on by default from 1.35) and the runtime
each node reports (status.nodeInfo.containerRuntimeVersion). The operator looks once, at
start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

OLDEST_TESTED: Final = (1, 35)
NEWEST_TESTED: Final = (1, 37)


def _dotted(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def unsupported_server(version: tuple[int, int]) -> str | None:
    """Why a server of this version is refused, or None when it is supported."""
    if version >= OLDEST_TESTED:
        return None
    return (
        f"Kubernetes {_dotted(version)} is not supported: InitPipeline is tested on "
        f"{_dotted(OLDEST_TESTED)} to {_dotted(NEWEST_TESTED)} and needs {_dotted(OLDEST_TESTED)} "
        "or newer"
    )


def untested_server(version: tuple[int, int]) -> str | None:
    """A warning for a server newer than the newest tested minor, else None."""
    if version <= NEWEST_TESTED:
        return None
    return (
        f"Kubernetes {_dotted(version)} is newer than the newest tested minor "
        f"{_dotted(NEWEST_TESTED)}; running anyway"
    )


# Container runtimes (as nodes report status.nodeInfo.containerRuntimeVersion) from which on
# the CRI mounts image volumes: containerd 2.1, CRI-O 1.31.
IMAGE_VOLUME_RUNTIMES: Final = {"containerd": (2, 1), "cri-o": (1, 31)}
# ImageVolume is on by default from Kubernetes 1.35 (beta; GA in 1.36).
IMAGE_VOLUME_SERVER: Final = (1, 35)


def _runtime_supports_image_volumes(runtime: str) -> bool:
    name, _, version = runtime.partition("://")
    needed = IMAGE_VOLUME_RUNTIMES.get(name)
    parts = version.removeprefix("v").split(".")
    if needed is None or len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        return False
    return (int(parts[0]), int(parts[1])) >= needed


def image_volumes(server: tuple[int, int], runtimes: Sequence[str]) -> tuple[bool, str]:
    """Whether copyAssets in Auto mode mounts image volumes, and why: the API server is
    1.35+ and every node's runtime (containerRuntimeVersion) mounts them."""
    if server < IMAGE_VOLUME_SERVER:
        return False, f"Kubernetes {_dotted(server)} is older than {_dotted(IMAGE_VOLUME_SERVER)}"
    if not runtimes:
        return False, "no node's runtime known (none listed, or the operator may not list nodes)"
    older = sorted({r for r in runtimes if not _runtime_supports_image_volumes(r)})
    if older:
        return False, f"node runtimes without image volumes: {', '.join(older)}"
    return True, f"every node's runtime mounts image volumes ({', '.join(sorted(set(runtimes)))})"
