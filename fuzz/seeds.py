"""The seed corpus of each target, built from the conformance vectors (conformance/vectors/):

- ``decoder``: each codec vector's input, whole, byte by byte and in random reads, under the
  full limit and the handshake's; and the frames of each session vector's ``send`` steps;
- ``handshake``: each handshake decision vector, its local values and the peer's handshake;
- ``connection``: each session vector as the bytes its runner sends a lone machine (up to its
  first encrypted step), and its frames after a valid handshake with a peer machine, sealed
  when the levels encrypt; each codec vector's input after such a handshake;
- ``manager``: each scenario decision vector's facts, with their times.

``python -m fuzz.seeds DIR`` writes them to DIR/<target>/<n>.bin.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from obscura_ref.machines.privacy import PrivacyLevel
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.manager.book import SOURCES
from obscura_ref.wire import EncodeError, Frame, Handshake, MessageType, encode_frame
from obscura_ref.wire.jsonform import frame_from_json

from . import connection, decoder, handshake, manager

VECTORS = Path(__file__).resolve().parent.parent / "conformance" / "vectors"
Json = dict[str, Any]


def tests(pattern: str) -> Iterator[tuple[Json, Json]]:
    """Each test of the vector files matching ``pattern``, with its file's document."""
    for path in sorted(VECTORS.glob(pattern)):
        document = json.loads(path.read_text(encoding="utf-8"))
        for group in document["testGroups"]:
            for test in group["tests"]:
                yield document, test


def frames_of(objects: list[Json]) -> list[Frame]:
    """The frames a step writes; those that refer to captured values are left out."""
    out = []
    for obj in objects:
        try:
            out.append(frame_from_json(obj))
        except (EncodeError, ValueError, TypeError, KeyError):
            continue
    return out


def decoder_seeds() -> Iterator[bytes]:
    for _, test in tests("codec.json"):
        stream = bytes.fromhex(test["input"])
        for limit in (0, 1):
            for chunking in (decoder.WHOLE, decoder.BYTE_BY_BYTE, 7):
                yield decoder.encode(stream, limit, chunking)
    for _, test in tests("session-*.json"):
        for step in test["steps"]:
            if step["op"] == "send" and "frames" in step:
                frames = frames_of(step["frames"])
                yield decoder.encode(b"".join(encode_frame(f.message, f.padding) for f in frames))


def handshake_seeds() -> Iterator[bytes]:
    for _, test in tests("decision-handshake.json"):
        given = test["input"]
        peer = frame_from_json({**given["peer"], "type": "Handshake"}).message
        assert isinstance(peer, Handshake)
        flags = handshake.INITIATOR if given["role"] == "initiator" else 0
        flags |= handshake.REQUIRES_ENCRYPTION if given.get("requires_encryption") else 0
        yield handshake.encode(
            flags,
            given["version"],
            given["min_compatible_version"],
            given["features"],
            given["privacy_features"],
            int((given["own_nonces"] or [0])[0]),
            peer.encode(),
        )


def _session_ops(test: Json, level: PrivacyLevel, peer: PrivacyLevel | None) -> bytes | None:
    """One session vector as ops: alone, the runner's bytes as they are, up to its first
    encrypted step; with a peer, the peer's handshake, then the vector's frames after its own
    handshake (sealed by the peer when encrypted). None when nothing of it can be written."""
    outbound = test["role"] == "initiator"
    ops = connection.Ops(outbound, level, peer)
    if outbound:
        ops.op(connection.CONNECT)
    if peer is not None:
        for _ in range(6):  # handshakes, Noise messages, garbage: whatever the peer sent
            ops.op(connection.DELIVER, 0).time(0.001)
    wrote = False
    for step in test["steps"]:
        if step.get("conn", "a") != "a":
            continue
        kind = step["op"]
        if kind in ("secure", "secure_first") and peer is None:
            break  # a lone machine's Noise peer cannot be written as bytes
        if kind in ("send", "send_record") and "frames" in step:
            for frame in frames_of(step["frames"]) * min(step.get("repeat", 1), 8):
                message = frame.message
                if peer is not None and isinstance(message, Handshake):
                    continue  # the peer machine made its own
                ops.frame(message.message_type, message.encode() + frame.padding)
                ops.op(connection.DELIVER, 0)
                wrote = True
            if step.get("tamper"):
                ops.op(connection.MUTATE, 20, 0, 1).op(connection.DELIVER, 0)
        elif kind == "send" and "hex" in step:
            ops.blob_op(connection.RAW, bytes.fromhex(step["hex"]))
            wrote = True
        elif kind in ("end", "close"):
            ops.op(connection.EOS)
        elif kind == "expect_silence":
            ops.time(step["for"])
        elif kind in ("expect", "expect_close") and step.get("within", 0) >= 0.5:
            ops.time(step["within"])
    return ops.bytes() if wrote or peer is not None else None


