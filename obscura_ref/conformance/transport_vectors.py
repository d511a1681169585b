"""Decision vectors for the encrypted transport (spec/privacy.md section 3): the Noise handshake
in each role, sealing and opening records, and the encrypted-first mode's hidden keys and
garbage (section 3.5).

Kinds replayed through the adapter of decision.py like every decision:

- ``noise_initiator``: this node's prologue and ephemeral private key (and, in the
  encrypted-first mode, the public key it hashes for it), and the responder's message 2; the
  output is message 1, then the handshake hash and the keys of Split as this side uses them,
  or the error that ends the handshake.
- ``noise_responder``: the same for the responder, from the initiator's message 1.
- ``seal``: a CipherState's key and nonce, the first record's associated data, and frames; the
  records' bytes and the state after.
- ``open``: a CipherState's key and nonce, the first record's associated data, and a received
  stream that ends where the input ends; the frames of the records and their padding, the
  error that stops the stream if any, and the state after.
- ``elligator_key_pair`` and ``elligator_map``: Monocypher's Elligator 2 key pair from a seed,
  and the public key a representative stands for.
- ``garbage_terminators``: both terminators from a handshake hash.
- ``find_terminator``: the garbage before a terminator and the bytes after it, or the error
  when it does not come in time.

The messages are whole: message 1 is 32 bytes and message 2 48 (the payloads are empty, PRIV-20)
and neither begins with ``MAGIC``, which PRIV-23 decides in the session instead. A nonce is
where a record starts, so it is even and below REKEY_AFTER. Keys and bytes are lowercase hex.
"""

from __future__ import annotations

import hashlib
import re
import struct
from typing import Any

from ..transport.elligator import FIRST_PROLOGUE, hidden_key_pair, unhide
from ..transport.garbage import (
    MAX_GARBAGE,
    TERMINATOR_SIZE,
    GarbageError,
    TerminatorScanner,
    garbage_terminators,
)
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


def _ephemeral_public(given: Json) -> bytes | None:
    """The public key hashed for ``e`` when the input gives one (absent: X25519 of the key)."""
    return _bytes(given, "ephemeral_public", 32) if "ephemeral_public" in given else None


def _first_ad(given: Json) -> bytes:
    return _bytes(given, "first_ad") if "first_ad" in given else b""


def _count(given: Json, key: str, default: int) -> int:
    value = given.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
    return value


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
    handshake = NoiseHandshake(
        True,
        _bytes(given, "prologue"),
        _bytes(given, "ephemeral", 32),
        ephemeral_public=_ephemeral_public(given),  # spec: PRIV-51
    )
    message2 = _message(given, "message2", MESSAGE2_SIZE)
    out: Json = {"message1": handshake.write_message().hex()}  # spec: PRIV-20
    try:
        handshake.read_message(message2)
    except NoiseError as error:  # spec: PRIV-22
        return {**out, "error": error.code.value}
    return {**out, **_completed(handshake)}


def noise_responder(given: Json) -> Json:
    handshake = NoiseHandshake(
        False,
        _bytes(given, "prologue"),
        _bytes(given, "ephemeral", 32),
        ephemeral_public=_ephemeral_public(given),  # spec: PRIV-51
    )
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
    sealer = RecordSealer(cipher, pad, first_ad=_first_ad(given))  # spec: PRIV-56
    stream = b"".join(sealer.seal(_bytes({"frame": f}, "frame")) for f in frames)
    return {"stream": stream.hex(), **_state(cipher)}


def open_(given: Json) -> Json:
    cipher = _cipher(given)
    max_payload = _count(given, "max_payload", MAX_PAYLOAD)
    opener = RecordOpener(cipher, first_ad=_first_ad(given))  # spec: PRIV-56
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


def elligator_key_pair(given: Json) -> Json:
    pair = hidden_key_pair(_bytes(given, "seed", 32))  # spec: PRIV-51
    return {"hidden": pair.hidden.hex(), "secret": pair.secret.hex(), "public": pair.public.hex()}


def elligator_map(given: Json) -> Json:
    return {"public": unhide(_bytes(given, "hidden", 32)).hex()}  # spec: PRIV-51


def terminators(given: Json) -> Json:
    handshake_hash = _bytes(given, "handshake_hash", 32)
    initiator, responder = garbage_terminators(handshake_hash)  # spec: PRIV-54
    return {"initiator": initiator.hex(), "responder": responder.hex()}


