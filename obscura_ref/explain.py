"""An annotated dissection of a byte stream of frames: what ``obscura-ref explain`` prints.

``explain`` turns bytes into rows, one per field of each frame, each with its absolute offset in
the stream, its size, its bytes as hex, its value, what it means and the requirement IDs of
spec/wire.md that govern it. The verdict on every frame is the decoder's own: each step calls
the check the incremental decoder makes (``check_magic``, ``check_header``, ``decode_body``), so
the dissection stops at the same error; the walk over the fields only says where each one lies.
An invalid stream ends with one ``error`` row: the code, its requirement, where it is and what
was expected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntFlag

from .machines.reasons import CloseReason
from .wire import (
    HEADER_SIZE,
    MAGIC,
    MAX_HANDSHAKE_PAYLOAD,
    MAX_PAYLOAD,
    MAX_USER_AGENT,
    DecodeError,
    ErrorCode,
    Feature,
    MessageType,
    PrivacyFeature,
    checksum,
)
from .wire.frame import check_header, check_magic, decode_body
from .wire.registry import DEFINED_TYPES, lookup_type

JsonValue = int | str | None

# The requirements that govern each header field: the sender's rule, then the receiver's.
_MAGIC_RULES = ("WIRE-1", "WIRE-5")
_TYPE_RULES = ("WIRE-6",)
_LENGTH_RULES = ("WIRE-2", "WIRE-7")
_CHECKSUM_RULES = ("WIRE-3", "WIRE-9")
_PADDING_RULES = ("WIRE-30", "WIRE-31")
_HANDSHAKE_RULES = ("WIRE-40",)
_NONCE_RULES = ("WIRE-50",)
_REASON_RULES = ("WIRE-60", "WIRE-61")
_OPAQUE_RULES = ("WIRE-20",)

_REASONS = {reason.code: reason for reason in CloseReason}


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a dissection. ``field`` is a spec field name, ``frame`` for the row that
    opens a frame, or ``error`` for the row that ends an invalid stream (its ``value`` is the
    error code; it points at a position, so its size is 0 and its hex empty). ``value`` is
    written as ``decode`` writes it: u16 and u32 as numbers, u64 as decimal strings, text as
    text, raw bytes as hex; None when the field is cut short or cannot be read."""

    frame: int
    offset: int
    size: int
    field: str
    hex: str
    value: JsonValue
    meaning: str
    requirements: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "frame": self.frame,
            "offset": self.offset,
            "size": self.size,
            "field": self.field,
            "hex": self.hex,
            "value": self.value,
            "meaning": self.meaning,
            "requirements": list(self.requirements),
        }


def explain(data: bytes) -> list[Row]:
    """The rows of every frame of ``data``, and the error row that ends it if it is invalid.
    An empty stream is a valid stream with no frames (spec/wire.md section 2.1)."""
    rows: list[Row] = []
    start = 0
    index = 0
    while start < len(data):
        dissection = _Dissection(data, start, index)
        size = dissection.run()
        rows += dissection.rows
        if size is None:
            break  # nothing after an error is decoded, so nothing is explained
        start += size
        index += 1
    return rows


