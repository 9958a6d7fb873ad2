from __future__ import annotations

from pathlib import Path

import pytest

from initpipeline import settings as settings_module
from initpipeline.settings import (
    DEFAULT_RENDER_IMAGE,
    DEFAULT_STEP_IMAGE,
    Settings,
    SettingsError,
)

pytestmark = pytest.mark.unit


def test_defaults_watch_every_namespace_with_the_pinned_busybox() -> None:
    settings = Settings.from_env({})
    assert settings.step_image == DEFAULT_STEP_IMAGE
    assert settings.render_image == DEFAULT_RENDER_IMAGE
    assert settings.namespaces == ()
    assert settings.log_format == "text"


def test_values_are_read_from_prefixed_variables() -> None:
    settings = Settings.from_env(
        {
            "INITPIPELINE_STEP_IMAGE": "registry.local/busybox:1.37",
            "INITPIPELINE_RENDER_IMAGE": "registry.local/initpipeline:1",
            "INITPIPELINE_NAMESPACES": "shop, web",
            "INITPIPELINE_LOG_FORMAT": "json",
            "INITPIPELINE_METRICS_PORT": "9191",
            "INITPIPELINE_RESYNC_SECONDS": "2.5",
        }
    )
    assert settings.step_image == "registry.local/busybox:1.37"
    assert settings.render_image == "registry.local/initpipeline:1"
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
        ("RENDER_IMAGE", "", "INITPIPELINE_RENDER_IMAGE must not be empty"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({f"INITPIPELINE_{name}": value})


IN_A_POD = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "INITPIPELINE_POD_NAMESPACE": "ops"}


def test_leader_election_is_off_outside_a_pod_and_on_inside_one() -> None:
    assert not Settings.from_env({}).leader_election
    settings = Settings.from_env(IN_A_POD)
    assert settings.leader_election
    assert (settings.lease_namespace, settings.lease_name) == ("ops", "initpipeline-operator")
    # controller-runtime's defaults
    assert settings.lease_duration_seconds == 15
    assert settings.renew_deadline_seconds == 10
    assert settings.retry_period_seconds == 2


@pytest.mark.parametrize(("value", "on"), [("true", True), ("False", False), ("0", False)])
def test_leader_election_can_be_switched_explicitly(value: str, on: bool) -> None:
    env = {**IN_A_POD, "INITPIPELINE_LEADER_ELECTION": value}
    assert Settings.from_env(env).leader_election is on


def test_election_settings_are_read_from_prefixed_variables() -> None:
    settings = Settings.from_env(
        {
            "INITPIPELINE_LEADER_ELECTION": "true",
            "INITPIPELINE_POD_NAMESPACE": "ops",
            "INITPIPELINE_LEASE_NAMESPACE": "elsewhere",
            "INITPIPELINE_LEASE_NAME": "ipl.example.com",
            "INITPIPELINE_LEASE_DURATION_SECONDS": "3",
            "INITPIPELINE_RENEW_DEADLINE_SECONDS": "2",
            "INITPIPELINE_RETRY_PERIOD_SECONDS": "0.5",
            "INITPIPELINE_POD_NAME": "operator-abc12",
        }
    )
    assert settings.lease_namespace == "elsewhere"  # the Lease's own setting wins
    assert settings.lease_name == "ipl.example.com"
    assert settings.lease_duration_seconds == 3
    assert settings.renew_deadline_seconds == 2
    assert settings.retry_period_seconds == 0.5
    assert settings.pod_name == "operator-abc12"


