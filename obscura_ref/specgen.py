"""Tables and diagrams of spec/ that are generated from the code's own tables.

A chapter marks each generated block with ``<!-- generated: NAME -->`` and
``<!-- end generated -->``; ``obscura-ref spec check`` rewrites what lies between, and the test
suite fails when a block is stale, so the spec and the code cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import fields
from enum import IntFlag
from pathlib import Path
from typing import get_args

from .config import KEYS
from .eventqueue import EVENT_COST
from .examples import EXAMPLES, example_markdown
from .machines.connection import (
    CONNECTION_TRANSITIONS,
    STATE_MEANINGS,
    TIMERS_OF_STATE,
    ConnectionSettings,
    ConnState,
    Input,
)
from .machines.events import Action, Event
from .machines.handshake import (
    CHECK_ORDER,
    HANDSHAKE_TRANSITIONS,
    MIN_COMPATIBLE_VERSION,
    PROTOCOL_VERSION,
    HandshakeInput,
    HandshakeState,
)
from .machines.privacy import DEFAULT_PRIVACY_LEVEL, GENERIC_USER_AGENT, PrivacyLevel
from .machines.reasons import CloseReason
from .machines.shaping import (
    DUMMY_MAX_INTERVAL,
    DUMMY_MIN_INTERVAL,
    MAX_DUMMY_PAYLOAD,
    MAX_SEND_DELAY,
)
from .machines.table import markdown_table, mermaid
from .manager.backoff import MAX_FAILURES
from .manager.bans import BAN_THRESHOLD, MAX_BANS, MAX_MISBEHAVIOUR_RECORDS
from .manager.eviction import PROTECT_BY_GROUP, PROTECT_BY_RTT, PROTECT_BY_SCORE
from .node import (
    ACCEPT_BACKOFF,
    ACCEPTS_PER_READY,
    MIN_READ,
    PASS_READ_BUDGET,
    PEER_EVENT_LIMIT,
    READ_CHUNK,
    SEND_HIGH_WATER,
    SILENCE_READ,
)
from .transport.garbage import MAX_GARBAGE, TERMINATOR_SIZE
from .transport.noise import MESSAGE1_SIZE, MESSAGE2_SIZE
from .transport.records import MAX_RECORD, REKEY_AFTER
from .wire import (
    DEFINED_TYPES,
    ERROR_REQUIREMENTS,
    HEADER_SIZE,
    MAGIC,
    MAX_HANDSHAKE_PAYLOAD,
    MAX_PAYLOAD,
    MAX_USER_AGENT,
    Feature,
    MessageType,
    PrivacyFeature,
)
from .wire.registry import ADDED_TYPES

_BLOCK = re.compile(
    r"(?P<open><!-- generated: (?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- end generated -->)",
    re.DOTALL,
)


def _registry() -> str:
    rows = ["| code | name | payload |", "|---|---|---|"]
    for member in MessageType:
        kind = "defined" if member in DEFINED_TYPES else "opaque"
        rows.append(f"| `{member.value:#04x}` | `{member.name}` | {kind} |")
    return "\n".join(rows)


def _errors() -> str:
    rows = ["| code | requirement |", "|---|---|"]
    rows += [f"| `{code.value}` | {req} |" for code, req in ERROR_REQUIREMENTS.items()]
    return "\n".join(rows)


def _flags(flags: type[IntFlag]) -> Callable[[], str]:
    def render() -> str:
        rows = ["| bit value | name |", "|---|---|"]
        rows += [f"| `{member.value:#04x}` | `{member.name}` |" for member in flags]
        return "\n".join(rows)

    return render


def _reasons() -> str:
    rows = [
        "| code | reason | sent in `Disconnect` | misbehaviour | rule | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for reason in CloseReason:
        info = reason.value
        rows.append(
            f"| {info.code} | `{reason.label}` | {'yes' if info.sent else 'no'} | "
            f"{'yes' if info.misbehaviour else 'no'} | {info.requirement} | {info.meaning} |"
        )
    return "\n".join(rows)


def _timers() -> str:
    defaults = ConnectionSettings()
    setting = {
        "connect": "connection_timeout",
        "handshake": "handshake_timeout",
        "ping": "ping_interval",
        "pong": "ping_timeout",
        "inactivity": "inactivity_timeout",
        "close": "close_timeout",
    }
    # The shaping timers are armed from draws, not settings (spec/privacy.md section 5).
    drawn = {
        "shape": f"a draw within `MAX_SEND_DELAY` (privacy.md PRIV-60) | up to {MAX_SEND_DELAY:g}",
        "dummy": "a draw from `DUMMY_MIN_INTERVAL` to `DUMMY_MAX_INTERVAL` (privacy.md PRIV-61) "
        f"| {DUMMY_MIN_INTERVAL:g} to {DUMMY_MAX_INTERVAL:g}",
    }
    rows = ["| timer | armed only in | duration | default (s) |", "|---|---|---|---|"]
    for state, timers in TIMERS_OF_STATE.items():
        for timer in sorted(timers, key=lambda t: t.value):
            if timer.value in drawn:
                rows.append(f"| `{timer.value}` | `{state.value}` | {drawn[timer.value]} |")
                continue
            name = setting[timer.value]
            rows.append(
                f"| `{timer.value}` | `{state.value}` | `{name}` | {getattr(defaults, name):g} |"
            )
    return "\n".join(rows)


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _config_keys() -> str:
    rows = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for key in KEYS:
        if key.choices:
            allowed = ", ".join(f"`{choice}`" for choice in key.choices)
        elif key.kind is bool:
            allowed = "`true`, `false`"
        elif key.kind is str and key.item_problem is not None:
            allowed = "`HOST:PORT`, HOST an IP address (IPv6 as `[HOST]:PORT`), or the empty text"
        elif key.kind is str:
            allowed = "text"
        elif key.kind is tuple:
            allowed = f"an array of {key.items}"
        else:
            low = (
                f"> {_number(key.above)}" if key.above is not None else f">= {_number(key.minimum)}"
            )
            allowed = f"{low}, <= {_number(key.maximum)}" if key.maximum is not None else low
        if key.kind is str and key.maximum is not None:
            allowed += f", at most {_number(key.maximum)} bytes of UTF-8"
        if isinstance(key.default, bool):
            default = f"`{str(key.default).lower()}`"
        elif isinstance(key.default, tuple):
            default = f"`{json.dumps(list(key.default))}`"
        else:
            default = f"`{key.default}`" if isinstance(key.default, str) else _number(key.default)
        kind = {int: "integer", float: "seconds", bool: "boolean", str: "text", tuple: "list"}[
            key.kind
        ]
        rows.append(f"| `{key.name}` | {kind} | {default} | {allowed} | {key.meaning} |")
    return "\n".join(rows)


def _classes(union: object) -> str:
    """One row per event or action class: its name with its fields, and its docstring."""
    rows = ["| name | meaning |", "|---|---|"]
    for cls in get_args(union):
        names = ", ".join(f.name for f in fields(cls))
        doc = " ".join((cls.__doc__ or "").split()).replace("``", "`")
        rows.append(f"| `{cls.__name__}{f'({names})' if names else ''}` | {doc} |")
    return "\n".join(rows)


def _states() -> str:
    rows = ["| state | meaning |", "|---|---|"]
    rows += [f"| `{state.value}` | {meaning} |" for state, meaning in STATE_MEANINGS.items()]
    return "\n".join(rows)


def _constants(values: dict[str, tuple[object, str]]) -> Callable[[], str]:
    def render() -> str:
        rows = ["| constant | value | meaning |", "|---|---|---|"]
        for name, (value, meaning) in values.items():
            if isinstance(value, bytes):
                text = f"`{value.hex(' ').upper()}`"
            elif isinstance(value, range):
                text = f"`{value.start:#04x}` to `{value.stop - 1:#04x}`"
            else:
                text = f"{value:,}"
            rows.append(f"| `{name}` | {text} | {meaning} |")
        return "\n".join(rows)

    return render


def _privacy_constants() -> str:
    rows = ["| constant | value | meaning |", "|---|---|---|"]
    for name, value, meaning in (
        (
            "EncryptedTransport",
            f"`{int(PrivacyFeature.EncryptedTransport):#04x}`",
            "the privacy feature flag that offers the encrypted transport (errata.md E-19)",
        ),
        ("NOISE_MESSAGE1_SIZE", f"{MESSAGE1_SIZE}", "bytes of Noise message 1 (`e`)"),
        ("NOISE_MESSAGE2_SIZE", f"{MESSAGE2_SIZE}", "bytes of Noise message 2 (`e`, then a tag)"),
        ("REKEY_AFTER", f"{REKEY_AFTER:,}", "the nonce at which a key is replaced (PRIV-25)"),
        (
            "MAX_RECORD",
            f"{MAX_RECORD:,}",
            "the longest record plaintext: the largest frame, padded",
        ),
    ):
        rows.append(f"| `{name}` | {value} | {meaning} |")
    return "\n".join(rows)


def _privacy_levels() -> str:
    columns = (
        ("pad_frames", "pads frames (section 2)"),
        ("offer_encryption", "offers encryption (PRIV-11)"),
        ("require_encryption", "requires encryption (PRIV-12)"),
        ("pad_records", "pads records (PRIV-31)"),
        ("accepts_encrypted_first", "accepts encrypted-first (PRIV-53)"),
        ("starts_encrypted", "starts encrypted (PRIV-50)"),
        ("shapes", "shapes traffic (section 5)"),
        ("rotate", "rotates connections (PRIV-10)"),
    )
    header = " | ".join(title for _, title in columns)
    rows = [f"| level | {header} | user agent sent (PRIV-13) |", "|---" * (len(columns) + 2) + "|"]
    for level in PrivacyLevel:
        policy = level.policy
        marks = " | ".join("yes" if getattr(policy, name) else "no" for name, _ in columns)
        agent = f"generic (`{GENERIC_USER_AGENT}`)" if policy.generic_user_agent else "configured"
        default = " (default)" if level is DEFAULT_PRIVACY_LEVEL else ""
        rows.append(f"| `{level.value}`{default} | {marks} | {agent} |")
    return "\n".join(rows)


def _check_order() -> str:
    rows = ["| role | checks, in order |", "|---|---|"]
    rule = {
        "nonce": "nonce (HS-12)",
        "version": "version (HS-10)",
        "encryption": "encryption, when required (privacy.md PRIV-12)",
    }
    for role, checks in CHECK_ORDER.items():
        rows.append(f"| {role.value} | {', then '.join(rule[name] for name in checks)} |")
    return "\n".join(rows)


def _handshake_constants() -> str:
    rows = ["| constant | value | meaning |", "|---|---|---|"]
    rows.append(f"| `PROTOCOL_VERSION` | {PROTOCOL_VERSION} | the version this node sends |")
    rows.append(
        f"| `MIN_COMPATIBLE_VERSION` | {MIN_COMPATIBLE_VERSION} | "
        "the lowest peer version this node accepts |"
    )
    rows.append(
        f"| `handshake_timeout` | {ConnectionSettings().handshake_timeout:g} s by default | "
        "time allowed from the TCP connection to a complete handshake (config.md) |"
    )
    return "\n".join(rows)


def _example(name: str) -> Callable[[], str]:
    # A function per name: a lambda written in the table's comprehension would see only the last.
    return lambda: example_markdown(name)


BLOCKS: dict[str, Callable[[], str]] = {
    "connection-events": lambda: _classes(Event),
    "connection-actions": lambda: _classes(Action),
    "connection-states": _states,
    "wire-constants": _constants(
        {
            "MAGIC": (MAGIC, 'first four bytes of every frame ("OBX" and a zero byte)'),
            "HEADER_SIZE": (HEADER_SIZE, "size of the frame header"),
            "MAX_PAYLOAD": (MAX_PAYLOAD, "largest payload of any frame (10 MiB)"),
            "MAX_HANDSHAKE_PAYLOAD": (MAX_HANDSHAKE_PAYLOAD, "largest payload of a `Handshake`"),
            "MAX_USER_AGENT": (MAX_USER_AGENT, "largest user agent, in bytes of its UTF-8"),
            "ADDED_TYPES": (
                ADDED_TYPES,
                "message-type codes kept for messages this specification adds",
            ),
        }
    ),
    "node-constants": _constants(
        {
            "READ_CHUNK": (READ_CHUNK, "bytes read from one socket per readiness"),
            "ACCEPTS_PER_READY": (
                ACCEPTS_PER_READY,
                "connections accepted per readiness of a listening socket",
            ),
            "PASS_READ_BUDGET": (
                PASS_READ_BUDGET,
                "bytes read from all connections in one pass of the loop",
            ),
            "MIN_READ": (MIN_READ, "the least a pass reads from a readable connection it serves"),
            "SILENCE_READ": (
                SILENCE_READ,
                "bytes read from a connection before its peer is judged silent",
            ),
            "SEND_HIGH_WATER": (
                SEND_HIGH_WATER,
                "unsent bytes above which a connection is not read (at most max_send_queue / 2)",
            ),
            "PEER_EVENT_LIMIT": (
                PEER_EVENT_LIMIT,
                "undelivered application events of one connection before it is not read",
            ),
            "EVENT_COST": (
                EVENT_COST,
                "bytes counted for an undelivered event besides its payload",
            ),
            "ACCEPT_BACKOFF": (ACCEPT_BACKOFF, "seconds a listener rests after accept failed"),
        }
    ),
    "manager-constants": _constants(
        {
            "BAN_THRESHOLD": (BAN_THRESHOLD, "misbehaviour points at which an address is banned"),
            "MAX_BANS": (MAX_BANS, "bans kept at most; the one that ends soonest goes first"),
            "MAX_MISBEHAVIOUR_RECORDS": (
                MAX_MISBEHAVIOUR_RECORDS,
                "misbehaviour records kept at most; the oldest is forgotten first",
            ),
            "MAX_FAILURES": (
                MAX_FAILURES,
                "consecutive failures after which a non-persistent entry leaves the book",
            ),
            "PROTECT_BY_GROUP": (
                PROTECT_BY_GROUP,
                "eviction step 1: groups whose oldest candidate is protected",
            ),
            "PROTECT_BY_RTT": (
                PROTECT_BY_RTT,
                "eviction step 2: candidates protected for the lowest round-trip time",
            ),
            "PROTECT_BY_SCORE": (
                PROTECT_BY_SCORE,
                "eviction step 3: candidates protected for the highest score",
            ),
        }
    ),
    "handshake-check-order": _check_order,
    "privacy-levels": _privacy_levels,
    "privacy-constants": _privacy_constants,
    "first-constants": _constants(
        {
            "MAX_GARBAGE": (
                MAX_GARBAGE,
                "bytes of garbage a side sends at most (PRIV-50, PRIV-55)",
            ),
            "TERMINATOR_SIZE": (TERMINATOR_SIZE, "bytes of a garbage terminator (PRIV-54)"),
        }
    ),
    "shaping-constants": _constants(
        {
            "MAX_SEND_DELAY": (MAX_SEND_DELAY, "seconds a send is held at most (PRIV-60)"),
            "DUMMY_MIN_INTERVAL": (DUMMY_MIN_INTERVAL, "seconds between dummies, at least"),
            "DUMMY_MAX_INTERVAL": (DUMMY_MAX_INTERVAL, "seconds between dummies, at most"),
            "MAX_DUMMY_PAYLOAD": (MAX_DUMMY_PAYLOAD, "bytes of a dummy's payload at most"),
        }
    ),
    "handshake-constants": _handshake_constants,
    "config-keys": _config_keys,
    "wire-registry": _registry,
    "wire-errors": _errors,
    "wire-features": _flags(Feature),
    "wire-privacy-features": _flags(PrivacyFeature),
    "handshake-transitions": lambda: markdown_table(
        HANDSHAKE_TRANSITIONS, HandshakeState, HandshakeInput
    ),
    "handshake-diagram": lambda: mermaid(
        HANDSHAKE_TRANSITIONS,
        HandshakeState,
        HandshakeInput,
        initial=(HandshakeState.IDLE, HandshakeState.AWAITING_HANDSHAKE),
        final=(HandshakeState.COMPLETE, HandshakeState.FAILED),
    ),
    "connection-transitions": lambda: markdown_table(CONNECTION_TRANSITIONS, ConnState, Input),
    "connection-diagram": lambda: mermaid(
        CONNECTION_TRANSITIONS,
        ConnState,
        Input,
        initial=(ConnState.CONNECTING, ConnState.HANDSHAKING),
        final=(ConnState.CLOSED,),
    ),
    "close-reasons": _reasons,
    "timers": _timers,
    **{f"example-{name}": _example(name) for name in EXAMPLES},
}


def refresh(root: Path, write: bool) -> list[str]:
    """Bring every generated block of spec/*.md up to date (when ``write``); returns the
    problems: stale blocks (when not writing) and unknown block names."""
    problems: list[str] = []
    for path in sorted((root / "spec").glob("*.md")):
        text = path.read_text(encoding="utf-8")

        def replace(match: re.Match[str], path: Path = path) -> str:
            name = match["name"]
            if name not in BLOCKS:
                problems.append(f"{path.name}: unknown generated block {name!r}")
                return match.group(0)
            return f"{match['open']}{BLOCKS[name]()}\n{match['close']}"

        new = _BLOCK.sub(replace, text)
        if new != text:
            if write:
                path.write_text(new, encoding="utf-8")
            else:
                problems.append(f"spec/{path.name}: generated blocks are stale")
    return problems
