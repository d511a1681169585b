"""Garbage in the encrypted-first mode, spec/privacy.md section 3.5: the terminators, the scanner
at its limits and in any chunking, the bytes it holds and the time it takes, the start of a
whole encrypted-first connection, and the decision vectors."""

from __future__ import annotations

import hashlib
import random
import time

import pytest

from obscura_ref.transport import (
    FIRST_PROLOGUE,
    MAX_GARBAGE,
    Found,
    GarbageError,
    GarbageErrorCode,
    HiddenKeyPair,
    NoiseHandshake,
    RecordOpener,
    RecordSealer,
    TerminatorScanner,
    draw_garbage,
    garbage_terminators,
    hidden_key_pair,
    hide_message,
    unhide,
    unhide_message,
)

from .vector_cases import cases_of

TERMINATOR = bytes(range(0xA0, 0xB0))
REST = b"records follow"


def _garbage(size: int, label: str = "garbage") -> bytes:
    return hashlib.shake_256(label.encode()).digest(size)


def _scan(chunks: list[bytes], limit: int = MAX_GARBAGE) -> Found | GarbageError | None:
    """Push the chunks in order, pulling after each as a connection does; the first result,
    with the chunks after the one that completed the terminator added to its rest, as a
    connection hands them to the records' opener."""
    scanner = TerminatorScanner(TERMINATOR, limit)
    for index, chunk in enumerate(chunks):
        result = scanner.feed(chunk)
        if isinstance(result, Found):
            return Found(result.garbage, result.rest + b"".join(chunks[index + 1 :]))
        if result is not None:
            return result
    return None


# The terminators.


@pytest.mark.spec("PRIV-54")
def test_the_terminators_are_the_halves_of_the_hash_initiator_first() -> None:
    for h in (bytes(32), bytes(range(32)), hashlib.sha256(b"h").digest()):
        digest = hashlib.sha256(b"OBX garbage terminators" + h).digest()
        assert garbage_terminators(h) == (digest[:16], digest[16:])
    with pytest.raises(ValueError):
        garbage_terminators(bytes(31))


# The scanner.


@pytest.mark.spec("PRIV-55")
def test_the_terminator_at_offset_0_leaves_no_garbage() -> None:
    assert _scan([TERMINATOR + REST]) == Found(b"", REST)
    assert _scan([TERMINATOR]) == Found(b"", b"")
    assert _scan([TERMINATOR + REST], limit=0) == Found(b"", REST)


@pytest.mark.spec("PRIV-55")
def test_garbage_of_max_garbage_bytes_is_found_and_one_more_is_refused() -> None:
    garbage = _garbage(MAX_GARBAGE + 1)
    longest = garbage[:MAX_GARBAGE]
    assert _scan([longest + TERMINATOR + REST]) == Found(longest, REST)
    assert _scan([longest, TERMINATOR, REST]) == Found(longest, REST)
    scanner = TerminatorScanner(TERMINATOR)
    assert scanner.feed(longest) is None
    assert scanner.feed(TERMINATOR) == Found(longest, b"")
    error = _scan([garbage + TERMINATOR])
    assert isinstance(error, GarbageError)
    assert error.code is GarbageErrorCode.NO_GARBAGE_TERMINATOR
    assert error.code.value == "no_garbage_terminator" and error.requirement == "PRIV-55"


@pytest.mark.spec("PRIV-55")
@pytest.mark.parametrize("limit", [0, 1, 15, 16, 17, 40])
def test_a_garbage_of_limit_bytes_is_found_and_one_more_is_refused(limit: int) -> None:
    garbage = _garbage(limit + 1)
    assert _scan([garbage[:limit] + TERMINATOR + REST], limit) == Found(garbage[:limit], REST)
    assert isinstance(_scan([garbage + TERMINATOR + REST], limit), GarbageError)


