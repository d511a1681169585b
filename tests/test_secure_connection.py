"""The connection machine with the encrypted transport (spec/privacy.md section 3.4)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from obscura_ref.machines import secure
from obscura_ref.machines.connection import ConnState, Direction
from obscura_ref.machines.events import (
    BytesReceived,
    Closed,
    CloseRequested,
    Established,
    SendBytes,
    Timer,
    TimerExpired,
)
from obscura_ref.machines.handshake import LocalHandshake
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.transport.noise import public_key
from obscura_ref.wire import MAGIC, encode_frame

from .machine_harness import SETTINGS, Pair, new_machine, sent_bytes
from .test_handshake import closed_of, peer_handshake

OFFER = LocalHandshake(privacy_features=0x80)


def encrypted_pair(chunk: int | None = None) -> Pair:
    pair = Pair(OFFER, OFFER, chunk=chunk)
    pair.connect()
    return pair


@pytest.mark.spec("PRIV-11", "PRIV-20", "PRIV-21", "PRIV-24", "PRIV-38")
@pytest.mark.parametrize("chunk", [None, 1, 7, 33])
def test_both_offer_and_every_frame_after_the_handshakes_is_sealed(chunk: int | None) -> None:
    pair = encrypted_pair(chunk)
    a, b = pair.a.machine, pair.b.machine
    assert a.state is b.state is ConnState.ESTABLISHED
    assert a.session_id is not None and a.session_id == b.session_id
    (est,) = [x for x in pair.a.actions if isinstance(x, Established)]
    assert est.session_id == a.session_id
    # A ping and its pong: after the handshakes the wire carries no frame in the clear.
    before = len(pair.b.actions)
    pair.now = SETTINGS.ping_interval
    pair.feed(pair.a, TimerExpired(Timer.PING))
    assert a.last_rtt is not None
    after = sent_bytes(pair.b.actions[before:])
    assert after and MAGIC not in after


@pytest.mark.spec("PRIV-11")
def test_one_offer_alone_stays_in_plaintext() -> None:
    pair = Pair(OFFER, LocalHandshake())
    pair.connect()
    assert pair.a.machine.state is ConnState.ESTABLISHED
    assert pair.a.machine.session_id is None


@pytest.mark.spec("PRIV-27", "PRIV-36")
def test_a_forged_record_closes_with_its_reason_in_a_sealed_disconnect() -> None:
    pair = encrypted_pair()
    pair.feed(pair.b, BytesReceived(bytes(40)))  # not a record under B's key
    assert closed_of(pair.b.actions).reason is CloseReason.RECORD_FORGED
    # A opened B's Disconnect: its reason arrived whole, so it was sealed under A's key.
    assert closed_of(pair.a.actions).peer_reason == CloseReason.RECORD_FORGED.code


@pytest.mark.spec("PRIV-32", "PRIV-34")
def test_the_handshake_timer_runs_through_securing_and_a_close_there_sends_nothing() -> None:
    machine, _, _ = new_machine(Direction.INBOUND, local=OFFER)
    offer = dataclasses.replace(peer_handshake(), privacy_features=0x80)
    machine.handle(BytesReceived(encode_frame(offer)), 1.0)
    assert machine.state is ConnState.SECURING
    assert Timer.HANDSHAKE in machine.armed_timers  # spec: PRIV-32
    actions = machine.handle(TimerExpired(Timer.HANDSHAKE), 100.0)
    assert machine.close_reason is CloseReason.HANDSHAKE_TIMEOUT
    assert not any(isinstance(x, SendBytes) for x in actions)  # spec: PRIV-34 (no key yet)


@pytest.mark.spec("PRIV-33")
def test_an_ephemeral_whose_public_key_begins_with_the_magic_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = public_key
    calls: list[bytes] = []

    def first_looks_like_a_frame(private: bytes) -> bytes:
        calls.append(private)
        return MAGIC + real(private)[4:] if len(calls) == 1 else real(private)

    monkeypatch.setattr(secure, "public_key", first_looks_like_a_frame)
    chosen = secure.draw_ephemeral(random.Random(5))
    assert len(calls) == 2 and chosen == calls[1] != calls[0]


@pytest.mark.spec("PRIV-36")
def test_a_local_close_after_the_keys_is_sealed() -> None:
    pair = encrypted_pair()
    pair.feed(pair.a, CloseRequested(CloseReason.REQUESTED))
    closed = closed_of(pair.b.actions)
    assert closed.reason is CloseReason.PEER_DISCONNECTED
    assert closed.peer_reason == CloseReason.REQUESTED.code
    assert isinstance(closed, Closed)
