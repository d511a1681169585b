"""Hidden ephemeral keys for the encrypted-first mode (spec/privacy.md section 3.5).

An encrypted-first connection begins with the initiator's Noise message 1, whose ephemeral
public key would give it away: the top bit of an X25519 public key is always zero, and it is
the u-coordinate of a point on the curve, which only about half of all field elements are. So
each side sends its key's Elligator 2 representative instead, 32 bytes that cannot be told
from random ones, and the receiver maps it back to the public key.

Elligator 2 is Monocypher's, through the ``pymonocypher`` package: ``elligator_key_pair`` draws
a key pair with a representative from a 32-byte seed, and ``elligator_map`` maps a
representative to its point. Monocypher fills all 256 bits of a representative: the 254 bits
of the field element and, on top, two bits drawn from the seed, which ``elligator_map``
ignores. Its public key is "dirty": the X25519 public key of the secret plus a point of low
order, so that every curve point can occur, which a public key of the prime-order subgroup
alone could not, and that would tell an observer it is a key. X25519 clamps the secret to a
multiple of 8, so a DH with the dirty key gives the same shared secret as with the clean one;
but Noise hashes the public key's bytes, so both sides use the dirty key, ``public`` here, as
the ephemeral public key ``e`` (``NoiseHandshake(..., ephemeral_public=public)``).

Pure: no sockets, no clock; the randomness is the caller's, handed in as the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import monocypher  # type: ignore[import-not-found]

from ..wire import MAGIC
from .noise import DHLEN

FIRST_PROLOGUE = b"OBX noise first v1"  # spec: PRIV-51 (the prologue of this mode)
HIDDEN_SIZE = DHLEN  # a representative has as many bytes as the public key it hides
SEED_SIZE = 32


class HiddenKeyPair(NamedTuple):
    """An ephemeral key pair of the encrypted-first mode: ``hidden`` is sent in place of the
    public key, ``secret`` is the X25519 private key and ``public`` the key Noise writes and
    hashes for ``e`` (the dirty public key, ``elligator_map(hidden)``)."""

    hidden: bytes
    secret: bytes
    public: bytes


def hidden_key_pair(seed: bytes) -> HiddenKeyPair:
    """The key pair Monocypher derives from a 32-byte ``seed`` (spec: PRIV-51)."""
    if len(seed) != SEED_SIZE:
        raise ValueError(f"a seed has {SEED_SIZE} bytes, got {len(seed)}")
    hidden, secret = monocypher.elligator_key_pair(bytes(seed))  # spec: PRIV-51
    return HiddenKeyPair(bytes(hidden), bytes(secret), unhide(hidden))  # spec: PRIV-51


def unhide(hidden: bytes) -> bytes:
    """The public key a 32-byte representative stands for, ``elligator_map(hidden)``; its two
    top bits are ignored."""
    if len(hidden) != HIDDEN_SIZE:
        raise ValueError(f"a representative has {HIDDEN_SIZE} bytes, got {len(hidden)}")
    return bytes(monocypher.elligator_map(bytes(hidden)))  # spec: PRIV-51


def draw_hidden_key_pair(draw: Callable[[int], bytes]) -> HiddenKeyPair:
    """A key pair from seeds of ``draw(32)`` (the caller's random source), drawn again while
    its representative begins with ``MAGIC``, which a receiver would take for a plaintext
    frame (spec: PRIV-52)."""
    while True:
        pair = hidden_key_pair(draw(SEED_SIZE))
        if pair.hidden[: len(MAGIC)] != MAGIC:  # spec: PRIV-52
            return pair


def hide_message(message: bytes, pair: HiddenKeyPair) -> bytes:
    """A Noise message as it is sent in this mode: the key pair's public key, with which the
    message begins, replaced by its representative."""
    if message[:DHLEN] != pair.public:
        raise ValueError("the message does not begin with the key pair's public key")
    return pair.hidden + message[DHLEN:]


def unhide_message(message: bytes) -> bytes:
    """A received message as Noise reads it: the representative it begins with mapped back to
    the public key."""
    return unhide(message[:HIDDEN_SIZE]) + message[HIDDEN_SIZE:]