def find_terminator(given: Json) -> Json:
    scanner = TerminatorScanner(
        _bytes(given, "terminator", TERMINATOR_SIZE), _count(given, "limit", MAX_GARBAGE)
    )
    found = scanner.feed(_bytes(given, "stream"))
    if found is None:
        raise ValueError("the stream must hold the terminator, or limit + 16 bytes or more")
    if isinstance(found, GarbageError):  # spec: PRIV-55
        return {"error": found.code.value}
    return {"garbage": found.garbage.hex(), "rest": found.rest.hex()}


DECISIONS = {
    "noise_initiator": noise_initiator,
    "noise_responder": noise_responder,
    "seal": seal,
    "open": open_,
    "elligator_key_pair": elligator_key_pair,
    "elligator_map": elligator_map,
    "garbage_terminators": terminators,
    "find_terminator": find_terminator,
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
        "input {prologue, ephemeral (this side's X25519 private key), ephemeral_public "
        "(optional: the public key written and hashed for e; X25519 of ephemeral when absent), "
        "message2 (the responder's, 48 bytes)}; output {message1, handshake_hash, send_key, "
        'receive_key} when message 2 verifies, else {message1, "error": "noise_failed"}.'
    ),
    "noise_responder": (
        "input {prologue, ephemeral, ephemeral_public (optional, as for noise_initiator), "
        "message1 (the initiator's, 32 bytes)}; output {message2, handshake_hash, send_key, "
        'receive_key}, or {"error": "noise_failed"} when a DH gives zeros.'
    ),
    "seal": (
        "input {key, nonce, pad, first_ad (optional, empty when absent: the associated data of "
        "both encryptions of the first record), frames: [whole frames]}; output {stream (the "
        "records, one per frame, in order), key, nonce (the CipherState after the last "
        "record)}."
    ),
    "open": (
        "input {key, nonce, max_payload (optional; 10485760 when absent), first_ad (optional, "
        "as for seal), stream (every byte received: the stream ends there)}; output {records: "
        "[{frame (the JSON frame form of "
        "codec.json), padding_length (the record's bytes after the frame)}], result: valid or "
        "invalid, error (when invalid: a record error or the wire's error code of the frame), "
        "key, nonce (the CipherState after the last record opened)}."
    ),
    "numbers": (
        "Keys, messages, frames and streams are lowercase hex; a nonce is an integer, even and "
        "below 1000 in an input (where a record starts)."
    ),
}


# The encrypted-first mode (section 3.5): hidden keys, garbage and its terminator, and the first
# record. The key pairs come from fixed seeds whose representatives do not begin with MAGIC
# (PRIV-52) and whose public keys are dirty, so that a case tells the dirty key from X25519's.


def _seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _filler(size: int, label: str) -> bytes:
    """``size`` bytes that look random, as garbage is, and hold no terminator."""
    return hashlib.shake_256(label.encode()).digest(size)


_FIRST_I = hidden_key_pair(_seed("initiator"))
_FIRST_R = hidden_key_pair(_seed("responder"))


def _first_handshake() -> tuple[bytes, bytes, bytes]:
    """Message 1 and message 2 as Noise writes and reads them (the public keys unhidden), and
    the handshake hash, of an encrypted-first handshake between _FIRST_I and _FIRST_R."""
    initiator = NoiseHandshake(
        True, FIRST_PROLOGUE, _FIRST_I.secret, ephemeral_public=_FIRST_I.public
    )
    responder = NoiseHandshake(
        False, FIRST_PROLOGUE, _FIRST_R.secret, ephemeral_public=_FIRST_R.public
    )
    message1 = initiator.write_message()
    responder.read_message(unhide(_FIRST_I.hidden))
    message2 = responder.write_message()
    initiator.read_message(unhide(_FIRST_R.hidden) + message2[32:])
    assert initiator.handshake_hash == responder.handshake_hash
    return message1, message2, initiator.handshake_hash


