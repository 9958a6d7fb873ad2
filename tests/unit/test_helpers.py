"""The test suite's own helpers (tests/helpers.py) that decide how tests behave."""

from __future__ import annotations

import os
from typing import ClassVar

import pytest
from tests import helpers
from tests.helpers import in_ci

from initpipeline.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE", " True ", "on", "gitlab"])
def test_ci_set_to_a_yes_means_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci()


@pytest.mark.parametrize("value", ["", "0", "false", "no", "FALSE", " No ", "  "])
def test_ci_set_to_a_no_means_not_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert not in_ci()


def test_ci_unset_means_not_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert not in_ci()


class RecordingRunner:
    """Stands in for Kopf's test runner: records the settings the operator would read."""

    seen: ClassVar[list[Settings]] = []
    exit_code = 0
    exception = None

    def __init__(self, args: list[str], timeout: float) -> None:
        self.args = args

    def __enter__(self) -> RecordingRunner:
        self.seen.append(Settings.from_env(os.environ))
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_the_in_process_operator_ignores_a_namespaces_setting_of_the_shell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INITPIPELINE_NAMESPACES", "from-the-shell")
    monkeypatch.setattr(helpers, "KopfRunner", RecordingRunner)
    RecordingRunner.seen = []
    with helpers.operator_running("/nowhere/kubeconfig"):
        pass
    with helpers.operator_running("/nowhere/kubeconfig", "ns1", INITPIPELINE_NAMESPACES="ns1"):
        pass
    # Cluster-wide unless the test asks for namespaces; the shell's value is back afterwards.
    assert [s.namespaces for s in RecordingRunner.seen] == [(), ("ns1",)]
    assert os.environ["INITPIPELINE_NAMESPACES"] == "from-the-shell"
