"""Session vectors of the encrypted transport (spec/privacy.md section 3): session-privacy.json.

The runner plays the Noise initiator on the connections it opens and the responder on the one
the implementation dials; its ephemeral keys are fixed in each case, the implementation's are
its own, so what is checked is what the runner opens: the frames inside the records, and the
reasons of the sealed Disconnects.
"""

from __future__ import annotations

from typing import Any

from ..transport.garbage import MAX_GARBAGE
from ..wire.registry import PrivacyFeature
from .session_vectors import (
    HANDSHAKE_TIMEOUT,
    LATE,
    PING_INTERVAL,
    THEIR_HANDSHAKE,
    Step,
    accept,
    case,
    connect,
    disconnect,
    encoded,
    expect,
    expect_close,
    handshake,
    opaque,
    ping,
    raw,
    send,
    silence,
    their_ping,
    their_pong,
)

ENCRYPTED = int(PrivacyFeature.EncryptedTransport)
# The runner's Noise ephemeral private keys (X25519), fixed so that a case is the same bytes
# each time it runs.
RUNNER_EPHEMERAL = bytes(range(1, 33)).hex()
RUNNER_EPHEMERAL_2 = bytes(range(33, 65)).hex()
RUNNER_SEED = bytes(range(65, 97)).hex()  # the runner's Elligator 2 key pair's seed
OFFERING = {**THEIR_HANDSHAKE, "privacy_features": {"bits_set": ENCRYPTED}}


def offer(**fields: Any) -> dict[str, Any]:
    """The runner's handshake, offering the encrypted transport (PRIV-11)."""
    return handshake(privacy_features=ENCRYPTED, **fields)


def secure(conn: str = "a", ephemeral: str = RUNNER_EPHEMERAL, **more: Any) -> Step:
    return {"op": "secure", "conn": conn, "ephemeral": ephemeral, "within": 1.0, **more}


def send_record(conn: str, *frames: dict[str, Any], tamper: str | None, **more: Any) -> Step:
    step: Step = {"op": "send_record", "conn": conn, **more}
    if tamper is not None:
        step["tamper"] = tamper
    if frames:
        step["frames"] = list(frames)
    return step


def secure_first(conn: str = "a", garbage: int = 100, **more: Any) -> Step:
    """Open an encrypted-first connection as its initiator (spec/privacy.md section 3.5)."""
    return {
        "op": "secure_first",
        "conn": conn,
        "seed": RUNNER_SEED,
        "garbage": garbage,
        "within": 1.0,
        **more,
    }


def encrypted(conn: str = "a") -> list[Step]:
    """Open a connection, offer encryption, and complete both handshakes as the initiator."""
    return [
        connect(conn),
        send(conn, offer()),
        expect(conn, OFFERING),
        secure(conn),
    ]


def encrypted_as_responder(conn: str = "a") -> list[Step]:
    """Take the implementation's connection and complete both handshakes as the responder."""
    return [accept(conn), expect(conn, OFFERING), send(conn, offer()), secure(conn)]


