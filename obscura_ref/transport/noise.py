"""The Noise protocol ``Noise_NN_25519_ChaChaPoly_SHA256`` (spec/privacy.md section 3.2).

Written to be read beside the Noise Protocol Framework specification, revision 34: its section
5.1 is ``CipherState``, 5.2 ``SymmetricState`` and 5.3 the handshake, here ``NoiseHandshake``
for the NN pattern only. The names are the spec's in snake_case; each docstring gives the
spec's own. The primitives are the ``cryptography`` package's: X25519 for ``DH``,
ChaCha20-Poly1305 for ``ENCRYPT`` and ``DECRYPT``, SHA-256 for ``HASH`` and HMAC-SHA-256 for
``HKDF``.

Pure: no sockets, no clock, no randomness. The caller draws the ephemeral private key from its
random source and hands it in, so that a run, and a test vector, is deterministic.
"""

from __future__ import annotations

import hashlib
import struct
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

PROTOCOL_NAME = b"Noise_NN_25519_ChaChaPoly_SHA256"  # spec: PRIV-20
DHLEN = 32  # X25519 (Noise section 12.1)
HASHLEN = 32  # SHA-256 (Noise section 12.5)
KEY_SIZE = 32
TAG_SIZE = 16
MAX_NONCE = 2**64 - 1  # reserved by Noise section 5.1: never used to encrypt a message
MAX_MESSAGE = 65535  # Noise section 3: the longest Noise message
# The payloads are always empty (spec: PRIV-20): message 1 is e, message 2 is e and the tag
# of the encrypted empty payload.
MESSAGE1_SIZE = DHLEN
MESSAGE2_SIZE = DHLEN + TAG_SIZE

# The 96-bit ChaCha20-Poly1305 nonce: 4 zero bytes, then n as a little-endian u64 (Noise
# section 12.3).
_NONCE = struct.Struct("<4xQ")
_ZEROS = bytes(32)

# The NN pattern (Noise section 7.4): the initiator's message, then the responder's.
NN_PATTERN: tuple[tuple[str, ...], ...] = (("e",), ("e", "ee"))


class NoiseErrorCode(Enum):
    """How a peer made the Noise handshake fail; the value is also the close reason's name."""

    NOISE_FAILED = "noise_failed"

    @property
    def requirement(self) -> str:
        return "PRIV-22"


class NoiseError(Exception):
    """A Noise message from the peer that the handshake cannot accept (spec: PRIV-22): a tag
    that does not verify, a message of the wrong length, or a DH result of all zeros."""

    def __init__(self, code: NoiseErrorCode, detail: str) -> None:
        self.requirement = code.requirement
        super().__init__(f"{code.value} ({self.requirement}): {detail}")
        self.code = code
        self.detail = detail


class NoiseUsageError(RuntimeError):
    """A caller's bug, not the peer's: a machine called out of turn, after it failed, or asked
    for what it does not have yet."""


def public_key(private: bytes) -> bytes:
    """The X25519 public key of a 32-byte private key."""
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def dh(private: bytes, public: bytes) -> bytes:
    """``DH(key_pair, public_key)`` (Noise section 4.1), X25519.

    Raises NoiseError when the result is 32 zero bytes: ``cryptography`` refuses to return it,
    as the peer's key is then of low order and the secret is known to anyone."""
    try:
        peer = X25519PublicKey.from_public_bytes(public)
        return X25519PrivateKey.from_private_bytes(private).exchange(peer)
    except ValueError as exc:  # spec: PRIV-22 (a DH that gives 32 zero bytes)
        raise NoiseError(
            NoiseErrorCode.NOISE_FAILED, f"DH with the peer's key {public.hex()} gives zeros"
        ) from exc


def hash_(data: bytes) -> bytes:
    """``HASH(data)`` (Noise section 4.3), SHA-256."""
    return hashlib.sha256(data).digest()


