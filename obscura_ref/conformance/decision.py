"""Decision vectors: a policy situation and the one decision the spec requires of it.

Each case names a ``decision`` (its kind), gives its ``input`` and the ``expected`` output. The
inputs are built here; the expected outputs are what the reference decides, so ``generate``
derives the files and ``check_vectors`` proves the checked-in files still agree with the
reference. Kinds today:

- ``admit_inbound`` (spec/manager.md LIM-16, rule 2), ``open_outbound`` (LIM-13): room for one
  more connection;
- ``handshake`` (spec/handshake.md): the judgement of a peer's handshake;
- the connection manager's rules (spec/manager.md): ``address_group`` (section 2), ``score``
  and ``evict`` (sections 4 and 5), ``misbehaviour`` and ``ban_expiry`` (section 6),
  ``select_outbound`` and ``backoff`` (sections 7 and 8), ``rotate`` (section 9) and
  ``partition`` (section 10);
- the encrypted transport's computations (spec/privacy.md section 3, transport_vectors.py):
  ``noise_initiator``, ``noise_responder``, ``seal`` and ``open``, and for the encrypted-first
  start ``elligator_key_pair``, ``elligator_map``, ``garbage_terminators`` and
  ``find_terminator``.

Numbers: a u64 is a decimal string (and a key, hex); every other integer is below 2**53, so that
parsers that read JSON numbers as doubles (JavaScript's) read them right. Times, durations and
delays are doubles: an expected number written with a fraction part (``30.0``) is met by any
number of the same double value (``30`` too, as many JSON writers print it), an expected integer
only by an integer.

The adapter protocol
--------------------
Another implementation replays the cases through an *adapter*: a process it writes that reads
requests on stdin and answers on stdout, one JSON object per line (UTF-8, ending in ``\\n``).

- Request: ``{"tcId": N, "decision": KIND, "input": {...}}``, the case's own ``tcId``,
  ``decision`` and ``input``. An adapter ignores keys it does not know.
- Response, exactly one of:
  ``{"tcId": N, "output": {...}}``, the decision, compared with the case's ``expected``;
  ``{"tcId": N, "unsupported": true}``, for a kind the adapter does not implement (the case is
  reported as skipped);
  ``{"tcId": N, "error": "text"}``, the adapter could not decide (the case fails, with the text).
- The runner sends one request and waits for its response before it sends the next: an adapter
  answers each line, and flushes stdout, before it waits for another. ``tcId`` in the response
  is the request's.
- ``output`` must equal ``expected`` as JSON values: the same keys, the same values of the same
  JSON types (``true`` is not ``1``, ``1.0`` is not the integer ``1``); key order and spacing
  are free. An expected double (written with a fraction part) is met by any number of its value.
- A response that is not a JSON object, carries another ``tcId``, or none of ``output``,
  ``unsupported`` and ``error`` fails its case. No response within the timeout (``TIMEOUT``
  seconds by default) fails the case, and the runner then stops the adapter and fails the
  remaining cases unasked; so does an adapter that exits early.
- When the runner has no more requests it closes stdin; the adapter then exits with status 0.
  Whatever the adapter writes to stderr is shown with its failures.

``decide`` is the reference's answer to one request and ``adapter_main`` the reference adapter
(``obscura-ref conformance adapter``); ``replay`` runs cases through any ``ask`` function, such
as ``decide`` or a ``SubprocessAdapter``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import selectors
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TextIO

from ..machines.handshake import (
    MIN_COMPATIBLE_VERSION,
    PROTOCOL_VERSION,
    Accepted,
    HandshakeProtocol,
    LocalHandshake,
    Role,
)
from ..manager import (
    admission,
    backoff,
    bans,
    book,
    eviction,
    groups,
    partition,
    rotation,
    score,
)
from ..manager.book import BookEntry
from ..manager.score import PeerFacts
from ..wire import EncodeError, Frame, Handshake
from ..wire.jsonform import frame_from_json, frame_to_json
from ..wire.registry import PrivacyFeature
from . import scenario, transport_vectors
from .codec import _handshake as codec_handshake
from .results import FAILED, PASSED, SKIPPED, CaseResult, outcome_for_failure
from .vectorfiles import stale, write_rendered

Json = dict[str, Any]

SCHEMA = "decision.schema.json"
VERSION = 1
VECTOR_DIR = Path("conformance") / "vectors"
PATTERN = "decision-*.json"
TIMEOUT = 10.0  # seconds the runner waits for each response by default
MAX_LINE = 1 << 20  # a response line longer than this is not an answer, it is a runaway

_PEER_FIELDS = tuple(f.name for f in fields(Handshake))  # spec/wire.md section 5, in order
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")  # the one decimal form of a u64


# The reference's decisions, one function per kind: the case's input in, the output out.


def _count(given: Json, key: str) -> int:
    value = given[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
    return value


def _u64(value: object) -> int:
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise ValueError(f"a u64 must be a string of decimal digits, got {value!r}")
    return int(value)


def _admit_inbound(given: Json) -> Json:
    reason = admission.inbound_admission(
        _count(given, "open_inbound"), _count(given, "max_inbound_connections")
    )
    return {"admit": True} if reason is None else {"admit": False, "reason": reason.label}


def _open_outbound(given: Json) -> Json:
    allowed = admission.may_open_outbound(
        _count(given, "open_outbound"), _count(given, "max_outbound_connections")
    )
    return {"allowed": allowed}


def _handshake(given: Json) -> Json:
    local = LocalHandshake(
        version=_count(given, "version"),
        min_compatible_version=_count(given, "min_compatible_version"),
        features=_count(given, "features"),
        privacy_features=_count(given, "privacy_features"),
        requires_encryption=_flag(given, "requires_encryption")
        if "requires_encryption" in given
        else False,
    )
    peer = frame_from_json({**given["peer"], "type": "Handshake"}).message
    assert isinstance(peer, Handshake)
    own_nonces = {_u64(nonce) for nonce in given["own_nonces"]}
    # This connection's own nonce and timestamp do not enter the judgement of the peer's.
    protocol = HandshakeProtocol(Role(given["role"]), local, 0, 0, own_nonces)
    if protocol.role is Role.INITIATOR:
        protocol.start()
    outcome = protocol.receive(peer)
    if isinstance(outcome, Accepted):
        n = outcome.negotiated
        return {
            "accepted": True,
            "version": n.version,
            "features": n.features,
            "privacy_features": n.privacy_features,
        }
    return {"accepted": False, "reason": outcome.reason.label}


# The connection manager's rules (spec/manager.md): inputs parsed strictly, so that a case
# with a wrong type is an error, never a silent default.


def _number(given: Json, key: str) -> float:
    value = given[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    return float(value)


def _maybe_number(given: Json, key: str) -> float | None:
    return None if given[key] is None else _number(given, key)


def _text(given: Json, key: str) -> str:
    value = given[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {value!r}")
    return value


def _flag(given: Json, key: str) -> bool:
    value = given[key]
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


def _list(given: Json, key: str) -> list[Any]:
    value = given[key]
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list, got {value!r}")
    return value


def _texts(given: Json, key: str) -> list[str]:
    found = _list(given, key)
    for value in found:
        if not isinstance(value, str):
            raise ValueError(f"{key} must hold strings, got {value!r}")
    return found


def _key(given: Json) -> bytes:
    text = _text(given, "key")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ValueError(f"key must be 32 bytes in lowercase hex, got {text!r}")
    return bytes.fromhex(text)


def _facts(given: Json) -> PeerFacts:
    features = given["features"]
    return PeerFacts(
        peer=_count(given, "peer"),
        ip=_text(given, "ip"),
        opened_at=_number(given, "opened_at"),
        established_at=_maybe_number(given, "established_at"),
        min_rtt=_maybe_number(given, "min_rtt"),
        features=None if features is None else _count(given, "features"),
        misbehaviour=_count(given, "misbehaviour"),
        persistent=_flag(given, "persistent"),
    )


def _entry(given: Json) -> BookEntry:
    source = _text(given, "source")
    if source not in book.SOURCES:
        raise ValueError(f"source must be one of {', '.join(book.SOURCES)}, got {source!r}")
    return BookEntry(
        _text(given, "host"),
        _count(given, "port"),
        source,
        _count(given, "failures"),
        _number(given, "next_attempt"),
    )


_TYPES = ("outbound", "persistent", "inbound", "temporary")


def _connections(given: Json) -> list[Json]:
    found = _list(given, "connections")
    for connection in found:
        _text(connection, "ip")
        if connection["type"] not in _TYPES:
            raise ValueError(f"type must be one of {', '.join(_TYPES)}, got {connection['type']}")
    return found


def _address_group(given: Json) -> Json:
    group = groups.address_group(_text(given, "ip"))
    return {"group": group, "hash": str(groups.keyed_hash(_key(given), group))}


def _score(given: Json) -> Json:
    return {"score": score.score(_facts(given["peer"]), _number(given, "now"))}


def _evict(given: Json) -> Json:
    candidates = [_facts(item) for item in _list(given, "candidates")]
    return {"evict": eviction.choose_eviction(candidates, _number(given, "now"), _key(given))}


def _misbehaviour(given: Json) -> Json:
    records = bans.MisbehaviourRecords()
    duration = _number(given, "ban_duration")
    outcomes: list[Json] = []
    for report in _list(given, "reports"):
        ip, wall = _text(report, "ip"), _number(report, "wall")
        banned = records.add(ip, _text(report, "requirement"), wall, duration)
        until = wall + duration if banned else None
        outcomes.append({"points": records.points(ip), "banned_until": until})
    return {"reports": outcomes}


def _ban_expiry(given: Json) -> Json:
    found = bans.BanList()
    for item in _list(given, "bans"):
        found.ban(_text(item, "address"), _number(item, "until"), _text(item, "requirement"))
    wall = _number(given, "wall")
    banned = [ban.address for ban in found.bans() if found.is_banned(ban.address, wall)]
    expired = [ban.address for ban in found.expire(wall)]
    return {"banned": banned, "expired": expired, "next_expiry": found.next_expiry()}


def _backoff(given: Json) -> Json:
    failures = _count(given, "failures")
    seed = bool(given.get("seed", False))  # absent: not a seed node
    if backoff.forgotten(failures, _flag(given, "persistent"), seed):
        return {"removed": True}
    delay = backoff.reconnect_delay(
        failures,
        _number(given, "reconnect_interval"),
        _number(given, "reconnect_max_interval"),
        _u64(given["u64"]),
    )
    return {"removed": False, "delay": delay}


def _own(given: Json) -> set[tuple[str, int]]:
    return {(_text(item, "host"), _count(item, "port")) for item in _list(given, "own")}


def _banned(given: Json) -> Callable[[str], bool]:
    return set(_texts(given, "banned")).__contains__


def _select_outbound(given: Json) -> Json:
    """Dials as long as the limits allow and an entry is eligible: the order of the dials
    shows the order of section 7, each dial taking its group and its IP address."""
    connections = list(_connections(given))  # a copy: the dials are added to it
    entries = [_entry(item) for item in _list(given, "entries")]
    now, key, own, banned = _number(given, "now"), _key(given), _own(given), _banned(given)
    excluded = {groups.address_group(ip) for ip in _texts(given, "rotated")}
    max_outbound = _count(given, "max_outbound_connections")
    max_total = _count(given, "max_total_connections")
    dials: list[str] = []
    while book.may_dial_outbound(
        sum(c["type"] == "outbound" for c in connections),
        len(connections),
        max_outbound,
        max_total,
    ):
        entry = book.choose_outbound(
            entries,
            now=now,
            key=key,
            own=own,
            connected_ips={c["ip"] for c in connections},
            used_groups={
                groups.address_group(c["ip"])
                for c in connections
                if c["type"] in ("outbound", "persistent")
            },
            excluded_groups=excluded,
            banned=banned,
        )
        if entry is None:
            break
        dials.append(entry.text)
        connections.append({"ip": entry.host, "type": "outbound"})
    return {"dials": dials}


def _rotate(given: Json) -> Json:
    outbound = [_facts(item) for item in _list(given, "outbound")]
    chosen = rotation.choose_rotation(
        outbound, _count(given, "max_outbound_connections"), _number(given, "now")
    )
    return {"rotate": sorted(chosen)}


def _partition(given: Json) -> Json:
    connections = _connections(given)
    established = [
        c["ip"]
        for c in connections
        if c["type"] in ("outbound", "persistent") and _flag(c, "established")
    ]
    now = _number(given, "now")
    if not partition.partitioned(
        established,
        _maybe_number(given, "last_established_at"),
        _number(given, "started_at"),
        now,
        _number(given, "partition_timeout"),
    ):
        return {"partitioned": False, "probes": []}
    probes = partition.choose_probes(
        [_entry(item) for item in _list(given, "entries")],
        now=now,
        key=_key(given),
        own=_own(given),
        connected_ips={c["ip"] for c in connections},
        connected_groups={groups.address_group(c["ip"]) for c in connections},
        banned=_banned(given),
        free_slots=partition.probe_slots(
            sum(c["type"] == "temporary" for c in connections),
            len(connections),
            _count(given, "max_temporary_connections"),
            _count(given, "max_total_connections"),
        ),
    )
    return {"partitioned": True, "probes": [entry.text for entry in probes]}


# Every kind the reference decides; a new kind is one more entry (and its cases and schema).
DECISIONS: dict[str, Callable[[Json], Json]] = {
    "admit_inbound": _admit_inbound,
    "open_outbound": _open_outbound,
    "handshake": _handshake,
    "address_group": _address_group,
    "score": _score,
    "evict": _evict,
    "misbehaviour": _misbehaviour,
    "ban_expiry": _ban_expiry,
    "backoff": _backoff,
    "select_outbound": _select_outbound,
    "rotate": _rotate,
    "partition": _partition,
    "scenario": scenario.decide_scenario,
    **transport_vectors.DECISIONS,
}


def decide(request: Json) -> Json:
    """The reference adapter's response to one request."""
    tc_id = request.get("tcId")
    kind = request.get("decision")
    judge = DECISIONS.get(kind) if isinstance(kind, str) else None
    if judge is None:
        return {"tcId": tc_id, "unsupported": True}
    try:
        return {"tcId": tc_id, "output": judge(request["input"])}
    except (KeyError, TypeError, ValueError, EncodeError) as exc:
        return {"tcId": tc_id, "error": f"bad input for {kind}: {exc}"}


