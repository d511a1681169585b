"""Hypothesis strategies for every message of spec/wire.md, over the full range of each field."""

from __future__ import annotations

from hypothesis import strategies as st

from obscura_ref.wire import (
    DEFINED_TYPES,
    MAX_HANDSHAKE_PAYLOAD,
    Disconnect,
    Handshake,
    Message,
    MessageType,
    Opaque,
    Ping,
    Pong,
)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
u64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)

# Text whose UTF-8 encoding fits the 256-byte limit (WIRE-42).
user_agents = st.text(max_size=256).filter(lambda text: len(text.encode("utf-8")) <= 256)

handshakes = st.builds(
    Handshake,
    version=u32,
    timestamp=u64,
    features=u32,
    privacy_features=u32,
    user_agent=user_agents,
    best_block_hash=st.binary(min_size=32, max_size=32),
    best_block_height=u64,
    nonce=u64,
)
opaque_types = st.sampled_from([t for t in MessageType if t not in DEFINED_TYPES])
opaques = st.builds(Opaque, message_type=opaque_types, payload=st.binary(max_size=300))
messages: st.SearchStrategy[Message] = st.one_of(
    handshakes,
    st.builds(Ping, nonce=u64),
    st.builds(Pong, nonce=u64),
    st.builds(Disconnect, reason=u16),
    opaques,
)


@st.composite
def padded_messages(draw: st.DrawFn) -> tuple[Message, bytes]:
    """A message and padding that keeps it within its size limit (opaque payloads carry their
    padding inside the payload, so they get none)."""
    message = draw(messages)
    if isinstance(message, Opaque):
        return message, b""
    room = 200
    if isinstance(message, Handshake):
        room = MAX_HANDSHAKE_PAYLOAD - len(message.encode())
    return message, draw(st.binary(max_size=room))