def test_the_lease_namespace_defaults_to_the_service_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("initpipeline-system")
    monkeypatch.setattr(settings_module, "SERVICE_ACCOUNT_NAMESPACE", namespace_file)
    env = {"INITPIPELINE_LEADER_ELECTION": "true"}
    assert Settings.from_env(env).lease_namespace == "initpipeline-system"
    monkeypatch.setattr(settings_module, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "missing")
    with pytest.raises(SettingsError, match=r"INITPIPELINE_LEASE_NAMESPACE .* must be set"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LEADER_ELECTION": "maybe"}, "INITPIPELINE_LEADER_ELECTION must be 'true' or 'false'"),
        ({"LEASE_NAME": "Operator_Lease"}, "INITPIPELINE_LEASE_NAME must be a lowercase DNS"),
        ({"LEASE_DURATION_SECONDS": "0"}, "INITPIPELINE_LEASE_DURATION_SECONDS must be at least 1"),
        ({"LEASE_DURATION_SECONDS": "2.5"}, "INITPIPELINE_LEASE_DURATION_SECONDS must be a number"),
        ({"RETRY_PERIOD_SECONDS": "0"}, "INITPIPELINE_RETRY_PERIOD_SECONDS must be positive"),
        (
            {"RENEW_DEADLINE_SECONDS": "15"},
            r"INITPIPELINE_RENEW_DEADLINE_SECONDS \(15\) must be less than "
            r"INITPIPELINE_LEASE_DURATION_SECONDS \(15\)",
        ),
        (
            {"RENEW_DEADLINE_SECONDS": "2.4"},
            r"INITPIPELINE_RENEW_DEADLINE_SECONDS \(2.4\) must be more than 1.2 times",
        ),
        ({"LIVENESS_ENDPOINT": "0.0.0.0:8080"}, "INITPIPELINE_LIVENESS_ENDPOINT must be like"),
        ({"LIVENESS_ENDPOINT": "http://0.0.0.0:http/x"}, "INITPIPELINE_LIVENESS_ENDPOINT"),
    ],
)
def test_bad_election_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    full = {**IN_A_POD, **{f"INITPIPELINE_{name}": value for name, value in env.items()}}
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(full)


def test_election_timing_is_not_checked_when_election_is_off() -> None:
    env = {"INITPIPELINE_LEADER_ELECTION": "false", "INITPIPELINE_RENEW_DEADLINE_SECONDS": "60"}
    assert not Settings.from_env(env).leader_election


def test_an_empty_liveness_endpoint_serves_none() -> None:
    assert Settings.from_env({"INITPIPELINE_LIVENESS_ENDPOINT": ""}).liveness_endpoint == ""


def test_workers_default_to_four_and_are_read_from_their_variable() -> None:
    assert Settings.from_env({}).workers == 4
    assert Settings.from_env({"INITPIPELINE_WORKERS": "16"}).workers == 16


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_workers_below_one_name_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="INITPIPELINE_WORKERS"):
        Settings.from_env({"INITPIPELINE_WORKERS": value})


@pytest.mark.parametrize(
    "selector",
    [
        "initpipeline.io/shard=shard1",
        "initpipeline.io/shard==shard1",
        "initpipeline.io/shard!=shard1",
        "!initpipeline.io/shard",
        "initpipeline.io/shard",
        "initpipeline.io/shard in (a, b)",
        "initpipeline.io/shard notin (a)",
    ],
)
def test_a_shard_selector_is_one_requirement_on_the_shard_label(selector: str) -> None:
    env = {"INITPIPELINE_SHARD_SELECTOR": f" {selector} "}
    assert Settings.from_env(env).shard_selector == selector
    assert Settings.from_env({}).shard_selector == ""


@pytest.mark.parametrize(
    "selector",
    [
        "team=a",  # another label: the Pods do not carry it
        "initpipeline.io/shard=a,team=b",
        "initpipeline.io/shard=-a",
        "initpipeline.io/shard in ()",
    ],
)
def test_other_shard_selectors_are_refused_naming_the_variable(selector: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"INITPIPELINE_SHARD_SELECTOR": selector})
    assert str(refused.value) == (
        "INITPIPELINE_SHARD_SELECTOR must be one label selector requirement on "
        "initpipeline.io/shard (e.g. 'initpipeline.io/shard=shard1', '!initpipeline.io/shard', "
        f"'initpipeline.io/shard in (a,b)'), not {selector!r}"
    )


def test_each_elected_shard_names_its_own_lease() -> None:
    shard = {**IN_A_POD, "INITPIPELINE_SHARD_SELECTOR": "initpipeline.io/shard=s1"}
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(shard)
    assert str(refused.value) == (
        "INITPIPELINE_LEASE_NAME must be set, one per shard, with INITPIPELINE_SHARD_SELECTOR"
    )
    named = Settings.from_env({**shard, "INITPIPELINE_LEASE_NAME": "initpipeline-s1"})
    assert named.lease_name == "initpipeline-s1"