def adapter_main(stdin: TextIO, stdout: TextIO) -> int:
    """The reference adapter: one response line per request line, until stdin closes."""
    for line in stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError:
            request = None
        if isinstance(request, dict):
            response = decide(request)
        else:
            response = {"tcId": None, "error": "the request is not a JSON object"}
        stdout.write(json.dumps(response) + "\n")
        stdout.flush()
    return 0


# The cases: (group name, kind, group comment, [(case comment, requirement IDs, input)]).

Case = tuple[str, list[str], Json]
Cases = list[tuple[str, str, str, list[Case]]]


def _inbound(open_inbound: int, limit: int) -> Json:
    return {"open_inbound": open_inbound, "max_inbound_connections": limit}


def _outbound(open_outbound: int, limit: int) -> Json:
    return {"open_outbound": open_outbound, "max_outbound_connections": limit}


def _admission_cases() -> Cases:
    lim2 = ["LIM-16"]
    lim1 = ["LIM-13"]
    inbound: list[Case] = [
        ("none open, default limit 125", lim2, _inbound(0, 125)),
        ("124 open of 125: the last slot", lim2, _inbound(124, 125)),
        ("125 open of 125: full", lim2, _inbound(125, 125)),
        ("more open than the limit", lim2, _inbound(126, 125)),
        ("limit 0: no inbound connection at all", lim2, _inbound(0, 0)),
        ("limit 1, none open", lim2, _inbound(0, 1)),
        ("limit 1, one open", lim2, _inbound(1, 1)),
        ("99999 open of 100000, the highest limit", lim2, _inbound(99_999, 100_000)),
        ("100000 open of 100000", lim2, _inbound(100_000, 100_000)),
    ]
    outbound: list[Case] = [
        ("none open, default limit 8", lim1, _outbound(0, 8)),
        ("7 open of 8: the last slot", lim1, _outbound(7, 8)),
        ("8 open of 8: full", lim1, _outbound(8, 8)),
        ("more open than the limit", lim1, _outbound(9, 8)),
        ("limit 0: no outbound connection at all", lim1, _outbound(0, 0)),
        ("9999 open of 10000, the highest limit", lim1, _outbound(9_999, 10_000)),
        ("10000 open of 10000", lim1, _outbound(10_000, 10_000)),
    ]
    return [
        (
            "admit_inbound",
            "admit_inbound",
            "An inbound connection was just accepted while open_inbound others count: admit it "
            "outright, or, at the limit, go on to the eviction rule, refusing it with "
            "connection_limit when that rule finds no peer to evict (rule 2 of LIM-16).",
            inbound,
        ),
        (
            "open_outbound",
            "open_outbound",
            "May the node dial a connection while open_outbound of its kind count (LIM-13)?",
            outbound,
        ),
    ]


# Own nonces above 2**53, where a parser that reads numbers as doubles would lose bits.
_OWN = 0x0123_4567_89AB_CDEE  # one below the nonce of the codec vectors' handshake
_NEAR = 1 << 60  # 2**60 and 2**60 + 1 are the same double: only exact integers tell them apart
_MAX = 2**64 - 1


def _hs(
    role: str,
    peer: dict[str, Any] | None = None,
    *,
    version: int = PROTOCOL_VERSION,
    min_version: int = MIN_COMPATIBLE_VERSION,
    features: int = 0x01,
    privacy: int = 0,
    own: Sequence[int] = (_OWN,),
    requires_encryption: bool | None = None,
) -> Json:
    """A handshake input: this node's side, and the peer's handshake, the codec vectors' origin
    handshake with the fields of ``peer`` changed."""
    frame = frame_to_json(Frame(codec_handshake(**(peer or {}))))
    return {
        "role": role,
        "version": version,
        "min_compatible_version": min_version,
        "features": features,
        "privacy_features": privacy,
        "own_nonces": [str(nonce) for nonce in own],
        "peer": {name: frame[name] for name in _PEER_FIELDS},
    } | ({} if requires_encryption is None else {"requires_encryption": requires_encryption})


def _encryption_cases() -> list[Case]:
    offer = int(PrivacyFeature.EncryptedTransport)
    cases: list[Case] = []
    for role in ("responder", "initiator"):
        cases += [
            (
                f"{role}: required, and the peer does not offer it: encryption_required",
                ["PRIV-12"],
                _hs(role, {"privacy_features": 0x7F}, privacy=offer, requires_encryption=True),
            ),
            (
                f"{role}: required, and the peer offers it: accepted, the bit negotiated",
                ["PRIV-12", "HS-16"],
                _hs(role, {"privacy_features": offer}, privacy=offer, requires_encryption=True),
            ),
            (
                f"{role}: not required: a peer that does not offer it is accepted",
                ["PRIV-12"],
                _hs(role, {"privacy_features": 0}, privacy=offer, requires_encryption=False),
            ),
            (
                f"{role}: required, and the version fails too: the version's reason first",
                ["PRIV-12"],
                _hs(role, {"version": 0}, privacy=offer, requires_encryption=True),
            ),
        ]
    return cases


def _handshake_cases() -> Cases:
    v = ["HS-10", "HS-15"]
    version: list[Case] = [
        ("equal versions, responder", v, _hs("responder")),
        ("equal versions, initiator", v, _hs("initiator")),
        ("peer version higher, responder", v, _hs("responder", {"version": 2})),
        ("peer version higher, initiator", v, _hs("initiator", {"version": 2})),
        (
            "peer version 0xFFFFFFFF, own 3",
            v,
            _hs("responder", {"version": 0xFFFF_FFFF}, version=3, min_version=2),
        ),
        (
            "peer version lower but compatible (own 3, minimum 2, peer 2), responder",
            v,
            _hs("responder", {"version": 2}, version=3, min_version=2),
        ),
        (
            "peer version lower but compatible (own 3, minimum 2, peer 2), initiator",
            v,
            _hs("initiator", {"version": 2}, version=3, min_version=2),
        ),
        (
            "peer version below the minimum (own 3, minimum 2, peer 1), responder",
            ["HS-10"],
            _hs("responder", {"version": 1}, version=3, min_version=2),
        ),
        (
            "peer version below the minimum (own 3, minimum 2, peer 1), initiator",
            ["HS-10"],
            _hs("initiator", {"version": 1}, version=3, min_version=2),
        ),
        ("peer version 0", ["HS-10"], _hs("responder", {"version": 0})),
    ]
    hs12 = ["HS-12"]
    self_connection: list[Case] = [
        ("peer nonce is own, responder", hs12, _hs("responder", {"nonce": _OWN})),
        ("peer nonce is own, initiator", hs12, _hs("initiator", {"nonce": _OWN})),
        (
            "peer nonce is one of several own outstanding nonces",
            hs12,
            _hs("responder", {"nonce": _NEAR}, own=(5, _NEAR, _OWN, _MAX)),
        ),
        ("peer nonce 0 is own", hs12, _hs("initiator", {"nonce": 0}, own=(0,))),
        ("peer nonce 2**64-1 is own", hs12, _hs("responder", {"nonce": _MAX}, own=(_MAX,))),
        (
            "peer nonce 2**60+1, own 2**60: the same as doubles, not as integers",
            hs12,
            _hs("responder", {"nonce": _NEAR + 1}, own=(_NEAR,)),
        ),
        ("no outstanding nonces", hs12, _hs("initiator", {"nonce": _OWN}, own=())),
    ]
    both = {"version": 1, "nonce": _OWN}
    order: list[Case] = [
        (
            "version below the minimum and nonce own, initiator: nonce checked first",
            ["HS-11", "HS-12"],
            _hs("initiator", both, version=3, min_version=2),
        ),
        (
            "version below the minimum and nonce own, responder: version checked first",
            ["HS-11", "HS-10"],
            _hs("responder", both, version=3, min_version=2),
        ),
    ]
    hs16 = ["HS-16"]
    encryption = _encryption_cases()
    negotiation: list[Case] = [
        (
            "features: unassigned bits the peer sets are not negotiated",
            hs16,
            _hs("responder", {"features": 0xFFFF_FFC5}, features=0x3F),
        ),
        (
            "features: an unassigned bit both set is negotiated like any other",
            hs16,
            _hs("initiator", {"features": 0x8000_0003}, features=0x8000_0001),
        ),
        (
            "peer features and privacy features zero",
            hs16,
            _hs("responder", {"features": 0, "privacy_features": 0}, features=0x3F, privacy=0x7F),
        ),
        (
            "own features and privacy features zero",
            hs16,
            _hs("initiator", {"features": 0x3F, "privacy_features": 0x7F}, features=0, privacy=0),
        ),
        (
            "privacy: unassigned bits the peer sets are not negotiated",
            hs16,
            _hs("responder", {"privacy_features": 0xFFFF_FF80}, privacy=0x7F),
        ),
        (
            "privacy 0x41 on both sides (the origin's Dandelion): two flags, both negotiated",
            hs16,
            _hs("responder", {"privacy_features": 0x41}, privacy=0x41),
        ),
        (
            "privacy 0x41 from the peer, own 0x01: TransactionObfuscation only",
            hs16,
            _hs("initiator", {"privacy_features": 0x41}, privacy=0x01),
        ),
        (
            "privacy 0x41 from the peer, own 0x40: I2P only",
            hs16,
            _hs("responder", {"privacy_features": 0x41}, privacy=0x40),
        ),
    ]
    return [
        (
            "version",
            "handshake",
            "The version check (HS-10) and the negotiated version, the lower of the two (HS-15).",
            version,
        ),
        (
            "self_connection",
            "handshake",
            "The peer's nonce against this node's own outstanding nonces (HS-12).",
            self_connection,
        ),
        (
            "check_order",
            "handshake",
            "Both checks fail: the first in the role's order (table 3.1) gives the reason (HS-11).",
            order,
        ),
        (
            "negotiation",
            "handshake",
            "Features and privacy features: a bitwise AND, every bit on its own (HS-16).",
            negotiation,
        ),
        (
            "encryption",
            "handshake",
            "A node whose privacy level requires encryption (requires_encryption) refuses a "
            "peer that does not set EncryptedTransport (0x80), after the checks of table 3.1 "
            "(PRIV-12).",
            encryption,
        ),
    ]


