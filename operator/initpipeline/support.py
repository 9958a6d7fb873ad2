"""What the cluster supports, decided from what the API server reports. Pure: no I/O.

The supported Kubernetes range is the one the test matrix runs (`make test-matrix`, see
hack/README.md): OLDEST_TESTED (integration and e2e tiers) to NEWEST_TESTED (the default
local cluster, every tier). Older servers are refused (pipelines report
Stalled/UnsupportedCluster); newer ones run, with a warning at start-up.
"""

from __future__ import annotations

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
