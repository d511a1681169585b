"""The JSON form of a frame, shared by the command line and the codec vectors.

One object per frame: ``type`` (the registry name) and ``code``, every defined field by its spec
name (bytes as lowercase hex), ``padding`` (hex) and ``padding_length``. Flag fields also get a
``<field>_flags`` list of the names of the assigned bits set. Keys that can be derived (``code``,
``padding_length``, ``*_flags``) are optional on input and, when given, must agree.
"""

from __future__ import annotations

from typing import Any

from .errors import EncodeError
from .frame import Frame
from .messages import Disconnect, Handshake, Message, Opaque, Ping, Pong
from .registry import Feature, MessageType, PrivacyFeature, flag_names, lookup_type

JsonObject = dict[str, Any]

# Fields of each defined message in spec order, and how each is written in JSON.
_FIELDS: dict[MessageType, tuple[tuple[str, str], ...]] = {
    MessageType.Handshake: (
        ("version", "int"),
        ("timestamp", "int"),
        ("features", "int"),
        ("privacy_features", "int"),
        ("user_agent", "str"),
        ("best_block_hash", "hex"),
        ("best_block_height", "int"),
        ("nonce", "int"),
    ),
    MessageType.Ping: (("nonce", "int"),),
    MessageType.Pong: (("nonce", "int"),),
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


def frame_to_json(frame: Frame) -> JsonObject:
    message = frame.message
    out: JsonObject = {"type": message.message_type.name, "code": int(message.message_type)}
    for name, kind in _fields_of(message.message_type):
        value = getattr(message, name)
        out[name] = value.hex() if kind == "hex" else value
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
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise EncodeError(name, f"must be an integer, got {value!r}")
    return value


def _check_derived(given: dict[str, Any], derived: JsonObject) -> None:
    for key in ("type", "code", "padding_length", "features_flags", "privacy_features_flags"):
        # Compared with their types, so that true is not taken for 1.
        if key in given and (type(given[key]), given[key]) != (type(derived[key]), derived[key]):
            raise EncodeError(key, f"is {given[key]!r} but the frame gives {derived[key]!r}")
