"""The wire layer: bytes <-> typed messages (spec/wire.md). Pure: no sockets, no clock."""

from .errors import ERROR_REQUIREMENTS, DecodeError, EncodeError, ErrorCode
from .frame import (
    HEADER_SIZE,
    MAGIC,
    MAX_PAYLOAD,
    Decoded,
    Frame,
    FrameDecoder,
    checksum,
    decode_frames,
    encode_frame,
    frame_bytes,
)
from .messages import (
    MAX_HANDSHAKE_PAYLOAD,
    MAX_USER_AGENT,
    Disconnect,
    Handshake,
    Message,
    Opaque,
    Ping,
    Pong,
)
from .registry import DEFINED_TYPES, Feature, MessageType, PrivacyFeature

__all__ = [
    "DEFINED_TYPES",
    "ERROR_REQUIREMENTS",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_HANDSHAKE_PAYLOAD",
    "MAX_PAYLOAD",
    "MAX_USER_AGENT",
    "DecodeError",
    "Decoded",
    "Disconnect",
    "EncodeError",
    "ErrorCode",
    "Feature",
    "Frame",
    "FrameDecoder",
    "Handshake",
    "Message",
    "MessageType",
    "Opaque",
    "Ping",
    "Pong",
    "PrivacyFeature",
    "checksum",
    "decode_frames",
    "encode_frame",
    "frame_bytes",
]