@dataclass
class _Dissection:
    """One frame's rows, from ``start`` in ``data``."""

    data: bytes
    start: int
    index: int
    rows: list[Row] = field(default_factory=list)

    def add(
        self, at: int, size: int, name: str, value: JsonValue, meaning: str, rules: tuple[str, ...]
    ) -> None:
        """A field at ``at`` bytes from the frame's start."""
        where = self.start + at
        data = self.data[where : where + size]
        self.rows.append(Row(self.index, where, len(data), name, data.hex(), value, meaning, rules))

    def fail(self, at: int, error: DecodeError) -> None:
        # The decoder's detail says what it found and what it expected.
        self.rows.append(
            Row(
                self.index,
                self.start + at,
                0,
                "error",
                "",
                error.code.value,
                f"{error.code.value}: {error.detail}",
                (error.requirement,),
            )
        )

    def open(self, size: int, message_type: MessageType | None, what: str) -> None:
        """The row that opens the frame, put before its fields once they are known."""
        name = None if message_type is None else message_type.name
        self.rows.insert(0, Row(self.index, self.start, size, "frame", "", name, what))

    def run(self) -> int | None:
        """The frame's size, or None when it ends the stream with an error."""
        present = self.data[self.start : self.start + HEADER_SIZE]
        try:
            check_magic(present[: len(MAGIC)], 0)
        except DecodeError as error:
            bad = next(i for i, byte in enumerate(present[: len(MAGIC)]) if byte != MAGIC[i])
            meaning = f"not MAGIC ({MAGIC.hex()}): byte {bad} differs"
            self.add(0, len(MAGIC), "magic", present[: len(MAGIC)].hex(), meaning, _MAGIC_RULES)
            self.fail(bad, error)
            self.open(len(present), None, "rejected at its magic")
            return None
        if len(present) < HEADER_SIZE:
            self.truncated(len(present), None)
            return None
        try:
            message_type, length, expected = check_header(present)
        except DecodeError as error:
            at = 4 if error.code is ErrorCode.UNKNOWN_MESSAGE_TYPE else 8
            self.header(present, lookup_type(_u32(present, 4)), None, upto=at)
            self.fail(at, error)
            self.open(HEADER_SIZE, lookup_type(_u32(present, 4)), "rejected from its header")
            return None
        payload = self.data[self.start + HEADER_SIZE : self.start + HEADER_SIZE + length]
        if len(payload) < length:
            self.truncated(HEADER_SIZE + len(payload), message_type)
            return None
        fault: DecodeError | None = None
        try:
            decode_body(message_type, expected, payload)
        except DecodeError as error:
            fault = error
        self.header(present, message_type, payload)
        size = HEADER_SIZE + length
        if fault is not None and fault.code is ErrorCode.BAD_CHECKSUM:
            self.fail(12, fault)  # the payload's fields are not read (section 2.1, row 7)
        else:
            stop = _payload(self, message_type, payload)
            if fault is not None:
                self.fail(HEADER_SIZE + (len(payload) if stop is None else stop), fault)
        what = f"{_type_name(message_type)}: {HEADER_SIZE}-byte header, {length}-byte payload"
        self.open(size, message_type, what if fault is None else f"{what}, rejected")
        return None if fault is not None else size

    def header(
        self,
        header: bytes,
        message_type: MessageType | None,
        payload: bytes | None,
        upto: int = 12,
    ) -> None:
        """The header's rows, those at offsets up to ``upto``; ``payload`` is None when it is
        not whole, and the checksum cannot be checked."""
        self.add(0, 4, "magic", MAGIC.hex(), 'MAGIC ("OBX" and a zero byte)', _MAGIC_RULES)
        code = _u32(header, 4)
        if upto >= 4:
            known = f"{code:#04x}: not in the registry" if message_type is None else None
            meaning = known or _type_name(message_type)
            self.add(4, 4, "message_type", code, meaning, _TYPE_RULES)
        if upto >= 8:
            length = _u32(header, 8)
            rules: tuple[str, ...] = _LENGTH_RULES
            meaning = f"{length} payload bytes follow the header"
            if length > MAX_PAYLOAD:
                meaning += f", more than MAX_PAYLOAD ({MAX_PAYLOAD})"
            if message_type is MessageType.Handshake:
                rules += ("WIRE-8",)
                if MAX_HANDSHAKE_PAYLOAD < length <= MAX_PAYLOAD:
                    meaning += f", more than MAX_HANDSHAKE_PAYLOAD ({MAX_HANDSHAKE_PAYLOAD})"
            self.add(8, 4, "payload_length", length, meaning, rules)
        if upto >= 12:
            given = header[12:16]
            if payload is None:
                meaning = "not checked: the payload is not whole"
            elif checksum(payload) == given:
                meaning = "matches SHA256d(payload)"
            else:
                meaning = f"differs from SHA256d(payload), which begins {checksum(payload).hex()}"
            self.add(12, 4, "checksum", given.hex(), meaning, _CHECKSUM_RULES)

    def truncated(self, present: int, message_type: MessageType | None) -> None:
        """The stream ends inside this frame, ``present`` bytes into it."""
        if present >= HEADER_SIZE:
            length = _u32(self.data, self.start + 8)
            self.header(self.data[self.start : self.start + HEADER_SIZE], message_type, None)
            got = present - HEADER_SIZE
            meaning = f"cut short: {got} of the {length} payload bytes"
            self.add(HEADER_SIZE, got, "payload", None, meaning, ())
            whole = f"{HEADER_SIZE + length}-byte frame"
        else:
            if present >= len(MAGIC):
                self.add(0, 4, "magic", MAGIC.hex(), 'MAGIC ("OBX" and a zero byte)', _MAGIC_RULES)
            at = min(present, len(MAGIC))
            meaning = f"cut short: {present} of the header's {HEADER_SIZE} bytes"
            self.add(at, present - at, "header", None, meaning, ())
            whole = f"{HEADER_SIZE}-byte header"
        error = DecodeError(
            ErrorCode.TRUNCATED_FRAME,
            f"the stream ends after {present} bytes of a {whole}",
        )
        self.fail(present, error)
        self.open(present, message_type, "cut short by the end of the stream")