def privacy_cases() -> list[tuple[str, str, str, list[dict[str, Any]]]]:
    echo = opaque("Inv", b"sealed and echoed")
    responder = [
        case(
            "both offer encryption: the Noise handshake, then a sealed ping, pong and echo",
            "PRIV-11, PRIV-20, PRIV-21, PRIV-24",
            [
                *encrypted(),
                send("a", ping(5)),
                expect("a", their_pong("5")),
                send("a", echo),
                expect("a", {"type": "Inv", "payload": echo["payload"]}),
                send("a", disconnect(1)),
                expect_close("a", []),
            ],
        ),
        case(
            "the runner's handshake and Noise message 1 in one write",
            "PRIV-11, PRIV-20",
            [
                connect(),
                secure("a", send_first=[offer()]),
                expect("a", OFFERING),
                send("a", ping(6)),
                expect("a", their_pong("6")),
            ],
        ),
        case(
            "a peer that does not offer encryption is served in plaintext",
            "PRIV-11",
            [
                connect(),
                send("a", handshake()),
                expect("a", OFFERING),
                send("a", ping(7)),
                expect("a", their_pong("7")),
            ],
        ),
        case(
            "past 500 records each way the keys are replaced (REKEY) and records still open",
            "PRIV-25",
            [
                *encrypted(),
                send("a", echo, repeat=510),
                send("a", ping(8)),
                expect("a", their_pong("8"), within=5.0, ignore=["Inv"]),
            ],
        ),
    ]
    noise = [
        case(
            "a plaintext ping where Noise message 1 belongs: closed, nothing sent",
            "PRIV-23, PRIV-34, PRIV-38",
            [
                connect(),
                send("a", offer()),
                expect("a", OFFERING),
                send("a", ping(1)),
                expect_close("a", []),
            ],
        ),
        case(
            "a Disconnect where Noise message 1 belongs is the initiator's rejection",
            "PRIV-37",
            [
                connect(),
                send("a", offer()),
                expect("a", OFFERING),
                send("a", disconnect(12)),
                expect_close("a", []),
            ],
        ),
        case(
            "Noise message 1 of 32 zero bytes (a low-order key): closed, nothing sent",
            "PRIV-22, PRIV-34",
            [
                connect(),
                send("a", offer()),
                expect("a", OFFERING),
                secure("a", tamper="zero_key"),
                expect_close("a", []),
            ],
        ),
        case(
            "no Noise message 1 within handshake_timeout: closed, nothing sent",
            "PRIV-32, PRIV-34",
            [
                connect(),
                send("a", offer()),
                expect("a", OFFERING),
                expect_close("a", [], within=HANDSHAKE_TIMEOUT + LATE),
            ],
        ),
    ]
    bad_frame = raw(0x02, bytes(8), check=b"\x00\x00\x00\x00")  # a ping with a wrong checksum
    records = [
        case(
            f"a record {what}: closed with a sealed Disconnect `{reason}`",
            f"{requirement}, PRIV-36",
            [*encrypted(), *steps, expect_close("a", [reason])],
        )
        for what, reason, requirement, steps in (
            (
                "whose length's tag is broken",
                "record_forged",
                "PRIV-27",
                [send_record("a", ping(1), tamper="length_tag")],
            ),
            (
                "whose body's tag is broken",
                "record_forged",
                "PRIV-27",
                [send_record("a", ping(1), tamper="body_tag")],
            ),
            (
                "sent twice",
                "record_replayed",
                "PRIV-28",
                [
                    send("a", ping(2)),
                    expect("a", their_pong("2")),
                    send_record("a", tamper="replay"),
                ],
            ),
            (
                "sent before the one due",
                "record_reordered",
                "PRIV-28",
                [send_record("a", ping(3), ping(4), tamper="reorder")],
            ),
            (
                "whose length is above MAX_RECORD",
                "record_too_large",
                "PRIV-26",
                [send_record("a", tamper="too_large")],
            ),
            (
                "that ends inside its frame",
                "record_not_one_frame",
                "PRIV-30",
                [send_record("a", ping(5), tamper="not_one_frame")],
            ),
        )
    ]
    records.append(
        case(
            "a record whose frame is invalid: closed with a sealed Disconnect `invalid_message`",
            "PRIV-30, PRIV-36",
            [
                *encrypted(),
                {"op": "send_record", "conn": "a", "hex": bad_frame},
                expect_close("a", ["invalid_message"]),
            ],
        )
    )
    records.append(
        case(
            "records padded to their size buckets, and a record whose padding is not zeros: "
            "each frame is delivered as it was, the padding ignored",
            "PRIV-30",
            [
                *encrypted(),
                send_record("a", ping(25), tamper=None, pad=True),
                expect("a", their_pong("25")),
                {"op": "send_record", "conn": "a", "hex": encoded(ping(26)).hex() + "ff" * 40},
                expect("a", their_pong("26")),
                send_record("a", echo, tamper=None, pad=True),
                expect("a", {"type": "Inv", "payload": echo["payload"]}),
            ],
        )
    )
    records.append(
        case(
            "the stream ends inside a record: closed, nothing sent",
            "PRIV-29",
            [
                *encrypted(),
                send_record("a", ping(6), tamper="truncate"),
                {"op": "end", "conn": "a"},
                expect_close("a", []),
            ],
        )
    )
    initiator = [
        case(
            "the implementation dials: it is the Noise initiator, and pings inside records",
            "PRIV-11, PRIV-20, PRIV-21, PRIV-24",
            [
                *encrypted_as_responder(),
                expect("a", their_ping(), within=PING_INTERVAL + LATE, capture={"n": "nonce"}),
                send("a", {"type": "Pong", "nonce": {"var": "n"}}),
                send("a", ping(9)),
                expect("a", their_pong("9")),
            ],
        ),
        case(
            "Noise message 2 and a sealed ping in one write",
            "PRIV-20, PRIV-24",
            [
                accept(),
                expect("a", OFFERING),
                send("a", offer()),
                secure("a", RUNNER_EPHEMERAL_2, then=[ping(10)]),
                expect("a", their_pong("10")),
            ],
        ),
        case(
            "Noise message 2 with a broken tag: closed, nothing sent",
            "PRIV-22, PRIV-34",
            [
                accept(),
                expect("a", OFFERING),
                send("a", offer()),
                secure("a", tamper="message2_tag"),
                expect_close("a", []),
            ],
        ),
        case(
            "a plaintext ping where Noise message 2 belongs: closed, nothing sent",
            "PRIV-23, PRIV-34, PRIV-38",
            [
                accept(),
                expect("a", OFFERING),
                send("a", offer()),
                send("a", ping(1)),
                expect_close("a", []),
            ],
        ),
    ]
    first = [
        case(
            f"encrypted from the first byte, {garbage} bytes of garbage: the implementation "
            "answers with its message 2, garbage and terminator; the handshakes and a ping "
            "follow inside records",
            "PRIV-51, PRIV-53, PRIV-54, PRIV-56",
            [
                secure_first(garbage=garbage, then=[handshake()]),
                expect("a", THEIR_HANDSHAKE),
                send("a", ping(20)),
                expect("a", their_pong("20")),
            ],
        )
        for garbage in (0, 100, MAX_GARBAGE)
    ]
    first += [
        case(
            "encrypted from the first byte: the responder sends its handshake only after the "
            "initiator's",
            "PRIV-53, HS-2",
            [
                secure_first(),
                silence("a", 0.5),
                send("a", handshake()),
                expect("a", THEIR_HANDSHAKE),
            ],
        ),
        case(
            "a representative of 32 zero bytes (a low-order key): closed, nothing sent",
            "PRIV-22, PRIV-34",
            [secure_first(tamper="low_order"), expect_close("a", [])],
        ),
        case(
            "before the handshake, a frame in a record is held to the handshake's limit: "
            "a 2,008-byte ping is `invalid_message` (payload_too_large)",
            "HS-23, PRIV-26",
            [
                secure_first(then=[ping(23, padding="00" * 2000)]),
                expect_close("a", ["invalid_message"]),
            ],
        ),
        case(
            "before the handshake, a record longer than the bucket of the largest handshake "
            "frame is `record_too_large`",
            "PRIV-26",
            [
                secure_first(then=[ping(24, padding="00" * 2100)]),
                expect_close("a", ["record_too_large"]),
            ],
        ),
        case(
            "no terminator within MAX_GARBAGE + 16 bytes: closed with a sealed Disconnect",
            "PRIV-55",
            [secure_first(tamper="no_terminator"), expect_close("a", ["no_garbage_terminator"])],
        ),
        case(
            "the first record sealed with other associated data than the garbage sent: closed "
            "`record_forged`",
            "PRIV-56",
            [
                secure_first(tamper="garbage_changed", then=[handshake()]),
                expect_close("a", ["record_forged"]),
            ],
        ),
    ]
    nothing = opaque("Dummy", b"nothing at all")
    dummies = [
        case(
            "a Dummy on a plaintext connection is discarded, never echoed; the connection goes on",
            "PRIV-63",
            [
                connect(),
                send("a", handshake()),
                expect("a", OFFERING),
                send("a", nothing),
                silence("a", 0.5),
                send("a", ping(21)),
                expect("a", their_pong("21")),
            ],
        ),
        case(
            "a Dummy inside a record is discarded too",
            "PRIV-63",
            [
                *encrypted(),
                send("a", nothing),
                silence("a", 0.5),
                send("a", ping(22)),
                expect("a", their_pong("22")),
            ],
        ),
        case(
            "a Dummy before the handshake is a message the state does not allow",
            "HS-20",
            [connect(), send("a", nothing), expect_close("a", ["unexpected_message"])],
        ),
    ]
    return [
        ("encrypted", "Both peers offer encryption, or one does not.", "responder", responder),
        (
            "first",
            "Encrypted from the first byte, the runner the initiator (section 3.5).",
            "responder",
            first,
        ),
        ("dummy", "Dummy messages are discarded (section 5).", "responder", dummies),
        (
            "noise",
            "The Noise handshake's failures (PRIV-22, PRIV-23, PRIV-32).",
            "responder",
            noise,
        ),
        ("records", "Sealed records made wrong on purpose.", "responder", records),
        ("initiator", "The implementation as the Noise initiator.", "initiator", initiator),
    ]
