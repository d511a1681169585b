"""Property tests of the codec: round trips, chunking, and arbitrary input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obscura_ref.wire import (
    ERROR_REQUIREMENTS,
    HEADER_SIZE,
    MAGIC,
    MAX_PAYLOAD,
    DecodeError,
    Frame,
    FrameDecoder,
    Message,
    MessageType,
    checksum,
    decode_frames,
    encode_frame,
    frame_bytes,
)

from .strategies import messages, padded_messages


@pytest.mark.spec("WIRE-20", "WIRE-30")
@given(padded_messages())
def test_every_message_round_trips_with_its_padding(case: tuple[object, bytes]) -> None:
    message, padding = case
    frame = Frame(message, padding)  # type: ignore[arg-type]
    frames, error = decode_frames(encode_frame(frame.message, frame.padding))
    assert error is None
    assert frames == [frame]


@pytest.mark.spec("WIRE-2", "WIRE-3", "WIRE-31")
@given(padded_messages())
def test_a_frame_built_from_the_encoded_fields_is_the_message_s_frame(
    case: tuple[Message, bytes],
) -> None:
    message, padding = case
    built = frame_bytes(message.message_type, message.encode(), padding)
    assert built == encode_frame(message, padding)


@st.composite
def streams_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    items = draw(st.lists(padded_messages(), max_size=6))
    stream = b"".join(encode_frame(message, padding) for message, padding in items)
    # Optionally spoil the stream somewhere, so that errors are split as well as frames.
    if stream and draw(st.booleans()):
        index = draw(st.integers(0, len(stream) - 1))
        stream = (
            stream[:index]
            + bytes([stream[index] ^ draw(st.integers(1, 255))])
            + (stream[index + 1 :])
        )
    if draw(st.booleans()):
        stream = stream[: draw(st.integers(0, len(stream)))]
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    return stream, cuts


@pytest.mark.spec("WIRE-12", "WIRE-14")
@given(streams_and_cuts())
def test_chunking_never_changes_the_result(case: tuple[bytes, list[int]]) -> None:
    stream, cuts = case
    whole = FrameDecoder()
    expected = whole.feed(stream)
    expected_end = whole.eof()
    decoder = FrameDecoder()
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        if decoder.error is not None:
            break
        got += decoder.feed(stream[start:end])
    assert got == expected
    assert decoder.eof() == expected_end
    # At most one error, and only as the last item.
    assert all(not isinstance(item, DecodeError) for item in got[:-1])


@st.composite
def plausible_frames(draw: st.DrawFn) -> bytes:
    """A frame whose header passes (magic, a registered type, a length within its limit, the
    right checksum) around a body of random bytes, so that payload decoding is exercised."""
    message_type = draw(st.sampled_from(list(MessageType)))
    body = draw(st.binary(max_size=300))
    if draw(st.booleans()) and message_type is MessageType.Handshake:
        # A plausible handshake head, so that the user-agent checks are reached.
        head = struct.pack("<IQIIH", 1, 0, 0, 0, draw(st.integers(0, 300)))
        body = head + body
    header = MAGIC + struct.pack("<II", message_type, len(body)) + checksum(body)
    return header + body


@pytest.mark.spec("WIRE-13")
@given(
    st.lists(st.one_of(plausible_frames(), st.binary(max_size=64)), max_size=5),
    st.lists(st.integers(1, 64), min_size=1, max_size=20),
)
def test_arbitrary_input_gives_frames_or_one_documented_error(
    pieces: list[bytes], sizes: list[int]
) -> None:
    data = b"".join(pieces)
    decoder = FrameDecoder()
    results: list[object] = []
    pos = index = 0
    while pos < len(data) and decoder.error is None:
        size = sizes[index % len(sizes)]
        results += decoder.feed(data[pos : pos + size])  # raises nothing but what the spec says
        assert decoder.buffered <= min(pos + size, HEADER_SIZE + MAX_PAYLOAD)
        pos += size
        index += 1
    end = decoder.eof()
    errors = [item for item in results if isinstance(item, DecodeError)]
    assert len(errors) <= 1 and (not errors or results[-1] is errors[0])
    for error in [*errors, end]:
        if error is not None:
            assert error.code in ERROR_REQUIREMENTS


@given(messages)
def test_decode_whole_equals_decode_one_by_one(message: object) -> None:
    stream = encode_frame(message) * 2  # type: ignore[arg-type]
    decoder = FrameDecoder()
    items = [item for i in range(len(stream)) for item in decoder.feed(stream[i : i + 1])]
    assert items == decode_frames(stream)[0]