@pytest.mark.spec("PRIV-55")
def test_the_terminator_split_across_two_pushes_at_every_position() -> None:
    garbage = _garbage(40)
    # The terminator's first 15 bytes in the garbage: a scanner must not match across them.
    stream = garbage[:20] + TERMINATOR[:15] + garbage[20:] + TERMINATOR + REST
    expected = Found(garbage[:20] + TERMINATOR[:15] + garbage[20:], REST)
    for cut in range(len(stream) + 1):
        assert _scan([stream[:cut], stream[cut:]]) == expected, cut
    for first in range(0, 70, 3):
        for second in range(first, len(stream) + 1, 5):
            chunks = [stream[:first], stream[first:second], stream[second:]]
            assert _scan(chunks) == expected, (first, second)
    assert _scan([bytes([b]) for b in stream]) == expected


@pytest.mark.spec("PRIV-55")
@pytest.mark.parametrize("limit", [0, 7, MAX_GARBAGE])
def test_without_the_terminator_the_error_comes_at_exactly_limit_plus_16_bytes(
    limit: int,
) -> None:
    # Once limit + 16 bytes hold no terminator, none can end within them: the error is due.
    stream = _garbage(limit + 16)
    scanner = TerminatorScanner(TERMINATOR, limit)
    for index in range(limit + 15):
        assert scanner.feed(stream[index : index + 1]) is None, index
        assert scanner.held == index + 1
    error = scanner.feed(stream[-1:])
    assert isinstance(error, GarbageError)
    assert scanner.held == 0
    assert scanner.pull() is error  # every later pull
    scanner.push(b"more")  # ignored: nothing more is looked at
    assert scanner.held == 0 and scanner.pull() is error
    # In one push, the same.
    assert _scan([stream[:-1]], limit) is None
    assert isinstance(_scan([stream], limit), GarbageError)


@pytest.mark.spec("PRIV-55")
def test_the_scanner_holds_at_most_limit_plus_16_bytes() -> None:
    rng = random.Random(5)
    for limit in (0, 100, MAX_GARBAGE):
        scanner = TerminatorScanner(TERMINATOR, limit)
        most = 0
        result = None
        while result is None:
            result = scanner.feed(rng.randbytes(rng.randint(1, 300)))
            most = max(most, scanner.held)
        assert isinstance(result, GarbageError)
        assert most <= limit + 16


