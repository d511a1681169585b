"""Configuration: spec/config.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from obscura_ref.cli import main
from obscura_ref.config import KEYS, ConfigError, NodeConfig, describe, load
from obscura_ref.machines.connection import ConnectionSettings


@pytest.mark.spec("CFG-1")
def test_file_replaces_defaults_and_overrides_replace_the_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('ping_interval = 20\nprivacy_level = "none"\nmax_inbound_connections = 3\n')
    overrides = ["ping_interval=12.5", "max_inbound_connections=4", "ping_interval=11"]
    config = load(path, [*overrides, "ping_timeout=5"])
    assert config.ping_interval == 11.0 and config.sources["ping_interval"] == "--set"
    assert config.privacy_level == "none" and config.sources["privacy_level"] == f"file {path}"
    # ping_timeout 30 is not below the file's ping_interval 20, but the override mends it.
    assert config.max_inbound_connections == 4
    assert config.handshake_timeout == 30.0 and config.sources["handshake_timeout"] == "default"


def test_defaults_are_the_specs() -> None:
    config = NodeConfig()
    assert config.max_outbound_connections == 8 and config.max_inbound_connections == 125
    assert config.connection_settings() == ConnectionSettings()
    assert {key.name for key in KEYS} >= {
        "max_outbound_connections",
        "max_inbound_connections",
        "connection_timeout",
        "handshake_timeout",
        "ping_interval",
        "inactivity_timeout",
        "reconnect_interval",
        "privacy_level",
    }


@pytest.mark.spec("CFG-2")
def test_an_unknown_key_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("ping_intervall = 5\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.key == "ping_intervall"
    with pytest.raises(ConfigError) as info:
        load(None, ["colour=blue"])
    assert info.value.key == "colour"


@pytest.mark.spec("CFG-3", "KA-7")
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("ping_interval=true", "ping_interval"),
        ("ping_interval=0", "ping_interval"),
        ("ping_interval=-3", "ping_interval"),
        ("ping_interval=nan", "ping_interval"),
        ('ping_interval="5"', "ping_interval"),
        ("max_inbound_connections=2.5", "max_inbound_connections"),
        ("max_outbound_connections=-1", "max_outbound_connections"),
        ("privacy_level=paranoid", "privacy_level"),
        ("max_send_queue=1", "max_send_queue"),
        ("user_agent=" + "x" * 257, "user_agent"),
        ("ping_timeout=60", "ping_timeout"),  # not below ping_interval (KA-7)
        ("ping_interval", "ping_interval"),
    ],
)
def test_a_wrong_value_is_refused_by_name(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(None, [override])
    assert info.value.key == key


def test_a_file_that_is_not_toml_or_uses_tables_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("ping_interval = \n")
    with pytest.raises(ConfigError, match="not TOML"):
        load(bad)
    bad.write_text("[timers]\nping_interval = 5\n")
    with pytest.raises(ConfigError) as info:
        load(bad)
    assert info.value.key == "timers"
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")


@pytest.mark.spec("CFG-4")
def test_config_show_prints_every_key_with_its_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node.toml"
    path.write_text("inactivity_timeout = 120\n")
    assert main(["config", "show", "--config", str(path), "--set", "privacy_level=none"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(KEYS)
    assert f"inactivity_timeout = 120.0  # file {path}" in lines
    assert 'privacy_level = "none"  # --set' in lines
    assert "ping_interval = 60.0  # default" in lines
    assert describe(load(path)) != describe(NodeConfig())


def test_config_show_reports_a_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--set", "ping_interval=0"]) == 2
    assert "ping_interval" in capsys.readouterr().err


@pytest.mark.spec("CFG-1")
def test_a_text_key_takes_bare_text_even_when_it_looks_like_a_number() -> None:
    assert load(None, ["user_agent=123"]).user_agent == "123"
    assert load(None, ['user_agent="quoted/1"']).user_agent == "quoted/1"
    assert load(None, ["privacy_level=none"]).connection_settings().privacy_level == "none"
