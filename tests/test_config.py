"""Configuration: spec/config.md."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from obscura_ref.cli import main
from obscura_ref.config import KEYS, KEYS_BY_NAME, ConfigError, NodeConfig, describe, load
from obscura_ref.machines.connection import ConnectionSettings
from obscura_ref.manager.settings import ManagerSettings


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


MANAGER_KEYS = {
    "max_total_connections": 133,
    "max_temporary_connections": 2,
    "temporary_timeout": 30.0,
    "ban_duration": 86_400.0,
    "data_dir": "~/.obscura-ref",
    "reconnect_interval": 30.0,
    "reconnect_max_interval": 3_600.0,
    "rotation_interval": 600.0,
    "partition_timeout": 120.0,
    "seed_nodes": (),
}


def test_the_manager_keys_have_the_specs_defaults_and_types() -> None:
    config = NodeConfig()
    for name, default in MANAGER_KEYS.items():
        value = config.values[name]
        assert value == default and type(value) is type(default), name
    settings = config.manager_settings()
    assert settings == ManagerSettings(data_dir=Path.home() / ".obscura-ref")
    assert (settings.max_outbound_connections, settings.max_inbound_connections) == (8, 125)
    assert "later ones double" in KEYS_BY_NAME["reconnect_interval"].meaning


@pytest.mark.spec("CFG-3")
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("max_total_connections=-1", "max_total_connections"),
        ("max_total_connections=200001", "max_total_connections"),
        ("max_total_connections=1.5", "max_total_connections"),
        ("max_temporary_connections=-1", "max_temporary_connections"),
        ("max_temporary_connections=1001", "max_temporary_connections"),
        ("max_temporary_connections=true", "max_temporary_connections"),
        ("temporary_timeout=0", "temporary_timeout"),
        ("temporary_timeout=86401", "temporary_timeout"),
        ("ban_duration=0", "ban_duration"),
        ("ban_duration=31536001", "ban_duration"),
        ('ban_duration="1"', "ban_duration"),
        ("reconnect_max_interval=0", "reconnect_max_interval"),
        ("reconnect_max_interval=86401", "reconnect_max_interval"),
        ("rotation_interval=-1", "rotation_interval"),
        ("rotation_interval=inf", "rotation_interval"),
        ("partition_timeout=0", "partition_timeout"),
        ("partition_timeout=86401", "partition_timeout"),
        ('seed_nodes="127.0.0.1:9000"', "seed_nodes"),
        ("seed_nodes=127.0.0.1:9000", "seed_nodes"),
        ("seed_nodes=[9000]", "seed_nodes"),
    ],
)
def test_a_wrong_manager_value_is_refused_by_name(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(None, [override])
    assert info.value.key == key and str(info.value).startswith(f"{key}: ")


@pytest.mark.spec("CFG-3")
@pytest.mark.parametrize(
    "overrides",
    [
        ["max_total_connections=0", "max_temporary_connections=0", "temporary_timeout=0.001"],
        [
            "max_total_connections=200000",
            "max_temporary_connections=1000",
            "temporary_timeout=86400",
            "ban_duration=31536000",
            "reconnect_interval=86400",
            "reconnect_max_interval=86400",  # equal to reconnect_interval: allowed
            "rotation_interval=86400",
            "partition_timeout=86400",
            "data_dir=",
        ],
    ],
)
def test_the_ends_of_the_manager_ranges_are_allowed(overrides: list[str]) -> None:
    config = load(None, overrides)
    for override in overrides:
        name, _, text = override.partition("=")
        assert config.values[name] == (float(text) if text else "")
        assert config.sources[name] == "--set"


@pytest.mark.spec("CFG-3")
def test_the_backoff_cap_may_not_be_below_its_first_delay(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(None, ["reconnect_max_interval=29"])
    assert info.value.key == "reconnect_max_interval" and "reconnect_interval" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load(None, ["reconnect_interval=3601"])
    assert info.value.key == "reconnect_max_interval"
    # Checked on the final values: an override mends the file.
    path = tmp_path / "node.toml"
    path.write_text("reconnect_interval = 7200\n")
    config = load(path, ["reconnect_max_interval=7200"])
    assert config.manager_settings().reconnect_max_interval == 7200.0
    with pytest.raises(ValueError, match="reconnect_max_interval"):
        ManagerSettings(reconnect_interval=10, reconnect_max_interval=5)


@pytest.mark.spec("CFG-1")
@pytest.mark.parametrize(
    "override",
    [
        'seed_nodes=["127.0.0.1:9000", "[::1]:9001"]',
        "seed_nodes=[127.0.0.1:9000, [::1]:9001]",  # the quotes a shell removes
        "seed_nodes=[ 127.0.0.1:9000,[::1]:9001 ]",
    ],
)
def test_seed_nodes_are_a_list_of_addresses_on_the_command_line(override: str) -> None:
    config = load(None, [override])
    assert config.seed_nodes == ("127.0.0.1:9000", "[::1]:9001")
    assert config.manager_settings().seed_nodes == (("127.0.0.1", 9000), ("::1", 9001))
    assert load(None, [override, "seed_nodes=[]"]).seed_nodes == ()


@pytest.mark.spec("CFG-1", "CFG-4")
def test_seed_nodes_from_a_file_and_shown_as_toml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node.toml"
    path.write_text('seed_nodes = ["192.0.2.1:9000", "[2001:db8::1]:9000"]\n')
    config = load(path)
    assert config.seed_nodes == ("192.0.2.1:9000", "[2001:db8::1]:9000")
    assert config.sources["seed_nodes"] == f"file {path}"
    assert main(["config", "show", "--config", str(path)]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("seed_nodes")]
    assert line == f'seed_nodes = ["192.0.2.1:9000", "[2001:db8::1]:9000"]  # file {path}'
    assert tomllib.loads(line)["seed_nodes"] == list(config.seed_nodes)
    assert describe(NodeConfig())[[k.name for k in KEYS].index("seed_nodes")] == (
        "seed_nodes = []  # default"
    )


@pytest.mark.spec("CFG-3")
@pytest.mark.parametrize(
    ("items", "named"),
    [
        ('["127.0.0.1:9000", "localhost:9000"]', "localhost:9000"),
        ('["127.0.0.1"]', "127.0.0.1"),
        ('["127.0.0.1:65536"]', "127.0.0.1:65536"),
        ('["127.0.0.1:9000", 9000]', "9000"),
        ('[["127.0.0.1:9000"]]', "127.0.0.1:9000"),
    ],
)
def test_a_wrong_seed_node_is_refused_naming_the_key_and_the_item(
    tmp_path: Path, items: str, named: str
) -> None:
    path = tmp_path / "node.toml"
    path.write_text(f"seed_nodes = {items}\n")
    for source, overrides in ((path, None), (None, [f"seed_nodes={items}"])):
        with pytest.raises(ConfigError) as info:
            load(source, overrides)
        assert info.value.key == "seed_nodes" and named in str(info.value)


def test_data_dir_is_expanded_and_the_empty_text_keeps_bans_in_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert NodeConfig().manager_settings().data_dir == tmp_path / ".obscura-ref"
    assert load(None, ["data_dir=~/bans"]).manager_settings().data_dir == tmp_path / "bans"
    assert load(None, ["data_dir=state"]).manager_settings().data_dir == Path("state")
    assert load(None, ['data_dir=""']).manager_settings().data_dir is None
    path = tmp_path / "node.toml"
    path.write_text("data_dir = 5\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.key == "data_dir"


@pytest.mark.parametrize(
    "values",
    [
        {"max_total_connections": -1},
        {"max_temporary_connections": 1.5},
        {"max_outbound_connections": True},
        {"ban_duration": 0},
        {"partition_timeout": float("nan")},
        {"temporary_timeout": "30"},
    ],
)
def test_manager_settings_out_of_range_are_refused(values: dict[str, object]) -> None:
    (name,) = values
    with pytest.raises(ValueError, match=name):
        ManagerSettings(**values)  # type: ignore[arg-type]


def test_manager_settings_follow_the_configuration() -> None:
    overrides = {
        "max_outbound_connections": 3,
        "max_inbound_connections": 4,
        "max_total_connections": 5,
        "max_temporary_connections": 6,
        "temporary_timeout": 7.0,
        "ban_duration": 8.0,
        "reconnect_interval": 9.0,
        "reconnect_max_interval": 10.0,
        "rotation_interval": 11.0,
        "partition_timeout": 12.0,
        "privacy_level": "none",
    }
    config = NodeConfig().with_values(overrides, "test").with_values({"data_dir": ""}, "test")
    settings = config.manager_settings()
    assert {name: getattr(settings, name) for name in overrides} == overrides


def test_config_show_is_toml_that_loads_back(tmp_path: Path) -> None:
    shown = "\n".join(line.split("  #")[0] for line in describe(load(None, [])))
    path = tmp_path / "shown.toml"
    path.write_text(shown + "\n", encoding="utf-8")
    assert load(path, []).values == load(None, []).values
