"""Decision vectors for the encrypted transport (spec/privacy.md section 3): the Noise handshake
in each role, and sealing and opening records.

Four kinds, replayed through the adapter of decision.py like every decision:

- ``noise_initiator``: this node's prologue and ephemeral private key, and the responder's
  message 2; the output is message 1, then the handshake hash and the keys of Split as this
  side uses them, or the error that ends the handshake.
- ``noise_responder``: the same for the responder, from the initiator's message 1.
- ``seal``: a CipherState's key and nonce, and frames; the records' bytes and the state after.
- ``open``: a CipherState's key and nonce, and a received stream that ends where the input
  ends; the frames of the records and their padding, the error that stops the stream if any,
  and the state after.

The messages are whole: message 1 is 32 bytes and message 2 48 (the payloads are empty, PRIV-20)
and neither begins with ``MAGIC``, which PRIV-23 decides in the session instead. A nonce is
where a record starts, so it is even and below REKEY_AFTER. Keys and bytes are lowercase hex.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from ..transport.noise import (
    MESSAGE1_SIZE,
    MESSAGE2_SIZE,
    CipherState,
    NoiseError,
    NoiseHandshake,
    public_key,
)
from ..transport.records import (
    MAX_RECORD,
    REKEY_AFTER,
    RecordError,
    RecordOpener,
    RecordSealer,
)
from ..transport.records import split_record as split_plaintext
from ..wire import (
    HEADER_SIZE,
    MAGIC,
    MAX_PAYLOAD,
    DecodeError,
    Disconnect,
    MessageType,
    Opaque,
    Ping,
    Pong,
    encode_frame,
)
from ..wire.jsonform import frame_to_json
from .codec import _handshake as codec_handshake

Json = dict[str, Any]
Case = tuple[str, list[str], Json]
Cases = list[tuple[str, str, str, list[Case]]]

_HEX = re.compile(r"(?:[0-9a-f]{2})*")


# Inputs, parsed strictly: a case with a wrong type is an error, never a silent default.


def _bytes(given: Json, key: str, size: int | None = None) -> bytes:
    text = given[key]
    if not isinstance(text, str) or not _HEX.fullmatch(text):
        raise ValueError(f"{key} must be bytes in lowercase hex, got {text!r}")
    value = bytes.fromhex(text)
    if size is not None and len(value) != size:
        raise ValueError(f"{key} must be {size} bytes, got {len(value)}")
    return value


def _message(given: Json, key: str, size: int) -> bytes:
    value = _bytes(given, key, size)
    if value.startswith(MAGIC):
        raise ValueError(f"{key} begins with MAGIC: PRIV-23 decides that case, in the session")
    return value


def _cipher(given: Json) -> CipherState:
    nonce = given["nonce"]
    if isinstance(nonce, bool) or not isinstance(nonce, int):
        raise ValueError(f"nonce must be an integer, got {nonce!r}")
    if not 0 <= nonce < REKEY_AFTER or nonce % 2:
        raise ValueError(f"nonce must be even, from 0 to {REKEY_AFTER - 2}, got {nonce}")
    cipher = CipherState()
    cipher.initialize_key(_bytes(given, "key", 32))
    cipher.set_nonce(nonce)
    return cipher


def _state(cipher: CipherState) -> Json:
    assert cipher.key is not None
    return {"key": cipher.key.hex(), "nonce": cipher.nonce}


# The decisions.


def _completed(handshake: NoiseHandshake) -> Json:
    send, receive = handshake.split()  # spec: PRIV-21
    assert send.key is not None and receive.key is not None
    return {
        "handshake_hash": handshake.handshake_hash.hex(),
        "send_key": send.key.hex(),
        "receive_key": receive.key.hex(),
    }


def noise_initiator(given: Json) -> Json:
    handshake = NoiseHandshake(True, _bytes(given, "prologue"), _bytes(given, "ephemeral", 32))
    message2 = _message(given, "message2", MESSAGE2_SIZE)
    out: Json = {"message1": handshake.write_message().hex()}  # spec: PRIV-20
    try:
        handshake.read_message(message2)
    except NoiseError as error:  # spec: PRIV-22
        return {**out, "error": error.code.value}
    return {**out, **_completed(handshake)}


def noise_responder(given: Json) -> Json:
    handshake = NoiseHandshake(False, _bytes(given, "prologue"), _bytes(given, "ephemeral", 32))
    message1 = _message(given, "message1", MESSAGE1_SIZE)
    try:
        handshake.read_message(message1)
        message2 = handshake.write_message()  # spec: PRIV-20
    except NoiseError as error:  # spec: PRIV-22
        return {"error": error.code.value}
    return {"message2": message2.hex(), **_completed(handshake)}


def seal(given: Json) -> Json:
    cipher = _cipher(given)
    pad = given["pad"]
    if not isinstance(pad, bool):
        raise ValueError(f"pad must be true or false, got {pad!r}")
    frames = given["frames"]
    if not isinstance(frames, list):
        raise ValueError(f"frames must be a list, got {frames!r}")
    sealer = RecordSealer(cipher, pad)
    stream = b"".join(sealer.seal(_bytes({"frame": f}, "frame")) for f in frames)
    return {"stream": stream.hex(), **_state(cipher)}


def open_(given: Json) -> Json:
    cipher = _cipher(given)
    max_payload = given.get("max_payload", MAX_PAYLOAD)
    if isinstance(max_payload, bool) or not isinstance(max_payload, int) or max_payload < 0:
        raise ValueError(f"max_payload must be a non-negative integer, got {max_payload!r}")
    opener = RecordOpener(cipher)
    opener.push(_bytes(given, "stream"))
    records: list[Json] = []
    error: RecordError | DecodeError | None = None
    while error is None and (item := opener.pull()) is not None:
        if isinstance(item, RecordError):
            error = item
            break
        split = split_plaintext(item, max_payload)  # spec: PRIV-30
        if not isinstance(split, tuple):
            error = split
            break
        frame, padding = split
        records.append({"frame": frame_to_json(frame), "padding_length": padding})
    if error is None:
        error = opener.eof()  # spec: PRIV-29 (the stream ends where the input does)
    out: Json = {"records": records, "result": "valid" if error is None else "invalid"}
    if error is not None:
        out["error"] = error.code.value
    return {**out, **_state(cipher)}


DECISIONS = {
    "noise_initiator": noise_initiator,
    "noise_responder": noise_responder,
    "seal": seal,
    "open": open_,
}


# The cases. Every key is fixed: the ephemerals, as a node draws them, give public keys that do
# not begin with MAGIC (PRIV-33).

_INIT_E = bytes(range(1, 33))
_RESP_E = bytes(range(33, 65))
_OTHER_E = bytes(range(65, 97))
_KEY = bytes(range(128, 160))
# Points of low order: a DH with any of them gives 32 zero bytes.
_ZERO_POINT = bytes(32)
_ORDER_4_POINT = (1).to_bytes(32, "little")
_ORDER_8_POINT = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")


def _prologue() -> bytes:
    """The prologue as spec/privacy.md section 3.2 forms it: the label, then the initiator's and
    the responder's handshake frames as they travelled."""
    initiator = encode_frame(codec_handshake(privacy_features=0x81))
    responder = encode_frame(codec_handshake(privacy_features=0x81, nonce=7), bytes(3))
    return b"OBX noise v1" + initiator + responder


