"""The supported Kubernetes range the operator checks at start-up: the tested one."""

from __future__ import annotations

import pytest

from initpipeline import support

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("version", [(1, 35), (1, 36), (1, 37), (1, 38), (2, 0)])
def test_tested_and_newer_servers_are_supported(version: tuple[int, int]) -> None:
    assert support.unsupported_server(version) is None


@pytest.mark.parametrize("version", [(1, 29), (1, 34)])
def test_servers_older_than_the_oldest_tested_minor_are_refused(version: tuple[int, int]) -> None:
    message = support.unsupported_server(version)

    assert message == (
        f"Kubernetes 1.{version[1]} is not supported: InitPipeline is tested on 1.35 to 1.37 "
        "and needs 1.35 or newer"
    )


def test_a_server_newer_than_the_newest_tested_minor_only_warns() -> None:
    assert support.untested_server((1, 37)) is None
    assert support.untested_server((1, 38)) == (
        "Kubernetes 1.38 is newer than the newest tested minor 1.37; running anyway"
    )


@pytest.mark.parametrize(
    ("server", "runtimes", "expected"),
    [
        (
            (1, 37),
            ["containerd://2.4.2"],
            (True, "every node's runtime mounts image volumes (containerd://2.4.2)"),
        ),
        (
            (1, 35),
            ["containerd://2.1.0", "cri-o://1.31.2"],
            (
                True,
                "every node's runtime mounts image volumes (containerd://2.1.0, cri-o://1.31.2)",
            ),
        ),
        (
            (1, 35),
            ["containerd://2.4.2", "containerd://1.6.20~ds1"],
            (False, "node runtimes without image volumes: containerd://1.6.20~ds1"),
        ),
        (
            (1, 35),
            ["docker://28.0.1"],
            (False, "node runtimes without image volumes: docker://28.0.1"),
        ),
        ((1, 34), ["containerd://2.4.2"], (False, "Kubernetes 1.34 is older than 1.35")),
        (
            (1, 37),
            [],
            (False, "no node's runtime known (none listed, or the operator may not list nodes)"),
        ),
    ],
)
def test_auto_mounts_when_the_server_and_every_node_runtime_support_image_volumes(
    server: tuple[int, int], runtimes: list[str], expected: tuple[bool, str]
) -> None:
    assert support.image_volumes(server, runtimes) == expected
