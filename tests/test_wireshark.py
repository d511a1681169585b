"""The Wireshark dissector (wireshark/obscura.lua) against the reference decoder.

Captures of two kinds are dissected by tshark: a pcap built here from the codec vectors, one
TCP stream per vector, each both whole and cut into small segments; and real loopback traffic
between two nodes. Every frame tshark shows must carry exactly the fields, or the error code,
that ``obscura_ref.wire`` decodes from the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from obscura_ref.config import load
from obscura_ref.loop import EventLoop
from obscura_ref.machines.events import Established
from obscura_ref.machines.reasons import CloseReason
from obscura_ref.node import Node
from obscura_ref.wire import (
    Disconnect,
    Handshake,
    MessageType,
    Opaque,
    Ping,
    Pong,
    decode_frames,
    encode_frame,
)
from obscura_ref.wire.jsonform import frame_to_json
from obscura_ref.wire.messages import Message
from obscura_ref.wire.registry import Feature, PrivacyFeature

ROOT = Path(__file__).resolve().parent.parent
DISSECTOR = ROOT / "wireshark" / "obscura.lua"
VECTORS = ROOT / "conformance" / "vectors" / "codec.json"
SERVER_PORT = 9999
MAGIC = b"OBX\x00"
# Sizes the split streams are cut into, in turn: cuts inside the magic, the header and fields.
SEGMENT_SIZES = (1, 2, 3, 5, 8, 13)

PduFields = dict[str, Any]


def tshark() -> str:
    found = shutil.which("tshark")
    if found is None:
        message = (
            "tshark is not installed (Debian: apt-get install tshark); the dissector "
            "wireshark/obscura.lua is not tested"
        )
        if os.environ.get("OBSCURA_REQUIRE_TSHARK") == "1":
            pytest.fail(message + ", and OBSCURA_REQUIRE_TSHARK=1 requires it")
        pytest.skip(message)
    return found


# --- pcap writing and reading -------------------------------------------------------------


def _segment(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int,
             payload: bytes = b"") -> bytes:  # fmt: skip
    """One Ethernet/IPv4/TCP packet. Checksums are left zero: tshark does not verify them by
    default, and nothing here depends on them."""
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0,
        socket.inet_aton(src[0]), socket.inet_aton(dst[0]),
    )  # fmt: skip
    ethernet = bytes(6) + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return ethernet + ip + tcp + payload


SYN, ACK, FIN_ACK, SYN_ACK, PSH_ACK = 0x02, 0x10, 0x11, 0x12, 0x18


def _stream(client_port: int, segments: list[bytes]) -> list[bytes]:
    """A whole TCP connection from 127.0.0.1:client_port to 127.0.0.2:SERVER_PORT carrying
    ``segments`` from the client, one packet each."""
    client, server = ("127.0.0.1", client_port), ("127.0.0.2", SERVER_PORT)
    packets = [_segment(client, server, 0, 0, SYN), _segment(server, client, 0, 1, SYN_ACK)]
    packets.append(_segment(client, server, 1, 1, ACK))
    seq = 1
    for data in segments:
        packets.append(_segment(client, server, seq, 1, PSH_ACK, data))
        seq += len(data)
    packets.append(_segment(client, server, seq, 1, FIN_ACK))
    return packets


def _write_pcap(path: Path, packets: list[bytes]) -> None:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # linktype Ethernet
    for number, packet in enumerate(packets):
        out.append(struct.pack("<IIII", number, 0, len(packet), len(packet)) + packet)
    path.write_bytes(b"".join(out))


Direction = tuple[int, int]  # (source port, destination port)


def _read_pcap_streams(path: Path) -> dict[Direction, bytes]:
    """The bytes each direction of each TCP connection carried, in sequence order, from a
    pcap of Ethernet frames (Linux loopback)."""
    data = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", data)
    assert magic == 0xA1B2C3D4 and linktype == 1, "expected a little-endian Ethernet pcap"
    pieces: dict[Direction, dict[int, bytes]] = {}
    first_seq: dict[Direction, int] = {}
    offset = 24
    while offset < len(data):
        _, _, captured, _ = struct.unpack_from("<IIII", data, offset)
        packet = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        ip = packet[14:]
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack_from("!HHI", tcp)
        flags = tcp[13]
        payload = tcp[(tcp[12] >> 4) * 4 :]
        key = (sport, dport)
        if flags & SYN:
            first_seq[key] = seq + 1
        if payload:
            pieces.setdefault(key, {})[seq] = payload  # a retransmission overwrites its twin
    streams: dict[Direction, bytes] = {}
    for key, by_seq in pieces.items():
        stream = bytearray()
        next_seq = first_seq[key]
        for seq in sorted(by_seq):
            chunk = by_seq[seq][max(0, next_seq - seq) :]
            assert seq <= next_seq, f"a gap in the capture of {key}"
            stream += chunk
            next_seq = max(next_seq, seq + len(by_seq[seq]))
        streams[key] = bytes(stream)
    return streams


# --- what tshark shows --------------------------------------------------------------------


@dataclass
class Pdu:
    """One obscura item of tshark's tree: its fields by name (show, value) and its experts."""

    fields: dict[str, tuple[str, str]] = field(default_factory=dict)
    flags: dict[str, set[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    encrypted: bool = False


def dissect(capture: Path, *options: str) -> dict[Direction, list[Pdu]]:
    """The obscura items tshark shows in ``capture``, per direction, in stream order."""
    result = subprocess.run(
        [tshark(), "-n", "-X", f"lua_script:{DISSECTOR}", "-r", str(capture), "-T", "pdml",
         *options],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    assert b"Lua: Error" not in result.stderr, result.stderr.decode()
    out: dict[Direction, list[Pdu]] = {}
    for packet in ET.fromstring(result.stdout).iter("packet"):
        ports: dict[str, int] = {}
        for item in packet.iter("field"):
            if item.get("name") in ("tcp.srcport", "tcp.dstport"):
                ports.setdefault(item.get("name", ""), int(item.get("show", "")))
        for proto in packet.iter("proto"):
            if proto.get("name") == "obscura":
                direction = (ports["tcp.srcport"], ports["tcp.dstport"])
                out.setdefault(direction, []).append(_pdu(proto))
    return out


def _pdu(proto: ET.Element) -> Pdu:
    pdu = Pdu()
    for item in proto.iter("field"):
        name = item.get("name", "")
        if name.startswith("obscura.error."):
            pdu.errors.append(name.removeprefix("obscura.error."))
        elif name == "obscura.encrypted":
            pdu.encrypted = True
        elif name.count(".") == 3 and name.startswith("obscura.handshake."):  # one flag bit
            parent = name.rsplit(".", 1)[0].removeprefix("obscura.handshake.")
            bits = pdu.flags.setdefault(parent, set())
            if item.get("show") == "1":
                bits.add(item.get("showname", "").split(" = ")[1].split(":")[0])
        elif name.startswith("obscura."):
            pdu.fields[name] = (item.get("show", ""), item.get("value", ""))
    return pdu


# --- what the reference decodes -----------------------------------------------------------

_PREFIX = {
    MessageType.Handshake: "obscura.handshake.",
    MessageType.Ping: "obscura.ping.",
    MessageType.Pong: "obscura.pong.",
    MessageType.Disconnect: "obscura.disconnect.",
}


def expected(stream: bytes) -> tuple[list[PduFields], str | None]:
    """Each frame the reference decodes from ``stream``, as the fields tshark must show, and
    the error code that ends it (None for none, or for truncated_frame, which a capture that
    simply ends cannot tell from a frame still on its way)."""
    frames, error = decode_frames(stream)
    out: list[PduFields] = []
    offset = 0
    for frame in frames:
        header = stream[offset : offset + 16]
        length = struct.unpack_from("<I", header, 8)[0]
        obj = frame_to_json(frame)
        fields: PduFields = {
            "obscura.magic": header[:4].hex(),
            "obscura.type": obj["code"],
            "obscura.length": length,
            "obscura.checksum": header[12:16].hex(),
            "obscura.checksum_ok": "1",
        }
        prefix = _PREFIX.get(frame.message.message_type)
        for key, value in obj.items():
            if key in ("type", "code", "padding_length") or key.endswith("_flags"):
                continue
            if key == "padding" or key == "payload":
                if value:  # an empty byte string is no item
                    fields[f"obscura.{key}"] = value
            else:
                assert prefix is not None
                fields[prefix + key] = value
        if "features" in obj:
            fields["flags"] = {
                "features": set(obj["features_flags"]),
                "privacy_features": set(obj["privacy_features_flags"]),
            }
        out.append(fields)
        offset += 16 + length
    code = error.code.value if error is not None else None
    return out, None if code == "truncated_frame" else code


def shown(pdu: Pdu) -> PduFields:
    """The fields of a frame tshark shows, in the form ``expected`` gives."""
    fields: PduFields = {}
    for name, (show, value) in pdu.fields.items():
        if name == "obscura.handshake.user_agent_length":
            continue  # not a field of the JSON form: the user agent itself is compared
        if name in ("obscura.type", "obscura.handshake.features",
                    "obscura.handshake.privacy_features"):  # fmt: skip
            fields[name] = int(show, 16)
        elif name in ("obscura.length", "obscura.handshake.version", "obscura.disconnect.reason"):
            fields[name] = int(show)
        elif name in ("obscura.magic", "obscura.checksum", "obscura.padding", "obscura.payload",
                      "obscura.handshake.best_block_hash"):  # fmt: skip
            fields[name] = value
        else:  # u64 as decimal text, the user agent as text, checksum_ok as 1 or 0
            fields[name] = show
    if pdu.flags:
        fields["flags"] = pdu.flags
    return fields


def check_stream(stream: bytes, pdus: list[Pdu], what: str) -> None:
    frames, error = expected(stream)
    assert not any(pdu.errors for pdu in pdus[: len(frames)]), what
    assert [shown(pdu) for pdu in pdus[: len(frames)]] == frames, what
    rest = pdus[len(frames) :]
    if error is None:
        assert rest == [], what
    else:
        # The item that reports the error, then only bytes left undecoded (WIRE-14).
        assert rest and rest[0].errors == [error], what
        assert all(list(pdu.fields) == ["obscura.undecoded"] for pdu in rest[1:]), what
        assert not any(pdu.errors or pdu.flags for pdu in rest[1:]), what


# --- the tests ----------------------------------------------------------------------------


def _vectors() -> Iterator[dict[str, Any]]:
    for group in json.loads(VECTORS.read_text(encoding="utf-8"))["testGroups"]:
        yield from group["tests"]


def _cut(data: bytes) -> list[bytes]:
    pieces, offset, turn = [], 0, 0
    while offset < len(data):
        size = SEGMENT_SIZES[turn % len(SEGMENT_SIZES)]
        pieces.append(data[offset : offset + size])
        offset += size
        turn += 1
    return pieces


def test_codec_vectors_dissect_as_the_reference_decodes(tmp_path: Path) -> None:
    tshark()
    packets: list[bytes] = []
    streams: dict[int, tuple[str, bytes]] = {}
    for vector in _vectors():
        data = bytes.fromhex(vector["input"])
        whole = 20000 + vector["tcId"]
        split = 30000 + vector["tcId"]
        packets += _stream(whole, [data] if data else [])
        packets += _stream(split, _cut(data))
        streams[whole] = (f"vector {vector['tcId']}, one segment", data)
        streams[split] = (f"vector {vector['tcId']}, split", data)
    # One byte of padding, the least there can be, after each defined payload.
    hs = Handshake(1, 2, 3, 0x81, "ua", bytes(32), 4, 5)
    extra: list[Message] = [hs, Ping(6), Pong(7), Disconnect(8)]
    for index, message in enumerate(extra):
        data = encode_frame(message, b"\xaa")
        packets += _stream(40000 + index, _cut(data))
        streams[40000 + index] = (f"{message} with one byte of padding", data)
    capture = tmp_path / "vectors.pcap"
    _write_pcap(capture, packets)
    # Decode As, as an operator would for a port the heuristic does not catch.
    seen = dissect(capture, "-d", f"tcp.port=={SERVER_PORT},obscura")
    errors = set()
    for port, (what, data) in streams.items():
        check_stream(data, seen.get((port, SERVER_PORT), []), what)
        errors.add(expected(data)[1])
    # Every error code a capture can show is among the vectors.
    assert errors == {None, "bad_magic", "unknown_message_type", "payload_too_large",
                      "handshake_too_large", "bad_checksum", "payload_truncated",
                      "user_agent_too_long", "user_agent_not_utf8"}  # fmt: skip


# A loopback address of its own, so that the capture filter sees only these nodes.
LIVE_HOST = "127.77.0.1"


def _live_pair(level: str, loop: EventLoop) -> tuple[Node, Node, int]:
    overrides = [f"privacy_level={level}", "ping_interval=0.2", "ping_timeout=0.15"]
    a, b = Node(load(None, overrides), loop=loop), Node(load(None, overrides), loop=loop)
    peer = a.connect(*b.listen(LIVE_HOST, 0))
    return a, b, peer


def _established(node: Node) -> bool:
    return any(isinstance(item.event, Established) for item in list(node.events))


def _wait_for_capture(dumper: subprocess.Popen[bytes], capture: Path) -> None:
    """Return once packets reach ``capture``: tshark says "Capturing on" before its capture
    process has the filter in place, so empty connections are opened until one shows."""
    probe = socket.create_server((LIVE_HOST, 0))
    try:
        deadline = time.monotonic() + 10
        while not capture.exists() or capture.stat().st_size <= 24:  # the pcap header alone
            assert dumper.poll() is None, f"tshark could not capture on lo: {dumper.stderr}"
            assert time.monotonic() < deadline, "tshark captured nothing on lo"
            socket.create_connection(probe.getsockname()).close()
            probe.accept()[0].close()
            time.sleep(0.05)
    finally:
        probe.close()


def test_live_traffic_between_two_nodes(tmp_path: Path) -> None:
    """Two plaintext nodes and two encrypting ones (privacy level standard) on loopback: the
    plaintext frames decode as the reference decodes them, found by the heuristic (no port
    given); the encrypted connection shows its two handshakes, then only encrypted records."""
    capture = tmp_path / "live.pcap"
    dumper = subprocess.Popen(
        [tshark(), "-q", "-n", "-i", "lo", "-f", f"tcp and host {LIVE_HOST}", "-F", "pcap",
         "-w", str(capture)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_capture(dumper, capture)
        loop = EventLoop()
        plain_a, plain_b, plain_peer = _live_pair("none", loop)
        secret_a, secret_b, secret_peer = _live_pair("standard", loop)
        nodes = (plain_a, plain_b, secret_a, secret_b)
        deadline = time.monotonic() + 5
        while not (_established(plain_a) and _established(secret_a)):
            assert time.monotonic() < deadline, "the nodes did not connect"
            loop.run_once(0.02)
        plain_a.send(plain_peer, Opaque(MessageType.Inv, bytes(range(40))))
        secret_a.send(secret_peer, Opaque(MessageType.Inv, bytes(range(40))))
        deadline = time.monotonic() + 0.7  # a few pings each way
        while time.monotonic() < deadline:
            loop.run_once(0.02)
        plain_a.close(plain_peer, CloseReason.ROTATED)
        secret_a.close(secret_peer, CloseReason.ROTATED)
        for node in nodes:
            node.shutdown(1)
        loop.close()
        time.sleep(0.3)  # the last packets reach the capture
    finally:
        dumper.send_signal(signal.SIGINT)
        dumper.wait(10)
    streams = _read_pcap_streams(capture)
    seen = dissect(capture)
    kinds: dict[str, int] = {}
    for direction, data in streams.items():
        pdus = seen.get(direction, [])
        frames, _ = expected(data)
        assert frames, f"no frame in {direction}"
        if any(pdu.encrypted for pdu in pdus):
            # The handshake, then records that are never parsed as frames.
            assert [shown(pdu) for pdu in pdus[:1]] == frames[:1]
            assert frames[0]["obscura.type"] == MessageType.Handshake
            assert all(pdu.encrypted and not pdu.errors for pdu in pdus[1:]) and pdus[1:]
            kinds["encrypted"] = kinds.get("encrypted", 0) + 1
        else:
            check_stream(data, pdus, f"live {direction}")
            types = {frame["obscura.type"] for frame in frames}
            assert MessageType.Handshake in types and MessageType.Ping in types
            kinds["plain"] = kinds.get("plain", 0) + 1
    assert kinds == {"plain": 2, "encrypted": 2}


def _tshark_tables(tmp_path: Path, kind: str) -> list[list[str]]:
    """tshark's ``-G`` report with the dissector installed as the README says: copied into
    the personal Lua plugins folder."""
    plugins = tmp_path / ".local" / "lib" / "wireshark" / "plugins"
    plugins.mkdir(parents=True)
    shutil.copy(DISSECTOR, plugins)
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config")}
    result = subprocess.run(
        [tshark(), "-G", kind], capture_output=True, check=True, env=env, timeout=60, text=True
    )
    return [line.split("\t") for line in result.stdout.splitlines()]


def test_value_names_match_the_reference(tmp_path: Path) -> None:
    """The close reasons' names, the type names and the flag bits the dissector shows are the
    reference's tables."""
    tshark()
    values = _tshark_tables(tmp_path / "values", "values")
    reasons = {
        int(row[2], 0): row[3] for row in values if row[:2] == ["V", "obscura.disconnect.reason"]
    }
    assert reasons == {reason.code: reason.label for reason in CloseReason}
    types = {int(row[2], 0): row[3] for row in values if row[:2] == ["V", "obscura.type"]}
    assert types == {int(member): member.name for member in MessageType}
    fields = _tshark_tables(tmp_path / "fields", "fields")
    for parent, flags in (("features", Feature), ("privacy_features", PrivacyFeature)):
        bits = {
            int(row[6], 16): row[1]
            for row in fields
            if row[0] == "F"
            and row[4] == "obscura"
            and row[2].startswith(f"obscura.handshake.{parent}.")
        }
        assert bits == {int(member): member.name for member in flags}