@pytest.mark.spec("PRIV-55")
def test_scanning_is_linear_in_the_bytes_pushed() -> None:
    # A scanner that searched all it holds on every push would compare about 2 * 10^10 bytes
    # here; one that searches the new bytes and 15 before them, 4 * 10^6.
    limit = 4_000_000
    scanner = TerminatorScanner(TERMINATOR, limit)
    chunk = bytes(16)
    started = time.perf_counter()
    for _ in range(limit // 16):
        assert scanner.feed(chunk) is None
    scanner.feed(TERMINATOR)
    assert time.perf_counter() - started < 5


def test_after_the_terminator_the_scanner_hands_the_rest_over_once() -> None:
    scanner = TerminatorScanner(TERMINATOR)
    scanner.push(b"ab" + TERMINATOR + b"c")
    scanner.push(b"de")  # pushed before the pull: part of the rest
    assert scanner.held == 3
    assert scanner.pull() == Found(b"ab", b"cde")
    with pytest.raises(RuntimeError):
        scanner.push(b"f")  # records now go to the opener
    with pytest.raises(RuntimeError):
        scanner.pull()
    with pytest.raises(ValueError):
        TerminatorScanner(TERMINATOR[:15])
    with pytest.raises(ValueError):
        TerminatorScanner(TERMINATOR, -1)


def test_garbage_lengths_are_uniform_from_0_to_max_garbage() -> None:
    calls: list[int] = []
    values = iter(range(65536))  # every u16 once as a length's draw

    def draw(size: int) -> bytes:
        calls.append(size)
        return next(values).to_bytes(2, "little") if len(calls) % 2 else bytes(size)

    lengths = [len(draw_garbage(draw)) for _ in range(65536)]
    assert calls[0::2] == [2] * 65536 and calls[1::2] == lengths
    # 4096 lengths, each drawn 16 times: the remainder of a u16 by 4096 is exactly uniform.
    assert sorted(set(lengths)) == list(range(MAX_GARBAGE + 1))
    assert all(lengths.count(n) == 16 for n in (0, 1, 2048, MAX_GARBAGE))
    assert draw_garbage(lambda size: b"\xff" * size) == b"\xff" * MAX_GARBAGE


# A whole start of an encrypted-first connection, as the bytes travel.


def _side(initiator: bool, pair: HiddenKeyPair) -> NoiseHandshake:
    return NoiseHandshake(initiator, FIRST_PROLOGUE, pair.secret, ephemeral_public=pair.public)


@pytest.mark.spec("PRIV-51", "PRIV-54", "PRIV-55", "PRIV-56")
@pytest.mark.parametrize("seed", range(6))
def test_an_encrypted_first_connection_starts_in_any_chunking(seed: int) -> None:
    rng = random.Random(seed)
    pair_i = hidden_key_pair(rng.randbytes(32))
    pair_r = hidden_key_pair(rng.randbytes(32))
    garbage_i = draw_garbage(rng.randbytes)
    garbage_r = draw_garbage(rng.randbytes)
    initiator, responder = _side(True, pair_i), _side(False, pair_r)
    # The initiator's first bytes: its representative and its garbage; nothing in plaintext.
    to_responder = hide_message(initiator.write_message(), pair_i) + garbage_i
    responder.read_message(unhide(to_responder[:32]))
    message2 = responder.write_message()
    t_i, t_r = garbage_terminators(responder.handshake_hash)
    r_send, r_receive = responder.split()
    to_initiator = (
        hide_message(message2, pair_r)
        + garbage_r
        + t_r
        + RecordSealer(r_send, False, first_ad=garbage_r).seal(b"responder's first")
    )
    initiator.read_message(unhide_message(to_initiator[:48]))
    assert garbage_terminators(initiator.handshake_hash) == (t_i, t_r)
    i_send, i_receive = initiator.split()
    sealer = RecordSealer(i_send, False, first_ad=garbage_i)
    to_responder += t_i + sealer.seal(b"initiator's first") + sealer.seal(b"second")
    # Each side scans the bytes after the peer's Noise message for the peer's terminator.
    for stream, terminator, cipher, expected_garbage, records in (
        (to_responder[32:], t_i, r_receive, garbage_i, [b"initiator's first", b"second"]),
        (to_initiator[48:], t_r, i_receive, garbage_r, [b"responder's first"]),
    ):
        scanner = TerminatorScanner(terminator)
        found = None
        position = 0
        while found is None:
            step = rng.randint(1, 700)
            found = scanner.feed(stream[position : position + step])
            position += step
        assert isinstance(found, Found)
        assert found.garbage == expected_garbage
        opener = RecordOpener(cipher, first_ad=found.garbage)
        assert opener.feed(found.rest + stream[position:]) == records


# The decision vectors, checked by the spec's words written out here, without the reference.


@pytest.mark.spec("PRIV-54")
def test_the_terminator_vectors_are_the_spec_s() -> None:
    cases = cases_of("decision-first.json", "garbage_terminators")
    assert cases
    for case in cases:
        h = bytes.fromhex(case["input"]["handshake_hash"])
        t = hashlib.sha256(b"OBX garbage terminators" + h).hexdigest()
        assert case["expected"] == {"initiator": t[:32], "responder": t[32:]}


@pytest.mark.spec("PRIV-55")
def test_the_find_terminator_vectors_are_the_spec_s() -> None:
    cases = cases_of("decision-first.json", "find_terminator")
    assert {"error" in case["expected"] for case in cases} == {True, False}
    assert any("limit" not in case["input"] for case in cases if "error" in case["expected"])
    for case in cases:
        given = case["input"]
        terminator, stream = bytes.fromhex(given["terminator"]), bytes.fromhex(given["stream"])
        limit = given.get("limit", 4095)
        index = stream.find(terminator)
        if 0 <= index <= limit:
            expected = {"garbage": stream[:index].hex(), "rest": stream[index + 16 :].hex()}
        else:
            assert len(stream) >= limit + 16
            expected = {"error": "no_garbage_terminator"}
        assert case["expected"] == expected, case["comment"]