def hmac_hash(key: bytes, data: bytes) -> bytes:
    """``HMAC-HASH(key, data)`` (Noise section 4.3), HMAC-SHA-256."""
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def hkdf(chaining_key: bytes, input_key_material: bytes) -> tuple[bytes, bytes]:
    """``HKDF(chaining_key, input_key_material, 2)`` (Noise section 4.3): the two outputs, as
    every use in the NN pattern takes two."""
    temp_key = hmac_hash(chaining_key, input_key_material)
    output1 = hmac_hash(temp_key, b"\x01")
    output2 = hmac_hash(temp_key, output1 + b"\x02")
    return output1, output2


class CipherState:
    """Noise section 5.1: a key ``k`` (or none) and a nonce ``n``.

    One ChaCha20Poly1305 object is kept per key, not made per message: records are sealed and
    opened on every frame, so this is on the hot path."""

    def __init__(self) -> None:
        self._k: bytes | None = None
        self._n = 0
        self._aead: ChaCha20Poly1305 | None = None

    @property
    def key(self) -> bytes | None:
        """The key ``k``, None when empty."""
        return self._k

    @property
    def nonce(self) -> int:
        """The nonce ``n``: the counter the next encryption or decryption uses."""
        return self._n

    def initialize_key(self, key: bytes | None) -> None:
        """``InitializeKey(key)``: sets ``k = key`` and ``n = 0``."""
        if key is not None and len(key) != KEY_SIZE:
            raise ValueError(f"a key has {KEY_SIZE} bytes, got {len(key)}")
        self._k = key
        self._n = 0
        self._aead = None if key is None else ChaCha20Poly1305(key)

    def has_key(self) -> bool:
        """``HasKey()``: whether ``k`` is non-empty."""
        return self._k is not None

    def set_nonce(self, nonce: int) -> None:
        """``SetNonce(nonce)``: sets ``n = nonce``."""
        if not 0 <= nonce <= MAX_NONCE:
            raise ValueError(f"a nonce is a u64, got {nonce}")
        self._n = nonce

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """``EncryptWithAd(ad, plaintext)``: ``ENCRYPT(k, n++, ad, plaintext)`` when ``k`` is
        non-empty, else the plaintext itself."""
        if self._aead is None:
            return plaintext
        ciphertext = self._aead.encrypt(self._next_nonce(), plaintext, ad)
        self._n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes | bytearray | memoryview) -> bytes:
        """``DecryptWithAd(ad, ciphertext)``: ``DECRYPT(k, n++, ad, ciphertext)`` when ``k`` is
        non-empty, else the ciphertext itself. Raises NoiseError, leaving ``n`` as it was, when
        the tag does not verify."""
        if self._aead is None:
            return bytes(ciphertext)
        try:
            plaintext = self._aead.decrypt(self._next_nonce(), ciphertext, ad)
        except InvalidTag:
            raise NoiseError(
                NoiseErrorCode.NOISE_FAILED, f"the tag does not verify under nonce {self._n}"
            ) from None
        self._n += 1
        return plaintext

    def rekey(self) -> None:
        """``Rekey()``: ``k = REKEY(k)``, the first 32 bytes of ``ENCRYPT(k, 2^64-1, "", 32
        zero bytes)`` (Noise section 4.2); ``n`` is left as it is."""
        if self._aead is None:
            raise NoiseUsageError("Rekey needs a key")
        self._k = self._aead.encrypt(_NONCE.pack(MAX_NONCE), _ZEROS, b"")[:KEY_SIZE]
        self._aead = ChaCha20Poly1305(self._k)

    def _next_nonce(self) -> bytes:
        if self._n == MAX_NONCE:  # Noise section 5.1: 2^64-1 is reserved
            raise NoiseUsageError("the nonce is exhausted")
        return _NONCE.pack(self._n)


