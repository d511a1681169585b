"""The send buffer: the bytes out are the bytes in, and its memory follows what is unsent."""

from __future__ import annotations

import socket
import sys
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obscura_ref.sendbuffer import COMPACT_AT, SendBuffer


def memory_bound(unsent: int) -> int:
    """What a buffer may take for ``unsent`` bytes: twice them once its sent prefix is dropped,
    the bytearray's growth margin (an eighth) on top, and a constant."""
    return 3 * unsent + 2 * COMPACT_AT


# An append is a few chosen bytes or a long run of one byte (long enough to cross COMPACT_AT
# and to leave a large sent prefix); a consume takes a fraction of what is unsent, often all.
appends = st.binary(max_size=64) | st.builds(
    lambda size, fill: bytes([fill]) * size, st.integers(0, 400_000), st.integers(0, 255)
)
consumes = st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0)
operations = st.lists(appends | consumes)


@given(operations)
def test_appends_and_consumes_in_any_order_give_the_bytes_in_order(
    steps: list[bytes | float],
) -> None:
    buffer, model = SendBuffer(), b""
    for step in steps:
        if isinstance(step, bytes):
            buffer.append(step)
            model += step
        else:
            count = round(step * len(model))
            buffer.consume(count)
            model = model[count:]
        assert len(buffer) == len(model)
        with buffer.view() as unsent:
            assert unsent == model
        # The bytearray's allocation, as sys.getsizeof reports it: memory follows the unsent
        # bytes however the appends and consumes interleave.
        assert sys.getsizeof(buffer._data) <= memory_bound(len(model))


def test_consuming_more_than_is_unsent_is_refused() -> None:
    buffer = SendBuffer()
    buffer.append(b"abc")
    with pytest.raises(ValueError):
        buffer.consume(4)
    with pytest.raises(ValueError):
        buffer.consume(-1)
    assert len(buffer) == 3


def test_a_view_goes_to_a_socket_and_what_it_took_is_consumed() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.setblocking(False)
        buffer = SendBuffer()
        payload = bytes(range(256)) * 8192  # 2 MiB: more than the socket takes at once
        buffer.append(payload)
        received = bytearray()
        while buffer:
            with buffer.view() as unsent:
                try:
                    sent = left.send(unsent)
                except BlockingIOError:
                    sent = 0
            buffer.consume(sent)
            received += right.recv(1 << 20)
        while len(received) < len(payload):
            received += right.recv(1 << 20)
        assert received == payload


def test_small_frames_cost_their_bytes_and_little_more() -> None:
    """100,000 pongs of 24 bytes that the peer never reads take about their 2.4 MB.

    The deque of one memoryview per frame this buffer replaced measured about 377 bytes per
    24-byte frame on CPython 3.11 (37.7 MB for these 2.4 MB, 15.7 times): a bytes object, a
    memoryview and its managed buffer, and a deque slot each.
    """
    frame = bytes(range(24))
    frames = 100_000
    tracemalloc.start()
    try:
        buffer = SendBuffer()
        for _ in range(frames):
            buffer.append(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(buffer) == frames * len(frame)
    assert peak <= 2 * frames * len(frame)


def test_memory_is_given_back_as_the_socket_takes_the_bytes() -> None:
    buffer = SendBuffer()
    tracemalloc.start()
    try:
        buffer.append(bytes(4 << 20))
        while len(buffer) > 100:  # written 10 KB at a time, as a slow socket takes it
            buffer.consume(min(10_000, len(buffer) - 100))
        held, _ = tracemalloc.get_traced_memory()
        buffer.clear()
        emptied, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held <= memory_bound(100)
    assert len(buffer) == 0 and emptied <= 1024
