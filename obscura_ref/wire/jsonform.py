"""The JSON form of a frame, shared by the command line and the codec vectors.

One object per frame: ``type`` (the registry name) and ``code``, every defined field by its spec
name (bytes as lowercase hex), ``padding`` (hex) and ``padding_length``. Flag fields also get a
``<field>_flags`` list of the names of the assigned bits set. Keys that can be derived (``code``,
``padding_length``, ``*_flags``) are optional on input and, when given, must agree.

A u64 field is written as a decimal string: a JSON number above 2**53 may lose its low digits in
any parser that reads numbers as IEEE doubles (JavaScript's among them), so every number this
form writes stays within 2**53. On input a u64 field may be that string or a JSON integer.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import EncodeError
from .frame import Frame
from .messages import U64_MAX, Disconnect, Handshake, Message, Opaque, Ping, Pong
from .registry import Feature, MessageType, PrivacyFeature, flag_names, lookup_type

JsonObject = dict[str, Any]

# Fields of each defined message in spec order, and how each is written in JSON: "int" a JSON
# number (u16 and u32, all below 2**53), "u64" a decimal string, "str" text, "hex" bytes.
_FIELDS: dict[MessageType, tuple[tuple[str, str], ...]] = {
    MessageType.Handshake: (
        ("version", "int"),
        ("timestamp", "u64"),
        ("features", "int"),
        ("privacy_features", "int"),
        ("user_agent", "str"),
        ("best_block_hash", "hex"),
        ("best_block_height", "u64"),
        ("nonce", "u64"),
    ),
    MessageType.Ping: (("nonce", "u64"),),
    MessageType.Pong: (("nonce", "u64"),),
    MessageType.Disconnect: (("reason", "int"),),
}
_CLASSES: dict[MessageType, Any] = {
    MessageType.Handshake: Handshake,
    MessageType.Ping: Ping,
    MessageType.Pong: Pong,
    MessageType.Disconnect: Disconnect,
}
_OPAQUE_FIELDS = (("payload", "hex"),)
_FLAG_FIELDS = {"features": Feature, "privacy_features": PrivacyFeature}
# The one decimal form of a u64: digits only, no sign, no leading zero but in "0" itself.
_CANONICAL_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def frame_to_json(frame: Frame) -> JsonObject:
    message = frame.message
    out: JsonObject = {"type": message.message_type.name, "code": int(message.message_type)}
    for name, kind in _fields_of(message.message_type):
        value = getattr(message, name)
        out[name] = value.hex() if kind == "hex" else str(value) if kind == "u64" else value
        if name in _FLAG_FIELDS:
            out[f"{name}_flags"] = flag_names(_FLAG_FIELDS[name], value)
    out["padding_length"] = len(frame.padding)
    out["padding"] = frame.padding.hex()
    return out


def frame_from_json(obj: object) -> Frame:
    """The frame described by ``obj``; raises EncodeError naming the first key that is wrong."""
    if not isinstance(obj, dict):
        raise EncodeError("(frame)", f"must be a JSON object, got {type(obj).__name__}")
    message_type = _type_of(obj)
    fields = _fields_of(message_type)
    allowed = {"type", "code", "padding", "padding_length"} | {name for name, _ in fields}
    allowed |= {f"{name}_flags" for name, _ in fields if name in _FLAG_FIELDS}
    for key in obj:
        if key not in allowed:
            raise EncodeError(key, f"is not a field of {message_type.name}")
    values: dict[str, object] = {}
    for name, kind in fields:
        if name not in obj:
            raise EncodeError(name, f"is required for {message_type.name}")
        values[name] = _read_value(name, kind, obj[name])
    message: Message
    padding = _read_value("padding", "hex", obj.get("padding", ""))
    assert isinstance(padding, bytes)
    if message_type in _CLASSES:
        message = _CLASSES[message_type](**values)
    else:
        if padding:  # an opaque payload carries its padding inside (spec/wire.md section 4)
            raise EncodeError("padding", "an opaque message has none: put it in payload")
        message = Opaque(message_type, values["payload"])  # type: ignore[arg-type]
    frame = Frame(message, padding)
    _check_derived(obj, frame_to_json(frame))
    return frame


def _type_of(obj: dict[str, Any]) -> MessageType:
    by_name = obj.get("type")
    by_code = obj.get("code")
    if by_name is None and by_code is None:
        raise EncodeError("type", 'is required (a registry name such as "Ping")')
    if by_name is not None:
        if not isinstance(by_name, str) or by_name not in MessageType.__members__:
            raise EncodeError("type", f"{by_name!r} is not a name in the registry")
        return MessageType[by_name]
    if isinstance(by_code, bool) or not isinstance(by_code, int):
        raise EncodeError("code", f"must be an integer, got {by_code!r}")
    found = lookup_type(by_code)
    if found is None:
        raise EncodeError("code", f"{by_code:#x} is not a code in the registry")
    return found


def _fields_of(message_type: MessageType) -> tuple[tuple[str, str], ...]:
    return _FIELDS.get(message_type, _OPAQUE_FIELDS)


def _read_value(name: str, kind: str, value: object) -> object:
    if kind == "hex":
        if not isinstance(value, str):
            raise EncodeError(name, "must be a string of hex digits")
        try:
            return bytes.fromhex(value)
        except ValueError as exc:
            raise EncodeError(name, f"is not hex: {exc}") from exc
    if kind == "str" and not isinstance(value, str):
        raise EncodeError(name, "must be a string")
    if kind == "u64":
        return _read_u64(name, value)
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise EncodeError(name, f"must be an integer, got {value!r}")
    return value


def _read_u64(name: str, value: object) -> int:
    """A u64 given as its canonical decimal string or as a JSON integer; the message's own
    constructor checks the range."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not _CANONICAL_DECIMAL.fullmatch(value):
        raise EncodeError(
            name,
            f"must be an integer or a string of decimal digits with no sign and no leading zero "
            f'(such as "42"), got {value!r}',
        )
    if len(value) > len(str(U64_MAX)):  # checked here: int() refuses strings of 4300+ digits
        raise EncodeError(name, f"has {len(value)} digits, more than any u64 (at most {U64_MAX})")
    return int(value)


def _check_derived(given: dict[str, Any], derived: JsonObject) -> None:
    for key in ("type", "code", "padding_length", "features_flags", "privacy_features_flags"):
        # Compared with their types, so that true is not taken for 1.
        if key in given and (type(given[key]), given[key]) != (type(derived[key]), derived[key]):
            raise EncodeError(key, f"is {given[key]!r} but the frame gives {derived[key]!r}")
