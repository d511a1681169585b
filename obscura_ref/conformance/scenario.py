"""Scenario decision vectors: the connection manager as a whole (spec/manager.md).

A scenario gives a manager's settings, its key, the random draws it may take and a list of facts
with their times; the expected output is the decisions the manager returns after each fact. It
checks the rules that need state (what counts, what the book holds, bans over time), which the
single-rule kinds of decision.py cannot. ``WakeAt`` is left out of the output: when a node asks
to be woken is its own business, and each scenario says when its ticks come. ``SaveBans`` is
reported without its document (the ban file is local, BAN-6).

Facts and decisions are written as JSON objects named by ``fact`` and ``decision``, with the
fields of the dataclasses of ``obscura_ref/manager/manager.py``; addresses as ``IP:PORT``, close
reasons by name, u64 draws as decimal strings, the key as hex. After each step the output also
gives the address book entries waiting for their next attempt (address, consecutive failures,
next attempt on the monotonic clock) and the bans in force (address, end in wall-clock time).
"""

from __future__ import annotations

from typing import Any

from ..machines.reasons import CloseReason
from ..manager import manager as mgr
from ..manager.bans import BanList
from ..manager.settings import ManagerSettings

Json = dict[str, Any]
KEY = bytes(range(32)).hex()
_REASONS = {reason.label: reason for reason in CloseReason}


