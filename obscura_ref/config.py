"""Node configuration (spec/config.md): keys, defaults, ranges, and where each value came from.

Values come from the defaults, then a TOML file, then ``--set KEY=VALUE`` overrides, each layer
replacing the one before. Every refusal names the key.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .machines.connection import MIN_DURATION, ConnectionSettings
from .machines.privacy import DEFAULT_PRIVACY_LEVEL, PRIVACY_LEVELS
from .manager.settings import ManagerSettings
from .wire import MAX_USER_AGENT

MiB = 1024 * 1024


@dataclass(frozen=True)
class Key:
    name: str
    # int, float (seconds; an integer is accepted), bool, str, or tuple (a list of texts)
    kind: type
    default: Any
    meaning: str
    minimum: float | None = None  # inclusive
    above: float | None = None  # exclusive lower bound
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    # For a list: what each item is (for the table); for a list or a text, the check of each
    # text: the problem, or None. A text key checked so never checks the empty text.
    items: str = ""
    item_problem: Callable[[str], str | None] | None = None

    def check(self, value: object) -> Any:
        """The value as this key's type, or ConfigError naming the key."""
        if self.kind is tuple:
            # A TOML array of texts, kept as a tuple so that the value cannot change later.
            if not isinstance(value, list | tuple):
                raise ConfigError(self.name, f"must be an array of {self.items}, got {value!r}")
            for item in value:
                if not isinstance(item, str):
                    raise ConfigError(self.name, f"has an item that is not a string: {item!r}")
                problem = None if self.item_problem is None else self.item_problem(item)
                if problem is not None:
                    raise ConfigError(self.name, f"has a wrong item {item!r}: {problem}")
            return tuple(value)
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(self.name, f"must be true or false, got {value!r}")
            return value
        if self.kind is str:
            if not isinstance(value, str):
                raise ConfigError(self.name, f"must be a string, got {value!r}")
            problem = None if self.item_problem is None or not value else self.item_problem(value)
            if problem is not None:
                raise ConfigError(self.name, f"is wrong: {problem}")
            if self.choices and value not in self.choices:
                raise ConfigError(
                    self.name, f"must be one of {', '.join(self.choices)}; got {value!r}"
                )
            try:
                encoded = value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ConfigError(self.name, f"has no UTF-8 encoding: {exc}") from exc
            if self.maximum is not None and len(encoded) > self.maximum:
                raise ConfigError(self.name, f"must be at most {self.maximum:g} bytes of UTF-8")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(self.name, f"must be a number, got {value!r}")
        if self.kind is int and not isinstance(value, int):
            raise ConfigError(self.name, f"must be a whole number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(self.name, f"must be finite, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(self.name, f"must be at least {self.minimum:g}, got {value!r}")
        if self.above is not None and value <= self.above:
            raise ConfigError(self.name, f"must be above {self.above:g}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(self.name, f"must be at most {self.maximum:g}, got {value!r}")
        return self.kind(value)


class ConfigError(ValueError):
    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"{key}: {detail}")
        self.key = key


def _address_problem(text: str) -> str | None:
    """Why ``text`` is not an address the node can dial, or None."""
    from .node import NodeError, parse_address  # here: node imports this module

    try:
        parse_address(text)
    except NodeError as exc:
        return str(exc)
    return None


_TIMERS = ConnectionSettings()
_MANAGER = ManagerSettings()
DAY = 86_400.0
YEAR = 31_536_000  # 365 days

# spec/config.md is generated from this table.
KEYS: tuple[Key, ...] = (
    Key("max_outbound_connections", int, 8, "outbound connections at most", 0, None, 10_000),
    Key("max_inbound_connections", int, 125, "inbound connections at most", 0, None, 100_000),
    Key(
        "max_total_connections",
        int,
        _MANAGER.max_total_connections,
        "connections of every type at most (spec/manager.md section 3)",
        0,
        None,
        200_000,
    ),
    Key(
        "max_temporary_connections",
        int,
        _MANAGER.max_temporary_connections,
        "temporary connections at most (spec/manager.md section 3)",
        0,
        None,
        1_000,
    ),
    Key(
        "connection_timeout",
        float,
        _TIMERS.connection_timeout,
        "seconds for a TCP connect",
        MIN_DURATION,  # spec: CFG-5
        None,
        DAY,
    ),
    Key(
        "handshake_timeout",
        float,
        _TIMERS.handshake_timeout,
        "seconds from the TCP connection to a complete handshake",
        MIN_DURATION,  # spec: CFG-5
        None,
        DAY,
    ),
    Key(
        "ping_interval",
        float,
        _TIMERS.ping_interval,
        "seconds between pings",
        MIN_DURATION,  # spec: CFG-5
        None,
        DAY,
    ),
    Key(
        "ping_timeout",
        float,
        _TIMERS.ping_timeout,
        "seconds of silence, with a ping unanswered, before a close (KA-3)",
        MIN_DURATION,  # spec: CFG-5
        None,
        DAY,
    ),
    Key(
        "inactivity_timeout",
        float,
        _TIMERS.inactivity_timeout,
        "seconds without a received byte before a close",
        MIN_DURATION,  # spec: CFG-5
        None,
        DAY,
    ),
    Key(
        "close_timeout",
        float,
        _TIMERS.close_timeout,
        "seconds a closing connection may take to write what is queued and see the peer's end",
        MIN_DURATION,  # spec: CFG-5
        None,
        DAY,
    ),
    Key(
        "temporary_timeout",
        float,
        _MANAGER.temporary_timeout,
        "seconds a temporary connection may take to complete its handshake",
        MIN_DURATION,  # spec: CFG-5
        None,
        DAY,
    ),
    Key(
        "ban_duration",
        float,
        _MANAGER.ban_duration,
        "seconds an address stays banned (spec/manager.md section 6)",
        MIN_DURATION,  # spec: CFG-5
        None,
        YEAR,
    ),
    Key(
        "data_dir",
        str,
        "~/.obscura-ref",
        "the folder of the ban file (bans.json); `~` is expanded; "
        "the empty text keeps bans in memory only",
    ),
    Key(
        "reconnect_interval",
        float,
        _MANAGER.reconnect_interval,
        "seconds of the first reconnection delay; later ones double (spec/manager.md section 8)",
        MIN_DURATION,  # spec: CFG-5
        None,
        DAY,
    ),
    Key(
        "reconnect_max_interval",
        float,
        _MANAGER.reconnect_max_interval,
        "the cap of the reconnection backoff, in seconds; not below `reconnect_interval`",
        MIN_DURATION,  # spec: CFG-5
        None,
        DAY,
    ),
    Key(
        "rotation_interval",
        float,
        _MANAGER.rotation_interval,
        "seconds between rotations of outbound connections (spec/manager.md section 9)",
        MIN_DURATION,  # spec: CFG-5
        None,
        DAY,
    ),
    Key(
        "partition_timeout",
        float,
        _MANAGER.partition_timeout,
        "seconds without an established outbound connection before the node is "
        "partitioned (spec/manager.md section 10)",
        MIN_DURATION,  # spec: CFG-5
        None,
        DAY,
    ),
    Key(
        "seed_nodes",
        tuple,
        (),
        "addresses for the address book (spec/manager.md section 7)",
        items="`HOST:PORT` texts, HOST an IP address (IPv6 as `[HOST]:PORT`)",
        item_problem=_address_problem,
    ),
    Key(
        "privacy_level",
        str,
        DEFAULT_PRIVACY_LEVEL.value,
        "what the node does for privacy: padding, encryption, rotation, the user agent sent "
        "(spec/privacy.md table 1)",
        choices=PRIVACY_LEVELS,
    ),
    Key(
        "proxy",
        str,
        "",
        "`HOST:PORT` of a SOCKS5 proxy (a Tor SOCKS port, say) for every outbound connection, "
        "HOST an IP address; the empty text connects directly (spec/privacy.md section 4)",
        item_problem=_address_problem,
    ),
    Key(
        "proxy_username",
        str,
        "",
        "the username given to the proxy (RFC 1929); the empty text gives none",
        maximum=255,
    ),
    Key(
        "proxy_password",
        str,
        "",
        "the password given to the proxy with `proxy_username`",
        maximum=255,
    ),
    Key(
        "proxy_isolate",
        bool,
        True,
        "without `proxy_username`, give the proxy fresh random credentials for each connection, "
        "so that Tor opens a circuit for each (spec/privacy.md PRIV-44)",
    ),
    Key(
        "max_send_queue",
        int,
        16 * MiB,
        "bytes queued for one peer at most before it is closed `send_queue_full`",
        64 * 1024,
        None,
        1024 * MiB,
    ),
    Key(
        "memory_budget",
        int,
        256 * MiB,
        "bytes the buffers of all connections may hold together; the events the application "
        "has not taken, half of it (spec/node.md section 2.1)",
        1 * MiB,
        None,
        64 * 1024 * MiB,
    ),
    Key(
        "user_agent",
        str,
        f"obscura-ref/{__version__}",
        "the user agent of our handshakes",
        maximum=MAX_USER_AGENT,  # spec: WIRE-42
    ),
)
KEYS_BY_NAME = {key.name: key for key in KEYS}


@dataclass(frozen=True)
class NodeConfig:
    """The effective configuration: every key's value, and where each came from."""

    values: dict[str, Any] = field(default_factory=lambda: {k.name: k.default for k in KEYS})
    sources: dict[str, str] = field(default_factory=lambda: {k.name: "default" for k in KEYS})

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def connection_settings(self) -> ConnectionSettings:
        return ConnectionSettings(
            connection_timeout=self.values["connection_timeout"],
            handshake_timeout=self.values["handshake_timeout"],
            ping_interval=self.values["ping_interval"],
            ping_timeout=self.values["ping_timeout"],
            inactivity_timeout=self.values["inactivity_timeout"],
            close_timeout=self.values["close_timeout"],
            privacy_level=self.values["privacy_level"],
        )

    def manager_settings(self) -> ManagerSettings:
        from .node import parse_address  # here: node imports this module

        return ManagerSettings(
            max_outbound_connections=self.values["max_outbound_connections"],
            max_inbound_connections=self.values["max_inbound_connections"],
            max_total_connections=self.values["max_total_connections"],
            max_temporary_connections=self.values["max_temporary_connections"],
            temporary_timeout=self.values["temporary_timeout"],
            ban_duration=self.values["ban_duration"],
            reconnect_interval=self.values["reconnect_interval"],
            reconnect_max_interval=self.values["reconnect_max_interval"],
            rotation_interval=self.values["rotation_interval"],
            partition_timeout=self.values["partition_timeout"],
            privacy_level=self.values["privacy_level"],
            seed_nodes=tuple(parse_address(text) for text in self.values["seed_nodes"]),
            data_dir=self.data_folder(),
        )

    def data_folder(self) -> Path | None:
        """``data_dir`` with ``~`` expanded, or None for the empty text (bans in memory)."""
        text = self.values["data_dir"]
        if not text:
            return None
        try:
            return Path(text).expanduser()
        except RuntimeError as exc:  # no home folder to expand ~ to
            raise ConfigError("data_dir", f"cannot expand {text!r}: {exc}") from None

    def with_values(self, updates: dict[str, object], source: str) -> NodeConfig:
        """A new configuration with ``updates`` applied; refuses an unknown key, a wrong type,
        a value out of range and an inconsistent combination, naming the key."""
        values, sources = dict(self.values), dict(self.sources)
        for name, raw in updates.items():
            key = KEYS_BY_NAME.get(name)
            if key is None:
                raise ConfigError(name, f"is not a configuration key ({source})")  # spec: CFG-2
            values[name] = key.check(raw)  # spec: CFG-3
            sources[name] = source
        return NodeConfig(values, sources)

    def check_together(self) -> NodeConfig:
        """This configuration, once the rules that tie keys together hold; checked on the
        final values only, so that a later layer can mend an earlier one."""
        if not self.values["ping_timeout"] < self.values["ping_interval"]:  # spec: KA-7
            raise ConfigError(
                "ping_timeout",
                f"must be below ping_interval ({self.values['ping_interval']:g}), "
                f"got {self.values['ping_timeout']:g}",
            )
        if self.values["reconnect_max_interval"] < self.values["reconnect_interval"]:
            raise ConfigError(
                "reconnect_max_interval",
                f"must not be below reconnect_interval ({self.values['reconnect_interval']:g}), "
                f"got {self.values['reconnect_max_interval']:g}",
            )
        return self


def load(path: Path | None = None, overrides: list[str] | None = None) -> NodeConfig:
    """Defaults, then the TOML file at ``path``, then ``KEY=VALUE`` overrides."""
    config = NodeConfig()
    if path is not None:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{path} is not TOML: {exc}") from exc
        for name, value in document.items():
            if isinstance(value, dict):
                raise ConfigError(name, "tables are not used; write every key at the top level")
        config = config.with_values(document, f"file {path}")  # spec: CFG-1 (replaces)
    for item in overrides or []:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(item, "an override is KEY=VALUE")
        config = config.with_values({name: _parse_override(name, text.strip())}, "--set")
    return config.check_together()


def _parse_override(name: str, text: str) -> object:
    """A TOML value (``5``, ``0.5``, ``"text"``, ``["a", "b"]``); for a text key, anything but
    a quoted TOML string is taken as the text it is (``--set user_agent=123`` sets the text
    "123"); for a list key, ``[a, b]`` with bare items is taken as those texts, since a shell
    removes the quotes of ``--set seed_nodes=["a"]``."""
    key = KEYS_BY_NAME.get(name)
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if key is not None and key.kind is str:
            return text
        if key is not None and key.kind is tuple:
            if text.startswith("[") and text.endswith("]"):
                return [item.strip() for item in text[1:-1].split(",") if item.strip()]
            raise ConfigError(name, f'{text!r} is not an array; write {name}=["..."]') from None
        raise ConfigError(name, f"{text!r} is not a value") from None
    if key is not None and key.kind is str and not isinstance(value, str):
        return text
    return value


def describe(config: NodeConfig) -> list[str]:
    """One line per key: ``name = value  # source``, in TOML, for ``config show``."""
    lines = []
    for key in KEYS:
        value = config.values[key.name]
        # A JSON string, or array of strings, is written the same in TOML.
        # And a boolean as TOML's true or false, which JSON's are too.
        text = json.dumps(value) if isinstance(value, str | tuple | bool) else f"{value!r}"
        lines.append(f"{key.name} = {text}  # {config.sources[key.name]}")  # spec: CFG-4
    return lines
