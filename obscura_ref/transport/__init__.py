"""The encrypted transport's codecs (spec/privacy.md section 3): the Noise handshake and the
sealed records. Pure: no sockets, no clock, no randomness of their own."""

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
    "MAX_RECORD",
    "MESSAGE1_SIZE",
    "MESSAGE2_SIZE",
    "PROTOCOL_NAME",
    "REKEY_AFTER",
    "CipherState",
    "NoiseError",
    "NoiseErrorCode",
    "NoiseHandshake",
    "NoiseUsageError",
    "RecordError",
    "RecordErrorCode",
    "RecordOpener",
    "RecordSealer",
    "SymmetricState",
    "bucket_size",
    "public_key",
    "split_record",
]
