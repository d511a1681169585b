"""Session vectors: the cases, written as data for any implementation (conformance/README.md).

Each case is a list of steps the runner carries out as the implementation's peer. The times in
the steps come from the conformance profile (obscura_ref/conformance/profile.toml): a timer may
fire ``EARLY`` seconds before its time (clocks differ) and up to ``LATE`` seconds after it (a
loaded machine is slow), never outside that window.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from ..machines.reasons import CloseReason
from ..wire import MAGIC, MAX_HANDSHAKE_PAYLOAD, MAX_PAYLOAD, checksum
from ..wire.registry import Feature, PrivacyFeature
from .targets import profile
from .vectorfiles import stale, write_rendered

SCHEMA = "session.schema.json"
VERSION = 1
VECTOR_DIR = Path("conformance") / "vectors"
PROFILE_COPY = Path("conformance") / "profile.toml"

EARLY = 0.15
LATE = 1.0
REPLY = 1.0  # seconds allowed for an answer that is due at once

PROFILE = profile()
HANDSHAKE_TIMEOUT = float(PROFILE["handshake_timeout"])
PING_INTERVAL = float(PROFILE["ping_interval"])
PING_TIMEOUT = float(PROFILE["ping_timeout"])
INACTIVITY_TIMEOUT = float(PROFILE["inactivity_timeout"])
CLOSE_TIMEOUT = float(PROFILE["close_timeout"])
RECONNECT_INTERVAL = float(PROFILE["reconnect_interval"])
MAX_INBOUND = int(PROFILE["max_inbound_connections"])

Step = dict[str, Any]
ALL_FEATURES = sum(int(flag) for flag in Feature)  # the assigned bits (WIRE-46)
ALL_PRIVACY_FEATURES = sum(int(flag) for flag in PrivacyFeature)
RUNNER_NONCE = 0xAAAA_AAAA_AAAA_AAAA
MAX_U64 = 2**64 - 1


# ---- frames the runner sends (the JSON frame form; u64 values as decimal strings) ---------


def handshake(
    version: int = 1, nonce: Any = str(RUNNER_NONCE), padding: str = "", **fields: Any
) -> dict[str, Any]:
    frame = {
        "type": "Handshake",
        "version": version,
        "timestamp": "1700000000",
        "features": 1,
        "privacy_features": 0,
        "user_agent": "obscura-conformance/1",
        "best_block_hash": "00" * 32,
        "best_block_height": "0",
        "nonce": nonce,
        "padding": padding,
    }
    frame.update(fields)
    return frame


def ping(nonce: int | str, padding: str = "") -> dict[str, Any]:
    return {"type": "Ping", "nonce": str(nonce), "padding": padding}


def pong(nonce: Any) -> dict[str, Any]:
    return {"type": "Pong", "nonce": nonce if isinstance(nonce, dict) else str(nonce)}


def disconnect(reason: int) -> dict[str, Any]:
    return {"type": "Disconnect", "reason": reason}


def opaque(name: str, payload: bytes) -> dict[str, Any]:
    return {"type": name, "payload": payload.hex()}


def raw(code: int, payload: bytes, *, length: int | None = None, check: bytes | None = None) -> str:
    """A frame built field by field, as hex, so that any field can be wrong on purpose."""
    size = len(payload) if length is None else length
    digest = checksum(payload) if check is None else check
    return (MAGIC + struct.pack("<II", code, size) + digest + payload).hex()


def encoded(frame: dict[str, Any]) -> bytes:
    from ..wire import encode_frame
    from ..wire.jsonform import frame_from_json

    built = frame_from_json(frame)
    return encode_frame(built.message, built.padding)


# ---- what the runner expects of the implementation's frames -------------------------------

# PRIV-1 under the profile's privacy_level "standard": a frame whose defined fields are shorter
# than 64 bytes is padded to exactly 64 payload bytes; a handshake (70 bytes or more) gets 0 to
# 32 extra bytes.
THEIR_HANDSHAKE = {
    "type": "Handshake",
    "version": {"range": [1, 2**32 - 1]},
    "padding_length": {"range": [0, 32]},
    "payload_length": {"range": [70, MAX_HANDSHAKE_PAYLOAD]},
}
PADDED = {"payload_length": 64}


def their_ping() -> dict[str, Any]:
    return {"type": "Ping", **PADDED}


def their_pong(nonce: Any) -> dict[str, Any]:
    return {"type": "Pong", "nonce": nonce, **PADDED}


# ---- steps ------------------------------------------------------------------------------


def connect(conn: str = "a", **more: Any) -> Step:
    return {"op": "connect", "conn": conn, **more}


def accept(conn: str = "a", within: float = 3.0, **more: Any) -> Step:
    return {"op": "accept", "conn": conn, "within": within, **more}


def send(conn: str, *frames: dict[str, Any], **more: Any) -> Step:
    return {"op": "send", "conn": conn, "frames": list(frames), **more}


def send_hex(conn: str, data: str, **more: Any) -> Step:
    return {"op": "send", "conn": conn, "hex": data, **more}


def expect(conn: str, frame: dict[str, Any], within: float = REPLY, **more: Any) -> Step:
    return {"op": "expect", "conn": conn, "frame": frame, "within": within, **more}


def expect_close(conn: str, reasons: list[str], within: float = REPLY, **more: Any) -> Step:
    return {"op": "expect_close", "conn": conn, "disconnect": reasons, "within": within, **more}


def silence(conn: str, seconds: float, **more: Any) -> Step:
    return {"op": "expect_silence", "conn": conn, "for": seconds, **more}


def timer(seconds: float, since: str) -> dict[str, Any]:
    """The window of a timer of ``seconds`` counted from the mark ``since``. The mark is always
    a moment the runner knows to come before the implementation started the timer (what the
    runner sent, or the case's ``start``), never the arrival of something the implementation
    sent, which a busy runner may read late."""
    return {"since": since, "not_before": round(seconds - EARLY, 3), "within": seconds + LATE}


def establish(conn: str = "a") -> list[Step]:
    """Open a connection and complete the handshake as the initiator; marks ``sent_<conn>``
    (our handshake written) and ``est_<conn>`` (theirs arrived)."""
    return [
        connect(conn),
        send(conn, handshake(), mark=f"sent_{conn}"),
        expect(conn, THEIR_HANDSHAKE, capture={f"nonce_{conn}": "nonce"}, mark=f"est_{conn}"),
    ]


def establish_as_responder(conn: str = "a") -> list[Step]:
    """Take the implementation's connection and complete the handshake as the responder."""
    return [
        accept(conn, mark=f"open_{conn}"),
        expect(conn, THEIR_HANDSHAKE, capture={f"nonce_{conn}": "nonce"}),
        send(conn, handshake(), mark=f"est_{conn}"),
    ]


def case(comment: str, requirements: str, steps: list[Step], **more: Any) -> dict[str, Any]:
    return {"comment": comment, "requirements": requirements.split(", "), **more, "steps": steps}


# ---- the cases ----------------------------------------------------------------------------


def handshake_cases() -> list[tuple[str, str, str, list[dict[str, Any]]]]:
    hs = encoded(handshake()).hex()
    padded_to_limit = handshake(padding="00" * (MAX_HANDSHAKE_PAYLOAD - 91))
    assert len(encoded(padded_to_limit)) == 16 + MAX_HANDSHAKE_PAYLOAD
    responder = [
        case(
            "the responder sends nothing before the initiator's handshake, then its own at once",
            "HS-2, HS-3, WIRE-1, WIRE-2, WIRE-3, WIRE-4, WIRE-40, WIRE-41, WIRE-42, PRIV-1",
            [connect(), silence("a", 0.5), send("a", handshake()), expect("a", THEIR_HANDSHAKE)],
        ),
        case(
            "a handshake and a ping in one write: the handshake answered first, then the pong",
            "HS-3, KA-2",
            [
                connect(),
                send("a", handshake(), ping(77)),
                expect("a", THEIR_HANDSHAKE),
                expect("a", their_pong("77")),
            ],
        ),
        case(
            "a handshake written in four pieces, 50 ms apart, is answered once it is whole",
            "HS-3",
            [
                connect(),
                send("a", handshake(), chunks=[1, 15, 40], pause=0.05),
                expect("a", THEIR_HANDSHAKE),
            ],
        ),
        case(
            "a peer below the minimum compatible version is refused, without a handshake",
            "HS-10, HS-2, CONN-20",
            [
                connect(),
                send("a", handshake(version=0)),
                expect_close("a", ["incompatible_version"]),
            ],
        ),
        case(
            "a Ping before the handshake is unexpected",
            "HS-20",
            [connect(), send("a", ping(1)), expect_close("a", ["unexpected_message"])],
        ),
        case(
            "a Pong before the handshake is unexpected",
            "HS-20",
            [connect(), send("a", pong(1)), expect_close("a", ["unexpected_message"])],
        ),
        case(
            "an opaque message before the handshake is unexpected",
            "HS-20",
            [
                connect(),
                send("a", opaque("Inv", b"\x01")),
                expect_close("a", ["unexpected_message"]),
            ],
        ),
        case(
            "a second handshake after the first is unexpected",
            "HS-20",
            [*establish(), send("a", handshake()), expect_close("a", ["unexpected_message"])],
        ),
        case(
            "a Disconnect before the handshake closes without a reply",
            "CONN-22, CONN-25",
            [connect(), send("a", disconnect(1)), expect_close("a", [])],
        ),
        case(
            "silence: closed at handshake_timeout, counted from the accept",
            "HS-21, HS-22",
            [
                connect(mark="open"),
                expect_close("a", ["handshake_timeout"], **timer(HANDSHAKE_TIMEOUT, "open")),
            ],
        ),
        case(
            "half a handshake, then silence: still closed at handshake_timeout",
            "HS-22",
            [
                connect(mark="open"),
                send_hex("a", hs[:80]),
                expect_close("a", ["handshake_timeout"], **timer(HANDSHAKE_TIMEOUT, "open")),
            ],
        ),
        case(
            "a Handshake header announcing 1025 bytes is refused from the header alone",
            "HS-23, CONN-30",
            [
                connect(),
                send_hex("a", raw(0x01, b"", length=MAX_HANDSHAKE_PAYLOAD + 1)),
                expect_close("a", ["invalid_message"]),
            ],
        ),
        case(
            "an opaque header announcing 1025 bytes before the handshake is refused from the "
            "header alone, as invalid_message (the size is checked before the type is judged)",
            "HS-23, WIRE-15, CONN-30",
            [
                connect(),
                send_hex("a", raw(0x08, b"", length=MAX_HANDSHAKE_PAYLOAD + 1)),
                expect_close("a", ["invalid_message"]),
            ],
        ),
        case(
            "a handshake padded to exactly 1024 payload bytes is accepted",
            "HS-23, WIRE-15",
            [connect(), send("a", padded_to_limit), expect("a", THEIR_HANDSHAKE)],
        ),
        case(
            "the frame right after the handshake, in the same write, may exceed 1024 bytes",
            "HS-23, WIRE-15, CONN-10",
            [
                connect(),
                send("a", handshake(), opaque("Inv", bytes(range(256)) * 20)),
                expect("a", THEIR_HANDSHAKE),
                expect("a", {"type": "Inv", "payload": (bytes(range(256)) * 20).hex()}),
            ],
        ),
        case(
            "two connections get two different handshake nonces",
            "HS-13",
            [
                *establish("a"),
                connect("b"),
                send("b", handshake()),
                expect("b", {**THEIR_HANDSHAKE, "nonce": {"not_var": "nonce_a"}}),
            ],
        ),
    ]
    both = [
        case(
            "the responder closes a connection that carries its own outstanding nonce",
            "HS-12, HS-13",
            [
                accept("d"),
                expect("d", THEIR_HANDSHAKE, capture={"own": "nonce"}),
                connect("a"),
                send("a", handshake(nonce={"var": "own"})),
                expect_close("a", ["self_connection"]),
            ],
        ),
        case(
            "the responder checks the version before the nonce",
            "HS-11, HS-10",
            [
                accept("d"),
                expect("d", THEIR_HANDSHAKE, capture={"own": "nonce"}),
                connect("a"),
                send("a", handshake(version=0, nonce={"var": "own"})),
                expect_close("a", ["incompatible_version"]),
            ],
        ),
    ]
    initiator = [
        case(
            "the initiator's handshake is its first frame, sent as soon as the connection opens",
            "HS-1, WIRE-40, WIRE-41, PRIV-1",
            [accept(mark="open"), expect("a", THEIR_HANDSHAKE, since="open")],
        ),
        case(
            "the initiator completes the handshake and pings ping_interval later",
            "HS-1, KA-1, PRIV-1, WIRE-50",
            [*establish_as_responder(), expect("a", their_ping(), **timer(PING_INTERVAL, "est_a"))],
        ),
        case(
            "the initiator refuses a responder below the minimum compatible version",
            "HS-10",
            [
                accept(),
                expect("a", THEIR_HANDSHAKE),
                send("a", handshake(version=0)),
                expect_close("a", ["incompatible_version"]),
            ],
        ),
        case(
            "the initiator checks the nonce before the version",
            "HS-11, HS-12",
            [
                accept(),
                expect("a", THEIR_HANDSHAKE, capture={"own": "nonce"}),
                send("a", handshake(version=0, nonce={"var": "own"})),
                expect_close("a", ["self_connection"]),
            ],
        ),
        case(
            "no reply: the initiator closes at handshake_timeout, counted from the connect",
            "HS-21, HS-22",
            [
                accept(mark="open"),
                expect("a", THEIR_HANDSHAKE),
                # From the accept, which a busy runner may make late: half the timeout is the
                # earliest that can be told from the runner's own delay.
                expect_close(
                    "a",
                    ["handshake_timeout"],
                    since="open",
                    not_before=HANDSHAKE_TIMEOUT / 2,
                    within=HANDSHAKE_TIMEOUT + LATE,
                ),
            ],
        ),
        case(
            "a persistent connection lost to the peer's Disconnect is opened again after "
            "delay(1): reconnect_interval, give or take a quarter, after it closed",
            "RECO-4, RECO-5",
            [
                *establish_as_responder(),
                send("a", disconnect(1)),
                expect_close("a", []),
                {"op": "close", "conn": "a", "mark": "closed"},
                accept(
                    "b",
                    since="closed",
                    not_before=round(0.75 * RECONNECT_INTERVAL - EARLY, 3),
                    within=1.25 * RECONNECT_INTERVAL + LATE,
                ),
            ],
        ),
    ]
    return [
        (
            "responder",
            "The runner opens the connection and plays the initiator.",
            "responder",
            responder,
        ),
        (
            "self-connection",
            "The implementation dials the runner, which hands its nonce back on a second "
            "connection.",
            "both",
            both,
        ),
        (
            "initiator",
            "The implementation opens the connection; the runner responds.",
            "initiator",
            initiator,
        ),
        (
            "responder-timing",
            "The handshake deadline is one deadline, whatever arrives before it.",
            "responder",
            [
                case(
                    "a handshake trickled one byte every 0.2 s is still closed handshake_timeout "
                    "after the accept",
                    "HS-21, HS-22",
                    [
                        connect(mark="open"),
                        send_hex("a", hs[:18], chunks=[1] * 8, pause=0.2),
                        expect_close(
                            "a", ["handshake_timeout"], **timer(HANDSHAKE_TIMEOUT, "open")
                        ),
                    ],
                ),
            ],
        ),
    ]


def keepalive_cases() -> list[tuple[str, str, str, list[dict[str, Any]]]]:
    cases = [
        case(
            "the first ping ping_interval after the handshake, the next ping_interval later",
            "KA-1, WIRE-50, PRIV-1",
            [
                *establish(),
                expect(
                    "a",
                    their_ping(),
                    capture={"p": "nonce"},
                    mark="ping1",
                    **timer(PING_INTERVAL, "sent_a"),
                ),
                send("a", pong({"var": "p"})),
                expect(
                    "a",
                    {**their_ping(), "nonce": {"not_var": "p"}},
                    **timer(2 * PING_INTERVAL, "sent_a"),
                ),
            ],
        ),
        case(
            "a ping is answered at once with a pong carrying its nonce, padded to 64 bytes",
            "KA-2, WIRE-50, PRIV-1",
            [
                *establish(),
                send("a", ping(MAX_U64, padding="aabbcc")),
                expect("a", their_pong(str(MAX_U64))),
            ],
        ),
        case(
            "a ping unanswered and nothing received for ping_timeout: closed ping_timeout",
            "KA-3, KA-5",
            [
                *establish(),
                expect("a", their_ping(), within=PING_INTERVAL + LATE, since="est_a"),
                send("a", pong(1), mark="last"),
                expect_close("a", ["ping_timeout"], **timer(PING_TIMEOUT, "last")),
            ],
        ),
        case(
            "a ping answered in time keeps the connection open",
            "KA-3",
            [
                *establish(),
                expect(
                    "a",
                    their_ping(),
                    capture={"p": "nonce"},
                    within=PING_INTERVAL + LATE,
                    since="est_a",
                ),
                send("a", pong({"var": "p"})),
                silence("a", PING_TIMEOUT + 0.5),
            ],
        ),
        case(
            "an unsolicited pong is ignored and the connection stays open",
            "KA-5",
            [
                *establish(),
                send("a", pong(12345)),
                send("a", ping(7)),
                expect("a", their_pong("7")),
            ],
        ),
        case(
            "nothing received for inactivity_timeout: closed inactivity_timeout, counted from "
            "the last byte of the runner's handshake",
            "KA-6",
            [
                *establish(),
                expect_close(
                    "a",
                    ["inactivity_timeout"],
                    ignore=["Ping"],
                    **timer(INACTIVITY_TIMEOUT, "sent_a"),
                ),
            ],
        ),
        case(
            "bytes every half second keep the connection open past inactivity_timeout, though "
            "its pings go unanswered",
            "KA-6, KA-3",
            [
                *establish(),
                send("a", pong(1), repeat=int(2 * (INACTIVITY_TIMEOUT + 1)), every=0.5),
                silence("a", 0.2, ignore=["Ping"]),
            ],
        ),
        case(
            "no second ping while one is outstanding",
            "KA-9",
            [
                *establish(),
                expect("a", their_ping(), within=PING_INTERVAL + LATE, since="est_a"),
                send("a", pong(1), repeat=int(2 * PING_INTERVAL / 0.4) + 1, every=0.4),
                silence("a", 0.2),
            ],
        ),
    ]
    frame = encoded(opaque("Inv", bytes(range(40)))).hex()
    cases.append(
        case(
            "a frame arriving in pieces over more than inactivity_timeout keeps the connection "
            "open: every byte counts as activity",
            "KA-6, KA-3",
            [
                *establish(),
                send_hex("a", frame, chunks=[4] * 13, pause=0.25),
                expect("a", {"type": "Inv", "payload": bytes(range(40)).hex()}, ignore=["Ping"]),
            ],
        )
    )
    return [("established", "Keepalive on a connection the runner opened.", "responder", cases)]


def close_cases() -> list[tuple[str, str, str, list[dict[str, Any]]]]:
    bad_checksum_ping = raw(0x02, struct.pack("<Q", 5), check=b"\x00\x00\x00\x00")
    graceful = [
        case(
            "the Disconnect follows the frames queued before the close",
            "CONN-20, CONN-30, KA-2",
            [
                *establish(),
                send_hex("a", encoded(ping(5)).hex() + b"GET / HTTP/1.1\r\n".hex()),
                expect("a", their_pong("5")),
                expect_close("a", ["invalid_message"]),
            ],
        ),
        case(
            "the peer's Disconnect closes without a reply; a ping after it is not answered",
            "CONN-22, CONN-24, CONN-25",
            [*establish(), send("a", disconnect(1), ping(9)), expect_close("a", [])],
        ),
        case(
            "bytes after an invalid frame are discarded: the ping after it is not answered",
            "CONN-24, CONN-30",
            [
                *establish(),
                send_hex("a", bad_checksum_ping + encoded(ping(6)).hex()),
                expect_close("a", ["invalid_message"]),
            ],
        ),
        case(
            "the peer's end of stream: closed without a Disconnect",
            "CONN-33",
            [*establish(), {"op": "end", "conn": "a"}, expect_close("a", [])],
        ),
        case(
            "the stream ends inside a frame: closed without a Disconnect",
            "CONN-33",
            [
                *establish(),
                send_hex("a", encoded(ping(3)).hex()[:30]),
                {"op": "end", "conn": "a"},
                expect_close("a", []),
            ],
        ),
        case(
            "after its Disconnect the implementation reads until the runner ends its side",
            "NODE-4, CONN-20",
            [
                *establish(),
                send_hex("a", b"GET / HTTP/1.1\r\n".hex()),
                expect_close("a", ["invalid_message"]),
                {"op": "expect_drained", "conn": "a", "for": round(CLOSE_TIMEOUT / 2, 3)},
                {"op": "end", "conn": "a"},
            ],
        ),
        case(
            "a close the runner never answers ends at close_timeout",
            "NODE-4",
            [
                *establish(),
                send_hex("a", b"GET / HTTP/1.1\r\n".hex(), mark="garbage"),
                expect_close("a", ["invalid_message"]),
                {"op": "expect_socket_closed", "conn": "a", **timer(CLOSE_TIMEOUT, "garbage")},
            ],
        ),
    ]
    bytes_cases = [
        ("bytes that are not a frame (an HTTP request)", b"GET / HTTP/1.1\r\n".hex()),
        ("two bytes, the second not MAGIC's: closed without waiting for more", "4f43"),
        ("an unknown message type 0x18", raw(0x18, b"")),
        ("a length above MAX_PAYLOAD, header only", raw(0x05, b"", length=MAX_PAYLOAD + 1)),
        ("a wrong checksum", bad_checksum_ping),
        ("a ping payload of 7 bytes", raw(0x02, bytes(7))),
        ("a disconnect payload of 1 byte", raw(0x80, b"\x01")),
    ]
    invalid = [
        case(
            f"{comment}: closed invalid_message",
            "CONN-30",
            [*establish(), send_hex("a", data), expect_close("a", ["invalid_message"])],
        )
        for comment, data in bytes_cases
    ]
    ua_257 = struct.pack("<IQIIH", 1, 1_700_000_000, 1, 0, 257) + b"a" * 257 + bytes(48)
    invalid.append(
        case(
            "a first handshake with a 257-byte user agent: closed invalid_message",
            "CONN-30",
            [connect(), send_hex("a", raw(0x01, ua_257)), expect_close("a", ["invalid_message"])],
        )
    )
    not_utf8 = struct.pack("<IQIIH", 1, 1_700_000_000, 1, 0, 2) + b"\xc3\x28" + bytes(48)
    invalid.append(
        case(
            "a first handshake whose user agent is not UTF-8: closed invalid_message",
            "CONN-30",
            [connect(), send_hex("a", raw(0x01, not_utf8)), expect_close("a", ["invalid_message"])],
        )
    )
    return [
        (
            "closing",
            "How the implementation closes, and what it sends before.",
            "responder",
            graceful,
        ),
        ("invalid-bytes", "Bytes that do not decode close the connection.", "responder", invalid),
    ]


def node_cases() -> list[tuple[str, str, str, list[dict[str, Any]]]]:
    crowd = [f"p{i + 1}" for i in range(MAX_INBOUND)]
    limits = [
        case(
            f"with {MAX_INBOUND} inbound connections from one address group, a newcomer from "
            "another group is admitted and the most recently accepted of the crowd is evicted",
            "LIM-16, LIM-17",
            [
                *[step for name in crowd for step in establish(name)],
                connect("x", source="127.9.0.1"),
                send("x", handshake()),
                expect("x", THEIR_HANDSHAKE),
                expect_close(crowd[-1], ["evicted"]),
                *[silence(name, 0.0) for name in crowd[:-1]],  # the others are all kept
            ],
        )
    ]
    bans = [
        case(
            "garbage bans its address: that address's other connection is closed banned and "
            "a new one refused banned; another address is still served",
            "BAN-2, BAN-3",
            [
                *establish("a"),
                connect("d", source="127.4.0.1"),
                send("d", handshake()),
                expect("d", THEIR_HANDSHAKE),
                connect("b", source="127.4.0.1"),
                # The magic first: plaintext garbage, not the start of an encrypted-first
                # connection (PRIV-53).
                send_hex("b", (MAGIC + b"GET / HTTP/1.1\r\n").hex()),
                expect_close("b", ["invalid_message"]),
                expect_close("d", ["banned"]),
                connect("c", source="127.4.0.1"),
                send("c", handshake()),
                expect_close("c", ["banned"]),
                send("a", ping(12)),
                expect("a", their_pong("12")),
            ],
        )
    ]
    serving = [
        case(
            "one peer's garbage and another's silence do not stop a third being served",
            "NODE-1",
            [
                *establish("a"),
                connect("b", source="127.2.0.1"),  # its garbage bans its address, not a's
                send("b", handshake()),
                expect("b", THEIR_HANDSHAKE),
                connect("c"),
                send_hex("b", b"GET / HTTP/1.1\r\n".hex()),
                expect_close("b", ["invalid_message"]),
                send("a", ping(11)),
                expect("a", their_pong("11")),
            ],
        ),
        case(
            "a peer that floods messages the profile's application echoes, and never reads, is "
            "closed once the echoes queued for it would pass max_send_queue: as soon as the "
            "operating system's buffers are full and one read's echoes pass the limit, long "
            "before the inactivity_timeout after which a peer that takes nothing is closed "
            "anyway (NODE-11)",
            "NODE-2",
            [
                connect("a", rcvbuf=4096),
                send("a", handshake()),
                expect("a", THEIR_HANDSHAKE),
                {
                    "op": "flood",
                    "conn": "a",
                    # 1,000-byte messages: the echoes of one read pass max_send_queue (64 KiB)
                    # at once, and filling the kernel's buffers costs the node little work.
                    "frames": [opaque("Blocks", bytes(1000))],
                    "max_bytes": 256 << 20,
                    "within": 2.0,
                },
            ],
        ),
        case(
            "the echo application's messages come back in order, sent exactly as given: no "
            "padding on opaque messages",
            "CONN-10, PRIV-2",
            [
                *establish(),
                send(
                    "a",
                    opaque("Inv", b"\x01\x02"),
                    opaque("Blocks", bytes(300)),
                    opaque("MemPool", b""),
                ),
                expect("a", {"type": "Inv", "payload": "0102"}),
                expect("a", {"type": "Blocks", "payload": "00" * 300}),
                expect("a", {"type": "MemPool", "payload": ""}),
            ],
        ),
        case(
            "told to stop, the implementation says shutting_down, closes and exits 0",
            "NODE-5",
            [
                *establish(),
                {"op": "stop", "mark": "stop"},
                expect_close("a", ["shutting_down"], since="stop", within=REPLY),
                {"op": "end", "conn": "a"},
                {"op": "expect_stopped", "since": "stop", "within": CLOSE_TIMEOUT + 2 * LATE},
            ],
        ),
    ]
    advertised = [
        case(
            "the handshake sets no feature or privacy bit that is not assigned",
            "WIRE-46",
            [
                connect(),
                send("a", handshake()),
                expect(
                    "a",
                    {
                        **THEIR_HANDSHAKE,
                        "features": {"bits_within": ALL_FEATURES},
                        "privacy_features": {"bits_within": ALL_PRIVACY_FEATURES},
                    },
                ),
            ],
            level="SHOULD",
        )
    ]
    return [
        ("limits", "Admission at the inbound limit.", "responder", limits),
        ("serving", "The node serves each connection on its own.", "responder", serving),
        ("advertised", "What the implementation says of itself.", "responder", advertised),
        (
            "padding",
            "Padding lengths seen over many frames.",
            "responder",
            [
                case(
                    "twenty handshakes in turn, each padded by at most 32 bytes",
                    "PRIV-1",
                    [
                        step
                        for _ in range(20)
                        for step in (
                            connect("a"),
                            send("a", handshake()),
                            expect("a", THEIR_HANDSHAKE),
                            {"op": "end", "conn": "a"},
                            expect_close("a", []),
                        )
                    ],
                )
            ],
        ),
        ("bans", "Misbehaviour bans the address.", "responder", bans),
        (
            "duplicates",
            "The implementation dials the runner, which dials it back from the same address.",
            "both",
            duplicate_cases(),
        ),
    ]


def duplicate_cases() -> list[dict[str, Any]]:
    """Two connections between the runner and the implementation (RECO-10): the dialler's
    nonce of the one the implementation dialled is its own handshake nonce; the runner picks
    the other's, all ones or zero, so that either one is the greater."""

    def both_established(runner_nonce: str) -> list[Step]:
        return [
            accept("d"),
            expect("d", THEIR_HANDSHAKE),
            send("d", handshake()),
            # From the address the implementation dialled: the same peer for RECO-2, RECO-10.
            connect("a", source="127.0.0.1"),
            send("a", handshake(nonce=runner_nonce)),
            expect("a", THEIR_HANDSHAKE),
        ]

    return [
        case(
            "the runner's connection has the greater dialler's nonce: closed duplicate_connection",
            "RECO-10",
            [*both_established(str(2**64 - 1)), expect_close("a", ["duplicate_connection"])],
        ),
        case(
            "the runner's nonce is zero: the implementation's own connection is closed",
            "RECO-10",
            [*both_established("0"), expect_close("d", ["duplicate_connection"])],
        ),
    ]


FILES = {
    "session-handshake.json": (
        "The handshake over TCP (spec/handshake.md): roles, checks and their order, "
        "self-connection, timeouts, the size limit before the handshake, reconnection.",
        handshake_cases,
    ),
    "session-keepalive.json": (
        "Keepalive and inactivity (spec/connection.md section 3.1).",
        keepalive_cases,
    ),
    "session-close.json": (
        "Closing: the Disconnect, what is discarded, the half-close and its timeout, and the "
        "bytes that close a connection (spec/connection.md section 5, spec/node.md NODE-4).",
        close_cases,
    ),
    "session-node.json": (
        "The node around the connections: limits, serving each peer, the send queue, the echo "
        "application, stopping (spec/node.md, spec/privacy.md).",
        node_cases,
    ),
    "session-privacy.json": (
        "The encrypted transport (spec/privacy.md section 3): the Noise handshake in both roles, "
        "sealed records, and each way the Noise handshake and the records fail.",
        lambda: _privacy_cases(),
    ),
}


def _privacy_cases() -> list[tuple[str, str, str, list[dict[str, Any]]]]:
    from .privacy_vectors import privacy_cases  # here: it builds on this module's helpers

    return privacy_cases()


def generate(name: str) -> dict[str, Any]:
    description, build = FILES[name]
    groups = []
    number = 0
    for group_name, comment, role, cases in build():
        tests = []
        for body in cases:
            number += 1
            tests.append({"tcId": number, "role": role, "level": "MUST", **body})
        groups.append({"name": group_name, "comment": comment, "role": role, "tests": tests})
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "description": description,
        "notes": {
            "replay": "conformance/README.md, Session vectors: each step, its keys and how a "
            "runner carries it out.",
            "timing": f"Windows allow a timer to fire {EARLY} s early and {LATE} s late.",
        },
        "profile": PROFILE,
        "closeReasons": {reason.label: reason.code for reason in CloseReason},
        "numberOfTests": number,
        "testGroups": groups,
    }


def render(name: str) -> str:
    return json.dumps(generate(name), indent=1, ensure_ascii=False) + "\n"


def render_profile() -> str:
    from .targets import PROFILE_FILE

    return PROFILE_FILE.read_text(encoding="utf-8")


def write_vectors(root: Path) -> list[Path]:
    copy = root / PROFILE_COPY
    paths = write_rendered(root, FILES, render)
    copy.write_text(render_profile(), encoding="utf-8")
    return [*paths, copy]


def check_vectors(root: Path) -> list[str]:
    """Failures: a checked-in file that differs from what the generator writes."""
    failures = stale(root, FILES, render)
    copy = root / PROFILE_COPY
    if not copy.is_file() or copy.read_text(encoding="utf-8") != render_profile():
        failures.append(f"{PROFILE_COPY} differs from the reference's profile")
    return failures