def connection_seeds() -> Iterator[bytes]:
    standard, maximum = PrivacyLevel.STANDARD, PrivacyLevel.MAXIMUM
    for _, test in tests("session-*.json"):
        first = any(step["op"] == "secure_first" for step in test["steps"])
        for peer in (None, maximum if first and test["role"] == "responder" else standard):
            seed = _session_ops(test, standard, peer)
            if seed is not None:
                yield seed
    for _, test in tests("codec.json"):
        for level in PrivacyLevel:
            for outbound in (False, True):
                ops = connection.Ops(outbound, level, level)
                if outbound:
                    ops.op(connection.CONNECT)
                for _ in range(6):
                    ops.op(connection.DELIVER, 0)
                ops.blob_op(connection.RECORD, bytes.fromhex(test["input"]))
                yield ops.op(connection.DELIVER, 0).op(connection.EOS).bytes()
    for proxy, credentials in ((True, False), (True, True)):
        ops = connection.Ops(True, standard, standard, proxy=proxy, credentials=credentials)
        ops.op(connection.CONNECT)
        for _ in range(8):
            ops.op(connection.DELIVER, 0)
        yield ops.frame(MessageType.Inv, b"seed").op(connection.DELIVER, 0).bytes()


_REASONS = {reason.label: reason for reason in CloseReason}


def _address(named: list[str], text: str) -> tuple[int, ...]:
    """The operands that name ``text`` to the manager target: its index once named, else the
    address itself."""
    if text in named:
        return (named.index(text),)
    named.append(text)
    return manager.new_address(text)


def manager_seeds() -> Iterator[bytes]:
    for _, test in tests("decision-*.json"):
        if test["decision"] != "scenario":
            continue
        given = test["input"]
        ops = manager.Ops(0)
        now = 0.0
        named: list[str] = []  # addresses in the order the harness learns them
        for step in given["steps"]:
            fact, delay = step["fact"], step["now"] - now
            now = step["now"]
            peer = max(step.get("peer", 1) - 1, 0)
            if fact == "Listening":
                ops.op(manager.LISTEN, delay, *_address(named, step["address"]))
            elif fact == "AddressAdded":
                source = SOURCES.index(step["source"])
                ops.op(manager.ADD, delay, *_address(named, step["address"]), source)
            elif fact == "InboundOffered":
                ops.op(manager.INBOUND, delay, *_address(named, step["address"]))
            elif fact == "Established":
                nonce = int(step.get("dialler_nonce") or 0)
                nonce = nonce if nonce < 0xF0 else max(0x100 - (2**64 - nonce), 0xF0)
                ops.op(manager.ESTABLISHED, delay, peer, step["features"], nonce)
            elif fact == "RttMeasured":
                ops.op(manager.RTT, delay, peer, round(float(step["seconds"]) / 0.02))
            elif fact == "Misbehaved":
                requirement = step["requirement"]
                index = manager.REQUIREMENTS.index(requirement)
                ops.op(manager.MISBEHAVED, delay, peer, index)
            elif fact in ("CloseBegan", "Closed"):
                reason = _REASONS[step["reason"]]
                if fact == "Closed":
                    ops.op(manager.CLOSED, delay, peer, step.get("peer_reason") or 0)
                elif reason in manager.MACHINE_REASONS:
                    ops.op(manager.CLOSE_BEGAN, delay, peer, manager.MACHINE_REASONS.index(reason))
            elif fact == "Tick":
                ops.op(manager.TICK, delay)
            # Opened and DialFailed: the harness reports them for each Dial, as a node does.
        yield ops.bytes()


SEEDS: dict[str, Callable[[], Iterator[bytes]]] = {
    "decoder": decoder_seeds,
    "handshake": handshake_seeds,
    "connection": connection_seeds,
    "manager": manager_seeds,
}


def seeds(target: str) -> list[bytes]:
    """The target's seeds, without duplicates, in a fixed order."""
    return list(dict.fromkeys(SEEDS[target]()))


def write(folder: Path, target: str) -> int:
    """Write the target's seeds to ``folder``, each named by its hash; returns their count."""
    folder.mkdir(parents=True, exist_ok=True)
    found = seeds(target)
    for data in found:
        (folder / f"{hashlib.sha1(data).hexdigest()}.bin").write_bytes(data)
    return len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("targets", nargs="*", default=list(SEEDS))
    args = parser.parse_args()
    for target in args.targets:
        print(f"{target}: {write(args.folder / target, target)} seeds")


if __name__ == "__main__":
    main()