def _first_noise_cases() -> tuple[list[Case], list[Case]]:
    for pair in (_FIRST_I, _FIRST_R):
        assert not pair.hidden.startswith(MAGIC)
        assert pair.public != public_key(pair.secret)  # dirty: a low-order part was added
    message1, message2, _ = _first_handshake()
    clean = NoiseHandshake(False, FIRST_PROLOGUE, _FIRST_R.secret, ephemeral_public=_FIRST_R.public)
    clean.read_message(public_key(_FIRST_I.secret))

    def initiator(message: bytes) -> Json:
        return {
            "prologue": FIRST_PROLOGUE.hex(),
            "ephemeral": _FIRST_I.secret.hex(),
            "ephemeral_public": _FIRST_I.public.hex(),
            "message2": message.hex(),
        }

    def responder(message: bytes) -> Json:
        return {
            "prologue": FIRST_PROLOGUE.hex(),
            "ephemeral": _FIRST_R.secret.hex(),
            "ephemeral_public": _FIRST_R.public.hex(),
            "message1": message.hex(),
        }

    initiators: list[Case] = [
        (
            "encrypted-first: e is the dirty public key elligator_map(hidden), written and "
            "hashed as given; the responder's message 2 verifies",
            ["PRIV-20", "PRIV-21", "PRIV-51"],
            initiator(message2),
        ),
        (
            "message 2 of a responder that hashed the initiator's clean key X25519(secret) "
            "instead of the dirty one: the same DH, another hash, the tag does not verify",
            ["PRIV-22", "PRIV-51"],
            initiator(clean.write_message()),
        ),
        (
            "without ephemeral_public the clean key is written: message 2 of the dirty "
            "handshake does not verify",
            ["PRIV-22", "PRIV-51"],
            {key: value for key, value in initiator(message2).items() if key != "ephemeral_public"},
        ),
    ]
    responders: list[Case] = [
        (
            "encrypted-first: message 1 is the initiator's representative mapped back; message "
            "2 begins with the responder's dirty public key (the pair of case 1)",
            ["PRIV-20", "PRIV-21", "PRIV-51"],
            responder(message1),
        ),
        (
            "the representative of 32 zero bytes maps to the point 0, of order 2: DH gives zeros",
            ["PRIV-22", "PRIV-51"],
            responder(unhide(bytes(32))),
        ),
    ]
    return initiators, responders


def _key_pair_cases() -> list[Case]:
    cases: list[Case] = []
    for label in ("initiator", "responder"):
        cases.append((f"the seed SHA-256({label!r})", ["PRIV-51"], {"seed": _seed(label).hex()}))
    for seed, comment in (
        (bytes(32), "32 zero bytes"),
        (bytes(range(32)), "the bytes 0 to 31"),
        (b"\xff" * 32, "32 bytes 0xff"),
    ):
        cases.append((f"the seed of {comment}", ["PRIV-51"], {"seed": seed.hex()}))
    tops = {hidden_key_pair(_seed(f"top {n}")).hidden[31] >> 6: n for n in range(32)}
    assert set(tops) == {0, 1, 2, 3}
    for top, n in sorted(tops.items()):
        cases.append(
            (
                f"a representative whose top two bits are {top:02b} (Monocypher fills them from "
                "the seed)",
                ["PRIV-51"],
                {"seed": _seed(f"top {n}").hex()},
            )
        )
    return cases


def _with_top_bits(hidden: bytes, top: int) -> bytes:
    return hidden[:31] + bytes([hidden[31] & 0x3F | top << 6])


def _map_cases() -> list[Case]:
    hidden = _FIRST_I.hidden
    cases: list[Case] = [
        (
            f"a representative with its top two bits set to {top:02b}: they are ignored, the "
            "public key is the same",
            ["PRIV-51"],
            {"hidden": _with_top_bits(hidden, top).hex()},
        )
        for top in range(4)
    ]
    return [
        *cases,
        (
            "32 zero bytes map to the point 0, of order 2",
            ["PRIV-51"],
            {"hidden": bytes(32).hex()},
        ),
        (
            "zero with the top two bits set: the point 0 too",
            ["PRIV-51"],
            {"hidden": _with_top_bits(bytes(32), 3).hex()},
        ),
        (
            "32 bytes 0xff: 2^254 - 1 once the top bits are dropped, above (p - 1) / 2, the "
            "negative representative of its point",
            ["PRIV-51"],
            {"hidden": (b"\xff" * 32).hex()},
        ),
        (
            "the representative 1",
            ["PRIV-51"],
            {"hidden": (1).to_bytes(32, "little").hex()},
        ),
    ]


def _terminator_cases() -> list[Case]:
    _, _, handshake_hash = _first_handshake()
    return [
        (
            "the handshake hash of the encrypted-first handshake of noise_initiator case 1",
            ["PRIV-54"],
            {"handshake_hash": handshake_hash.hex()},
        ),
        ("a handshake hash of 32 zero bytes", ["PRIV-54"], {"handshake_hash": bytes(32).hex()}),
    ]


def _find(terminator: bytes, stream: bytes, limit: int | None = None) -> Json:
    given: Json = {"terminator": terminator.hex(), "stream": stream.hex()}
    if limit is not None:
        given["limit"] = limit
    return given