# Cases for the manager's rules (spec/manager.md). Times are doubles (monotonic seconds, or Unix
# seconds for bans); the inputs are built here and every expected output is the reference's.

_KEY = bytes(range(32))  # the node's key of section 2, as the cases give it
_OTHER_KEY = bytes(range(32, 64))
_NOW = 100_000.0  # monotonic seconds
_WALL = 1_700_000_000.0  # Unix seconds
_DAY = 86_400.0


def _ranked_groups(key: bytes = _KEY) -> list[int]:
    """The second octets N of the groups 10.N.0.0/16, by H(group) under ``key``, highest
    first: cases pick groups by their rank, never by luck."""
    return sorted(range(256), key=lambda n: -groups.keyed_hash(key, f"10.{n}.0.0/16"))


def _fact(
    peer: int,
    ip: str,
    opened_at: float,
    *,
    established_at: float | None = None,
    min_rtt: float | None = None,
    features: int | None = None,
    misbehaviour: int = 0,
    persistent: bool = False,
) -> Json:
    return {
        "peer": peer,
        "ip": ip,
        "opened_at": opened_at,
        "established_at": established_at,
        "min_rtt": min_rtt,
        "features": features,
        "misbehaviour": misbehaviour,
        "persistent": persistent,
    }


def _established(peer: int, ip: str, opened_at: float, **more: Any) -> Json:
    """A peer whose handshake completed one second after it was accepted."""
    return _fact(peer, ip, opened_at, established_at=opened_at + 1.0, **more)