def _message1(prologue: bytes, ephemeral: bytes = _INIT_E) -> bytes:
    return NoiseHandshake(True, prologue, ephemeral).write_message()


def _message2(prologue: bytes, responder_e: bytes = _RESP_E, initiator_e: bytes = _INIT_E) -> bytes:
    responder = NoiseHandshake(False, prologue, responder_e)
    responder.read_message(_message1(prologue, initiator_e))
    return responder.write_message()


def _flipped(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def _initiator(prologue: bytes, message2: bytes, ephemeral: bytes = _INIT_E) -> Json:
    return {"prologue": prologue.hex(), "ephemeral": ephemeral.hex(), "message2": message2.hex()}


def _responder(prologue: bytes, message1: bytes, ephemeral: bytes = _RESP_E) -> Json:
    return {"prologue": prologue.hex(), "ephemeral": ephemeral.hex(), "message1": message1.hex()}


def _noise_cases() -> tuple[list[Case], list[Case]]:
    prologue = _prologue()
    for ephemeral in (_INIT_E, _RESP_E, _OTHER_E):
        assert not public_key(ephemeral).startswith(MAGIC)
    message2 = _message2(prologue)
    done = ["PRIV-20", "PRIV-21"]
    failed = ["PRIV-22"]
    initiator: list[Case] = [
        (
            "a complete handshake: message 1, then the responder's message 2 verifies",
            done,
            _initiator(prologue, message2),
        ),
        (
            "a complete handshake with an empty prologue",
            done,
            _initiator(b"", _message2(b"")),
        ),
        (
            "the responder used another prologue (a handshake frame changed on the way): the "
            "tag of message 2 does not verify",
            ["PRIV-20", "PRIV-22"],
            _initiator(prologue, _message2(prologue + b"\x00")),
        ),
        (
            "message 2 answers another initiator's message 1: the tag does not verify",
            ["PRIV-20", "PRIV-22"],
            _initiator(prologue, _message2(prologue, initiator_e=_OTHER_E)),
        ),
        (
            "a bit of message 2's tag flipped",
            failed,
            _initiator(prologue, _flipped(message2, MESSAGE2_SIZE - 1)),
        ),
        (
            "a bit of message 2's first tag byte flipped",
            failed,
            _initiator(prologue, _flipped(message2, 32)),
        ),
        (
            "a bit of the responder's ephemeral key flipped: the tag does not verify",
            failed,
            _initiator(prologue, _flipped(message2, 5)),
        ),
        (
            "the responder's key is 32 zero bytes: DH gives zeros",
            failed,
            _initiator(prologue, _ZERO_POINT + message2[32:]),
        ),
        (
            "the responder's key is the point u = 1, of order 4: DH gives zeros",
            failed,
            _initiator(prologue, _ORDER_4_POINT + message2[32:]),
        ),
        (
            "the responder's key is a point of order 8: DH gives zeros",
            failed,
            _initiator(prologue, _ORDER_8_POINT + message2[32:]),
        ),
    ]
    responder: list[Case] = [
        (
            "a complete handshake: message 1 read, message 2 written (the pair of case 1)",
            done,
            _responder(prologue, _message1(prologue)),
        ),
        (
            "a complete handshake with an empty prologue (the pair of case 2)",
            done,
            _responder(b"", _message1(b"")),
        ),
        (
            "another initiator's ephemeral key: another handshake hash and other keys",
            done,
            _responder(prologue, _message1(prologue, _OTHER_E)),
        ),
        (
            "the initiator's key is 32 zero bytes: DH gives zeros when message 2 is written",
            failed,
            _responder(prologue, _ZERO_POINT),
        ),
        (
            "the initiator's key is the point u = 1, of order 4",
            failed,
            _responder(prologue, _ORDER_4_POINT),
        ),
        (
            "the initiator's key is a point of order 8",
            failed,
            _responder(prologue, _ORDER_8_POINT),
        ),
    ]
    return initiator, responder


def _frame(size: int) -> bytes:
    """A valid frame of exactly ``size`` bytes: an opaque message of zeros."""
    return encode_frame(Opaque(MessageType.Inv, bytes(size - HEADER_SIZE)))


_TINY = encode_frame(Opaque(MessageType.MemPool, b""))  # 16 bytes: the smallest frame
_PING = encode_frame(Ping(0x0102_0304_0506_0708))
_PONG = encode_frame(Pong(0x0102_0304_0506_0708))
_BYE = encode_frame(Disconnect(1), bytes(5))


def _seal(frames: list[bytes], pad: bool = False, nonce: int = 0) -> Json:
    return {"key": _KEY.hex(), "nonce": nonce, "pad": pad, "frames": [f.hex() for f in frames]}


def _sealed(frames: list[bytes], pad: bool = False, nonce: int = 0) -> bytes:
    sealer = RecordSealer(_key_at(nonce), pad)
    return b"".join(sealer.seal(frame) for frame in frames)


def _key_at(nonce: int) -> CipherState:
    """_KEY at any nonce, even one no record starts at, for records made wrong on purpose."""
    cipher = CipherState()
    cipher.initialize_key(_KEY)
    cipher.set_nonce(nonce)
    return cipher


def _record(plaintext: bytes, nonce: int) -> bytes:
    """A record of any plaintext, sealed under _KEY from ``nonce``, without the rekey rule."""
    cipher = _key_at(nonce)
    return cipher.encrypt_with_ad(b"", struct.pack("<I", len(plaintext))) + cipher.encrypt_with_ad(
        b"", plaintext
    )


def _open(stream: bytes, nonce: int = 0, max_payload: int | None = None) -> Json:
    given: Json = {"key": _KEY.hex(), "nonce": nonce}
    if max_payload is not None:
        given["max_payload"] = max_payload
    return {**given, "stream": stream.hex()}


def _seal_cases() -> list[Case]:
    return [
        ("one ping, unpadded", ["PRIV-24"], _seal([_PING])),
        (
            "four frames, unpadded: each record takes the next two nonces",
            ["PRIV-24"],
            _seal([_PING, _PONG, _BYE, _frame(300)]),
        ),
        ("one ping from nonce 40", ["PRIV-24"], _seal([_PING], nonce=40)),
        (
            "padded: frames of 24, 63, 64, 65 and 128 bytes in buckets of 64, 64, 64, 128 "
            "and 128 bytes, zeros after the frame",
            ["PRIV-24", "PRIV-30", "PRIV-31"],
            _seal([_PING, _frame(63), _frame(64), _frame(65), _frame(128)], pad=True),
        ),
        (
            "padded: frames of 129 and 1000 bytes in buckets of 256 and 1024",
            ["PRIV-31"],
            _seal([_frame(129), _frame(1000)], pad=True),
        ),
        (
            "501 records of the smallest frame from nonce 0: the 500th ends the first key, the "
            "501st is sealed under REKEY(k) from nonce 0",
            ["PRIV-24", "PRIV-25"],
            _seal([_TINY] * 501),
        ),
        (
            "two records from nonce 998: the first ends the key, the second starts the next",
            ["PRIV-25"],
            _seal([_PING, _PONG], nonce=998),
        ),
    ]


def _open_cases() -> list[Case]:
    valid = _sealed([_PING, _PONG, _BYE, _frame(300)])
    ping = _sealed([_PING])
    two = _sealed([_PING, _PONG])
    later = _sealed([_TINY] * 10)
    record_size = 20 + len(_TINY) + 16
    first_length = len(ping) - 16 - len(_PING)  # 20: the sealed length
    return [
        ("an empty stream", ["PRIV-24"], _open(b"")),
        ("four records, unpadded", ["PRIV-24", "PRIV-30"], _open(valid)),
        (
            "padded records: the padding after each frame is counted, not delivered",
            ["PRIV-24", "PRIV-30"],
            _open(_sealed([_PING, _frame(65)], pad=True)),
        ),
        (
            "padding of any value is ignored",
            ["PRIV-30"],
            _open(_record(_PING + b"\xff" * 40, 0)),
        ),
        (
            "a second whole frame inside one record is padding",
            ["PRIV-30"],
            _open(_record(_PING + _PONG, 0)),
        ),
        (
            "three records from nonce 996, across the rekey",
            ["PRIV-25"],
            _open(_sealed([_PING, _PONG, _BYE], nonce=996), nonce=996),
        ),
        (
            "a record sealed with nonce 1000 of the old key instead of the rekeyed key",
            ["PRIV-25", "PRIV-27"],
            _open(_record(_PING, 998) + _record(_PONG, 1000), nonce=998),
        ),
        (
            "a bit of the first record's length tag flipped",
            ["PRIV-27"],
            _open(_flipped(two, first_length - 1)),
        ),
        (
            "a bit of the first record's sealed length flipped",
            ["PRIV-27"],
            _open(_flipped(two, 0)),
        ),
        (
            "a bit of the second record's body tag flipped",
            ["PRIV-27"],
            _open(_flipped(two, len(two) - 1)),
        ),
        (
            "a bit of the first record's body flipped",
            ["PRIV-27"],
            _open(_flipped(two, first_length + 3)),
        ),
        (
            "the first record sent twice",
            ["PRIV-28"],
            _open(ping + ping),
        ),
        (
            "after nine records, the second sent again (8 records back)",
            ["PRIV-28"],
            _open(later[: 9 * record_size] + later[record_size : 2 * record_size]),
        ),
        (
            "after nine records, the first sent again (9 back: beyond the diagnosis)",
            ["PRIV-27", "PRIV-28"],
            _open(later[: 9 * record_size] + later[:record_size]),
        ),
        (
            "the second record first",
            ["PRIV-28"],
            _open(later[record_size : 2 * record_size]),
        ),
        (
            "the ninth record first (8 ahead)",
            ["PRIV-28"],
            _open(later[8 * record_size : 9 * record_size]),
        ),
        (
            "the tenth record first (9 ahead: beyond the diagnosis)",
            ["PRIV-27", "PRIV-28"],
            _open(later[9 * record_size :]),
        ),
        (
            "from nonce 994, a record of nonce 998 (2 ahead, in the key)",
            ["PRIV-28"],
            _open(_record(_PING, 998), nonce=994),
        ),
        (
            "from nonce 994, a record of nonce 1000 of the same key (3 ahead, but no key has "
            "nonce 1000)",
            ["PRIV-27", "PRIV-28"],
            _open(_record(_PING, 1000), nonce=994),
        ),
        (
            "the stream ends inside the second record's length",
            ["PRIV-29"],
            _open(two[: len(ping) + 10]),
        ),
        (
            "the stream ends inside the second record's body",
            ["PRIV-29"],
            _open(two[:-1]),
        ),
        (
            "a length of MAX_RECORD + 1: refused before the body",
            ["PRIV-26"],
            _open(_length(MAX_RECORD + 1)),
        ),
        (
            "a length of exactly MAX_RECORD is accepted: the stream then ends inside its body",
            ["PRIV-26", "PRIV-29"],
            _open(_length(MAX_RECORD)),
        ),
        (
            "a record whose plaintext ends inside its frame's header",
            ["PRIV-30"],
            _open(_record(_PING[:10], 0)),
        ),
        (
            "a record whose plaintext ends inside its frame's payload",
            ["PRIV-30"],
            _open(ping + _record(_PONG[:-1], 2)),
        ),
        (
            "an empty record",
            ["PRIV-30"],
            _open(_record(b"", 0)),
        ),
        (
            "a frame with a wrong checksum inside a record: the wire's error",
            ["PRIV-30"],
            _open(_record(_flipped(_PING, len(_PING) - 1), 0)),
        ),
        (
            "a frame with a wrong magic inside a record: the wire's error",
            ["PRIV-30"],
            _open(_record(_flipped(_PING, 0), 0)),
        ),
        (
            "a frame above the receiver's max_payload of 100 inside a record",
            ["PRIV-30"],
            _open(_sealed([_frame(HEADER_SIZE + 100), _frame(HEADER_SIZE + 101)]), max_payload=100),
        ),
    ]


def _length(length: int) -> bytes:
    """A sealed length alone, under _KEY with nonce 0."""
    return _key_at(0).encrypt_with_ad(b"", struct.pack("<I", length))


def cases() -> Cases:
    initiator, responder = _noise_cases()
    return [
        (
            "noise_initiator",
            "noise_initiator",
            "The Noise initiator (PRIV-20): message 1 from its ephemeral key, then the "
            "responder's message 2 read; the handshake hash and the keys it sends and receives "
            "with (PRIV-21), or noise_failed (PRIV-22).",
            initiator,
        ),
        (
            "noise_responder",
            "noise_responder",
            "The Noise responder (PRIV-20): the initiator's message 1 read, then message 2; the "
            "handshake hash and the keys it sends and receives with (PRIV-21), or noise_failed "
            "(PRIV-22).",
            responder,
        ),
        (
            "seal",
            "seal",
            "Frames sealed as records (PRIV-24) from a CipherState's key and nonce, padded to "
            "their buckets when asked (PRIV-31), the key replaced when the nonce reaches 1000 "
            "(PRIV-25).",
            _seal_cases(),
        ),
        (
            "open",
            "open",
            "A received stream of records, opened (PRIV-24, PRIV-25) and each record's frame "
            "decoded (PRIV-30), up to the error that ends the stream (PRIV-26 to PRIV-30).",
            _open_cases(),
        ),
    ]


DESCRIPTION = (
    "Decision vectors for spec/privacy.md section 3, the encrypted transport: the Noise "
    "handshake Noise_NN_25519_ChaChaPoly_SHA256 in each role, and frames sealed as records and "
    "records opened."
)

NOTES: Json = {
    "replay": (
        "Send {tcId, decision, input} to the implementation's adapter (conformance/README.md) "
        "and compare its output with `expected` as JSON values: same keys, same values, same "
        "types."
    ),
    "noise_initiator": (
        "input {prologue, ephemeral (this side's X25519 private key), message2 (the "
        "responder's, 48 bytes)}; output {message1, handshake_hash, send_key, receive_key} "
        'when message 2 verifies, else {message1, "error": "noise_failed"}.'
    ),
    "noise_responder": (
        "input {prologue, ephemeral, message1 (the initiator's, 32 bytes)}; output {message2, "
        'handshake_hash, send_key, receive_key}, or {"error": "noise_failed"} when a DH gives '
        "zeros."
    ),
    "seal": (
        "input {key, nonce, pad, frames: [whole frames]}; output {stream (the records, one per "
        "frame, in order), key, nonce (the CipherState after the last record)}."
    ),
    "open": (
        "input {key, nonce, max_payload (optional; 10485760 when absent), stream (every byte "
        "received: the stream ends there)}; output {records: [{frame (the JSON frame form of "
        "codec.json), padding_length (the record's bytes after the frame)}], result: valid or "
        "invalid, error (when invalid: a record error or the wire's error code of the frame), "
        "key, nonce (the CipherState after the last record opened)}."
    ),
    "numbers": (
        "Keys, messages, frames and streams are lowercase hex; a nonce is an integer, even and "
        "below 1000 in an input (where a record starts)."
    ),
}
