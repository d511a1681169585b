"""The targets by name: each takes one input's bytes and raises on a crash or a broken invariant
(``fuzz.common.Breach``); each module's docstring says what it checks."""

from __future__ import annotations

from collections.abc import Callable

from . import connection, decoder, handshake, manager

TARGETS: dict[str, Callable[[bytes], None]] = {
    "decoder": decoder.run,
    "handshake": handshake.run,
    "connection": connection.run,
    "manager": manager.run,
}
# The longest input the engine makes for each: room for several frames, a handshake payload,
# a few dozen events or facts, while each input stays well within the time box.
MAX_LEN = {"decoder": 4096, "handshake": 1200, "connection": 2048, "manager": 600}
