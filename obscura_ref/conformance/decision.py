"""Decision vectors: a policy situation and the one decision the spec requires of it.

Each case names a ``decision`` (its kind), gives its ``input`` and the ``expected`` output. The
inputs are built here; the expected outputs are what the reference decides, so ``generate``
derives the files and ``check_vectors`` proves the checked-in files still agree with the
reference. Kinds today:

- ``admit_inbound`` (spec/node.md LIM-2), ``open_outbound`` (LIM-1): admission;
- ``handshake`` (spec/handshake.md): the judgement of a peer's handshake.

Numbers: a u64 is a decimal string; every other number is an integer below 2**53, so that
parsers that read JSON numbers as doubles (JavaScript's) read them right.

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
  JSON types (``true`` is not ``1``, ``1`` is not ``1.0``); key order and spacing are free.
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
from ..manager import admission
from ..wire import EncodeError, Frame, Handshake
from ..wire.jsonform import frame_from_json, frame_to_json
from .codec import _handshake as codec_handshake
from .results import FAILED, PASSED, SKIPPED, CaseResult, outcome_for_failure

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


# Every kind the reference decides; a new kind is one more entry (and its cases and schema).
DECISIONS: dict[str, Callable[[Json], Json]] = {
    "admit_inbound": _admit_inbound,
    "open_outbound": _open_outbound,
    "handshake": _handshake,
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
    lim2 = ["LIM-2"]
    lim1 = ["LIM-1"]
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
            "An inbound connection was just accepted while open_inbound others are open: keep it, "
            "or close it with reason connection_limit (LIM-2).",
            inbound,
        ),
        (
            "open_outbound",
            "open_outbound",
            "May the node open an outbound connection while open_outbound are open (LIM-1)?",
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
    }


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
    ]


_NUMBERS = (
    "A u64 is a decimal string; every other number is an integer below 2**53, so that parsers "
    "reading JSON numbers as doubles read them right."
)
_REPLAY = (
    "Send {tcId, decision, input} to the implementation's adapter (conformance/README.md) and "
    "compare its output with `expected` as JSON values: same keys, same values, same types."
)

# Each file: its cases and its header. A new kind of decision goes in a file of its area.
FILES: dict[str, tuple[Callable[[], Cases], str, Json]] = {
    "decision-admission.json": (
        _admission_cases,
        "Decision vectors for admission, spec/node.md section 4: whether an inbound connection "
        "is kept (LIM-2) and whether an outbound one may be opened (LIM-1).",
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
            "handshake nonces), peer (the peer's handshake: the fields of spec/wire.md section 5, "
            'as in the JSON frame form)}; output {"accepted": true, "version", "features", '
            '"privacy_features"} (the negotiated values) or {"accepted": false, "reason": '
            '"incompatible_version" or "self_connection"}.',
            "numbers": _NUMBERS,
        },
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
    paths = []
    for name in FILES:
        path = root / VECTOR_DIR / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(name), encoding="utf-8")
        paths.append(path)
    return paths


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
    failures = []
    for name in FILES:
        path = root / VECTOR_DIR / name
        if not path.is_file():
            failures.append(f"{VECTOR_DIR / name} is missing; run `obscura-ref vectors generate`")
        elif path.read_text(encoding="utf-8") != render(name):
            failures.append(
                f"{VECTOR_DIR / name} differs from the generator; run `obscura-ref vectors "
                "generate` and review the diff"
            )
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
    if _canonical(response["output"]) != _canonical(case["expected"]):
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
