"""The test suite's own helpers (tests/helpers.py) that decide how tests behave."""

from __future__ import annotations

import pytest
from tests.helpers import in_ci

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
