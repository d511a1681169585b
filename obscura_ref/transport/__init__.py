"""The encrypted transport's codecs (spec/privacy.md section 3): the Noise handshake, the
sealed records, and the encrypted-first mode's hidden keys and garbage. Pure: no sockets, no
clock, no randomness of their own."""

from .elligator import (
    FIRST_PROLOGUE,
    HiddenKeyPair,
    draw_hidden_key_pair,
    hidden_key_pair,
    hide_message,
    unhide,
    unhide_message,
)
from .garbage import (
    MAX_GARBAGE,
    Found,
    GarbageError,
    GarbageErrorCode,
    TerminatorScanner,
    draw_garbage,
    garbage_terminators,
)
from .noise import (
    MESSAGE1_SIZE,
    MESSAGE2_SIZE,
    PROTOCOL_NAME,
    CipherState,
    NoiseError,
    NoiseErrorCode,
    NoiseHandshake,
    NoiseUsageError,
    SymmetricState,
    public_key,
)
from .records import (
    MAX_RECORD,
    REKEY_AFTER,
    RecordError,
    RecordErrorCode,
    RecordOpener,
    RecordSealer,
    bucket_size,
    split_record,
)

__all__ = [
    "FIRST_PROLOGUE",
    "MAX_GARBAGE",
    "MAX_RECORD",
    "MESSAGE1_SIZE",
    "MESSAGE2_SIZE",
    "PROTOCOL_NAME",
    "REKEY_AFTER",
    "CipherState",
    "Found",
    "GarbageError",
    "GarbageErrorCode",
    "HiddenKeyPair",
    "NoiseError",
    "NoiseErrorCode",
    "NoiseHandshake",
    "NoiseUsageError",
    "RecordError",
    "RecordErrorCode",
    "RecordOpener",
    "RecordSealer",
    "SymmetricState",
    "TerminatorScanner",
    "bucket_size",
    "draw_garbage",
    "draw_hidden_key_pair",
    "garbage_terminators",
    "hidden_key_pair",
    "hide_message",
    "public_key",
    "split_record",
    "unhide",
    "unhide_message",
]
