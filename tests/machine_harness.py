"""Drive machines without sockets: one machine with a recorded transport, or two wired back to
back through an in-memory pipe."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from obscura_ref.machines.connection import ConnectionSettings, Direction, PeerConnection
from obscura_ref.machines.events import (
    AbortTransport,
    Action,
    BytesReceived,
    CloseTransport,
    EndOfStream,
    Event,
    ReleaseNonce,
    SendBytes,
    TcpConnected,
    TransportClosed,
)
from obscura_ref.machines.handshake import LocalHandshake
from obscura_ref.machines.nonces import OwnNonces
from obscura_ref.transport.socks5 import Socks5Client

SETTINGS = ConnectionSettings(
    connection_timeout=5,
    handshake_timeout=3,
    ping_interval=10,
    ping_timeout=4,
    inactivity_timeout=25,
    close_timeout=2,
)


def new_machine(
    direction: Direction,
    *,
    local: LocalHandshake | None = None,
    nonces: OwnNonces | None = None,
    seed: int = 1,
    settings: ConnectionSettings = SETTINGS,
    now: float = 0.0,
    proxy: Socks5Client | None = None,
) -> tuple[PeerConnection, OwnNonces, list[Action]]:
    rng = random.Random(seed)
    nonces = OwnNonces() if nonces is None else nonces
    machine = PeerConnection(
        direction,
        now,
        settings,
        local or LocalHandshake(),
        nonces.issue(rng),
        1_700_000_000,
        nonces,
        rng,
        proxy=proxy,
    )
    return machine, nonces, machine.start()


def sent_bytes(actions: list[Action]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, SendBytes))


@dataclass
class Side:
    machine: PeerConnection
    nonces: OwnNonces
    actions: list[Action] = field(default_factory=list)
    closing_transport: bool = False


class Pair:
    """An outbound machine A wired to an inbound machine B. Each machine's list of actions is
    carried out whole and in order before either machine is fed another event, as a node does
    (spec/node.md NODE-8): a ReleaseNonce in the list is applied before the bytes of that list
    reach the peer. Bytes one side sends then reach the other; a transport close reaches the
    other side as an end of stream."""

    def __init__(
        self,
        local_a: LocalHandshake | None = None,
        local_b: LocalHandshake | None = None,
        shared_nonces: bool = False,
        chunk: int | None = None,
        settings_a: ConnectionSettings = SETTINGS,
        settings_b: ConnectionSettings = SETTINGS,
    ) -> None:
        """``chunk`` splits every write into reads of at most that many bytes."""
        self.chunk = chunk
        a, nonces_a, start_a = new_machine(
            Direction.OUTBOUND, local=local_a, seed=1, settings=settings_a
        )
        b, nonces_b, start_b = new_machine(
            Direction.INBOUND,
            local=local_b,
            seed=2,
            nonces=nonces_a if shared_nonces else None,
            settings=settings_b,
        )
        self.a = Side(a, nonces_a, start_a)
        self.b = Side(b, nonces_b, start_b)
        self.now = 0.0
        self._inbox: deque[tuple[Side, Event]] = deque()

    def other(self, side: Side) -> Side:
        return self.b if side is self.a else self.a

    def feed(self, side: Side, event: Event) -> None:
        """Feed one event, then every event it leads to, one whole list of actions at a time."""
        self._inbox.append((side, event))
        while self._inbox:
            target, pending = self._inbox.popleft()
            if target.machine.state.value == "closed":
                continue
            if isinstance(pending, BytesReceived) and target.closing_transport:
                continue  # its transport is closing: what reaches it is dropped
            actions = target.machine.handle(pending, self.now)
            target.actions += actions
            self._perform(target, actions)

    def _perform(self, side: Side, actions: list[Action]) -> None:
        peer = self.other(side)
        for action in actions:
            if isinstance(action, SendBytes):
                step = self.chunk or len(action.data)
                for start in range(0, len(action.data), step):
                    self._inbox.append((peer, BytesReceived(action.data[start : start + step])))
            elif isinstance(action, ReleaseNonce):
                side.nonces.release(action.nonce)
            elif isinstance(action, CloseTransport | AbortTransport):
                side.closing_transport = True
                self._inbox.append((peer, EndOfStream()))
                if isinstance(action, CloseTransport):
                    self._inbox.append((side, TransportClosed()))

    def connect(self) -> None:
        self.feed(self.a, TcpConnected())
