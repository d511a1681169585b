"""Padding of sent frames: spec/privacy.md."""

from __future__ import annotations

import random

import pytest

from obscura_ref.machines.connection import ConnectionSettings, Direction
from obscura_ref.machines.events import (
    BytesReceived,
    SendMessage,
    TcpConnected,
    Timer,
    TimerExpired,
)
from obscura_ref.machines.padding import origin_padding, random_below
from obscura_ref.wire import Frame, MessageType, Opaque, Ping, decode_frames, encode_frame

from .machine_harness import SETTINGS, new_machine, sent_bytes
from .test_handshake import peer_handshake

STANDARD = SETTINGS
NONE = ConnectionSettings(**{**SETTINGS.__dict__, "privacy_level": "none"})


def frames_sent(settings: ConnectionSettings) -> list[Frame]:
    """The handshake, a pong, a ping and an opaque message sent by one machine."""
    machine, _, _ = new_machine(Direction.OUTBOUND, settings=settings)
    actions = machine.handle(TcpConnected(), 0.0)
    actions += machine.handle(BytesReceived(encode_frame(peer_handshake())), 1.0)
    actions += machine.handle(BytesReceived(encode_frame(Ping(9))), 2.0)
    actions += machine.handle(TimerExpired(Timer.PING), 1.0 + settings.ping_interval)
    actions += machine.handle(SendMessage(Opaque(MessageType.Inv, b"app")), 20.0)
    frames, error = decode_frames(sent_bytes(actions))
    assert error is None
    return frames


@pytest.mark.spec("PRIV-1", "PRIV-2")
def test_standard_pads_defined_frames_as_the_origin_and_never_opaque_ones() -> None:
    handshake, pong, ping, app = frames_sent(STANDARD)
    assert len(handshake.message.encode()) + len(handshake.padding) <= 79 + 32
    assert len(pong.padding) == len(ping.padding) == 56  # 8-byte nonce padded up to 64
    assert app == Frame(Opaque(MessageType.Inv, b"app"), b"")


@pytest.mark.spec("PRIV-2")
def test_none_sends_no_padding() -> None:
    handshake, pong, ping, app = frames_sent(NONE)
    assert handshake.padding == pong.padding == ping.padding == b""
    # A receiver cannot tell padding from an opaque payload (its frame's padding always
    # decodes empty): the payload itself must be what was given.
    assert app == Frame(Opaque(MessageType.Inv, b"app"), b"")


@pytest.mark.spec("PRIV-1", "PRIV-3", "WIRE-32")
def test_origin_padding_lengths_and_randomness() -> None:
    rng = random.Random(3)
    assert len(origin_padding(0, rng)) == 64 and len(origin_padding(63, rng)) == 1
    lengths = {len(origin_padding(64, rng)) for _ in range(2000)}
    assert lengths == set(range(33))
    assert origin_padding(8, random.Random(1)) != origin_padding(8, random.Random(2))
    assert origin_padding(8, random.Random(1)) == origin_padding(8, random.Random(1))
    # The lengths come from the source too: one seed, one sequence of lengths.
    first, second = random.Random(4), random.Random(4)
    assert [len(origin_padding(64, first)) for _ in range(50)] == [
        len(origin_padding(64, second)) for _ in range(50)
    ]


@pytest.mark.spec("PRIV-3")
def test_the_padding_bytes_are_one_draw_of_the_random_source() -> None:
    # One draw of 8 bits a byte, little-endian: a seeded source keeps giving the same padding,
    # so that a run made with one replays byte for byte.
    expected = random.Random(7).getrandbits(8 * 56).to_bytes(56, "little")
    assert origin_padding(8, random.Random(7)) == expected


def test_random_below_is_in_range() -> None:
    rng = random.Random(5)
    assert {random_below(rng, 3) for _ in range(200)} == {0, 1, 2}
    assert random_below(rng, 1) == 0


def test_unknown_privacy_level_is_refused() -> None:
    with pytest.raises(ValueError):
        ConnectionSettings(privacy_level="paranoid")


def test_the_system_source_gives_every_bit_width_and_refills() -> None:
    from obscura_ref.machines.padding import SystemRandomSource

    source = SystemRandomSource(refill=16)
    values = [source.getrandbits(64) for _ in range(10)]  # crosses several refills
    assert len(set(values)) == 10 and all(0 <= v < 2**64 for v in values)
    assert all(0 <= source.getrandbits(k) < 2**k for k in (1, 5, 8, 13, 448))
    assert {source.getrandbits(1) for _ in range(200)} == {0, 1}
