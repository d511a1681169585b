"""Message types and flag bits (spec/wire.md sections 3 and 5)."""

from __future__ import annotations

from enum import IntEnum, IntFlag


class MessageType(IntEnum):
    """The message-type registry of spec/wire.md section 3; names are the origin's."""

    Handshake = 0x01
    Ping = 0x02
    Pong = 0x03
    GetBlocks = 0x04
    Blocks = 0x05
    GetTransactions = 0x06
    Transactions = 0x07
    Inv = 0x08
    GetData = 0x09
    NotFound = 0x0A
    MemPool = 0x0B
    Alert = 0x0C
    Reject = 0x0D
    FilterLoad = 0x0E
    FilterAdd = 0x0F
    FilterClear = 0x10
    MerkleBlock = 0x11
    BlockAnnouncement = 0x12
    BlockAnnouncementResponse = 0x13
    GetCompactBlock = 0x14
    CompactBlock = 0x15
    GetBlockTransactions = 0x16
    BlockTransactions = 0x17
    # Codes 0x80-0xFF: messages this specification adds (spec/wire.md section 3).
    Disconnect = 0x80
    Dummy = 0x81  # traffic shaping's message that carries nothing (spec/privacy.md PRIV-61)


# Codes kept for the messages this specification adds to the origin's set.
ADDED_TYPES = range(0x80, 0x100)

# The types whose payload spec/wire.md defines; every other registered type is opaque.
DEFINED_TYPES = frozenset(
    {MessageType.Handshake, MessageType.Ping, MessageType.Pong, MessageType.Disconnect}
)


_BY_CODE = {member.value: member for member in MessageType}


def lookup_type(code: int) -> MessageType | None:
    """The registered type with this code, or None when the code is unassigned."""
    return _BY_CODE.get(code)


class Feature(IntFlag):
    """Table 5.1: bits of the handshake's ``features``."""

    BasicTransactions = 0x01
    PrivacyFeatures = 0x02
    Dandelion = 0x04
    CompactBlocks = 0x08
    TorSupport = 0x10
    I2PSupport = 0x20


class PrivacyFeature(IntFlag):  # spec: WIRE-47 (one bit per flag)
    """Table 5.2: bits of the handshake's ``privacy_features``. Every member is one bit; the
    origin's multi-bit ``Dandelion`` (0x41) is not a flag here (spec/errata.md E-3)."""

    TransactionObfuscation = 0x01
    StealthAddressing = 0x02
    ConfidentialTransactions = 0x04
    ZeroKnowledgeProofs = 0x08
    DandelionPlusPlus = 0x10
    Tor = 0x20
    I2P = 0x40
    # Not the origin's: the encrypted transport of spec/privacy.md section 3 (errata E-19).
    EncryptedTransport = 0x80


def flag_names(flags: type[IntFlag], value: int) -> list[str]:
    """The names of the assigned bits set in ``value``, lowest bit first; each bit is read on
    its own, never as part of a multi-bit member."""
    return [member.name or "" for member in flags if value & member.value]