def _payload(frame: _Dissection, message_type: MessageType, payload: bytes) -> int | None:
    """The payload's rows; returns the offset in the payload where its fields stop being
    readable, or None when they all are (the decoder's error then says why they stop)."""
    reader = _Reader(frame, payload)
    if message_type not in DEFINED_TYPES:
        meaning = f"opaque: {_bytes(len(payload))} handed whole to the layer above"
        reader.add(len(payload), "payload", payload.hex(), meaning, _OPAQUE_RULES)
        return None
    if message_type is MessageType.Handshake:
        stop = _handshake(reader)
    elif message_type is MessageType.Disconnect:
        stop = _disconnect(reader)
    else:
        stop = None if reader.nonce(_NONCE_RULES) else reader.at
    if stop is not None:
        return stop
    rest = payload[reader.at :]
    if rest:
        meaning = f"padding: {_bytes(len(rest))} after the defined fields, ignored"
        reader.add(len(rest), "padding", rest.hex(), meaning, _PADDING_RULES)
    return None


@dataclass
class _Reader:
    """Fields read one after the other from a payload that passed its checksum."""

    frame: _Dissection
    payload: bytes
    at: int = 0

    def take(self, size: int, name: str, rules: tuple[str, ...]) -> bytes | None:
        """The field's bytes, or None after a row for the part of it the payload holds."""
        field = self.payload[self.at : self.at + size]
        if len(field) < size:
            meaning = f"cut short: {len(field)} of its {size} bytes are in the payload"
            self.frame.add(HEADER_SIZE + self.at, len(field), name, None, meaning, rules)
            return None
        return field

    def add(
        self, size: int, name: str, value: JsonValue, meaning: str, rules: tuple[str, ...]
    ) -> None:
        self.frame.add(HEADER_SIZE + self.at, size, name, value, meaning, rules)
        self.at += size

    def integer(self, size: int, name: str, rules: tuple[str, ...]) -> int | None:
        field = self.take(size, name, rules)
        if field is None:
            return None
        value = int.from_bytes(field, "little")
        # A u64 is a decimal string, as decode prints it: exact in any JSON parser.
        shown: JsonValue = str(value) if size == 8 else value
        self.add(size, name, shown, _integer_meaning(name, value), rules)
        return value

    def nonce(self, rules: tuple[str, ...]) -> bool:
        return self.integer(8, "nonce", rules) is not None


def _handshake(reader: _Reader) -> int | None:
    """spec/wire.md section 5, field by field in the order WIRE-34 reads them."""
    for name, size in (("version", 4), ("timestamp", 8)):
        if reader.integer(size, name, _HANDSHAKE_RULES) is None:
            return reader.at
    for name, flags, rules in (
        ("features", Feature, ("WIRE-40", "WIRE-45")),
        ("privacy_features", PrivacyFeature, ("WIRE-40", "WIRE-45", "WIRE-47")),
    ):
        field = reader.take(4, name, rules)
        if field is None:
            return reader.at
        value = int.from_bytes(field, "little")
        reader.add(4, name, value, _flag_meaning(flags, value), rules)
    length = reader.integer(2, "user_agent_length", ("WIRE-40", "WIRE-43"))
    if length is None or length > MAX_USER_AGENT:
        return reader.at - (2 if length is not None else 0)  # too long: at the length itself
    agent_rules = ("WIRE-40", "WIRE-42", "WIRE-44")
    text = reader.take(length, "user_agent", agent_rules)
    if text is None:
        return reader.at
    try:
        agent = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        meaning = f"not UTF-8: byte {exc.start} of the user agent begins an invalid sequence"
        reader.frame.add(HEADER_SIZE + reader.at, length, "user_agent", None, meaning, agent_rules)
        return reader.at
    meaning = f"{json.dumps(agent, ensure_ascii=False)}, {length} bytes of UTF-8"
    reader.add(length, "user_agent", agent, meaning, agent_rules)
    block = reader.take(32, "best_block_hash", _HANDSHAKE_RULES)
    if block is None:
        return reader.at
    said = "all zero" if not any(block) else "the sender's best block, raw bytes"
    reader.add(32, "best_block_hash", block.hex(), said, _HANDSHAKE_RULES)
    if reader.integer(8, "best_block_height", _HANDSHAKE_RULES) is None:
        return reader.at
    return None if reader.nonce(("WIRE-40",)) else reader.at


