"""The operator, in this process, for the integration tests that need one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.helpers import operator_running


@pytest.fixture
def operator(kubeconfig: str) -> Iterator[None]:
    with operator_running(kubeconfig):
        yield
