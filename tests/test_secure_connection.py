"""The connection machine with the encrypted transport (spec/privacy.md section 3.4)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from obscura_ref.machines import secure
from obscura_ref.machines.connection import ConnectionSettings, ConnState, Direction
from obscura_ref.machines.events import (
    ArmTimer,
    BytesReceived,
    Closed,
    CloseRequested,
    CloseTransport,
    EndOfStream,
    Established,
    MessageReceived,
    SendBytes,
    SendMessage,
    TcpConnected,
    Timer,
    TimerExpired,
)
from obscura_ref.machines.handshake import LocalHandshake
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.machines.shaping import DUMMY_MAX_INTERVAL, DUMMY_MIN_INTERVAL, MAX_SEND_DELAY
from obscura_ref.transport.noise import public_key
from obscura_ref.transport.socks5 import Socks5Client
from obscura_ref.wire import MAGIC, MessageType, Opaque, encode_frame

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


MAXIMUM = dataclasses.replace(SETTINGS, privacy_level="maximum")
STANDARD = dataclasses.replace(SETTINGS, privacy_level="standard")


def first_pair(settings_b: ConnectionSettings = STANDARD, chunk: int | None = None) -> Pair:
    """A at maximum dials B: encrypted from the first byte (section 3.5)."""
    pair = Pair(OFFER, OFFER, chunk=chunk, settings_a=MAXIMUM, settings_b=settings_b)
    pair.connect()
    return pair


@pytest.mark.spec("PRIV-50", "PRIV-53", "PRIV-57")
@pytest.mark.parametrize("chunk", [None, 1, 5, 100])
def test_encrypted_from_the_first_byte_in_any_chunking(chunk: int | None) -> None:
    pair = first_pair(chunk=chunk)
    a, b = pair.a.machine, pair.b.machine
    assert a.state is b.state is ConnState.ESTABLISHED
    assert a.session_id is not None and a.session_id == b.session_id
    wire = sent_bytes(pair.a.actions)
    assert wire[:4] != MAGIC and MAGIC not in wire  # spec: PRIV-50 (no plaintext at all)
    # The handshake travelled inside the records: B accepted A's, sealed (PRIV-57).
    assert b.negotiated is not None and b.negotiated.peer_user_agent == OFFER.user_agent


@pytest.mark.spec("PRIV-58")
def test_an_encrypted_first_initiator_does_not_go_on_in_plaintext() -> None:
    pair = first_pair(settings_b=dataclasses.replace(SETTINGS, privacy_level="none"))
    assert pair.a.machine.close_reason is CloseReason.NOISE_OUT_OF_PLACE
    assert pair.b.machine.close_reason is CloseReason.INVALID_MESSAGE
    assert pair.a.machine.established_at is None


def held_sends(pair: Pair, side: str) -> list[SendBytes]:
    actions = (pair.a if side == "a" else pair.b).actions
    return [x for x in actions if isinstance(x, SendBytes)]


@pytest.mark.spec("PRIV-60")
def test_shaping_holds_each_send_within_the_bound_and_in_order() -> None:
    pair = first_pair(settings_b=MAXIMUM)
    a = pair.a.machine
    assert a.state is ConnState.ESTABLISHED
    before = len(held_sends(pair, "a"))
    pair.now = 100.0
    actions = [
        *a.handle(SendMessage(Opaque(MessageType.Inv, b"one")), pair.now),
        *a.handle(SendMessage(Opaque(MessageType.Inv, b"two")), pair.now),
    ]
    assert not any(isinstance(x, SendBytes) for x in actions)  # held, not sent
    (arm,) = [x for x in actions if isinstance(x, ArmTimer) and x.timer is Timer.SHAPE]
    assert pair.now <= arm.deadline <= pair.now + MAX_SEND_DELAY
    released = b""
    now: float | None = arm.deadline
    while now is not None:
        out = a.handle(TimerExpired(Timer.SHAPE), now)
        released += b"".join(x.data for x in out if isinstance(x, SendBytes))
        rearmed = [x.deadline for x in out if isinstance(x, ArmTimer) and x.timer is Timer.SHAPE]
        assert all(now <= t <= pair.now + 2 * MAX_SEND_DELAY for t in rearmed)
        now = rearmed[0] if rearmed else None
    assert len(held_sends(pair, "a")) == before
    # B opens both, in order.
    pair.feed(pair.b, BytesReceived(released))
    got = [x.message for x in pair.b.actions if isinstance(x, MessageReceived)]
    assert got == [Opaque(MessageType.Inv, b"one"), Opaque(MessageType.Inv, b"two")]


@pytest.mark.spec("PRIV-61", "PRIV-63")
def test_dummies_come_at_random_intervals_and_are_discarded() -> None:
    pair = first_pair(settings_b=MAXIMUM)
    a = pair.a.machine
    deadline = a.armed_timers[Timer.DUMMY]
    established = a.established_at
    assert established is not None
    assert established + DUMMY_MIN_INTERVAL <= deadline <= established + DUMMY_MAX_INTERVAL
    out = a.handle(TimerExpired(Timer.DUMMY), deadline)
    again = [x.deadline for x in out if isinstance(x, ArmTimer) and x.timer is Timer.DUMMY]
    assert len(again) == 1
    assert deadline + DUMMY_MIN_INTERVAL <= again[0] <= deadline + DUMMY_MAX_INTERVAL
    shape = a.armed_timers[Timer.SHAPE]
    sent = a.handle(TimerExpired(Timer.SHAPE), shape)
    record = b"".join(x.data for x in sent if isinstance(x, SendBytes))
    assert record
    before = len(pair.b.actions)
    pair.feed(pair.b, BytesReceived(record))
    new = pair.b.actions[before:]
    assert not any(isinstance(x, MessageReceived) for x in new)  # spec: PRIV-63
    assert pair.b.machine.state is ConnState.ESTABLISHED


@pytest.mark.spec("PRIV-62")
def test_a_close_releases_what_shaping_holds_before_its_disconnect() -> None:
    pair = first_pair(settings_b=MAXIMUM)
    a = pair.a.machine
    held = a.handle(SendMessage(Opaque(MessageType.Inv, b"held")), 200.0)
    assert not any(isinstance(x, SendBytes) for x in held)
    out = a.handle(CloseRequested(CloseReason.REQUESTED), 200.0)
    sends = [x.data for x in out if isinstance(x, SendBytes)]
    assert len(sends) == 2  # what was held, then the Disconnect, at once
    kinds = [type(x) for x in out if isinstance(x, SendBytes | CloseTransport)]
    assert kinds == [SendBytes, SendBytes, CloseTransport]
    pair.feed(pair.b, BytesReceived(b"".join(sends)))
    got = [x.message for x in pair.b.actions if isinstance(x, MessageReceived)]
    assert got == [Opaque(MessageType.Inv, b"held")]
    assert closed_of(pair.b.actions).peer_reason == CloseReason.REQUESTED.code


@pytest.mark.spec("PRIV-32")
def test_the_handshake_deadline_is_not_moved_by_the_noise_handshake() -> None:
    machine, _, _ = new_machine(Direction.INBOUND, local=OFFER)
    armed = machine.armed_timers[Timer.HANDSHAKE]
    offer = dataclasses.replace(peer_handshake(), privacy_features=0x80)
    machine.handle(BytesReceived(encode_frame(offer)), armed - 0.5)
    assert machine.state is ConnState.SECURING
    assert machine.armed_timers[Timer.HANDSHAKE] == armed  # spec: PRIV-32 (from HS-21's moment)


@pytest.mark.spec("PRIV-40", "PRIV-50")
def test_encrypted_from_the_first_byte_through_a_proxy() -> None:
    a, _, _ = new_machine(
        Direction.OUTBOUND,
        local=OFFER,
        settings=MAXIMUM,
        proxy=Socks5Client("127.0.0.2", 9000),
    )
    b, _, _ = new_machine(Direction.INBOUND, local=OFFER, settings=STANDARD, seed=2)
    greeting = sent_bytes(a.handle(TcpConnected(), 0.1))
    assert greeting == b"\x05\x01\x00"
    request = sent_bytes(a.handle(BytesReceived(b"\x05\x00"), 0.2))
    assert request.startswith(b"\x05\x01\x00\x01")
    # The proxy's success: the connection starts encrypted from its first byte, no plaintext.
    first = sent_bytes(a.handle(BytesReceived(b"\x05\x00\x00\x01" + bytes(6)), 0.3))
    assert a.state is ConnState.SECURING and first[:4] != MAGIC
    # Then the two machines talk until both are established.
    pending = [(b, first)]
    for _ in range(20):
        if not pending:
            break
        target, data = pending.pop(0)
        other = a if target is b else b
        out = sent_bytes(target.handle(BytesReceived(data), 1.0))
        if out:
            pending.append((other, out))
    assert a.state is b.state is ConnState.ESTABLISHED
    assert a.session_id == b.session_id is not None


@pytest.mark.spec("PRIV-12")
def test_encrypted_from_the_first_byte_the_bit_is_not_required_again() -> None:
    # The initiator's handshake, inside the records, does not set EncryptedTransport; the
    # responder requires encryption, and has it already.
    requiring = LocalHandshake(privacy_features=0x80, requires_encryption=True)
    pair = Pair(LocalHandshake(), requiring, settings_a=MAXIMUM, settings_b=MAXIMUM)
    pair.connect()
    assert pair.a.machine.state is pair.b.machine.state is ConnState.ESTABLISHED


@pytest.mark.spec("CONN-33", "PRIV-53")
def test_the_start_of_a_magic_then_the_end_is_a_frame_cut_short() -> None:
    machine, _, _ = new_machine(Direction.INBOUND, settings=STANDARD)
    machine.handle(BytesReceived(MAGIC[:3]), 1.0)
    assert machine.state is ConnState.HANDSHAKING  # the fourth byte would decide
    machine.handle(EndOfStream(), 1.0)
    assert machine.close_reason is CloseReason.INVALID_MESSAGE
