"""Sealed records, spec/privacy.md section 3.3: the layout, the rekey, padding to buckets, every
error of the opener and the bytes it holds; and the first record's associated data of the
encrypted-first mode (section 3.5)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given
from hypothesis import strategies as st

from obscura_ref.transport import (
    MAX_RECORD,
    CipherState,
    RecordError,
    RecordErrorCode,
    RecordOpener,
    RecordSealer,
    bucket_size,
    split_record,
)
from obscura_ref.wire import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    DecodeError,
    ErrorCode,
    Frame,
    Message,
    MessageType,
    Opaque,
    Ping,
    encode_frame,
)

from .strategies import padded_messages
from .vector_cases import cases_of

KEY = bytes(range(200, 232))
PING = encode_frame(Ping(0x0102030405060708))  # 24 bytes


def _cipher(key: bytes = KEY, nonce: int = 0) -> CipherState:
    cipher = CipherState()
    cipher.initialize_key(key)
    cipher.set_nonce(nonce)
    return cipher


def _nonce(n: int) -> bytes:
    return bytes(4) + n.to_bytes(8, "little")


def _rekeyed(key: bytes) -> bytes:
    """REKEY(k) by Noise section 4.2, written out here with the cipher itself."""
    return ChaCha20Poly1305(key).encrypt(_nonce(2**64 - 1), bytes(32), b"")[:32]


def _frame(size: int) -> bytes:
    """A valid frame of exactly ``size`` bytes (an opaque message)."""
    return encode_frame(Opaque(MessageType.Inv, bytes(size - HEADER_SIZE)))


def _records(count: int, nonce: int = 0) -> list[bytes]:
    sealer = RecordSealer(_cipher(nonce=nonce), pad=False)
    return [sealer.seal(_frame(HEADER_SIZE + number % 5)) for number in range(count)]


def _open_all(stream: bytes, chunk: int | None = None, nonce: int = 0) -> list[object]:
    opener = RecordOpener(_cipher(nonce=nonce))
    size = chunk or max(1, len(stream))
    out: list[object] = []
    for start in range(0, len(stream), size):
        out += opener.feed(stream[start : start + size])
    if not out or not isinstance(out[-1], RecordError):
        ended = opener.eof()
        if ended is not None:
            out.append(ended)
    return out


def _error(items: list[object]) -> RecordError:
    last = items[-1]
    assert isinstance(last, RecordError), items
    return last


# The layout (PRIV-24) and the padding (PRIV-30, PRIV-31).


@pytest.mark.spec("PRIV-24")
def test_a_record_is_the_sealed_length_then_the_sealed_plaintext() -> None:
    record = RecordSealer(_cipher(nonce=6), pad=False).seal(PING)
    aead = ChaCha20Poly1305(KEY)
    assert record[:20] == aead.encrypt(_nonce(6), struct.pack("<I", len(PING)), b"")
    assert record[20:] == aead.encrypt(_nonce(7), PING, b"")
    assert len(record) == 20 + len(PING) + 16


@pytest.mark.spec("PRIV-24", "PRIV-30", "PRIV-31")
def test_a_padded_record_carries_the_frame_then_zeros_to_its_bucket() -> None:
    cipher = _cipher()
    record = RecordSealer(cipher, pad=True).seal(PING)
    aead = ChaCha20Poly1305(KEY)
    assert aead.decrypt(_nonce(0), record[:20], b"") == struct.pack("<I", 64)
    assert aead.decrypt(_nonce(1), record[20:], b"") == PING + bytes(40)
    assert cipher.nonce == 2


@pytest.mark.spec("PRIV-24", "PRIV-30", "PRIV-31")
@pytest.mark.parametrize("pad", [False, True])
def test_records_round_trip_whole_and_byte_by_byte(pad: bool) -> None:
    frames = [PING, _frame(63), _frame(64), _frame(65), _frame(1000), _frame(70000)]
    sealer = RecordSealer(_cipher(), pad=pad)
    stream = b"".join(sealer.seal(frame) for frame in frames)
    whole = _open_all(stream)
    assert _open_all(stream, chunk=1) == whole
    assert _open_all(stream, chunk=7) == whole
    assert len(whole) == len(frames)
    for plaintext, frame in zip(whole, frames, strict=True):
        assert isinstance(plaintext, bytes)
        assert plaintext == (frame + bytes(bucket_size(len(frame)) - len(frame)) if pad else frame)
        split = split_record(plaintext)
        assert isinstance(split, tuple)
        assert encode_frame(split[0].message, split[0].padding) == frame
        assert split[1] == len(plaintext) - len(frame)


@pytest.mark.spec("PRIV-31")
@pytest.mark.parametrize(
    ("size", "bucket"),
    [
        (0, 64),
        (1, 64),
        (63, 64),
        (64, 64),
        (65, 128),
        (128, 128),
        (129, 256),
        (32768, 32768),
        (32769, 65536),
        (65535, 65536),
        (65536, 65536),
        (65537, 131072),
        (131072, 131072),
        (131073, 196608),
        (HEADER_SIZE + MAX_PAYLOAD, 161 * 65536),
    ],
)
def test_bucket_size_at_its_boundaries(size: int, bucket: int) -> None:
    assert bucket_size(size) == bucket


def test_max_record_is_the_largest_frame_s_bucket() -> None:
    assert MAX_RECORD == bucket_size(HEADER_SIZE + MAX_PAYLOAD) == 10_551_296
    with pytest.raises(ValueError):
        bucket_size(-1)
    with pytest.raises(ValueError):
        RecordSealer(_cipher(), pad=False).seal(bytes(MAX_RECORD + 1))


# The rekey (PRIV-25).


@pytest.mark.spec("PRIV-25")
def test_both_directions_rekey_when_the_nonce_reaches_1000() -> None:
    send, receive = _cipher(), _cipher()
    sealer, opener = RecordSealer(send, pad=False), RecordOpener(receive)
    new_key = _rekeyed(KEY)
    for number in range(600):
        record = sealer.seal(PING)
        assert opener.feed(record) == [PING]
        if number == 499:  # the 500th record took nonces 998 and 999
            assert send.key == receive.key == new_key
            assert send.nonce == receive.nonce == 0
        elif number == 500:  # the 501st is sealed under the new key, from nonce 0
            aead = ChaCha20Poly1305(new_key)
            assert record[:20] == aead.encrypt(_nonce(0), struct.pack("<I", len(PING)), b"")
            assert record[20:] == aead.encrypt(_nonce(1), PING, b"")
        elif number < 499:
            assert send.key == receive.key == KEY
    assert send.nonce == receive.nonce == 200
    assert send.key == receive.key == new_key


@pytest.mark.spec("PRIV-25")
def test_the_rekey_happens_as_soon_as_the_nonce_reaches_1000_even_mid_record() -> None:
    # Not a nonce a record starts at in a real stream: it shows the rule is "reaches 1000".
    send, receive = _cipher(nonce=999), _cipher(nonce=999)
    record = RecordSealer(send, pad=False).seal(PING)
    aead, new = ChaCha20Poly1305(KEY), ChaCha20Poly1305(_rekeyed(KEY))
    assert record[:20] == aead.encrypt(_nonce(999), struct.pack("<I", len(PING)), b"")
    assert record[20:] == new.encrypt(_nonce(0), PING, b"")
    assert RecordOpener(receive).feed(record) == [PING]
    assert send.nonce == receive.nonce == 1


@pytest.mark.spec("PRIV-25")
def test_a_record_sealed_without_the_rekey_is_forged() -> None:
    old = _cipher(nonce=998)
    record = old.encrypt_with_ad(b"", struct.pack("<I", len(PING)))
    record += old.encrypt_with_ad(b"", PING)
    record += old.encrypt_with_ad(b"", struct.pack("<I", len(PING)))  # nonce 1000: no rekey
    record += old.encrypt_with_ad(b"", PING)
    opened = _open_all(record, nonce=998)
    assert opened[0] == PING
    assert _error(opened).code is RecordErrorCode.RECORD_FORGED


# The errors (PRIV-26 to PRIV-30).


def _sealed_length(length: int, nonce: int = 0) -> bytes:
    return _cipher(nonce=nonce).encrypt_with_ad(b"", struct.pack("<I", length))


@pytest.mark.spec("PRIV-26")
def test_a_length_above_max_record_stops_before_the_body() -> None:
    opener = RecordOpener(_cipher())
    (error,) = opener.feed(_sealed_length(MAX_RECORD + 1))  # no byte of a body sent
    assert isinstance(error, RecordError)
    assert error.code is RecordErrorCode.RECORD_TOO_LARGE and error.requirement == "PRIV-26"
    assert error.code.value == "record_too_large"
    at_limit = RecordOpener(_cipher())
    assert at_limit.feed(_sealed_length(MAX_RECORD)) == []  # waits for its body
    assert at_limit.eof() is not None


@pytest.mark.spec("PRIV-26")
def test_a_lower_limit_given_to_the_opener_applies() -> None:
    opener = RecordOpener(_cipher(), max_record=100)
    assert opener.feed(RecordSealer(_cipher(), pad=False).seal(_frame(100))) == [_frame(100)]
    (error,) = opener.feed(RecordSealer(_cipher(nonce=2), pad=False).seal(_frame(101)))
    assert isinstance(error, RecordError) and error.code is RecordErrorCode.RECORD_TOO_LARGE


@pytest.mark.spec("PRIV-27")
@pytest.mark.parametrize("position", [0, 3, 4, 19, 20, 35, 36, 51])
def test_any_flipped_bit_of_the_length_or_the_body_is_forged(position: int) -> None:
    stream = bytearray(b"".join(_records(2)))  # the first record: 20 + 16 + 16 bytes
    stream[position] ^= 0x80
    opened = _open_all(bytes(stream))
    error = _error(opened)
    assert error.code is RecordErrorCode.RECORD_FORGED and error.requirement == "PRIV-27"
    assert opened[:-1] == []  # the first record is the broken one: nothing before it
    where = "length" if position < 20 else "body"
    assert where in error.detail


@pytest.mark.spec("PRIV-27")
def test_a_forged_first_record_looks_at_no_negative_nonce() -> None:
    opened = _open_all(bytes(60))
    assert _error(opened).code is RecordErrorCode.RECORD_FORGED


@pytest.mark.spec("PRIV-28")
@pytest.mark.parametrize("back", range(1, 9))
def test_a_record_sent_again_up_to_8_back_is_replayed(back: int) -> None:
    records = _records(9)
    opened = _open_all(b"".join(records) + records[9 - back])
    assert opened[:9] == [_frame(HEADER_SIZE + n % 5) for n in range(9)]
    error = _error(opened)
    assert error.code is RecordErrorCode.RECORD_REPLAYED and error.requirement == "PRIV-28"
    assert error.code.value == "record_replayed"


@pytest.mark.spec("PRIV-28")
def test_a_record_sent_again_9_back_is_forged() -> None:
    records = _records(9)
    assert _error(_open_all(b"".join(records) + records[0])).code is RecordErrorCode.RECORD_FORGED


@pytest.mark.spec("PRIV-28")
@pytest.mark.parametrize("ahead", range(1, 9))
def test_a_record_up_to_8_ahead_is_reordered(ahead: int) -> None:
    records = _records(10)
    error = _error(_open_all(records[0] + records[1 + ahead]))
    assert error.code is RecordErrorCode.RECORD_REORDERED and error.requirement == "PRIV-28"
    assert error.code.value == "record_reordered"


@pytest.mark.spec("PRIV-28")
def test_a_record_9_ahead_is_forged() -> None:
    records = _records(10)
    assert _error(_open_all(records[9])).code is RecordErrorCode.RECORD_FORGED


@pytest.mark.spec("PRIV-28")
def test_reordering_looks_below_rekey_after_only() -> None:
    # Expected nonce 994: 996 and 998 are within the key, 1000 never is (it is rekeyed before).
    assert _error(_open_all(_sealed_length(4, 998), nonce=994)).code is (
        RecordErrorCode.RECORD_REORDERED
    )
    assert _error(_open_all(_sealed_length(4, 1000), nonce=994)).code is (
        RecordErrorCode.RECORD_FORGED
    )


@pytest.mark.spec("PRIV-28")
def test_the_diagnosis_leaves_the_nonce_where_it_failed() -> None:
    records = _records(3)
    cipher = _cipher()
    opener = RecordOpener(cipher)
    assert len(opener.feed(records[0] + records[0])) == 2
    assert cipher.nonce == 2


@pytest.mark.spec("PRIV-29")
@pytest.mark.parametrize("cut", [1, 19, 20, 21, 52])
def test_a_stream_that_ends_inside_a_record_is_truncated(cut: int) -> None:
    first, second = _records(2)
    assert len(second) == 20 + 17 + 16
    stream = first + second[:cut]
    opened = _open_all(stream)
    assert opened[0] == _frame(HEADER_SIZE)
    error = _error(opened)
    assert error.code is RecordErrorCode.RECORD_TRUNCATED and error.requirement == "PRIV-29"
    assert ("length" if cut < 20 else "body") in error.detail


@pytest.mark.spec("PRIV-29")
def test_a_stream_that_ends_between_records_is_not_truncated() -> None:
    opener = RecordOpener(_cipher())
    assert opener.eof() is None
    opener = RecordOpener(_cipher())
    assert len(opener.feed(b"".join(_records(3)))) == 3
    assert opener.eof() is None


def test_after_an_error_the_opener_is_dead() -> None:
    records = _records(3)
    opener = RecordOpener(_cipher())
    opened = opener.feed(records[0] + records[0] + records[1])
    error = opened[-1]
    assert isinstance(error, RecordError) and opener.error is error
    opener.push(records[1])
    assert opener.pull() is error and opener.pull() is error
    assert opener.buffered == opener.pending == 0
    assert opener.eof() is None


@pytest.mark.spec("PRIV-30")
def test_split_record_gives_the_frame_and_the_padding_whatever_its_values() -> None:
    assert split_record(PING) == (Frame(Ping(0x0102030405060708)), 0)
    assert split_record(PING + b"\xff" * 40) == (Frame(Ping(0x0102030405060708)), 40)
    # A second whole frame after the first is padding too: a record carries one frame.
    assert split_record(PING + PING) == (Frame(Ping(0x0102030405060708)), len(PING))


@pytest.mark.spec("PRIV-30")
@pytest.mark.parametrize("size", [0, 1, 15, 16, 23])
def test_a_plaintext_that_ends_inside_its_frame_is_not_one_frame(size: int) -> None:
    result = split_record(PING[:size])
    assert isinstance(result, RecordError)
    assert result.code is RecordErrorCode.RECORD_NOT_ONE_FRAME and result.requirement == "PRIV-30"


@pytest.mark.spec("PRIV-30")
def test_an_invalid_frame_in_a_record_gives_the_wire_s_error() -> None:
    broken = bytearray(PING)
    broken[-1] ^= 1  # the checksum no longer matches
    result = split_record(bytes(broken) + bytes(40))
    assert isinstance(result, DecodeError) and result.code is ErrorCode.BAD_CHECKSUM
    too_big = split_record(_frame(117), max_payload=100)
    assert isinstance(too_big, DecodeError) and too_big.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert split_record(_frame(116), max_payload=100) == (
        Frame(Opaque(MessageType.Inv, bytes(100))),
        0,
    )


# Memory: one record at most.


def test_a_ten_mebibyte_record_in_pieces_holds_one_record_at_most() -> None:
    frame = _frame(HEADER_SIZE + MAX_PAYLOAD)
    record = RecordSealer(_cipher(), pad=True).seal(frame)
    assert len(record) == 20 + MAX_RECORD + 16
    opener = RecordOpener(_cipher())
    piece = 1 << 16
    opened: list[object] = []
    for start in range(0, len(record), piece):
        opened += opener.feed(record[start : start + piece])
        assert opener.pending == 0  # every whole piece taken at once
        assert opener.buffered <= MAX_RECORD + 16
        assert opener.buffered == (0 if opened else start + piece - 20)
    assert opener.eof() is None
    (plaintext,) = opened
    assert isinstance(plaintext, bytes) and plaintext[: len(frame)] == frame
    assert opener.buffered == 0


# Any frames, any chunks: the same frames (PRIV-24, PRIV-30).


@given(
    st.lists(padded_messages(), max_size=8),
    st.booleans(),
    st.lists(st.integers(1, 200), min_size=1, max_size=20),
)
def test_any_frames_sealed_then_opened_in_any_chunks_are_the_same(
    frames: list[tuple[Message, bytes]], pad: bool, cuts: list[int]
) -> None:
    encoded = [encode_frame(message, padding) for message, padding in frames]
    sealer = RecordSealer(_cipher(nonce=990), pad=pad)  # the rekey is near
    stream = b"".join(sealer.seal(frame) for frame in encoded)
    opener = RecordOpener(_cipher(nonce=990))
    opened: list[object] = []
    start, index = 0, 0
    while start < len(stream):
        size = cuts[index % len(cuts)]
        opened += opener.feed(stream[start : start + size])
        start, index = start + size, index + 1
    assert opener.eof() is None
    out = []
    for plaintext in opened:
        assert isinstance(plaintext, bytes)
        split = split_record(plaintext)
        assert isinstance(split, tuple)
        out.append(encode_frame(split[0].message, split[0].padding))
    assert out == encoded


# The first record's associated data: the garbage of the encrypted-first mode (PRIV-56).

GARBAGE = b"garbage sent before the terminator"


def _last_error(opened: Sequence[object]) -> RecordError:
    last = opened[-1]
    assert isinstance(last, RecordError), opened
    return last


def _spec_record(nonce: int, ad: bytes, plaintext: bytes = PING, key: bytes = KEY) -> bytes:
    """A record by section 3.3 written out, each encryption with the associated data ``ad``."""
    aead = ChaCha20Poly1305(key)
    length = aead.encrypt(_nonce(nonce), struct.pack("<I", len(plaintext)), ad)
    return length + aead.encrypt(_nonce(nonce + 1), plaintext, ad)


@pytest.mark.spec("PRIV-56")
def test_the_first_record_alone_carries_the_garbage_as_associated_data() -> None:
    sealer = RecordSealer(_cipher(), pad=False, first_ad=GARBAGE)
    records = [sealer.seal(PING) for _ in range(3)]
    assert records == [_spec_record(0, GARBAGE), _spec_record(2, b""), _spec_record(4, b"")]
    opener = RecordOpener(_cipher(), first_ad=GARBAGE)
    assert opener.feed(b"".join(records)) == [PING] * 3
    byte_by_byte = RecordOpener(_cipher(), first_ad=GARBAGE)
    stream = b"".join(records)
    assert [x for i in range(len(stream)) for x in byte_by_byte.feed(stream[i : i + 1])] == [
        PING
    ] * 3


@pytest.mark.spec("PRIV-56")
def test_an_empty_first_ad_is_no_associated_data() -> None:
    plain = RecordSealer(_cipher(), pad=False)
    empty = RecordSealer(_cipher(), pad=False, first_ad=b"")
    assert [plain.seal(PING) for _ in range(2)] == [empty.seal(PING) for _ in range(2)]
    assert RecordOpener(_cipher(), first_ad=b"").feed(_spec_record(0, b"")) == [PING]


@pytest.mark.spec("PRIV-27", "PRIV-56")
@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (GARBAGE, b""),
        (b"", GARBAGE),
        (GARBAGE[:-1], GARBAGE),
        (bytes([GARBAGE[0] ^ 1]) + GARBAGE[1:], GARBAGE),
    ],
)
def test_a_first_record_with_other_garbage_is_forged(sent: bytes, expected: bytes) -> None:
    stream = RecordSealer(_cipher(), pad=False, first_ad=sent).seal(PING)
    opened = RecordOpener(_cipher(), first_ad=expected).feed(stream)
    assert len(opened) == 1 and _last_error(opened).code is RecordErrorCode.RECORD_FORGED


@pytest.mark.spec("PRIV-27", "PRIV-56")
def test_the_garbage_must_authenticate_the_body_too() -> None:
    aead = ChaCha20Poly1305(KEY)
    record = aead.encrypt(_nonce(0), struct.pack("<I", len(PING)), GARBAGE)
    record += aead.encrypt(_nonce(1), PING, b"")  # the body without the garbage
    error = _last_error(RecordOpener(_cipher(), first_ad=GARBAGE).feed(record))
    assert error.code is RecordErrorCode.RECORD_FORGED and "body" in error.detail


@pytest.mark.spec("PRIV-27", "PRIV-56")
def test_garbage_on_a_later_record_is_forged() -> None:
    stream = _spec_record(0, GARBAGE) + _spec_record(2, GARBAGE)
    opened = RecordOpener(_cipher(), first_ad=GARBAGE).feed(stream)
    assert opened[0] == PING and _last_error(opened).code is RecordErrorCode.RECORD_FORGED


@pytest.mark.spec("PRIV-28", "PRIV-56")
def test_the_first_record_sent_again_is_replayed_and_the_second_sent_first_reordered() -> None:
    sealer = RecordSealer(_cipher(), pad=False, first_ad=GARBAGE)
    first, second = sealer.seal(PING), sealer.seal(PING)
    opened = RecordOpener(_cipher(), first_ad=GARBAGE).feed(first + first)
    assert opened[0] == PING and _last_error(opened).code is RecordErrorCode.RECORD_REPLAYED
    opened = RecordOpener(_cipher(), first_ad=GARBAGE).feed(second)
    assert _last_error(opened).code is RecordErrorCode.RECORD_REORDERED
    # From nonce 40, the first record's place is nonce 40, not 0.
    sealer = RecordSealer(_cipher(nonce=40), pad=False, first_ad=GARBAGE)
    first = sealer.seal(PING)
    opened = RecordOpener(_cipher(nonce=40), first_ad=GARBAGE).feed(first + first)
    assert _last_error(opened).code is RecordErrorCode.RECORD_REPLAYED


# The conformance vectors, checked by the spec's words written out here, without the reference.


def _spec_bucket(n: int) -> int:
    power = 64
    while power < n:
        power *= 2
    return power if power <= 65536 else (n + 65535) // 65536 * 65536


def _spec_open(key: bytes, nonce: int, stream: bytes) -> tuple[list[bytes], bytes, int]:
    """Every record of a valid stream, by section 3.3 and PRIV-25, and the key and nonce after."""
    plaintexts = []

    def decrypt(data: bytes) -> bytes:
        nonlocal key, nonce
        plain = ChaCha20Poly1305(key).decrypt(_nonce(nonce), data, b"")
        nonce += 1
        if nonce == 1000:
            key, nonce = _rekeyed(key), 0
        return plain

    while stream:
        length = int.from_bytes(decrypt(stream[:20]), "little")
        plaintexts.append(decrypt(stream[20 : 20 + length + 16]))
        stream = stream[20 + length + 16 :]
    return plaintexts, key, nonce


@pytest.mark.spec("PRIV-24", "PRIV-25", "PRIV-31")
def test_the_seal_vectors_are_the_spec_s() -> None:
    cases = cases_of("decision-transport.json", "seal")
    assert any(case["expected"]["key"] != case["input"]["key"] for case in cases)  # a rekey
    for case in cases:
        given, expected = case["input"], case["expected"]
        plaintexts, key, nonce = _spec_open(
            bytes.fromhex(given["key"]), given["nonce"], bytes.fromhex(expected["stream"])
        )
        frames = [bytes.fromhex(frame) for frame in given["frames"]]
        if given["pad"]:
            frames = [frame + bytes(_spec_bucket(len(frame)) - len(frame)) for frame in frames]
        assert plaintexts == frames, case["comment"]
        assert (key.hex(), nonce) == (expected["key"], expected["nonce"]), case["comment"]


@pytest.mark.spec("PRIV-24", "PRIV-25", "PRIV-30")
def test_the_valid_open_vectors_are_the_spec_s() -> None:
    cases = [
        case
        for case in cases_of("decision-transport.json", "open")
        if case["expected"]["result"] == "valid"
    ]
    assert len(cases) >= 5
    for case in cases:
        given, expected = case["input"], case["expected"]
        plaintexts, key, nonce = _spec_open(
            bytes.fromhex(given["key"]), given["nonce"], bytes.fromhex(given["stream"])
        )
        assert len(plaintexts) == len(expected["records"]), case["comment"]
        for plaintext, record in zip(plaintexts, expected["records"], strict=True):
            code, length = struct.unpack("<II", plaintext[4:12])
            assert code == record["frame"]["code"]
            assert record["padding_length"] == len(plaintext) - HEADER_SIZE - length
        assert (key.hex(), nonce) == (expected["key"], expected["nonce"]), case["comment"]


def test_the_bucket_of_the_spec_s_words_is_bucket_size() -> None:
    for n in [*range(0, 70_000, 97), 65536, 65537, HEADER_SIZE + MAX_PAYLOAD]:
        assert bucket_size(n) == _spec_bucket(n)


def _spec_open_first(key: bytes, stream: bytes, first_ad: bytes) -> list[bytes]:
    """The records of a valid stream from nonce 0, the first with ``first_ad`` (PRIV-56)."""
    aead = ChaCha20Poly1305(key)
    plaintexts = []
    nonce = 0
    while stream:
        ad = first_ad if nonce == 0 else b""
        length = int.from_bytes(aead.decrypt(_nonce(nonce), stream[:20], ad), "little")
        plaintexts.append(aead.decrypt(_nonce(nonce + 1), stream[20 : 20 + length + 16], ad))
        stream = stream[20 + length + 16 :]
        nonce += 2
    return plaintexts


@pytest.mark.spec("PRIV-56")
def test_the_first_ad_vectors_are_the_spec_s() -> None:
    seals = cases_of("decision-first.json", "seal")
    assert any(case["input"].get("first_ad") for case in seals)
    for case in seals:
        given = case["input"]
        assert given["nonce"] == 0
        plaintexts = _spec_open_first(
            bytes.fromhex(given["key"]),
            bytes.fromhex(case["expected"]["stream"]),
            bytes.fromhex(given.get("first_ad", "")),
        )
        frames = [bytes.fromhex(frame) for frame in given["frames"]]
        if given["pad"]:
            frames = [frame + bytes(_spec_bucket(len(frame)) - len(frame)) for frame in frames]
        assert plaintexts == frames, case["comment"]
    valid = [
        case
        for case in cases_of("decision-first.json", "open")
        if case["expected"]["result"] == "valid"
    ]
    assert valid
    for case in valid:
        given = case["input"]
        plaintexts = _spec_open_first(
            bytes.fromhex(given["key"]),
            bytes.fromhex(given["stream"]),
            bytes.fromhex(given.get("first_ad", "")),
        )
        assert len(plaintexts) == len(case["expected"]["records"]), case["comment"]