class Draws:
    """The random source of a scenario: the given u64 values, in order."""

    def __init__(self, values: list[str]) -> None:
        self._values = [int(v) for v in values]

    def getrandbits(self, k: int, /) -> int:
        if k != 64 or not self._values:
            raise ValueError("the scenario has no more 64-bit draws")
        return self._values.pop(0)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _text(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _fact(given: Json) -> mgr.Fact:
    kind = given["fact"]
    if kind == "Listening":
        return mgr.Listening(_address(given["address"]))
    if kind == "AddressAdded":
        return mgr.AddressAdded(_address(given["address"]), given["source"])
    if kind == "InboundOffered":
        return mgr.InboundOffered(given["peer"], _address(given["address"]))
    if kind == "Opened":
        return mgr.Opened(given["peer"], _address(given["address"]), mgr.PeerType(given["type"]))
    if kind == "DialFailed":
        return mgr.DialFailed(_address(given["address"]), mgr.PeerType(given["type"]))
    if kind == "Established":
        nonce = given.get("dialler_nonce")  # a u64 as decimal text; absent: not known
        return mgr.Established(
            given["peer"], given["features"], None if nonce is None else int(nonce)
        )
    if kind == "RttMeasured":
        return mgr.RttMeasured(given["peer"], float(given["seconds"]))
    if kind == "Misbehaved":
        return mgr.Misbehaved(given["peer"], given["requirement"])
    if kind == "CloseBegan":
        return mgr.CloseBegan(given["peer"], _REASONS[given["reason"]])
    if kind == "Closed":
        return mgr.Closed(given["peer"], _REASONS[given["reason"]], given.get("peer_reason"))
    if kind == "Tick":
        return mgr.Tick()
    raise ValueError(f"unknown fact {kind!r}")


def _decision(decision: mgr.Decision) -> Json | None:
    if isinstance(decision, mgr.WakeAt):
        return None
    if isinstance(decision, mgr.SaveBans):
        return {"decision": "SaveBans"}
    if isinstance(decision, mgr.Dial):
        return {"decision": "Dial", "address": _text(decision.address), "type": decision.type.value}
    if isinstance(decision, mgr.Admit):
        return {"decision": "Admit", "peer": decision.peer}
    name = type(decision).__name__  # Refuse or Evict
    return {"decision": name, "peer": decision.peer, "reason": decision.reason.label}


def decide_scenario(given: Json) -> Json:
    """The decisions after each step of the scenario, and the bans in force at its end."""
    settings = ManagerSettings(
        **{k: v for k, v in given["settings"].items() if k != "seed_nodes"},
        seed_nodes=tuple(_address(a) for a in given["settings"].get("seed_nodes", [])),
    )
    bans = BanList()
    for ban in given.get("bans", []):
        bans.ban(ban["address"], float(ban["until"]), ban["requirement"])
    manager = mgr.ConnectionManager(
        settings, bytes.fromhex(given["key"]), Draws(given["draws"]), given["start"], bans
    )
    steps = []
    for step in given["steps"]:
        now, wall = float(step["now"]), float(step["wall"])
        decisions = manager.handle(_fact(step), now, wall)
        status = manager.status(now, wall)
        steps.append(
            {
                "decisions": [d for d in map(_decision, decisions) if d is not None],
                # spec: RECO-4 (each address waiting, its failures and its next attempt)
                "waiting": [[address, n, at] for address, n, at in status.waiting],
                "bans": [[address, until] for address, until in status.bans],
            }
        )
    return {"steps": steps}


# ---- the cases ----------------------------------------------------------------------------

SMALL = {
    "max_outbound_connections": 2,
    "max_inbound_connections": 3,
    "max_total_connections": 6,
    "max_temporary_connections": 1,
    "temporary_timeout": 10.0,
    "ban_duration": 100.0,
    "reconnect_interval": 1.0,
    "reconnect_max_interval": 8.0,
    "rotation_interval": 600.0,
    "partition_timeout": 120.0,
    "privacy_level": "standard",
}
DRAWS = [str((i * 0x9E37_79B9_7F4A_7C15) % 2**64) for i in range(1, 17)]


def scenario(
    steps: list[Json], *, settings: Json | None = None, bans: list[Json] | None = None
) -> Json:
    given: Json = {
        "settings": {**SMALL, **(settings or {})},
        "key": KEY,
        "draws": DRAWS,
        "start": 0.0,
        "steps": steps,
    }
    if bans:
        given["bans"] = bans
    return given


def at(now: float, fact: str, wall: float | None = None, **fields: Any) -> Json:
    return {"now": now, "wall": 1_000_000.0 + now if wall is None else wall, "fact": fact, **fields}


def _offers(count: int, first: int = 1, group: int = 1) -> list[Json]:
    return [
        at(float(i), "InboundOffered", peer=first + i, address=f"127.{group}.0.{first + i}:5000")
        for i in range(count)
    ]


def _book(*addresses: str, source: str = "seed") -> list[Json]:
    return [at(0.0, "AddressAdded", address=a, source=source) for a in addresses]


Case = tuple[str, list[str], Json]


def scenario_cases() -> list[tuple[str, str, str, list[Case]]]:
    admission: list[Case] = [
        (
            "room admits; the fourth of three slots evicts none (all are protected) and is "
            "refused connection_limit",
            ["LIM-16", "LIM-12"],
            scenario(_offers(4)),
        ),
        (
            "a banned address is refused banned, even with room",
            ["LIM-16", "BAN-3"],
            scenario(
                _offers(1, group=7),
                bans=[{"address": "127.7.0.1", "until": 2_000_000.0, "requirement": "WIRE-9"}],
            ),
        ),
        (
            "a connection whose close began no longer counts: the slot admits the next",
            ["LIM-12", "LIM-16"],
            scenario(
                [
                    *_offers(3),
                    at(3.0, "CloseBegan", peer=2, reason="peer_closed"),
                    *_offers(1, first=4),
                ]
            ),
        ),
        (
            "with twelve inbound of one group at the limit, a newcomer evicts the most recent",
            ["LIM-16", "LIM-17", "LIM-12"],
            scenario(
                [*_offers(12), *_offers(1, first=13, group=9)],
                settings={"max_inbound_connections": 12, "max_total_connections": 20},
            ),
        ),
        (
            "the total limit counts every type: inbound is refused when outbound fill it",
            ["LIM-14", "LIM-16"],
            scenario(
                [
                    *_book("127.20.0.1:9000", "127.21.0.1:9000"),
                    at(0.0, "Opened", peer=100, address="127.20.0.1:9000", type="outbound"),
                    at(0.0, "Opened", peer=101, address="127.21.0.1:9000", type="outbound"),
                    *_offers(3),
                ],
                settings={"max_total_connections": 4},
            ),
        ),
    ]
    outbound: list[Case] = [
        (
            "the book fills the outbound slots, a group without a connection first, never an "
            "own address, never a banned one",
            ["RECO-1", "RECO-2", "BAN-4", "LIM-13"],
            scenario(
                [at(0.0, "Listening", address="127.30.0.1:9000"), at(0.0, "Tick")],
                settings={
                    "seed_nodes": [
                        "127.30.0.1:9000",
                        "127.31.0.1:9000",
                        "127.31.0.2:9000",
                        "127.32.0.1:9000",
                        "127.33.0.1:9000",
                    ],
                    "max_outbound_connections": 3,
                },
                bans=[{"address": "127.33.0.1", "until": 2_000_000.0, "requirement": "HS-20"}],
            ),
        ),
        (
            "a dial that fails backs off delay(n), doubling to the cap; a handshake resets it",
            ["RECO-4", "RECO-1"],
            scenario(
                [
                    *_book("127.40.0.1:9000"),
                    at(0.0, "Opened", peer=1, address="127.40.0.1:9000", type="outbound"),
                    at(0.5, "Closed", peer=1, reason="connect_timeout"),
                    at(2.0, "Tick"),
                    at(2.0, "Opened", peer=2, address="127.40.0.1:9000", type="outbound"),
                    at(2.5, "Closed", peer=2, reason="network_error"),
                    at(5.0, "Tick"),
                    at(5.0, "Opened", peer=3, address="127.40.0.1:9000", type="outbound"),
                    at(5.5, "Established", peer=3, features=1),
                    at(9.0, "CloseBegan", peer=3, reason="peer_disconnected"),
                    at(9.1, "Closed", peer=3, reason="peer_disconnected"),
                    at(12.0, "Tick"),
                ],
                settings={"max_outbound_connections": 1},
            ),
        ),
        (
            "a non-persistent address leaves the book after MAX_FAILURES failures in a row; a "
            "persistent one is redialled whatever its failures",
            ["RECO-6", "RECO-5"],
            scenario(
                [
                    *_book("127.50.0.1:9000"),
                    *_book("127.51.0.1:9000", source="persistent"),
                    *[
                        step
                        for n in range(5)
                        for step in (
                            at(100.0 * n, "Tick"),
                            at(
                                100.0 * n,
                                "Opened",
                                peer=2 * n + 1,
                                address="127.50.0.1:9000",
                                type="outbound",
                            ),
                            at(
                                100.0 * n,
                                "Opened",
                                peer=2 * n + 2,
                                address="127.51.0.1:9000",
                                type="persistent",
                            ),
                            at(100.0 * n + 1, "Closed", peer=2 * n + 1, reason="network_error"),
                            at(100.0 * n + 1, "Closed", peer=2 * n + 2, reason="network_error"),
                        )
                    ],
                    at(600.0, "Tick"),
                ],
                settings={"max_outbound_connections": 1},
            ),
        ),
        (
            "self_connection, or the peer's Disconnect saying so, and a close the application "
            "asked for: the address leaves the book",
            ["RECO-3", "RECO-8"],
            scenario(
                [
                    *_book("127.60.0.1:9000", "127.61.0.1:9000", "127.62.0.1:9000"),
                    at(0.0, "Opened", peer=1, address="127.60.0.1:9000", type="outbound"),
                    at(0.0, "Opened", peer=2, address="127.61.0.1:9000", type="outbound"),
                    at(1.0, "Closed", peer=1, reason="self_connection"),
                    at(1.0, "Opened", peer=3, address="127.62.0.1:9000", type="outbound"),
                    at(2.0, "Closed", peer=2, reason="peer_disconnected", peer_reason=13),
                    at(3.0, "Established", peer=3, features=1),
                    at(4.0, "CloseBegan", peer=3, reason="requested"),
                    at(4.0, "Closed", peer=3, reason="requested"),
                    at(50.0, "Tick"),
                ],
            ),
        ),
    ]
    bans: list[Case] = [
        (
            "an unexpected message (50) twice bans the address: its other connection is evicted "
            "banned, the bans are saved, a new connection is refused; the ban ends in time",
            ["BAN-1", "BAN-2", "BAN-3", "BAN-5"],
            scenario(
                [
                    at(0.0, "InboundOffered", peer=1, address="127.70.0.1:5000"),
                    at(0.0, "InboundOffered", peer=2, address="127.70.0.1:5001"),
                    at(0.0, "InboundOffered", peer=3, address="127.71.0.1:5000"),
                    at(1.0, "Misbehaved", peer=1, requirement="HS-20"),
                    at(1.0, "CloseBegan", peer=1, reason="unexpected_message"),
                    at(2.0, "InboundOffered", peer=4, address="127.70.0.1:5002"),
                    at(3.0, "Misbehaved", peer=4, requirement="HS-20"),
                    at(4.0, "InboundOffered", peer=5, address="127.70.0.1:5003"),
                    at(50.0, "Tick"),
                    at(103.0, "Tick"),
                    at(104.0, "InboundOffered", peer=6, address="127.70.0.1:5004"),
                ],
            ),
        ),
    ]
    temporary: list[Case] = [
        (
            "every outbound connection in one group: partitioned; a temporary dial to another "
            "group, evicted temporary_done once it answers; the crowded group makes room",
            ["RECO-7", "TYPE-2"],
            scenario(
                [
                    at(0.0, "Tick"),
                    at(0.0, "Opened", peer=1, address="127.81.0.1:9000", type="outbound"),
                    at(0.0, "Opened", peer=2, address="127.81.0.2:9000", type="outbound"),
                    at(1.0, "Established", peer=1, features=1),
                    at(1.0, "Established", peer=2, features=3),
                    at(2.0, "AddressAdded", address="127.82.0.1:9000", source="application"),
                    at(3.0, "Tick"),
                    at(3.0, "Opened", peer=3, address="127.82.0.1:9000", type="temporary"),
                    at(4.0, "Established", peer=3, features=1),
                    at(4.0, "CloseBegan", peer=3, reason="temporary_done"),
                    at(4.0, "CloseBegan", peer=1, reason="rotated"),
                    at(4.5, "Closed", peer=3, reason="temporary_done"),
                ],
                settings={"seed_nodes": ["127.81.0.1:9000", "127.81.0.2:9000"]},
            ),
        ),
        (
            "a temporary connection not done within temporary_timeout is evicted temporary_timeout",
            ["TYPE-2"],
            scenario(
                [
                    at(130.0, "Tick"),
                    at(130.0, "Opened", peer=1, address="127.80.0.1:9000", type="temporary"),
                    at(139.0, "Tick"),
                    at(140.0, "Tick"),
                ],
                settings={"seed_nodes": ["127.80.0.1:9000"], "max_outbound_connections": 0},
            ),
        ),
    ]
    rotation: list[Case] = [
        (
            "every rotation_interval a quarter of the established outbound go, lowest score "
            "first; their group is not dialled again until the slots are full",
            ["PRIV-10", "RECO-1"],
            scenario(
                [
                    *_book(*(f"127.9{g}.0.1:9000" for g in range(6))),
                    *[
                        at(1.0, "Opened", peer=g + 1, address=f"127.9{g}.0.1:9000", type="outbound")
                        for g in range(4)
                    ],
                    *[at(2.0, "Established", peer=g + 1, features=1 if g else 3) for g in range(4)],
                    at(2.0, "RttMeasured", peer=3, seconds=0.5),
                    at(600.0, "Tick"),
                ],
                settings={"max_outbound_connections": 4, "max_total_connections": 10},
            ),
        ),
        (
            "privacy_level none never rotates",
            ["PRIV-10"],
            scenario(
                [
                    *_book(*(f"127.9{g}.0.1:9000" for g in range(4))),
                    *[
                        at(1.0, "Opened", peer=g + 1, address=f"127.9{g}.0.1:9000", type="outbound")
                        for g in range(4)
                    ],
                    *[at(2.0, "Established", peer=g + 1, features=1) for g in range(4)],
                    at(600.0, "Tick"),
                ],
                settings={
                    "max_outbound_connections": 4,
                    "max_total_connections": 10,
                    "privacy_level": "none",
                },
            ),
        ),
    ]
    duplicates: list[Case] = [
        (
            "a dialled and an accepted connection with one address: the accepted one, of the "
            "greater dialler's nonce, is closed duplicate_connection",
            ["RECO-10", "RECO-2"],
            scenario(
                [
                    *_book("127.60.0.1:9000"),
                    at(0.0, "Opened", peer=1, address="127.60.0.1:9000", type="outbound"),
                    at(0.1, "InboundOffered", peer=2, address="127.60.0.1:40000"),
                    at(0.2, "Established", peer=1, features=1, dialler_nonce="100"),
                    at(0.3, "Established", peer=2, features=1, dialler_nonce="200"),
                ],
                settings={"max_outbound_connections": 1},
            ),
        ),
        (
            "the dialled one has the greater nonce: it is closed, which is not a failure, and "
            "its address is not dialled while the other counts",
            ["RECO-10", "RECO-2", "RECO-4"],
            scenario(
                [
                    *_book("127.61.0.1:9000"),
                    at(0.0, "Opened", peer=1, address="127.61.0.1:9000", type="outbound"),
                    at(0.1, "InboundOffered", peer=2, address="127.61.0.1:40000"),
                    at(
                        0.2, "Established", peer=2, features=1, dialler_nonce="18446744073709551614"
                    ),
                    at(
                        0.3, "Established", peer=1, features=1, dialler_nonce="18446744073709551615"
                    ),
                    at(0.3, "CloseBegan", peer=1, reason="duplicate_connection"),
                    at(0.4, "Closed", peer=1, reason="duplicate_connection"),
                    at(5.0, "Tick"),
                ],
                settings={"max_outbound_connections": 1},
            ),
        ),
        (
            "a connection the peer closed with duplicate_connection is a loss: its address backs "
            "off, and is not dialled while the other counts",
            ["RECO-10", "RECO-4"],
            scenario(
                [
                    *_book("127.62.0.1:9000"),
                    at(0.0, "Opened", peer=1, address="127.62.0.1:9000", type="outbound"),
                    at(0.1, "InboundOffered", peer=2, address="127.62.0.1:40000"),
                    at(0.2, "Established", peer=2, features=1, dialler_nonce="7"),
                    at(0.2, "CloseBegan", peer=1, reason="peer_disconnected"),
                    at(0.3, "Closed", peer=1, reason="peer_disconnected", peer_reason=8),
                    at(5.0, "Tick"),
                ],
                settings={"max_outbound_connections": 1},
            ),
        ),
        (
            "two accepted connections from one address are left alone: two nodes may share it",
            ["RECO-10"],
            scenario(
                [
                    at(0.1, "InboundOffered", peer=1, address="127.65.0.1:40000"),
                    at(0.1, "InboundOffered", peer=2, address="127.65.0.1:40001"),
                    at(0.2, "Established", peer=1, features=1, dialler_nonce="9"),
                    at(0.3, "Established", peer=2, features=1, dialler_nonce="10"),
                ]
            ),
        ),
        (
            "equal nonces: the connection that completed last is closed",
            ["RECO-10"],
            scenario(
                [
                    *_book("127.63.0.1:9000"),
                    at(0.0, "Opened", peer=1, address="127.63.0.1:9000", type="outbound"),
                    at(0.1, "InboundOffered", peer=2, address="127.63.0.1:40000"),
                    at(0.2, "Established", peer=2, features=1, dialler_nonce="5"),
                    at(0.3, "Established", peer=1, features=1, dialler_nonce="5"),
                ],
                settings={"max_outbound_connections": 1},
            ),
        ),
    ]
    recovery: list[Case] = [
        (
            "a seed node that fails again and again stays in the book, its delay capped: it "
            "is dialled again within recovery_bound of its last failure",
            ["RECO-9", "RECO-6", "RECO-4"],
            scenario(
                [
                    at(0.0, "Tick"),
                    *[
                        step
                        for t in (0.0, 2.0, 5.0, 10.0, 20.0, 40.0, 60.0)
                        for step in (
                            at(t, "Tick"),
                            at(t, "DialFailed", address="127.64.0.1:9000", type="outbound"),
                        )
                    ],
                    # 1.25 * reconnect_max_interval after the last failure: dialled by then
                    at(70.0, "Tick"),
                ],
                settings={"seed_nodes": ["127.64.0.1:9000"], "max_outbound_connections": 1},
            ),
        ),
    ]
    return [
        ("admission", "scenario", "Inbound admission and what counts (section 3, 5).", admission),
        ("outbound", "scenario", "The address book, dials and backoff (sections 7, 8).", outbound),
        ("bans", "scenario", "Misbehaviour, bans and their end (section 6).", bans),
        ("temporary", "scenario", "Partitions and temporary connections (3, 10).", temporary),
        ("rotation", "scenario", "Rotation of outbound connections (section 9).", rotation),
        ("duplicates", "scenario", "Two connections with one address (section 7).", duplicates),
        ("recovery", "scenario", "Seed nodes after a partition (section 8).", recovery),
    ]
