from __future__ import annotations

import pytest

from initpipeline.settings import DEFAULT_STEP_IMAGE, Settings, SettingsError

pytestmark = pytest.mark.unit


def test_defaults_watch_every_namespace_with_the_pinned_busybox() -> None:
    settings = Settings.from_env({})
    assert settings.step_image == DEFAULT_STEP_IMAGE
    assert settings.namespaces == ()
    assert settings.log_format == "text"


def test_values_are_read_from_prefixed_variables() -> None:
    settings = Settings.from_env(
        {
            "INITPIPELINE_STEP_IMAGE": "registry.local/busybox:1.37",
            "INITPIPELINE_NAMESPACES": "shop, web",
            "INITPIPELINE_LOG_FORMAT": "json",
            "INITPIPELINE_METRICS_PORT": "9191",
            "INITPIPELINE_RESYNC_SECONDS": "2.5",
        }
    )
    assert settings.step_image == "registry.local/busybox:1.37"
    assert settings.namespaces == ("shop", "web")
    assert settings.log_format == "json"
    assert settings.metrics_port == 9191
    assert settings.resync_seconds == 2.5


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LOG_FORMAT", "xml", "INITPIPELINE_LOG_FORMAT must be 'text' or 'json'"),
        ("METRICS_PORT", "ninety", "INITPIPELINE_METRICS_PORT must be a number"),
        ("RESYNC_SECONDS", "-1", "INITPIPELINE_RESYNC_SECONDS must not be negative"),
        ("STEP_IMAGE", " ", "INITPIPELINE_STEP_IMAGE must not be empty"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({f"INITPIPELINE_{name}": value})