def _disconnect(reader: _Reader) -> int | None:
    return None if reader.integer(2, "reason", _REASON_RULES) is not None else reader.at


def _integer_meaning(name: str, value: int) -> str:
    if name == "nonce":
        return f"{value} ({value:#018x})"
    if name == "timestamp":
        try:
            when = datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        except (OverflowError, OSError, ValueError):
            return f"{value} Unix seconds, beyond any calendar date"
        return f"{value} Unix seconds ({when})"
    if name == "reason":
        reason = _REASONS.get(value)
        if reason is None:
            return f"{value}: not a registered close reason (accepted all the same)"
        return f"close reason `{reason.label}` ({value}): {reason.value.meaning}"
    if name == "user_agent_length":
        limit = f", more than MAX_USER_AGENT ({MAX_USER_AGENT})" if value > MAX_USER_AGENT else ""
        return f"{value} bytes of user agent follow{limit}"
    if name == "best_block_height":
        return f"block height {value}"
    return f"{name} {value}"


def _flag_meaning(flags: type[IntFlag], value: int) -> str:
    """Each bit set, by its name in table 5.1 or 5.2, or said unassigned."""
    names = {member.value: member.name for member in flags}
    bits = [1 << i for i in range(32) if value >> i & 1]
    if not bits:
        return "no bit set"
    return ", ".join(
        f"{names[bit]} ({bit:#04x})" if bit in names else f"unassigned bit {bit:#04x}"
        for bit in bits
    )


def _type_name(message_type: MessageType | None) -> str:
    if message_type is None:
        return "an unknown type"
    kind = "" if message_type in DEFINED_TYPES else ", opaque"
    return f"{message_type.name} ({message_type.value:#04x}{kind})"


def _bytes(count: int) -> str:
    return "1 byte" if count == 1 else f"{count} bytes"


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")


def to_json(rows: list[Row]) -> str:
    """The rows as one JSON list of objects (ASCII, like ``decode``'s output)."""
    return json.dumps([row.to_json() for row in rows], indent=1)


_HEX_SHOWN = 12  # bytes of a field's hex the text view shows before it abbreviates


def to_text(rows: list[Row]) -> str:
    """The rows for a terminal: a line that opens each frame, then one line per field."""
    lines: list[str] = []
    for row in rows:
        if row.field == "frame":
            lines.append(f"frame {row.frame} at offset {row.offset}: {row.meaning}")
            continue
        shown = row.hex
        if row.size > _HEX_SHOWN:
            shown = row.hex[: 2 * (_HEX_SHOWN - 2)] + ".."
        rules = f"  [{', '.join(row.requirements)}]" if row.requirements else ""
        lines.append(
            f"  {row.offset:>6} {row.size:>4}  {row.field:<18} {shown:<24} {row.meaning}{rules}"
        )
    return "\n".join(lines)


def to_markdown(rows: list[Row]) -> str:
    """The rows of a dissection as a markdown table, as spec/examples.md shows them."""
    table = ["| offset | size | field | hex | meaning | requirement |", "|---|---|---|---|---|---|"]
    for row in rows:
        if row.field == "frame":
            continue
        hex_text = f"`{row.hex}`" if row.hex else ""
        meaning = row.meaning.replace("|", "\\|")
        rules = ", ".join(row.requirements)
        table.append(
            f"| {row.offset} | {row.size} | `{row.field}` | {hex_text} | {meaning} | {rules} |"
        )
    return "\n".join(table)
