"""The encrypted transport's codecs (spec/privacy.md section 3): the Noise handshake. Pure: no
sockets, no clock, no randomness of its own."""

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

__all__ = [
    "MESSAGE1_SIZE",
    "MESSAGE2_SIZE",
    "PROTOCOL_NAME",
    "CipherState",
    "NoiseError",
    "NoiseErrorCode",
    "NoiseHandshake",
    "NoiseUsageError",
    "SymmetricState",
    "public_key",
]