def _find_cases() -> list[Case]:
    _, _, handshake_hash = _first_handshake()
    mine, theirs = garbage_terminators(handshake_hash)
    record = _filler(40, "record")
    garbage = _filler(MAX_GARBAGE + TERMINATOR_SIZE + 1, "garbage")
    scan = ["PRIV-55"]
    return [
        (
            "no garbage: the terminator first, then a record's bytes",
            scan,
            _find(mine, mine + record),
        ),
        (
            "5 bytes of garbage, the terminator, 3 bytes after it",
            scan,
            _find(mine, garbage[:5] + mine + record[:3]),
        ),
        (
            "the stream ends with the terminator: nothing after it",
            scan,
            _find(mine, garbage[:7] + mine),
        ),
        (
            "the other side's terminator inside the garbage is garbage",
            scan,
            _find(mine, garbage[:7] + theirs + mine + record),
        ),
        (
            "the garbage ends with the terminator's first 15 bytes, then the whole terminator",
            scan,
            _find(mine, garbage[:7] + mine[:15] + mine + record),
        ),
        (
            "the terminator twice: the first ends the garbage, the second is after it",
            scan,
            _find(mine, garbage[:3] + mine + mine + record[:4]),
        ),
        (
            "limit 8: 8 bytes of garbage, then the terminator (24 bytes, exactly limit + 16)",
            scan,
            _find(mine, garbage[:8] + mine + record[:10], limit=8),
        ),
        (
            "limit 8: 9 bytes of garbage, then the terminator, which ends after limit + 16 bytes",
            scan,
            _find(mine, garbage[:9] + mine + record[:10], limit=8),
        ),
        (
            "limit 8: 25 bytes without the terminator",
            scan,
            _find(mine, garbage[:25], limit=8),
        ),
        (
            "limit 0: the terminator first",
            scan,
            _find(mine, mine + record[:5], limit=0),
        ),
        (
            "limit 0: one byte of garbage, then the terminator",
            scan,
            _find(mine, garbage[:1] + mine, limit=0),
        ),
        (
            f"the default limit: {MAX_GARBAGE} bytes of garbage (MAX_GARBAGE), then the terminator",
            scan,
            _find(mine, garbage[:MAX_GARBAGE] + mine + record[:4]),
        ),
        (
            f"the default limit: {MAX_GARBAGE + TERMINATOR_SIZE + 1} bytes without the "
            "terminator (MAX_GARBAGE + 17)",
            scan,
            _find(mine, garbage),
        ),
    ]


_GARBAGE = _filler(7, "sent garbage")


def _first_seal_cases() -> list[Case]:
    return [
        (
            "the first record with the garbage sent as the associated data of both its "
            "encryptions, the second with none",
            ["PRIV-56"],
            {**_seal([_PING, _PONG]), "first_ad": _GARBAGE.hex()},
        ),
        (
            "an empty first_ad: the records are those sealed without one",
            ["PRIV-56"],
            {**_seal([_PING, _PONG]), "first_ad": ""},
        ),
        (
            "padded, with 100 bytes of garbage",
            ["PRIV-31", "PRIV-56"],
            {**_seal([_PING, _frame(65)], pad=True), "first_ad": _filler(100, "more").hex()},
        ),
    ]


def _with_ads(frames: list[bytes], ads: list[tuple[bytes, bytes]]) -> bytes:
    """Records under _KEY from nonce 0, each encryption with the associated data given."""
    cipher = _key_at(0)
    out = b""
    for frame, (length_ad, body_ad) in zip(frames, ads, strict=True):
        out += cipher.encrypt_with_ad(length_ad, struct.pack("<I", len(frame)))
        out += cipher.encrypt_with_ad(body_ad, frame)
    return out