class SymmetricState:
    """Noise section 5.2: a CipherState, the chaining key ``ck`` and the handshake hash ``h``."""

    def __init__(self, protocol_name: bytes) -> None:
        """``InitializeSymmetric(protocol_name)``."""
        if len(protocol_name) <= HASHLEN:
            self._h = protocol_name.ljust(HASHLEN, b"\0")
        else:
            self._h = hash_(protocol_name)
        self._ck = self._h
        self.cipher_state = CipherState()
        self.cipher_state.initialize_key(None)

    def mix_key(self, input_key_material: bytes) -> None:
        """``MixKey(input_key_material)``: a new ``ck`` and a new key from ``HKDF``."""
        self._ck, temp_k = hkdf(self._ck, input_key_material)
        self.cipher_state.initialize_key(temp_k)  # HASHLEN is 32: nothing to truncate

    def mix_hash(self, data: bytes) -> None:
        """``MixHash(data)``: ``h = HASH(h || data)``."""
        self._h = hash_(self._h + data)

    def get_handshake_hash(self) -> bytes:
        """``GetHandshakeHash()``: ``h``."""
        return self._h

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """``EncryptAndHash(plaintext)``: encrypted with ``h`` as associated data, then mixed
        into ``h``."""
        ciphertext = self.cipher_state.encrypt_with_ad(self._h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """``DecryptAndHash(ciphertext)``: decrypted with ``h`` as associated data, then the
        ciphertext mixed into ``h``. Raises NoiseError when the tag does not verify."""
        plaintext = self.cipher_state.decrypt_with_ad(self._h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """``Split()``: two CipherStates whose keys come from ``HKDF(ck, "", 2)``."""
        temp_k1, temp_k2 = hkdf(self._ck, b"")
        c1, c2 = CipherState(), CipherState()
        c1.initialize_key(temp_k1)
        c2.initialize_key(temp_k2)
        return c1, c2


class NoiseHandshake:
    """Noise section 5.3, the ``HandshakeState``, for the NN pattern only.

    ``initiator`` says the role, ``prologue`` the bytes both sides mix in first, and
    ``ephemeral`` is this side's 32-byte X25519 private key ``e``. ``ephemeral_public``, when
    given, is the public key written and mixed into ``h`` for ``e`` instead of
    ``X25519(ephemeral)``: the encrypted-first mode's Elligator key pairs (elligator.py) have a
    public key with a low-order component added, whose DH with any peer key is the same, but
    whose bytes differ, and both sides must hash the same bytes. The roles take turns: the
    initiator writes message 1 and reads message 2, the responder the reverse. Once
    ``complete``, ``split`` gives this side's pair (send, receive) and ``handshake_hash`` the
    hash ``h``. A peer's message that fails raises NoiseError and stops the machine; a call out
    of turn raises NoiseUsageError.
    """

    def __init__(
        self,
        initiator: bool,
        prologue: bytes,
        ephemeral: bytes,
        *,
        ephemeral_public: bytes | None = None,
    ) -> None:
        """``Initialize(handshake_pattern, initiator, prologue, s, e, rs, re)`` with NN: no
        static keys and no pre-messages."""
        if len(ephemeral) != DHLEN:
            raise ValueError(f"an X25519 private key has {DHLEN} bytes, got {len(ephemeral)}")
        if ephemeral_public is not None and len(ephemeral_public) != DHLEN:
            raise ValueError(f"a public key has {DHLEN} bytes, got {len(ephemeral_public)}")
        self.initiator = initiator
        self._symmetric = SymmetricState(PROTOCOL_NAME)  # spec: PRIV-20
        self._symmetric.mix_hash(prologue)  # spec: PRIV-20 (the prologue)
        self._e = ephemeral
        # spec: PRIV-51 (the key pair's own public key, as the peer will hash it)
        self._e_public = public_key(ephemeral) if ephemeral_public is None else ephemeral_public
        self._re: bytes | None = None
        self._patterns = list(NN_PATTERN)  # spec: PRIV-20 (-> e, <- e, ee)
        self._writing = initiator  # the initiator writes the first message
        self._pair: tuple[CipherState, CipherState] | None = None
        self._split_taken = False
        self._failed: NoiseError | None = None

    @property
    def complete(self) -> bool:
        """Whether both messages have been written or read."""
        return not self._patterns and self._failed is None

    @property
    def handshake_hash(self) -> bytes:
        """The handshake hash ``h`` once the handshake is complete (spec: PRIV-21)."""
        self._check_complete()
        return self._symmetric.get_handshake_hash()

    def split(self) -> tuple[CipherState, CipherState]:
        """(send, receive) for this side, once (spec: PRIV-21): the initiator sends with the
        first CipherState of ``Split`` and receives with the second, the responder the
        reverse. A second call raises NoiseUsageError: two holders of one key would reuse its
        nonces."""
        self._check_complete()
        if self._split_taken or self._pair is None:
            raise NoiseUsageError("split() was already taken")
        self._split_taken = True
        c1, c2 = self._pair
        return (c1, c2) if self.initiator else (c2, c1)  # spec: PRIV-21

    def write_message(self, payload: bytes = b"") -> bytes:
        """``WriteMessage(payload, message_buffer)``: the next message, which is this side's
        to write."""
        self._check_turn(writing=True)
        tokens = self._patterns[0]
        if _overhead(tokens) + len(payload) > MAX_MESSAGE:
            raise NoiseUsageError(f"a payload of {len(payload)} bytes makes too long a message")
        del self._patterns[0]
        out = bytearray()
        try:
            for token in tokens:
                if token == "e":
                    out += self._e_public
                    self._symmetric.mix_hash(self._e_public)
                elif token == "ee":
                    assert self._re is not None
                    self._symmetric.mix_key(dh(self._e, self._re))  # spec: PRIV-22 (zeros)
            out += self._symmetric.encrypt_and_hash(payload)
        except NoiseError as error:
            self._failed = error
            raise
        self._turn_done()
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        """``ReadMessage(message, payload_buffer)``: the payload of the peer's message, which
        is this side's to read. Raises NoiseError when the message is too short or too long,
        a DH gives zeros or the payload's tag does not verify."""
        self._check_turn(writing=False)
        try:
            payload = self._read(self._patterns.pop(0), message)
        except NoiseError as error:
            self._failed = error
            raise
        self._turn_done()
        return payload

    def _read(self, tokens: tuple[str, ...], message: bytes) -> bytes:
        needed = _overhead(tokens)
        if not needed <= len(message) <= MAX_MESSAGE:  # spec: PRIV-22 (wrong length)
            raise NoiseError(
                NoiseErrorCode.NOISE_FAILED,
                f"a message of {len(message)} bytes, expected {needed} to {MAX_MESSAGE}",
            )
        offset = 0
        for token in tokens:
            if token == "e":
                self._re = bytes(message[offset : offset + DHLEN])
                offset += DHLEN
                self._symmetric.mix_hash(self._re)
            elif token == "ee":
                assert self._re is not None
                self._symmetric.mix_key(dh(self._e, self._re))  # spec: PRIV-22 (zeros)
        # spec: PRIV-22 (a tag that does not verify)
        return self._symmetric.decrypt_and_hash(bytes(message[offset:]))

    def _check_turn(self, writing: bool) -> None:
        if self._failed is not None:
            raise NoiseUsageError(f"the handshake already failed: {self._failed}")
        if not self._patterns:
            raise NoiseUsageError("the handshake is complete")
        if writing != self._writing:
            raise NoiseUsageError(
                "it is this side's turn to " + ("write" if self._writing else "read")
            )

    def _turn_done(self) -> None:
        self._writing = not self._writing
        if not self._patterns:
            self._pair = self._symmetric.split()  # spec: PRIV-21

    def _check_complete(self) -> None:
        if not self.complete:
            raise NoiseUsageError("the handshake is not complete")


def _overhead(tokens: tuple[str, ...]) -> int:
    """The bytes of a message besides its payload: its public keys, and the payload's tag
    when ``ee`` has given the CipherState a key."""
    return DHLEN * tokens.count("e") + (TAG_SIZE if "ee" in tokens else 0)
