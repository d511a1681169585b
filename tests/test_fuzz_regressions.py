"""The fuzzing campaign's regression cases (fuzz/README.md), replayed without any engine.

Every input that ever failed a target (a crash, a hang or a broken invariant) is kept in
tests/fuzz_regressions/<target>/ and replayed here through the same target function, so a bug
that comes back fails this test. The first seeds of each target are replayed too, and the
harness is shown to report a breach when the code under it is broken on purpose: a replay that
passes means something only if the checks can fail.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fuzz import connection, manager, run
from fuzz.common import Breach
from fuzz.seeds import seeds
from fuzz.targets import TARGETS
from obscura_ref.machines import handshake as handshake_machine
from obscura_ref.machines.connection import ConnState, PeerConnection
from obscura_ref.machines.events import Action, ArmTimer, Event, Negotiated, Timer
from obscura_ref.machines.privacy import PrivacyLevel
from obscura_ref.manager.book import SOURCES
from obscura_ref.manager.manager import ConnectionManager, PeerType
from obscura_ref.wire import Frame, Handshake, frame
from obscura_ref.wire.registry import MessageType

CASES = Path(__file__).parent / "fuzz_regressions"
FIRST_SEEDS = 12  # per target: enough to reach every kind of input, fast


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_input_that_ever_failed_passes_now(target: str) -> None:
    """Each regression case of the target, then its first seeds, within the time box."""
    cases = [path.read_bytes() for path in sorted((CASES / target).glob("*.bin"))]
    first = seeds(target)[:FIRST_SEEDS]
    assert first, f"no seeds for {target}: the conformance vectors were not read"
    for data in cases + first:
        started = time.monotonic()
        TARGETS[target](data)
        assert time.monotonic() - started < 1.0, "the campaign's time box: 1 s an input"


def test_a_decoder_that_drops_padding_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = frame.decode_body

    def without_padding(message_type: MessageType, expected: bytes, payload: bytes) -> Frame:
        return Frame(real(message_type, expected, payload).message)

    monkeypatch.setattr(frame, "decode_body", without_padding)
    with pytest.raises(Breach, match="re-encode"):
        for data in seeds("decoder"):
            TARGETS["decoder"](data)


def test_a_handshake_that_negotiates_wrongly_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = handshake_machine.negotiate

    def generous(local: handshake_machine.LocalHandshake, peer: Handshake) -> Negotiated:
        agreed = real(local, peer)
        return Negotiated(**{**vars(agreed), "features": local.features | peer.features})

    monkeypatch.setattr(handshake_machine, "negotiate", generous)
    with pytest.raises(Breach, match="HS-16"):
        for data in seeds("handshake"):
            TARGETS["handshake"](data)


def test_a_connection_that_arms_a_timer_in_the_past_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = PeerConnection.handle

    def late(self: PeerConnection, event: Event, now: float) -> list[Action]:
        actions = real(self, event, now)
        if self.state is ConnState.ESTABLISHED and Timer.PING in self._armed:
            self._armed[Timer.PING] = now - 1
            actions.append(ArmTimer(Timer.PING, now - 1))
        return actions

    monkeypatch.setattr(PeerConnection, "handle", late)
    ops = connection.Ops(False, PrivacyLevel.STANDARD, PrivacyLevel.STANDARD)
    for _ in range(4):
        ops.op(connection.DELIVER, 0)
    with pytest.raises(Breach, match="in the past"):
        TARGETS["connection"](ops.bytes())


def test_a_connection_that_acts_after_closed_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = PeerConnection.handle

    def restless(self: PeerConnection, event: Event, now: float) -> list[Action]:
        actions = real(self, event, now)
        if self.state is ConnState.CLOSED:
            actions.append(ArmTimer(Timer.PING, now + 1))
        return actions

    monkeypatch.setattr(PeerConnection, "handle", restless)
    ops = connection.Ops(False, PrivacyLevel.NONE, None).op(connection.FAIL)
    with pytest.raises(Breach, match="after Closed"):
        TARGETS["connection"](ops.bytes())


def test_a_manager_over_its_limits_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ConnectionManager, "_room", lambda self, kind: True)
    ops = manager.Ops(0)
    for group in (1, 2, 3):  # three seed addresses, two outbound slots (SMALL)
        ops.op(manager.ADD, 1.0, 0x80, group, 1, SOURCES.index("seed"))
    with pytest.raises(Breach, match="over the limit"):
        TARGETS["manager"](ops.bytes())


def test_a_manager_that_dials_its_own_address_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        ConnectionManager, "_eligible_now", lambda self, address: self._room(PeerType.OUTBOUND)
    )
    ops = manager.Ops(0)
    ops.op(manager.LISTEN, 0, 0x80, 7, 1)  # 127.7.0.1:5000, then the same address by name
    ops.op(manager.ADD, 1.0, 0, SOURCES.index("connect"))
    with pytest.raises(Breach, match="RECO-2"):
        TARGETS["manager"](ops.bytes())


def test_the_driver_runs_without_an_engine(tmp_path: Path) -> None:
    """``--engine mutate`` needs nothing but the package: a short run, its figures, no failure."""
    arguments = ["manager", "--engine", "mutate", "--inputs", "200", "--workdir", str(tmp_path)]
    assert run.main(arguments) == 0
    figures = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert figures["inputs"] == 200 and figures["failures"] == []