def _first_open_cases() -> list[Case]:
    g = _GARBAGE
    sealer = RecordSealer(_key_at(0), False, first_ad=g)
    first, second = sealer.seal(_PING), sealer.seal(_PONG)

    def opened(stream: bytes, first_ad: bytes = g) -> Json:
        return {**_open(stream), "first_ad": first_ad.hex()}

    return [
        (
            "the first record with the garbage, the second without",
            ["PRIV-56"],
            opened(first + second),
        ),
        (
            "the first record sealed with other garbage (a bit flipped)",
            ["PRIV-27", "PRIV-56"],
            opened(_with_ads([_PING], [(_flipped(g, 0), _flipped(g, 0))])),
        ),
        (
            "the first record sealed without associated data",
            ["PRIV-27", "PRIV-56"],
            opened(_sealed([_PING, _PONG])),
        ),
        (
            "the receiver expects no garbage, the first record carries it",
            ["PRIV-27", "PRIV-56"],
            opened(first + second, b""),
        ),
        (
            "the garbage as the associated data of every record: the second is forged",
            ["PRIV-27", "PRIV-56"],
            opened(_with_ads([_PING, _PONG], [(g, g), (g, g)])),
        ),
        (
            "the first record's length with the garbage, its body without",
            ["PRIV-27", "PRIV-56"],
            opened(_with_ads([_PING], [(g, b"")])),
        ),
        (
            "the first record sent twice: it verifies where it was first opened, with the garbage",
            ["PRIV-28", "PRIV-56"],
            opened(first + first),
        ),
        (
            "the second record first",
            ["PRIV-28", "PRIV-56"],
            opened(second),
        ),
    ]


def first_cases() -> Cases:
    initiator, responder = _first_noise_cases()
    return [
        (
            "elligator_key_pair",
            "elligator_key_pair",
            "Monocypher's Elligator 2 key pair from a 32-byte seed (PRIV-51): the representative "
            "sent in place of the public key, the X25519 secret and the dirty public key.",
            _key_pair_cases(),
        ),
        (
            "elligator_map",
            "elligator_map",
            "The public key a representative stands for (PRIV-51); its top two bits are ignored.",
            _map_cases(),
        ),
        (
            "noise_initiator",
            "noise_initiator",
            "The encrypted-first Noise initiator: its prologue, and its dirty public key as e "
            "(PRIV-51).",
            initiator,
        ),
        (
            "noise_responder",
            "noise_responder",
            "The encrypted-first Noise responder: message 1 as Noise reads it, the "
            "representative mapped back (PRIV-51).",
            responder,
        ),
        (
            "garbage_terminators",
            "garbage_terminators",
            "Both garbage terminators from the handshake hash (PRIV-54).",
            _terminator_cases(),
        ),
        (
            "find_terminator",
            "find_terminator",
            "The garbage before the peer's terminator and the bytes after it, or "
            "no_garbage_terminator once limit + 16 bytes have come without it (PRIV-55).",
            _find_cases(),
        ),
        (
            "seal",
            "seal",
            "The first record sealed with the garbage sent as associated data (PRIV-56).",
            _first_seal_cases(),
        ),
        (
            "open",
            "open",
            "The first record opened with the peer's garbage as associated data (PRIV-56), and "
            "each way it fails.",
            _first_open_cases(),
        ),
    ]


FIRST_DESCRIPTION = (
    "Decision vectors for spec/privacy.md section 3.5, the encrypted-first mode: Elligator 2 "
    "key pairs and representatives, the Noise handshake with hidden keys, the garbage "
    "terminators and the search for them, and the first record, which authenticates the "
    "garbage."
)

FIRST_NOTES: Json = {
    "replay": NOTES["replay"],
    "elligator_key_pair": (
        "input {seed (32 bytes)}; output {hidden (the representative), secret (the X25519 "
        "private key), public (the dirty public key, elligator_map(hidden))}: Monocypher's "
        "crypto_elligator_key_pair, version 4."
    ),
    "elligator_map": (
        "input {hidden (32 bytes)}; output {public}: Monocypher's crypto_elligator_map, which "
        "ignores the top two bits."
    ),
    "noise_initiator": NOTES["noise_initiator"],
    "noise_responder": NOTES["noise_responder"],
    "garbage_terminators": (
        'input {handshake_hash}; output {initiator, responder}: SHA-256("OBX garbage '
        'terminators" || handshake_hash), its first 16 bytes and its last 16.'
    ),
    "find_terminator": (
        "input {terminator (16 bytes), stream (the bytes after the peer's Noise message), limit "
        f"(optional; {MAX_GARBAGE} when absent)}}; output {{garbage (the bytes before the first "
        "terminator), rest (the bytes after it)}} when the terminator ends within limit + 16 "
        'bytes, or {"error": "no_garbage_terminator"} when the first limit + 16 bytes hold none. '
        "Every stream holds one or the other."
    ),
    "seal": NOTES["seal"],
    "open": NOTES["open"],
    "numbers": (
        "Keys, seeds, representatives, hashes, terminators and streams are lowercase hex; a "
        "nonce is an integer, even and below 1000 in an input; a limit is an integer."
    ),
}