def _group_cases() -> Cases:
    lim = ["LIM-10", "LIM-11"]

    def at(ip: str, key: bytes = _KEY) -> Json:
        return {"ip": ip, "key": key.hex()}

    ipv4: list[Case] = [
        ("IPv4: the /16", lim, at("203.0.113.7")),
        ("IPv4: another address of the same /16", lim, at("203.0.255.254")),
        ("IPv4: the next /16 is another group", lim, at("203.1.113.7")),
        ("IPv4: 0.0.0.0", lim, at("0.0.0.0")),
        ("IPv4: 255.255.255.255", lim, at("255.255.255.255")),
        ("IPv4 loopback 127.1.0.1", lim, at("127.1.0.1")),
        ("IPv4 loopback 127.2.0.1: another group than 127.1.0.1", lim, at("127.2.0.1")),
        ("IPv4 loopback 127.0.0.1", lim, at("127.0.0.1")),
        ("the same group under another key: another hash", lim, at("203.0.113.7", _OTHER_KEY)),
    ]
    ipv6: list[Case] = [
        ("IPv6: the /32", lim, at("2001:db8::1")),
        ("IPv6: another address of the same /32", lim, at("2001:db8:ffff:1::2")),
        ("IPv6: the next /32 is another group", lim, at("2001:db9::1")),
        ("IPv6 written in capitals: the group is in lowercase", lim, at("2001:DB8:0:0:0:0:0:1")),
        ("IPv6: hex words without leading zeros", lim, at("2a00:1450:4001:80b::200e")),
        ("IPv6: a second word of zero is written 0", lim, at("2001:0:abcd::1")),
        ("IPv6 loopback ::1", lim, at("::1")),
        ("IPv6 link-local", lim, at("fe80::1")),
        ("IPv6: the highest address", lim, at("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
        ("IPv4-compatible ::1.2.3.4 is IPv6, not IPv4-mapped", lim, at("::1.2.3.4")),
        ("NAT64 64:ff9b::1.2.3.4 is IPv6", lim, at("64:ff9b::1.2.3.4")),
    ]
    mapped: list[Case] = [
        ("IPv4-mapped ::ffff:203.0.113.7: the /16 of its IPv4", lim, at("::ffff:203.0.113.7")),
        ("IPv4-mapped in hex words ::ffff:cb00:7107", lim, at("::ffff:cb00:7107")),
        ("IPv4-mapped loopback ::ffff:127.2.0.1", lim, at("::ffff:127.2.0.1")),
    ]
    return [
        (
            "ipv4",
            "address_group",
            "The group of an IPv4 address is its /16, loopback included, and its hash H(group) "
            "under the key (LIM-10, LIM-11).",
            ipv4,
        ),
        (
            "ipv6",
            "address_group",
            "The group of an IPv6 address is its /32, written as its first two words in "
            "lowercase hex and ::/32 (LIM-10, LIM-11).",
            ipv6,
        ),
        (
            "ipv4_mapped",
            "address_group",
            "An IPv4-mapped IPv6 address is in the group of its IPv4 address (LIM-10, LIM-11).",
            mapped,
        ),
    ]


def _score_cases() -> Cases:
    lim = ["LIM-15"]

    def peer(**more: Any) -> Json:
        return {"now": _NOW, "peer": _fact(1, "10.0.0.1", _NOW - 7200.0, **more)}

    def up(seconds: float, **more: Any) -> Json:
        return peer(established_at=_NOW - seconds, **more)

    parts: list[Case] = [
        ("handshaking, nothing measured: 0", lim, peer()),
        ("handshake completed just now: 10", lim, up(0.0, features=0)),
        ("59.999 s after the handshake: no whole minute yet", lim, up(59.999, features=0)),
        ("exactly 60 s after the handshake: one minute", lim, up(60.0, features=0)),
        ("119.5 s after the handshake: one minute", lim, up(119.5, features=0)),
        ("29 minutes 59 s: 29 points of uptime", lim, up(1799.0, features=0)),
        ("30 minutes: 30 points of uptime, the most", lim, up(1800.0, features=0)),
        ("5 hours: still 30 points of uptime", lim, up(18_000.0, features=0)),
        ("round-trip time 0: below 1 s", lim, up(0.0, features=0, min_rtt=0.0)),
        ("round-trip time 0.999 s: below 1 s", lim, up(0.0, features=0, min_rtt=0.999)),
        ("round-trip time exactly 1 s: below 2 s", lim, up(0.0, features=0, min_rtt=1.0)),
        ("round-trip time 1.999 s: below 2 s", lim, up(0.0, features=0, min_rtt=1.999)),
        ("round-trip time exactly 2 s: 2 s or more", lim, up(0.0, features=0, min_rtt=2.0)),
        ("round-trip time 30 s: 2 s or more", lim, up(0.0, features=0, min_rtt=30.0)),
        ("one feature bit", lim, up(0.0, features=0x01)),
        ("every assigned feature bit (0x3f)", lim, up(0.0, features=0x3F)),
        ("unassigned feature bits count nothing", lim, up(0.0, features=0xFFFF_FFC0)),
        ("all 32 feature bits: the assigned ones count", lim, up(0.0, features=0xFFFF_FFFF)),
        ("misbehaviour points are subtracted", lim, up(600.0, features=0x03, misbehaviour=20)),
        ("a score can be negative", lim, peer(misbehaviour=50)),
        (
            "every part: 10 + 30 (rtt 0.5 s) + 10 (10 min) + 15 (3 bits) - 20",
            lim,
            up(600.0, min_rtt=0.5, features=0x0B, misbehaviour=20),
        ),
        (
            "uptime from fractional times: 180.25 s is 3 minutes",
            lim,
            {
                "now": 1234.75,
                "peer": _fact(1, "10.0.0.1", 1000.0, established_at=1054.5, features=0),
            },
        ),
    ]
    return [
        (
            "parts",
            "score",
            "A peer's score at `now`: the sum of the parts of the table of section 4 (LIM-15).",
            parts,
        ),
    ]


def _stage(
    subjects: list[Json],
    *,
    key: bytes = _KEY,
    group_guards: bool = True,
    rtt_guards: bool = True,
    score_guards: bool = True,
    veterans: int | None = None,
) -> Json:
    """An eviction input where guards take the protection of steps 1 to 4, each step's full
    count, so that the ``subjects`` (peers 1, 2, ... accepted late) meet only the steps a case
    is about. Guards are peers 101 and up, accepted long before ``_NOW``:

    - group guards (step 1): alone in the 4 groups of the highest H;
    - round-trip guards (step 2): 8 peers at 1 ms, in the group of the lowest H;
    - score guards (step 3): 4 peers scoring 70 (handshake, 30 minutes, every feature), in the
      group of the second lowest H; a subject scoring 70 too is younger, so loses the tie;
    - veterans (step 4): as many handshaking peers as the subjects that reach step 4 (by
      default all of them), older than all subjects, so step 4 protects exactly the veterans.
    """
    ranked = _ranked_groups(key)
    guards: list[Json] = []

    def guard(ip: str, **more: Any) -> None:
        guards.append(_fact(101 + len(guards), ip, 10.0 + len(guards), **more))

    if group_guards:
        for rank in range(4):
            guard(f"10.{ranked[rank]}.0.1")
    for n in range(8 if rtt_guards else 0):
        guard(f"10.{ranked[-1]}.0.{n + 1}", established_at=50.0, min_rtt=0.001, features=0)
    for n in range(4 if score_guards else 0):
        guard(f"10.{ranked[-2]}.0.{n + 1}", established_at=50.0, features=0x3F)
    for n in range(len(subjects) if veterans is None else veterans):
        guard(f"10.{ranked[-3]}.0.{n + 1}")
    return {"key": key.hex(), "now": _NOW, "candidates": guards + subjects}


def _subject(peer: int, ip: str, opened_at: float, **more: Any) -> Json:
    """A subject established one second after it was accepted, with no feature in common."""
    more.setdefault("features", 0)
    return _established(peer, ip, opened_at, **more)


def _flipping_groups() -> tuple[int, int]:
    """Two ranks of middle groups whose H order under _OTHER_KEY is the reverse of _KEY's."""
    ranked, other = _ranked_groups(), _ranked_groups(_OTHER_KEY)
    middle = [n for n in ranked[10:-10] if n in other[10:-10]]
    for a in middle:
        for b in middle:
            if ranked.index(a) < ranked.index(b) and other.index(a) > other.index(b):
                return a, b
    raise AssertionError("no two groups change order between the keys")


def _evict_cases() -> Cases:
    lim = ["LIM-17"]
    hashed = ["LIM-17", "LIM-11"]
    scored = ["LIM-17", "LIM-15"]
    ranked = _ranked_groups()

    def mid(rank: int, host: int = 1) -> str:
        """An address in the group of the given rank by H, away from the guards' groups."""
        return f"10.{ranked[10 + rank]}.0.{host}"

    t = 99_000.0  # subjects are accepted from here on
    sizes: list[Case] = [
        ("no candidates: none evicted", lim, {"key": _KEY.hex(), "now": _NOW, "candidates": []}),
        (
            "one candidate: protected as the oldest of its group (step 1)",
            lim,
            {"key": _KEY.hex(), "now": _NOW, "candidates": [_subject(1, mid(0), t)]},
        ),
        (
            "four candidates in four groups: each the oldest of its group (step 1)",
            lim,
            {
                "key": _KEY.hex(),
                "now": _NOW,
                "candidates": [_subject(n + 1, mid(n), t + n) for n in range(4)],
            },
        ),
        ("16 candidates: steps 1 to 3 protect 4, 8 and 4, none is left", lim, _stage([])),
        (
            "17 candidates: the one left after step 4 (half of 1 is 0) is evicted; it is 5th by "
            "H(group), 9th by round-trip time and 5th by score",
            hashed,
            _stage(
                [_subject(1, f"10.{ranked[4]}.0.1", t, min_rtt=0.5, features=0x03)],
                veterans=0,
            ),
        ),
        (
            "18 candidates: two left after step 3, step 4 protects the older, the newer goes",
            lim,
            _stage([_subject(1, mid(0, 1), t), _subject(2, mid(0, 2), t + 1)], veterans=0),
        ),
    ]
    step1: list[Case] = [
        (
            "step 1 protects the oldest candidate of a group, not a newer one",
            hashed,
            _stage(
                [
                    _subject(1, mid(0, 1), t),
                    _subject(2, mid(0, 2), t + 1),
                    _subject(3, mid(1), t + 2),
                    _subject(4, mid(2), t + 3),
                    _subject(5, mid(3), t + 4),
                ],
                group_guards=False,
                veterans=1,
            ),
        ),
        (
            "step 1 protects in the 4 groups of the highest H(group) only",
            hashed,
            _stage(
                [
                    _subject(1, mid(4), t),
                    _subject(2, mid(0), t + 1),
                    _subject(3, mid(1), t + 2),
                    _subject(4, mid(2), t + 3),
                    _subject(5, mid(3), t + 4),
                ],
                group_guards=False,
                veterans=1,
            ),
        ),
    ]
    step2: list[Case] = [
        (
            "step 2 protects the 8 lowest round-trip times; the 9th is evicted",
            lim,
            _stage(
                [
                    _subject(n, mid(0, n), t + n, min_rtt=n / 10)
                    for n in (3, 1, 9, 4, 6, 2, 8, 5, 7)
                ],
                rtt_guards=False,
                veterans=1,
            ),
        ),
        (
            "step 2 does not protect a candidate without a measurement",
            lim,
            _stage(
                [_subject(n, mid(0, n), t + n, min_rtt=n / 10) for n in range(1, 9)]
                + [_subject(9, mid(0, 9), t)],
                rtt_guards=False,
                veterans=1,
            ),
        ),
        (
            "step 2, equal round-trip times: the older protected, the newest evicted",
            lim,
            _stage(
                [_subject(n, mid(0, n), t + 9 - n, min_rtt=0.5) for n in range(1, 10)],
                rtt_guards=False,
                veterans=1,
            ),
        ),
        (
            "step 2, equal round-trip times and accept times: the lower peer numbers protected",
            lim,
            _stage(
                [_subject(n, mid(0, n), t, min_rtt=0.5) for n in (9, 8, 7, 6, 5, 4, 3, 2, 1)],
                rtt_guards=False,
                veterans=1,
            ),
        ),
    ]
    step3: list[Case] = [
        (
            "step 3 protects the 4 highest scores; the lowest of 5 is evicted",
            scored,
            _stage(
                [
                    _subject(1, mid(0, 1), t, features=0x03),
                    _subject(2, mid(0, 2), t + 1, features=0x3F),
                    _subject(3, mid(0, 3), t + 2, features=0x0F),
                    _subject(4, mid(0, 4), t + 3, features=0x1F),
                    _subject(5, mid(0, 5), t + 4, features=0x07),
                ],
                score_guards=False,
                veterans=1,
            ),
        ),
        (
            "step 3, equal scores: the older protected, the newest evicted",
            scored,
            _stage(
                [_subject(n, mid(0, n), t + 5 - n, features=0x07) for n in range(1, 6)],
                score_guards=False,
                veterans=1,
            ),
        ),
        (
            "step 3 counts misbehaviour: every feature but 40 points of misbehaviour scores least",
            scored,
            _stage(
                [
                    _subject(1, mid(0, 1), t + 4, features=0x3F, misbehaviour=40),
                    *(_subject(n, mid(0, n), t + n, features=0x03) for n in range(2, 6)),
                ],
                score_guards=False,
                veterans=1,
            ),
        ),
    ]
    # Scores 10 + 16 (uptime) + 5 * bits: the oldest subjects score least.
    step4: list[Case] = [
        (
            "step 4 protects half (5 // 2 = 2) of the rest, the oldest; then the lowest score goes",
            scored,
            _stage(
                [_subject(n, mid(0, n), t + n, features=(1 << n) - 1) for n in range(1, 6)],
                veterans=0,
            ),
        ),
        (
            "step 4 with 4 left protects 2, the oldest",
            scored,
            _stage(
                [_subject(n, mid(0, n), t + n, features=(1 << n) - 1) for n in range(1, 5)],
                veterans=0,
            ),
        ),
    ]
    step6: list[Case] = [
        (
            "step 6 evicts from the group with the most candidates, not the lowest score overall",
            scored,
            _stage(
                [
                    _subject(1, mid(0, 1), t, features=0x07),
                    _subject(2, mid(0, 2), t + 1, features=0x07),
                    _subject(3, mid(0, 3), t + 2, features=0x0F),
                    _subject(4, mid(1, 1), t + 3),
                    _subject(5, mid(1, 2), t + 4),
                ]
            ),
        ),
        (
            "step 6, equal counts: the group whose newest candidate was accepted last, though "
            "the other has the higher H(group) and the lower scores",
            scored,
            _stage(
                [
                    _subject(1, mid(1, 1), t, features=0x07),
                    _subject(2, mid(0, 1), t + 1),
                    _subject(3, mid(0, 2), t + 2),
                    _subject(4, mid(1, 2), t + 3, features=0x07),
                ]
            ),
        ),
        (
            "step 6, equal counts and newest accept times: the group of the higher H(group)",
            hashed,
            _stage(
                [
                    _subject(1, mid(1, 1), t, features=0x07),
                    _subject(2, mid(0, 1), t + 1),
                    _subject(3, mid(1, 2), t + 3, features=0x07),
                    _subject(4, mid(0, 2), t + 3),
                ]
            ),
        ),
        (
            "step 6 in the group: the lowest score, though it is the oldest",
            scored,
            _stage(
                [
                    _subject(1, mid(0, 1), t),
                    _subject(2, mid(0, 2), t + 1, features=0x01),
                    _subject(3, mid(0, 3), t + 2, features=0x01),
                ]
            ),
        ),
        (
            "step 6 in the group, equal lowest scores: the most recently accepted",
            scored,
            _stage(
                [
                    _subject(1, mid(0, 1), t + 2),
                    _subject(2, mid(0, 2), t + 3),
                    _subject(3, mid(0, 3), t + 1),
                    _subject(4, mid(0, 4), t + 4, features=0x01),
                ]
            ),
        ),
        (
            "step 6 in the group, equal scores and accept times: the lower peer number",
            scored,
            _stage(
                [
                    _subject(3, mid(0, 3), t + 2),
                    _subject(2, mid(0, 2), t + 2),
                    _subject(1, mid(0, 1), t, features=0x01),
                ]
            ),
        ),
        (
            "step 6 scores at now: 61 s of uptime is 1 point, 59 s none, so the older goes",
            scored,
            _stage(
                [
                    _fact(1, mid(0, 1), _NOW - 80.0, established_at=_NOW - 59.0, features=0),
                    _fact(2, mid(0, 2), _NOW - 70.0, established_at=_NOW - 61.0, features=0),
                ]
            ),
        ),
        (
            "step 6: a candidate still handshaking scores 0 and goes before established ones",
            scored,
            _stage(
                [
                    _subject(1, mid(0, 1), t),
                    _fact(2, mid(0, 2), t + 1),
                    _subject(3, mid(0, 3), t + 2),
                ]
            ),
        ),
    ]
    a, b = _flipping_groups()
    keyed = [
        _subject(1, f"10.{a}.0.1", t),
        _subject(2, f"10.{b}.0.1", t + 1),
        _subject(3, f"10.{a}.0.2", t + 3),
        _subject(4, f"10.{b}.0.2", t + 3),
    ]
    families: list[Case] = [
        (
            "IPv6 candidates in one /32 are one group",
            [*hashed, "LIM-10"],
            _stage(
                [
                    _subject(1, "2001:db8::1", t),
                    _subject(2, "2001:db8:ffff::1", t + 1),
                    _subject(3, mid(0), t + 5),
                ]
            ),
        ),
        (
            "an IPv4-mapped candidate is in the group of its IPv4 address",
            [*hashed, "LIM-10"],
            _stage(
                [
                    _subject(1, f"::ffff:{mid(0, 1)}", t),
                    _subject(2, mid(0, 2), t + 1),
                    _subject(3, "2001:db8::1", t + 5),
                ]
            ),
        ),
        (
            "step 6 group tie under the key of the cases: the higher H(group)",
            hashed,
            _stage(keyed),
        ),
        (
            "the same candidates under another key: another H(group), another group",
            hashed,
            _stage(keyed, key=_OTHER_KEY),
        ),
    ]
    honest = [
        _established(n, f"10.{ranked[20 + n]}.0.1", t + n, min_rtt=0.1 * n, features=0x03)
        for n in range(1, 11)
    ]
    attacker = [
        _established(10 + n, f"10.{ranked[n % 2]}.{n}.1", t + 100 + n, features=0x3F)
        for n in range(1, 21)
    ]
    attack: list[Case] = [
        (
            "an attacker with 20 addresses in the 2 groups of the highest H(group) and every "
            "feature, against 10 older honest peers in 10 groups: one of his is evicted",
            [*hashed, "LIM-15"],
            {"key": _KEY.hex(), "now": _NOW, "candidates": honest + attacker},
        ),
    ]
    return [
        (
            "sizes",
            "evict",
            "Candidates all protected, or one left: the counts 4, 8 and 4 of steps 1 to 3, the "
            "half of step 4, and step 5 (LIM-17).",
            sizes,
        ),
        ("step_1", "evict", "Step 1: the oldest of each of the 4 groups of highest H.", step1),
        ("step_2", "evict", "Step 2: the 8 lowest measured round-trip times.", step2),
        ("step_3", "evict", "Step 3: the 4 highest scores (LIM-15).", step3),
        ("step_4", "evict", "Step 4: half of the rest, rounded down, the oldest.", step4),
        ("step_6", "evict", "Step 6: the most represented group, then its weakest.", step6),
        ("groups", "evict", "Address families and the key in the choice of group.", families),
        ("attack", "evict", "Diversity against an attacker with many addresses.", attack),
    ]


def _reports(duration: float, *reports: tuple[str, str, float]) -> Json:
    """A misbehaviour input: (ip, requirement, seconds after _WALL) per report."""
    return {
        "ban_duration": duration,
        "reports": [
            {"ip": ip, "requirement": requirement, "wall": _WALL + after}
            for ip, requirement, after in reports
        ],
    }


def _misbehaviour_cases() -> Cases:
    ban1 = ["BAN-1"]
    a, b = "198.51.100.7", "2001:db8::7"
    decode = sorted(set(bans.POINTS) - {"WIRE-11", "HS-20"}, key=lambda r: int(r.split("-")[1]))
    points: list[Case] = [
        (
            "a frame that does not decode, for each requirement of an error code and WIRE-15: "
            "100 points, banned at once",
            ban1,
            _reports(_DAY, *((f"198.51.100.{n}", req, n) for n, req in enumerate(decode, 1))),
        ),
        (
            "a stream ended inside a frame (WIRE-11): 20 points each, banned at the 5th",
            ban1,
            _reports(_DAY, *((a, "WIRE-11", n * 10.0) for n in range(5))),
        ),
        (
            "an unexpected message (HS-20): 50 points each, banned at the 2nd",
            ban1,
            _reports(_DAY, (a, "HS-20", 0.0), (a, "HS-20", 1.0)),
        ),
        (
            "50 + 20 + 20 = 90 stays; another 20 passes 100 and bans",
            ban1,
            _reports(
                _DAY,
                (a, "HS-20", 0.0),
                (a, "WIRE-11", 1.0),
                (a, "WIRE-11", 2.0),
                (a, "WIRE-11", 3.0),
            ),
        ),
        (
            "a requirement the table does not name adds nothing",
            ban1,
            _reports(_DAY, (a, "WIRE-11", 0.0), (a, "KA-3", 1.0), (a, "CONN-31", 2.0)),
        ),
        (
            "each address has its own record, IPv6 as IPv4",
            ban1,
            _reports(
                _DAY, (a, "HS-20", 0.0), (b, "HS-20", 1.0), (b, "WIRE-11", 2.0), (a, "HS-20", 3.0)
            ),
        ),
        (
            "after a ban the address starts again from 0",
            ban1,
            _reports(_DAY, (a, "HS-20", 0.0), (a, "HS-20", 1.0), (a, "HS-20", 2.0)),
        ),
    ]
    forgetting: list[Case] = [
        (
            "a record whose last report is ban_duration old is forgotten",
            ban1,
            _reports(_DAY, (a, "HS-20", 0.0), (a, "HS-20", _DAY)),
        ),
        (
            "a record whose last report is just under ban_duration old is kept",
            ban1,
            _reports(_DAY, (a, "HS-20", 0.0), (a, "HS-20", _DAY - 0.5)),
        ),
        (
            "each report renews the record: reports less than ban_duration apart add up",
            ban1,
            _reports(60.0, *((a, "WIRE-11", n * 59.0) for n in range(5))),
        ),
        (
            "one address forgotten, another kept",
            ban1,
            _reports(
                600.0,
                (a, "HS-20", 0.0),
                (b, "HS-20", 300.0),
                (a, "HS-20", 650.0),
                (b, "HS-20", 700.0),
            ),
        ),
    ]
    return [
        (
            "points",
            "misbehaviour",
            "Points per address by the requirement broken, and the ban at BAN_THRESHOLD for "
            "ban_duration seconds (BAN-1; spec/manager.md section 6).",
            points,
        ),
        (
            "forgetting",
            "misbehaviour",
            "A record is forgotten when its last report is ban_duration seconds old (BAN-1).",
            forgetting,
        ),
    ]


def _bans(wall: float, *bans_: tuple[str, float]) -> Json:
    return {
        "wall": wall,
        "bans": [
            {"address": address, "until": until, "requirement": "HS-20"} for address, until in bans_
        ],
    }


def _ban_expiry_cases() -> Cases:
    ban5 = ["BAN-5"]
    until = _WALL + 0.5
    expiry: list[Case] = [
        ("no bans", ban5, _bans(_WALL)),
        ("just before its end: banned", ban5, _bans(until - 0.25, ("198.51.100.7", until))),
        ("at its end exactly: over and forgotten", ban5, _bans(until, ("198.51.100.7", until))),
        ("after its end: over and forgotten", ban5, _bans(until + 1.0, ("198.51.100.7", until))),
        (
            "some over, some not: the next end is the earliest left",
            ban5,
            _bans(
                _WALL + 100.0,
                ("198.51.100.9", _WALL + 300.0),
                ("2001:db8::1", _WALL + 50.0),
                ("198.51.100.7", _WALL + 100.0),
                ("203.0.113.1", _WALL + 200.0),
                ("10.0.0.1", _WALL + 99.0),
            ),
        ),
        (
            "every ban over: no next end",
            ban5,
            _bans(_WALL + 1000.0, ("198.51.100.7", _WALL), ("198.51.100.8", _WALL + 999.0)),
        ),
    ]
    return [
        (
            "expiry",
            "ban_expiry",
            "Which bans are over at `wall` (BAN-5): banned while wall < until, over and forgotten "
            "once wall reaches until.",
            expiry,
        ),
    ]


def _telling_draw(interval: float, failures: int, wrong: Callable[[float, int], float]) -> int:
    """A u64 whose delay differs from ``wrong(base, u64)``, a misreading of section 8 with
    ``base = interval * 2**(failures-1)`` under no cap, found by a fixed search."""
    base = interval * 2.0 ** (failures - 1)
    for n in range(1, 1_000_000):
        u64 = (n * 0x9E37_79B9_7F4A_7C15) % 2**64
        if backoff.reconnect_delay(failures, interval, math.inf, u64) != wrong(base, u64):
            return u64
    raise AssertionError("no draw tells the readings apart")


def _backoff_cases() -> Cases:
    reco4 = ["RECO-4"]
    both = ["RECO-4", "RECO-6"]
    top = 2**64 - 1
    unit = backoff.unit_draw

    def draw(
        failures: int,
        u64: int,
        interval: float = 30.0,
        *,
        persistent: bool = False,
        seed: bool = False,
        cap: float = 3600.0,
    ) -> Json:
        return {
            "failures": failures,
            "persistent": persistent,
            **({"seed": True} if seed else {}),
            "reconnect_interval": interval,
            "reconnect_max_interval": cap,
            "u64": str(u64),
        }

    draws: list[Case] = [
        ("u64 0: the factor 0.75", reco4, draw(1, 0)),
        ("u64 2**63: u = 0.5, the factor 1", reco4, draw(1, 2**63)),
        ("u64 2**64-1: u = 1 - 2**-53, the factor rounds to 1.25", reco4, draw(1, top)),
        ("u64 2047: its low 11 bits do not count, u = 0", reco4, draw(1, 2047)),
        ("u64 2048: u = 2**-53, too little to move the factor 0.75", reco4, draw(1, 2048)),
        ("u64 4096: u = 2**-52, the least u that moves the factor", reco4, draw(1, 4096)),
        ("u64 2**62 + 2047: u = 0.25 exactly", reco4, draw(1, 2**62 + 2047)),
        (
            "a draw where adding the factor up first matters (the order of section 8)",
            reco4,
            draw(3, _telling_draw(0.1, 3, lambda b, u64: b * 0.75 + b * 0.5 * unit(u64)), 0.1),
        ),
        (
            "a draw where u is not the u64 divided by 2**64 as a double",
            reco4,
            draw(1, _telling_draw(30.0, 1, lambda b, u64: b * (0.75 + 0.5 * (u64 / 2**64)))),
        ),
    ]
    growth: list[Case] = [
        ("failure 2: twice the interval", reco4, draw(2, 2**63)),
        ("failure 3: four times", reco4, draw(3, 2**63)),
        ("failure 4: eight times", reco4, draw(4, 0)),
        (
            "failure 4 with interval 0.1 s and cap 0.7 s: 0.8 capped",
            reco4,
            draw(4, top, interval=0.1, cap=0.7),
        ),
        ("interval 0.1 s, failure 3, u64 2**64-1", reco4, draw(3, top, interval=0.1)),
        ("persistent, failure 5: 16 times", both, draw(5, 2**63, persistent=True)),
        ("persistent, failure 7: 1920 s, under the cap", both, draw(7, 2**63, persistent=True)),
        ("persistent, failure 8: 3840 s, capped at 3600", both, draw(8, 0, persistent=True)),
        ("persistent, failure 1024: capped", both, draw(1024, top, persistent=True)),
        (
            "persistent, failure 1025: 2**1024 is infinite, capped",
            both,
            draw(1025, 0, persistent=True),
        ),
        ("persistent, failure 100000: capped", both, draw(100_000, 2**63, persistent=True)),
        ("the cap equal to the interval", reco4, draw(2, 2**63, interval=30.0, cap=30.0)),
    ]
    removal: list[Case] = [
        ("not persistent, 4 failures: kept, with its delay", both, draw(4, 2**63)),
        ("not persistent, 5 failures: removed from the book", both, draw(5, 2**63)),
        ("not persistent, 6 failures: removed", both, draw(6, 0)),
        ("persistent, 5 failures: kept", both, draw(5, 0, persistent=True)),
        ("a seed node, 5 failures: kept, with its delay", both, draw(5, 2**63, seed=True)),
        ("a seed node, 40 failures: kept, the delay capped", both, draw(40, 0, seed=True)),
    ]
    return [
        (
            "draw",
            "backoff",
            "delay(n) = min(reconnect_max_interval, reconnect_interval * 2^(n-1)) * (0.75 + 0.5 * "
            "u), u the top 53 bits of the u64 over 2^53, in double precision (RECO-4).",
            draws,
        ),
        ("growth", "backoff", "The doubling and its cap (RECO-4).", growth),
        (
            "removal",
            "backoff",
            "An entry leaves the book at MAX_FAILURES failures in a row unless it is persistent "
            "or a seed node (RECO-6).",
            removal,
        ),
    ]


def _book_entry(
    host: str, port: int = 9000, source: str = "seed", failures: int = 0, next_attempt: float = 0.0
) -> Json:
    return {
        "host": host,
        "port": port,
        "source": source,
        "failures": failures,
        "next_attempt": next_attempt,
    }


def _link(ip: str, kind: str = "outbound", established: bool = True) -> Json:
    return {"ip": ip, "type": kind, "established": established}


def _outbound_input(
    entries: list[Json],
    connections: Sequence[Json] = (),
    *,
    key: bytes = _KEY,
    own: Sequence[tuple[str, int]] = (),
    banned: Sequence[str] = (),
    rotated: Sequence[str] = (),
    max_outbound: int = 8,
    max_total: int = 133,
) -> Json:
    return {
        "key": key.hex(),
        "now": _NOW,
        "max_outbound_connections": max_outbound,
        "max_total_connections": max_total,
        "connections": [{"ip": c["ip"], "type": c["type"]} for c in connections],
        "own": [{"host": host, "port": port} for host, port in own],
        "banned": list(banned),
        "rotated": list(rotated),
        "entries": entries,
    }


def _address_hash(ip: str, key: bytes = _KEY, port: int = 9000) -> int:
    return groups.keyed_hash(key, BookEntry(ip, port, "seed").text)


def _select_outbound_cases() -> Cases:
    reco1 = ["RECO-1"]
    hashed = ["RECO-1", "LIM-11"]
    reco2 = ["RECO-2"]
    spread = [f"10.{n}.0.1" for n in range(1, 6)]  # five groups
    # Two addresses of one group and one of another, in this order by H(address): the first
    # dial takes the group of the first, so the third comes second.
    pair = sorted((f"10.200.0.{n}" for n in range(1, 60)), key=_address_hash)
    lone = next(
        ip
        for ip in (f"10.201.0.{n}" for n in range(1, 99))
        if _address_hash(ip) > _address_hash(pair[1])
    )
    flipped = next(
        (x, y)
        for x in spread
        for y in spread
        if _address_hash(x) < _address_hash(y)
        and _address_hash(x, _OTHER_KEY) > _address_hash(y, _OTHER_KEY)
    )
    order: list[Case] = [
        ("an empty book: no dial", reco1, _outbound_input([])),
        ("one eligible entry: dialled", reco1, _outbound_input([_book_entry("10.1.0.1")])),
        (
            "five entries in five groups, three slots free: the three lowest H(address)",
            hashed,
            _outbound_input(
                [_book_entry(ip) for ip in spread],
                [_link(f"10.{n}.9.9") for n in (7, 8, 9, 10, 11)],
            ),
        ),
        (
            "a group without an outbound connection first",
            reco1,
            _outbound_input(
                [_book_entry("10.1.0.1"), _book_entry("10.2.0.1", failures=3)], [_link("10.1.9.9")]
            ),
        ),
        (
            "a group with a persistent connection counts as taken",
            reco1,
            _outbound_input(
                [_book_entry("10.1.0.1"), _book_entry("10.2.0.1", failures=3)],
                [_link("10.1.9.9", "persistent")],
            ),
        ),
        (
            "the groups of inbound and temporary connections do not count as taken",
            reco1,
            _outbound_input(
                [
                    _book_entry("10.1.0.1", failures=2),
                    _book_entry("10.2.0.1", failures=1),
                    _book_entry("10.3.0.1", failures=3),
                ],
                [_link("10.1.9.9", "inbound"), _link("10.2.9.9", "temporary")],
            ),
        ),
        (
            "failures do not order entries: the lower H(address), however many",
            hashed,
            _outbound_input(
                [_book_entry(ip, failures=f) for ip, f in zip(spread, (2, 4, 0, 1, 3), strict=True)]
            ),
        ),
        (
            "equal groups: the lower H(address)",
            hashed,
            _outbound_input([_book_entry(flipped[1]), _book_entry(flipped[0])]),
        ),
        (
            "the same entries under another key: the other order",
            hashed,
            _outbound_input([_book_entry(flipped[1]), _book_entry(flipped[0])], key=_OTHER_KEY),
        ),
        (
            "each dial takes its group: the lowest H first, then the other group, then the rest",
            hashed,
            _outbound_input([_book_entry(pair[1]), _book_entry(lone), _book_entry(pair[0])]),
        ),
        (
            "IPv6 entries are written [IP]:PORT, an IPv4-mapped one in dotted form",
            [*hashed, "LIM-10"],
            _outbound_input(
                [
                    _book_entry("2001:db8::1"),
                    _book_entry("2001:db8::2", 8333),
                    _book_entry("2001:db9::1", failures=1),
                    _book_entry("::ffff:10.1.0.2"),
                ],
                [_link("10.1.0.1")],
            ),
        ),
    ]
    eligibility: list[Case] = [
        (
            "a listening address of the node is not dialled; its IP at another port is",
            reco2,
            _outbound_input(
                [_book_entry("10.1.0.1", 9000), _book_entry("10.1.0.1", 9001)],
                own=[("10.1.0.1", 9000)],
            ),
        ),
        (
            "the IP of an inbound connection is not dialled, at any port",
            reco2,
            _outbound_input(
                [_book_entry("10.1.0.1", 9000), _book_entry("10.2.0.1")],
                [_link("10.1.0.1", "inbound")],
            ),
        ),
        (
            "two ports of one IP: once one is dialled, the other is not",
            reco2,
            _outbound_input([_book_entry("10.1.0.1", 9000), _book_entry("10.1.0.1", 9001)]),
        ),
        (
            "a banned address is not dialled",
            ["BAN-4"],
            _outbound_input(
                [_book_entry("10.1.0.1"), _book_entry("10.2.0.1", failures=4)],
                banned=["10.1.0.1"],
            ),
        ),
        (
            "an entry whose next attempt is later is not dialled; one whose time is now is",
            reco1,
            _outbound_input(
                [
                    _book_entry("10.1.0.1", next_attempt=_NOW + 0.001),
                    _book_entry("10.2.0.1", failures=2, next_attempt=_NOW),
                ]
            ),
        ),
        (
            "the group of a rotated peer is not eligible",
            ["RECO-1", "PRIV-10"],
            _outbound_input(
                [_book_entry("10.1.0.1"), _book_entry("10.2.0.1", failures=4)],
                rotated=["10.1.7.7"],
            ),
        ),
    ]
    lim13, lim14 = ["LIM-13", "RECO-1"], ["LIM-14", "RECO-1"]
    five = [_book_entry(ip) for ip in spread]
    limits: list[Case] = [
        (
            "8 outbound of 8 count: no dial",
            lim13,
            _outbound_input(five, [_link(f"10.{n}.9.9") for n in range(20, 28)]),
        ),
        (
            "7 outbound of 8 count: one dial",
            lim13,
            _outbound_input(five, [_link(f"10.{n}.9.9") for n in range(20, 27)]),
        ),
        ("max_outbound_connections 0: no dial", lim13, _outbound_input(five, max_outbound=0)),
        (
            "inbound connections do not take outbound slots",
            lim13,
            _outbound_input(
                five, [_link(f"10.{n}.9.9", "inbound") for n in range(20, 27)], max_outbound=2
            ),
        ),
        (
            "max_total_connections count, none outbound: no dial",
            lim14,
            _outbound_input(
                five, [_link(f"10.{n}.9.9", "inbound") for n in range(20, 24)], max_total=4
            ),
        ),
        (
            "one below max_total_connections: one dial",
            lim14,
            _outbound_input(
                five, [_link(f"10.{n}.9.9", "inbound") for n in range(20, 23)], max_total=4
            ),
        ),
    ]
    return [
        (
            "order",
            "select_outbound",
            "The dials that fill the free outbound slots, in order: a group without an outbound "
            "or persistent connection first, then the lower H(address) "
            "(RECO-1).",
            order,
        ),
        (
            "eligibility",
            "select_outbound",
            "Entries that are not dialled: own addresses, IPs of connections that count (RECO-2), "
            "banned addresses (BAN-4), later next attempts, rotated groups (section 9).",
            eligibility,
        ),
        (
            "limits",
            "select_outbound",
            "No dial while max_outbound_connections outbound (LIM-13) or max_total_connections "
            "connections in all (LIM-14) count.",
            limits,
        ),
    ]


def _rotate_input(outbound: list[Json], max_outbound: int = 8, now: float = _NOW) -> Json:
    return {"now": now, "max_outbound_connections": max_outbound, "outbound": outbound}


def _rotate_cases() -> Cases:
    priv = ["PRIV-10"]
    scored = ["PRIV-10", "LIM-15"]
    t = 99_000.0

    def peers(count: int, first: int = 1, **more: Any) -> list[Json]:
        """``count`` established outbound peers; the later the peer, the more features."""
        return [
            _established(n, f"10.{n}.0.1", t + n, features=(1 << min(n, 6)) - 1, **more)
            for n in range(first, first + count)
        ]

    def handshaking(count: int, first: int) -> list[Json]:
        return [_fact(n, f"10.{n}.0.1", t + n) for n in range(first, first + count)]

    counts: list[Case] = [
        ("8 of 8 established: 2 rotated, the lowest scores", scored, _rotate_input(peers(8))),
        ("4 of 8 established, exactly half: 1 rotated", priv, _rotate_input(peers(4))),
        ("3 of 8 established, under half: none rotated", priv, _rotate_input(peers(3))),
        ("7 of 8 established: floor(7 / 4) = 1 rotated", priv, _rotate_input(peers(7))),
        ("3 of 7 established, under half: none", priv, _rotate_input(peers(3), 7)),
        ("4 of 7 established: 1 rotated", priv, _rotate_input(peers(4), 7)),
        ("12 of 16 established: 3 rotated", priv, _rotate_input(peers(12), 16)),
        ("max_outbound_connections 0, none: none rotated", priv, _rotate_input([], 0)),
        ("1 of 1 established: it is rotated", priv, _rotate_input(peers(1), 1)),
        (
            "3 established and 3 handshaking of 8: handshaking ones do not count, none rotated",
            priv,
            _rotate_input(peers(3, 4) + handshaking(3, 1)),
        ),
        (
            "4 established and 2 handshaking of 8: one rotated, never a handshaking one",
            priv,
            _rotate_input(peers(4, 3) + handshaking(2, 1)),
        ),
    ]
    persistent: list[Case] = [
        (
            "3 outbound and 2 persistent established of 8: persistent ones do not count",
            priv,
            _rotate_input(peers(3, 3) + peers(2, 1, persistent=True)),
        ),
        (
            "4 outbound and a persistent one scoring least: an outbound one is rotated",
            priv,
            _rotate_input(peers(4, 2) + peers(1, 1, persistent=True)),
        ),
    ]
    ties: list[Case] = [
        (
            "equal scores: the oldest first",
            scored,
            _rotate_input(
                [_established(n, f"10.{n}.0.1", t + 9 - n, features=0x03) for n in range(1, 9)]
            ),
        ),
        (
            "equal scores and ages: the lower peer numbers",
            scored,
            _rotate_input(
                [_established(n, f"10.{n}.0.1", t, features=0x03) for n in range(8, 0, -1)]
            ),
        ),
        (
            "scores at now: 61 s of uptime is 1 point, 59 s none",
            scored,
            _rotate_input(
                [
                    _fact(1, "10.1.0.1", _NOW - 80.0, established_at=_NOW - 61.0, features=0),
                    _fact(2, "10.2.0.1", _NOW - 70.0, established_at=_NOW - 59.0, features=0),
                    _fact(3, "10.3.0.1", _NOW - 90.0, established_at=_NOW - 89.0, features=1),
                    _fact(4, "10.4.0.1", _NOW - 95.0, established_at=_NOW - 94.0, features=1),
                ],
                max_outbound=8,
            ),
        ),
    ]
    return [
        (
            "counts",
            "rotate",
            "How many outbound connections are rotated: max(1, floor(established / 4)), once half "
            "of max_outbound_connections are established (PRIV-10).",
            counts,
        ),
        ("persistent", "rotate", "Persistent connections are never rotated.", persistent),
        ("order", "rotate", "The lowest scores, the oldest first among equals.", ties),
    ]


def _partition_input(
    connections: list[Json],
    entries: list[Json],
    *,
    started_at: float = _NOW - 1000.0,
    last: float | None = None,
    timeout: float = 120.0,
    max_temporary: int = 2,
    max_total: int = 133,
    own: Sequence[tuple[str, int]] = (),
    banned: Sequence[str] = (),
) -> Json:
    return {
        "key": _KEY.hex(),
        "now": _NOW,
        "started_at": started_at,
        "last_established_at": last,
        "partition_timeout": timeout,
        "max_temporary_connections": max_temporary,
        "max_total_connections": max_total,
        "connections": connections,
        "own": [{"host": host, "port": port} for host, port in own],
        "banned": list(banned),
        "entries": entries,
    }


def _partition_cases() -> Cases:
    reco7 = ["RECO-7"]
    hashed = ["RECO-7", "LIM-11"]
    seeds = [
        _book_entry("10.1.0.1", failures=2),
        _book_entry("10.2.0.1", source="application"),
        _book_entry("10.3.0.1", failures=1),
        _book_entry("10.4.0.1", source="connect"),
    ]
    same = [_link("10.9.0.1"), _link("10.9.0.2")]
    when: list[Case] = [
        (
            "nothing established since the start, partition_timeout less 1 ms: not partitioned",
            reco7,
            _partition_input([], seeds, started_at=_NOW - 119.999),
        ),
        (
            "nothing established since the start for partition_timeout: partitioned",
            hashed,
            _partition_input([], seeds, started_at=_NOW - 120.0),
        ),
        (
            "the silence counts from the last established connection, not the start",
            reco7,
            _partition_input([], seeds, last=_NOW - 60.0),
        ),
        (
            "partition_timeout since the last established connection: partitioned",
            hashed,
            _partition_input([], seeds, last=_NOW - 120.0),
        ),
        (
            "two established outbound connections in one group: partitioned at once",
            hashed,
            _partition_input(same, seeds, last=_NOW),
        ),
        (
            "an outbound and a persistent connection in one group: partitioned",
            hashed,
            _partition_input(
                [_link("10.9.0.1"), _link("10.9.0.2", "persistent")], seeds, last=_NOW
            ),
        ),
        (
            "two established outbound connections in two groups: not partitioned",
            reco7,
            _partition_input([_link("10.9.0.1"), _link("10.8.0.1")], seeds, last=_NOW),
        ),
        (
            "one established outbound connection: not partitioned (two or more)",
            reco7,
            _partition_input([_link("10.9.0.1")], seeds, last=_NOW),
        ),
        (
            "an established inbound connection of another group does not count, and its group "
            "gets no probe",
            hashed,
            _partition_input([*same, _link("10.3.0.9", "inbound")], seeds, last=_NOW),
        ),
        (
            "a handshaking outbound connection of another group does not count, and its group "
            "gets no probe",
            hashed,
            _partition_input([*same, _link("10.1.0.9", established=False)], seeds, last=_NOW),
        ),
    ]
    probes: list[Case] = [
        (
            "seed nodes first, then the lower H(address), whatever the failures",
            hashed,
            _partition_input(same, seeds, last=_NOW, max_temporary=4),
        ),
        (
            "one probe per group: a second seed of a probed group waits",
            hashed,
            _partition_input(
                same,
                [
                    _book_entry("10.5.0.1"),
                    _book_entry("10.5.0.2"),
                    _book_entry("10.6.0.1", failures=3),
                ],
                last=_NOW,
            ),
        ),
        (
            "an entry in the group of a connection is not probed",
            reco7,
            _partition_input(
                same, [_book_entry("10.9.0.3"), _book_entry("10.6.0.1", failures=3)], last=_NOW
            ),
        ),
        (
            "banned, own, connected and not yet due entries are not probed",
            ["RECO-7", "RECO-2", "BAN-4"],
            _partition_input(
                [*same, _link("10.4.0.1", "inbound", established=False)],
                [
                    _book_entry("10.1.0.1"),
                    _book_entry("10.2.0.1", 9000),
                    _book_entry("10.3.0.1", next_attempt=_NOW + 1.0),
                    _book_entry("10.4.0.1", 9001),
                    _book_entry("10.5.0.1", source="application", failures=4),
                ],
                last=_NOW,
                max_temporary=5,
                own=[("10.2.0.1", 9000)],
                banned=["10.1.0.1"],
            ),
        ),
    ]
    lim13, lim14 = ["LIM-13", "RECO-7"], ["LIM-14", "RECO-7"]
    limits: list[Case] = [
        (
            "one temporary connection counts of 2: one probe",
            lim13,
            _partition_input([*same, _link("10.7.0.1", "temporary", False)], seeds, last=_NOW),
        ),
        (
            "2 temporary connections count of 2: no probe",
            lim13,
            _partition_input(
                [
                    *same,
                    _link("10.7.0.1", "temporary", False),
                    _link("10.8.0.1", "temporary", False),
                ],
                seeds,
                last=_NOW,
            ),
        ),
        (
            "max_temporary_connections 0: no probe",
            lim13,
            _partition_input(same, seeds, last=_NOW, max_temporary=0),
        ),
        (
            "one below max_total_connections: one probe",
            lim14,
            _partition_input([*same, _link("10.7.0.1", "inbound")], seeds, last=_NOW, max_total=4),
        ),
        (
            "max_total_connections count: no probe",
            lim14,
            _partition_input([*same, _link("10.7.0.1", "inbound")], seeds, last=_NOW, max_total=3),
        ),
    ]
    return [
        (
            "partitioned",
            "partition",
            "Whether the node is partitioned: no established outbound or persistent connection "
            "for partition_timeout seconds, or every one (two or more) in one group (RECO-7).",
            when,
        ),
        (
            "probes",
            "partition",
            "The temporary connections it then dials: eligible entries in groups holding no "
            "connection, seed nodes first, then by the order of section 7 (RECO-7).",
            probes,
        ),
        (
            "limits",
            "partition",
            "Probes within max_temporary_connections (LIM-13) and max_total_connections (LIM-14).",
            limits,
        ),
    ]


_NUMBERS = (
    "A u64 is a decimal string; every other number is an integer below 2**53, so that parsers "
    "reading JSON numbers as doubles read them right."
)
_REPLAY = (
    "Send {tcId, decision, input} to the implementation's adapter (conformance/README.md) and "
    "compare its output with `expected` as JSON values: same keys, same values, same types."
)

_MANAGER_REPLAY = (
    "Send {tcId, decision, input} to the implementation's adapter (conformance/README.md) and "
    "compare its output with `expected` as JSON values: same keys, same values, same types, "
    "except that an expected double (written with a fraction part) is met by any number of its "
    "value."
)
_MANAGER_NUMBERS = (
    "A u64 is a decimal string and the key 64 lowercase hex digits (32 bytes); counts, ports, "
    "peer numbers, features and points are integers below 2**53; times, durations and delays "
    "are doubles, written with a fraction part: an expected 30.0 is met by 30 as well."
)
_FACTS = (
    "A peer's facts: {peer (its number), ip, opened_at (monotonic seconds, when dialled or "
    "accepted), established_at (when the handshake completed; null while handshaking), min_rtt "
    "(lowest round-trip time in seconds; null before any), features (negotiated; null before "
    "the handshake), misbehaviour (points of its address), persistent}."
)
_ENTRIES = (
    "A book entry: {host (an IP address), port, source (persistent, connect, seed or "
    "application), failures (consecutive), next_attempt (monotonic seconds)}; an address in the "
    "output is written IP:PORT, IPv6 as [IP]:PORT. own: the node's listening addresses "
    "{host, port}; banned: banned IP addresses."
)

# Each file: its cases and its header. A new kind of decision goes in a file of its area.
FILES: dict[str, tuple[Callable[[], Cases], str, Json]] = {
    "decision-admission.json": (
        _admission_cases,
        "Decision vectors for room, spec/manager.md sections 3 and 5: whether an inbound "
        "connection fits without an eviction (LIM-16, rule 2) and whether a connection may be "
        "dialled (LIM-13).",
        {
            "replay": _REPLAY,
            "admit_inbound": 'input {open_inbound, max_inbound_connections}; output {"admit": '
            'true} or {"admit": false, "reason": "connection_limit"}. open_inbound counts the '
            "open inbound connections other than the one just accepted.",
            "open_outbound": 'input {open_outbound, max_outbound_connections}; output {"allowed":'
            " true or false}.",
            "numbers": _NUMBERS,
        },
    ),
    "decision-handshake.json": (
        _handshake_cases,
        "Decision vectors for spec/handshake.md: the judgement of a peer's handshake, given the "
        "node's role, its own handshake values and its outstanding nonces.",
        {
            "replay": _REPLAY,
            "handshake": "input {role: initiator or responder, version, min_compatible_version, "
            "features, privacy_features (this node's), own_nonces (this node's outstanding "
            "handshake nonces), requires_encryption (optional, false when absent: this node's "
            "privacy level requires encryption, spec/privacy.md PRIV-12), peer (the peer's "
            "handshake: the fields of spec/wire.md section 5, as in the JSON frame form)}; output "
            '{"accepted": true, "version", "features", "privacy_features"} (the negotiated '
            'values) or {"accepted": false, "reason": "incompatible_version", "self_connection" '
            'or "encryption_required"}.',
            "numbers": _NUMBERS,
        },
    ),
    "decision-groups.json": (
        _group_cases,
        "Decision vectors for spec/manager.md section 2: the address group of an IP address and "
        "its keyed hash H(group).",
        {
            "replay": _MANAGER_REPLAY,
            "address_group": 'input {ip, key}; output {"group": a.b.0.0/16 or w0:w1::/32, '
            '"hash": H(group) as a u64}.',
            "numbers": _MANAGER_NUMBERS,
        },
    ),
    "decision-eviction.json": (
        lambda: _score_cases() + _evict_cases(),
        "Decision vectors for spec/manager.md sections 4 and 5: the peer score, and the inbound "
        "connection evicted to admit a newcomer when the node is full.",
        {
            "replay": _MANAGER_REPLAY,
            "score": 'input {now, peer (facts)}; output {"score": S}.',
            "evict": "input {key, now, candidates (facts of every inbound connection that "
            'counts)}; output {"evict": the peer number, or null when every candidate is '
            "protected}.",
            "facts": _FACTS,
            "numbers": _MANAGER_NUMBERS,
        },
    ),
    "decision-bans.json": (
        lambda: _misbehaviour_cases() + _ban_expiry_cases(),
        "Decision vectors for spec/manager.md section 6: misbehaviour points, bans and their end.",
        {
            "replay": _MANAGER_REPLAY,
            "misbehaviour": "input {ban_duration, reports: [{ip, requirement (the rule broken), "
            'wall (Unix seconds)}]} replayed in order on empty records; output {"reports": '
            '[{"points": the address\'s points after the report, "banned_until": wall + '
            "ban_duration when the report bans it, else null}]}.",
            "ban_expiry": "input {wall, bans: [{address, until, requirement}]}; output "
            '{"banned": addresses still banned at wall, "expired": addresses whose ban is over, '
            'both sorted as strings, "next_expiry": the earliest end left, or null}.',
            "numbers": _MANAGER_NUMBERS,
        },
    ),
    "decision-reconnection.json": (
        lambda: _backoff_cases() + _select_outbound_cases(),
        "Decision vectors for spec/manager.md sections 7 and 8: which addresses are dialled, in "
        "which order, and when after a failure.",
        {
            "replay": _MANAGER_REPLAY,
            "backoff": "input {failures (n, counting the failure just seen), persistent, seed "
            "(optional, false when absent: a seed node of seed_nodes), "
            'reconnect_interval, reconnect_max_interval, u64 (the draw)}; output {"removed": '
            'true} or {"removed": false, "delay": delay(n)}.',
            "select_outbound": "input {key, now, max_outbound_connections, "
            "max_total_connections, connections: [{ip, type: outbound, persistent, inbound or "
            "temporary}] (those that count), own, banned, rotated (IP addresses of rotated "
            'peers, whose groups are not eligible), entries}; output {"dials": the addresses '
            "dialled as outbound connections, in order, while the limits allow; each dial "
            "counts as an outbound connection for the next}.",
            "entries": _ENTRIES,
            "numbers": _MANAGER_NUMBERS,
        },
    ),
    "decision-rotation.json": (
        _rotate_cases,
        "Decision vectors for spec/manager.md section 9: the outbound connections rotated.",
        {
            "replay": _MANAGER_REPLAY,
            "rotate": "input {now, max_outbound_connections, outbound (facts of the outbound "
            'and persistent connections that count)}; output {"rotate": the peer numbers to '
            "rotate, ascending}.",
            "facts": _FACTS,
            "numbers": _MANAGER_NUMBERS,
        },
    ),
    "decision-partition.json": (
        _partition_cases,
        "Decision vectors for spec/manager.md section 10: whether the node is partitioned, and "
        "the temporary connections it dials then.",
        {
            "replay": _MANAGER_REPLAY,
            "partition": "input {key, now, started_at, last_established_at (the last time the "
            "node had an established outbound or persistent connection; null: never), "
            "partition_timeout, max_temporary_connections, max_total_connections, connections: "
            "[{ip, type, established}] (those that count), own, banned, entries}; output "
            '{"partitioned": false, "probes": []} or {"partitioned": true, "probes": the '
            "addresses dialled as temporary connections, in order}.",
            "entries": _ENTRIES,
            "numbers": _MANAGER_NUMBERS,
        },
    ),
    "decision-manager.json": (
        scenario.scenario_cases,
        "Decision vectors for the connection manager as a whole (spec/manager.md): a scenario "
        "of facts and their times, and the decisions after each, with the address book "
        "entries waiting and the bans in force.",
        {
            "replay": _MANAGER_REPLAY,
            "scenario": "input {settings (the keys of spec/config.md the manager uses), key "
            "(hex), draws (the u64 values the random source gives, in order, as decimal "
            "strings), start (the monotonic time the manager starts), bans (optional: "
            "[{address, until, requirement}]), steps: [{now, wall, fact, ...the fact's "
            'fields}]}; output {"steps": [{decisions, waiting: [[address, failures, next '
            "attempt]], bans: [[address, until]]}]}. Facts and decisions are named as in "
            "spec/manager.md section 1; WakeAt is not reported and SaveBans has no document.",
            "numbers": _MANAGER_NUMBERS,
        },
    ),
    "decision-transport.json": (
        transport_vectors.cases,
        transport_vectors.DESCRIPTION,
        transport_vectors.NOTES,
    ),
    "decision-first.json": (
        transport_vectors.first_cases,
        transport_vectors.FIRST_DESCRIPTION,
        transport_vectors.FIRST_NOTES,
    ),
}


def generate(name: str) -> Json:
    """The vector file ``name`` (a key of FILES), with every expected output the reference's."""
    cases_of, description, notes = FILES[name]
    groups = []
    number = 0
    for group_name, kind, comment, cases in cases_of():
        tests = []
        for case_comment, requirements, given in cases:
            number += 1
            response = decide({"tcId": number, "decision": kind, "input": given})
            tests.append(
                {
                    "tcId": number,
                    "comment": case_comment,
                    "requirements": requirements,
                    "decision": kind,
                    "input": given,
                    "expected": response["output"],
                }
            )
        groups.append({"name": group_name, "comment": comment, "tests": tests})
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "description": description,
        "notes": notes,
        "numberOfTests": number,
        "testGroups": groups,
    }


def render(name: str) -> str:
    return json.dumps(generate(name), indent=1, ensure_ascii=False) + "\n"


def write_vectors(root: Path) -> list[Path]:
    return write_rendered(root, FILES, render)


def load_cases(root: Path) -> list[tuple[str, Json, Json]]:
    """Every case of every decision file under ``root``: (file name, its group, the case)."""
    found = []
    for path in sorted((root / VECTOR_DIR).glob(PATTERN)):
        document = json.loads(path.read_text(encoding="utf-8"))
        for group in document["testGroups"]:
            found += [(path.name, group, case) for case in group["tests"]]
    return found


def check_vectors(root: Path) -> list[str]:
    """Failures: a checked-in file that differs from the generator (or that the generator does
    not make), or a case the reference does not decide as its file says."""
    failures = stale(root, FILES, render)
    for path in sorted((root / VECTOR_DIR).glob(PATTERN)):
        if path.name not in FILES:
            failures.append(f"{VECTOR_DIR / path.name} is not made by the generator")
    for result in replay(load_cases(root), decide):
        if result.outcome != PASSED:
            failures.append(
                f"{result.file} case {result.tc_id} ({result.comment}): {result.detail}"
            )
    return failures


# Replaying cases through an adapter.


class AdapterError(Exception):
    """The adapter gave no usable response: the case fails with this message."""


def _canonical(value: object) -> str:
    # JSON equality: json.dumps tells true from 1 and 1 from 1.0, which == does not.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _same(expected: object, got: object) -> bool:
    """Whether ``got`` equals ``expected`` as JSON values. An expected number written with a
    fraction (a double: a time or a delay) is met by any number of the same double value, so
    that 30 answers 30.0, as JSON writers that drop a zero fraction write it; an expected
    integer is met by an integer only, and true by true only."""
    if isinstance(expected, float):
        if isinstance(got, bool) or not isinstance(got, int | float):
            return False
        try:
            return float(got) == expected
        except OverflowError:  # an integer beyond every double
            return False
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and expected.keys() == got.keys()
            and all(_same(expected[name], got[name]) for name in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(got, list)
            and len(expected) == len(got)
            and all(_same(e, g) for e, g in zip(expected, got, strict=True))
        )
    return _canonical(expected) == _canonical(got)


def _judge(case: Json, response: object) -> tuple[str, str]:
    """The outcome of one case and, when it did not pass, why."""
    if not isinstance(response, dict):
        return FAILED, f"the response is not a JSON object: {_canonical(response)}"
    if _canonical(response.get("tcId")) != _canonical(case["tcId"]):
        return FAILED, f"the response is for tcId {_canonical(response.get('tcId'))}"
    if response.get("unsupported") is True:
        return SKIPPED, f"the adapter does not implement decision {case['decision']!r}"
    if "error" in response:
        return FAILED, f"the adapter reported an error: {response['error']}"
    if "output" not in response:
        return FAILED, "the response has none of output, unsupported and error"
    if not _same(case["expected"], response["output"]):
        expected, got = _canonical(case["expected"]), _canonical(response["output"])
        return FAILED, f"expected {expected}, got {got}"
    return PASSED, ""


def replay(
    cases: Iterable[tuple[str, Json, Json]], ask: Callable[[Json], Json]
) -> list[CaseResult]:
    """Each case sent through ``ask`` (one request in, its response out) and judged."""
    results = []
    for file, group, case in cases:
        request = {"tcId": case["tcId"], "decision": case["decision"], "input": case["input"]}
        result = CaseResult(
            file, group["name"], case["tcId"], case["comment"], list(case["requirements"]), PASSED
        )
        result.log.append(f"request: {_canonical(request)}")
        started = time.monotonic()
        try:
            response = ask(request)
        except AdapterError as exc:
            result.outcome, result.detail = FAILED, str(exc)
        else:
            result.log.append(f"response: {_canonical(response)}")
            result.outcome, result.detail = _judge(case, response)
        result.seconds = time.monotonic() - started
        if result.outcome == FAILED:
            result.outcome = outcome_for_failure(result.level)
        results.append(result)
    return results


class SubprocessAdapter:
    """An implementation's adapter run as a process: ``ask`` writes one request line to its
    stdin and reads one response line from its stdout, waiting at most ``timeout`` seconds."""

    def __init__(self, command: str | Sequence[str], timeout: float = TIMEOUT) -> None:
        args = shlex.split(command) if isinstance(command, str) else list(command)
        self.timeout = timeout
        # A file, not a pipe: a pipe nobody reads fills up and blocks the adapter.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        try:
            self._process = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
            )
        except OSError as exc:
            self._stderr.close()
            raise AdapterError(f"cannot start the adapter {shlex.join(args)}: {exc}") from exc
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin: IO[bytes] = self._process.stdin
        self._stdout = self._process.stdout.fileno()  # read raw, never through a buffer
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._stdout, selectors.EVENT_READ)
        self._pending = b""  # bytes read after the last complete line
        self._stopped = ""  # why the adapter is no longer asked, once it is not

    def ask(self, request: Json) -> Json:
        if self._stopped:
            raise AdapterError(f"not asked: {self._stopped}")
        tc_id = request.get("tcId")
        try:
            self._stdin.write((json.dumps(request, separators=(",", ":")) + "\n").encode())
            self._stdin.flush()
        except OSError:  # a closed pipe: the adapter has exited
            why = f"the adapter exited before tcId {tc_id} was sent"
            raise self._stop(why, exiting=True) from None
        line = self._read_line(tc_id)
        try:
            response = json.loads(line)
        except json.JSONDecodeError:
            message = f"the response is not JSON: {line[:200]!r}"
            raise AdapterError(self._with_stderr(message)) from None
        if not isinstance(response, dict):
            raise AdapterError(f"the response is not a JSON object: {line[:200]!r}")
        return response

    def _read_line(self, tc_id: object) -> str:
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                raise self._stop(f"no response to tcId {tc_id} within {self.timeout:g} s")
            chunk = os.read(self._stdout, 65536)
            if not chunk:
                why = f"the adapter exited before it answered tcId {tc_id}"
                raise self._stop(why, exiting=True)
            self._pending += chunk
            if len(self._pending) > MAX_LINE:
                raise self._stop(f"the response to tcId {tc_id} is over {MAX_LINE} bytes")
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode("utf-8", errors="replace")

    def _stop(self, why: str, exiting: bool = False) -> AdapterError:
        """Ask the adapter nothing more: after a timeout its responses could no longer be
        matched to requests. One that is ``exiting`` (it closed a pipe) gets a second to exit."""
        try:
            how = f"exit status {self._process.wait(1.0 if exiting else 0)}"
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            how = "stopped by the runner"
        self._stopped = f"{why} ({how})"
        return AdapterError(self._with_stderr(self._stopped))

    def _with_stderr(self, message: str) -> str:
        size = os.fstat(self._stderr.fileno()).st_size
        # pread leaves the file offset, which the adapter shares, where it is.
        tail = os.pread(self._stderr.fileno(), 2000, max(0, size - 2000))
        text = tail.decode("utf-8", errors="replace").strip()
        return f"{message}; stderr: {text}" if text else message

    def close(self) -> int | None:
        """Close stdin, as the end of the requests, and wait for the adapter to exit; returns
        its exit status, or None when it had to be killed."""
        with contextlib.suppress(OSError):  # already closed by an adapter that exited
            self._stdin.close()
        try:
            return self._process.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            return None
        finally:
            self._selector.close()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._stderr.close()

    def __enter__(self) -> SubprocessAdapter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
