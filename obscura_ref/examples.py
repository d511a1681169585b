"""The worked examples of spec/examples.md: fixed frames, each dissected by ``explain``.

Every value is fixed (the nonces, the timestamp, the padding's random bytes from a seeded
source), so the chapter's generated blocks change only when the code that makes or explains the
bytes does.
"""

from __future__ import annotations

import random
import struct

from .config import KEYS_BY_NAME
from .conformance.codec import raw_frame
from .explain import explain, to_markdown
from .machines.handshake import PROTOCOL_VERSION
from .machines.padding import origin_padding
from .machines.reasons import CloseReason
from .wire import (
    MAX_HANDSHAKE_PAYLOAD,
    MAX_PAYLOAD,
    Disconnect,
    ErrorCode,
    Feature,
    Handshake,
    MessageType,
    Ping,
    Pong,
    PrivacyFeature,
    encode_frame,
)

TIMESTAMP = 1_700_000_000  # 2023-11-14 22:13:20 UTC
INITIATOR_NONCE = 0x0123_4567_89AB_CDEF
RESPONDER_NONCE = 0xFEDC_BA98_7654_3210
PING_NONCE = 0x1122_3344_5566_7788
PADDING_SEED = 1  # the random source of the ping's and the pong's padding


def _handshake(nonce: int) -> bytes:
    return encode_frame(
        Handshake(
            version=PROTOCOL_VERSION,
            timestamp=TIMESTAMP,
            features=Feature.BasicTransactions,
            privacy_features=PrivacyFeature.EncryptedTransport,
            user_agent=str(KEYS_BY_NAME["user_agent"].default),
            best_block_hash=bytes(32),
            best_block_height=0,
            nonce=nonce,
        )
    )


def _padded(message: Ping | Pong, rng: random.Random) -> bytes:
    """The frame as the origin pads it: a short payload up to 64 bytes (spec/privacy.md)."""
    return encode_frame(message, origin_padding(len(message.encode()), rng))


def _handshake_head(user_agent_length: int) -> bytes:
    """A handshake's fields up to ``user_agent_length`` (spec/wire.md section 5)."""
    return struct.pack(
        "<IQIIH",
        PROTOCOL_VERSION,
        TIMESTAMP,
        Feature.BasicTransactions,
        PrivacyFeature.EncryptedTransport,
        user_agent_length,
    )


def _rejected() -> dict[ErrorCode, bytes]:
    """One rejected frame for each error code of spec/wire.md section 8."""
    ping = encode_frame(Ping(PING_NONCE))
    tail = bytes(32) + struct.pack("<QQ", 0, INITIATOR_NONCE)  # hash, height, nonce
    return {
        ErrorCode.BAD_MAGIC: b"GET / HTTP/1.1\r\n",
        ErrorCode.UNKNOWN_MESSAGE_TYPE: raw_frame(0x18, b""),
        ErrorCode.PAYLOAD_TOO_LARGE: raw_frame(
            MessageType.Blocks, b"", length=MAX_PAYLOAD + 1, check=bytes(4)
        ),
        ErrorCode.HANDSHAKE_TOO_LARGE: raw_frame(
            MessageType.Handshake, b"", length=MAX_HANDSHAKE_PAYLOAD + 1, check=bytes(4)
        ),
        ErrorCode.BAD_CHECKSUM: ping[:12] + bytes(4) + ping[16:],
        ErrorCode.TRUNCATED_FRAME: ping[:20],
        ErrorCode.PAYLOAD_TRUNCATED: raw_frame(MessageType.Pong, ping[16:23]),
        ErrorCode.USER_AGENT_TOO_LONG: raw_frame(MessageType.Handshake, _handshake_head(257)),
        ErrorCode.USER_AGENT_NOT_UTF8: raw_frame(
            MessageType.Handshake, _handshake_head(2) + b"\xc3\x28" + tail
        ),
    }


def _examples() -> dict[str, bytes]:
    rng = random.Random(PADDING_SEED)
    examples = {
        "handshake-initiator": _handshake(INITIATOR_NONCE),
        "handshake-responder": _handshake(RESPONDER_NONCE),
        "ping": _padded(Ping(PING_NONCE), rng),
        "pong": _padded(Pong(PING_NONCE), rng),
        "disconnect": encode_frame(Disconnect(CloseReason.SHUTTING_DOWN.code)),
    }
    for code, data in _rejected().items():
        examples[f"rejected-{code.value.replace('_', '-')}"] = data
    return examples


# Name -> the bytes of the example; spec/examples.md has the block ``example-NAME`` for each.
EXAMPLES = _examples()


def example_markdown(name: str) -> str:
    """The example's bytes, 16 to a line (what ``obscura-ref explain -`` reads back), and its
    dissection as a table."""
    data = EXAMPLES[name]
    rows = explain(data)
    lines = [data[i : i + 16].hex(" ") for i in range(0, len(data), 16)]
    return "\n".join(
        [
            f"The {len(data)} bytes, 16 to a line (the frame: {rows[0].meaning}):",
            "",
            "```",
            *lines,
            "```",
            "",
            to_markdown(rows),
        ]
    )
