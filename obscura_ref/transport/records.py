"""Sealed records: every frame after the Noise handshake (spec/privacy.md section 3.3).

As Lightning's BOLT 8 seals its messages: a record is its plaintext's length, a u32
little-endian, encrypted (4 bytes and a 16-byte tag), then the plaintext encrypted (its bytes and
a 16-byte tag), each with the next nonce of the direction's CipherState. The plaintext is one
whole frame of spec/wire.md followed by padding.

Pure: no sockets, no clock. The opener is fed whatever chunks a transport reads, as the frame
decoder of obscura_ref/wire/frame.py is, and returns whole plaintexts, or one named error after
which it opens nothing more.
"""

from __future__ import annotations

import struct
from enum import Enum

from ..wire import HEADER_SIZE, MAX_PAYLOAD, DecodeError, Frame, FrameDecoder
from .noise import TAG_SIZE, CipherState, NoiseError

REKEY_AFTER = 1000  # a key's nonces before it is replaced: 500 records
LENGTH_SIZE = 4
SEALED_LENGTH_SIZE = LENGTH_SIZE + TAG_SIZE
MIN_BUCKET = 64
BUCKET_STEP = 65536
_LENGTH = struct.Struct("<I")
NONCES_PER_RECORD = 2  # the length's and the body's
# How many records around the expected one the diagnosis of PRIV-28 looks at, each way.
DIAGNOSED_RECORDS = 8


def bucket_size(n: int) -> int:
    """The size of a padded record's plaintext for a frame of ``n`` bytes (spec: PRIV-31): the
    smallest power of two at least ``max(n, 64)`` while that is at most 65536, else ``n``
    rounded up to a multiple of 65536."""
    if n < 0:
        raise ValueError(f"a size is not negative, got {n}")
    if n <= BUCKET_STEP:
        return max(MIN_BUCKET, 1 << (n - 1).bit_length())  # spec: PRIV-31
    return -(-n // BUCKET_STEP) * BUCKET_STEP  # spec: PRIV-31


MAX_RECORD = bucket_size(HEADER_SIZE + MAX_PAYLOAD)  # the largest frame, padded


class RecordErrorCode(Enum):
    """One code for each way a stream of records can fail; each value is also the name of the
    close reason."""

    RECORD_TOO_LARGE = "record_too_large"
    RECORD_FORGED = "record_forged"
    RECORD_REPLAYED = "record_replayed"
    RECORD_REORDERED = "record_reordered"
    RECORD_TRUNCATED = "record_truncated"
    RECORD_NOT_ONE_FRAME = "record_not_one_frame"

    @property
    def requirement(self) -> str:
        """The requirement ID whose rule this error reports."""
        return RECORD_REQUIREMENTS[self]


RECORD_REQUIREMENTS: dict[RecordErrorCode, str] = {
    RecordErrorCode.RECORD_TOO_LARGE: "PRIV-26",
    RecordErrorCode.RECORD_FORGED: "PRIV-27",
    RecordErrorCode.RECORD_REPLAYED: "PRIV-28",
    RecordErrorCode.RECORD_REORDERED: "PRIV-28",
    RecordErrorCode.RECORD_TRUNCATED: "PRIV-29",
    RecordErrorCode.RECORD_NOT_ONE_FRAME: "PRIV-30",
}


class RecordError(Exception):
    """Records from a peer that break a rule of spec/privacy.md section 3.3: ``code`` is the
    error code and ``requirement`` the rule broken."""

    def __init__(self, code: RecordErrorCode, detail: str) -> None:
        self.requirement = code.requirement
        super().__init__(f"{code.value} ({self.requirement}): {detail}")
        self.code = code
        self.detail = detail

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecordError) and (self.code, self.detail) == (
            other.code,
            other.detail,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.detail))


def after_use(cipher: CipherState) -> None:
    """The rekey rule, checked after each encryption or decryption: a key whose nonce has
    reached REKEY_AFTER is replaced by REKEY(k) and its nonce starts again at 0."""
    if cipher.nonce >= REKEY_AFTER:  # spec: PRIV-25
        cipher.rekey()
        cipher.set_nonce(0)


class RecordSealer:
    """Seals the frames of one direction with its CipherState from Split (spec: PRIV-24),
    padding each to its bucket when ``pad`` is set (spec: PRIV-31).

    ``first_ad`` is the associated data of both encryptions of the first record sealed (the
    encrypted-first mode binds the garbage this side sent into it); every later record has
    empty associated data."""

    def __init__(self, cipher: CipherState, pad: bool, *, first_ad: bytes = b"") -> None:
        self.cipher = cipher
        self.pad = pad
        self._ad = first_ad

    def seal(self, frame: bytes) -> bytes:
        """The record carrying ``frame``, one whole encoded frame."""
        plaintext = frame
        if self.pad:
            # spec: PRIV-30, PRIV-31 (zero bytes up to the bucket)
            plaintext = frame + bytes(bucket_size(len(frame)) - len(frame))
        if len(plaintext) > MAX_RECORD:  # spec: PRIV-26 (a sender never makes one)
            raise ValueError(f"a record of {len(plaintext)} bytes exceeds {MAX_RECORD}")
        ad, self._ad = self._ad, b""  # spec: PRIV-56 (the first record's only)
        # spec: PRIV-24 (the length, then the plaintext, each with the next nonce)
        length = self.cipher.encrypt_with_ad(ad, _LENGTH.pack(len(plaintext)))  # spec: PRIV-56
        after_use(self.cipher)  # spec: PRIV-25
        body = self.cipher.encrypt_with_ad(ad, plaintext)  # spec: PRIV-56
        after_use(self.cipher)  # spec: PRIV-25
        return length + body


Opened = bytes | RecordError


class RecordOpener:
    """Incremental opener of one direction's records, with its CipherState from Split.

    ``push`` hands it bytes as they are read; ``pull`` returns the next record's plaintext, or
    None when more bytes are needed, or the RecordError that ends the stream, which every later
    ``pull`` returns again. ``eof`` reports a stream that ended inside a record, once; call it
    after pulling everything.

    Memory: besides what was pushed and not yet pulled, the opener holds at most one sealed
    length, or one sealed body whose length was accepted, so never more than
    ``max_record + 16`` bytes. A completed body is handed over before it is decrypted.

    ``first_ad`` is the associated data of the first record's two decryptions, as the sealer's
    (the peer's garbage, in the encrypted-first mode); later records have none. The diagnosis of
    PRIV-28 tries each nonce with the associated data of the record sealed there: ``first_ad``
    where the first record started, so that the first record sent again is ``record_replayed``,
    and none elsewhere.
    """

    def __init__(
        self, cipher: CipherState, max_record: int = MAX_RECORD, *, first_ad: bytes = b""
    ) -> None:
        self.cipher = cipher
        self.max_record = max_record
        self._ad = first_ad  # until the first record is opened
        self._first_ad = first_ad
        self._first_at = (cipher.key, cipher.nonce)  # where the first record starts
        # Pushed, not yet pulled (as in FrameDecoder: a list of views, never a growing bytes).
        self._input: list[memoryview] = []
        self._input_size = 0
        self._buffer = bytearray()  # the sealed length being read, then the sealed body
        self._length: int | None = None  # the plaintext's length, once its tag verified
        self._error: RecordError | None = None

    @property
    def error(self) -> RecordError | None:
        """The error that stopped this opener, if any."""
        return self._error

    @property
    def buffered(self) -> int:
        """How many bytes of an unfinished record are held."""
        return len(self._buffer)

    @property
    def pending(self) -> int:
        """How many pushed bytes have not been pulled yet."""
        return self._input_size

    def push(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            return  # a dead opener keeps nothing: nothing after the error is opened
        if data:
            # A copy unless the caller's bytes are immutable: a read buffer may be reused.
            self._input.append(memoryview(data if isinstance(data, bytes) else bytes(data)))
            self._input_size += len(data)

    def pull(self) -> Opened | None:
        if self._error is not None:
            return self._error
        try:
            return self._next_record()
        except RecordError as error:
            self._error = error
            self._input.clear()  # (the buffer is empty: it is handed over before decrypting)
            self._input_size = 0
            return error

    def feed(self, data: bytes | bytearray | memoryview) -> list[Opened]:
        """Push ``data`` and pull every record it completes (the error last, if any)."""
        self.push(data)
        out: list[Opened] = []
        while (item := self.pull()) is not None:
            out.append(item)
            if isinstance(item, RecordError):
                break
        return out

    def eof(self) -> RecordError | None:
        """Tell the opener the stream has ended; returns ``record_truncated`` when it ended
        inside a record, else None."""
        if self._error is not None:
            return None
        if self._buffer or self._length is not None or self._input:  # spec: PRIV-29
            held = len(self._buffer) + self._input_size
            where = "length" if self._length is None else "body"
            self._error = RecordError(
                RecordErrorCode.RECORD_TRUNCATED,
                f"stream ended inside a record's {where} ({held} bytes of it held)",
            )
            return self._error
        return None

    def _take(self, count: int) -> memoryview:
        """Up to ``count`` bytes of pushed input, without copying."""
        if not self._input or count <= 0:
            return memoryview(b"")
        first = self._input[0]
        if len(first) <= count:
            piece = self._input.pop(0)
        else:
            piece, self._input[0] = first[:count], first[count:]
        self._input_size -= len(piece)
        return piece

    def _read(self, count: int) -> memoryview | bytearray | None:
        """Exactly ``count`` bytes, or None when they have not all arrived yet (what did is
        kept in the buffer)."""
        if not self._buffer and self._input and len(self._input[0]) >= count:
            return self._take(count)  # all in one read: no copy
        while len(self._buffer) < count:
            piece = self._take(count - len(self._buffer))
            if not piece:
                return None
            self._buffer += piece
        # Hand the buffer over: the opener stops holding it before it is decrypted.
        whole, self._buffer = self._buffer, bytearray()
        return whole

    def _next_record(self) -> bytes | None:
        if not self._input:
            return None  # nothing new: no record can complete
        if self._length is None:
            sealed = self._read(SEALED_LENGTH_SIZE)
            if sealed is None:
                return None
            try:
                # spec: PRIV-56 (the first record's associated data)
                length = _LENGTH.unpack(self.cipher.decrypt_with_ad(self._ad, sealed))[0]
            except NoiseError:
                raise self._diagnose(bytes(sealed)) from None
            after_use(self.cipher)  # spec: PRIV-25
            if length > self.max_record:  # spec: PRIV-26 (before any byte of the body)
                raise RecordError(
                    RecordErrorCode.RECORD_TOO_LARGE,
                    f"a record of {length} bytes exceeds {self.max_record}",
                )
            self._length = length
        body = self._read(self._length + TAG_SIZE)
        if body is None:
            return None
        try:
            plaintext = self.cipher.decrypt_with_ad(self._ad, body)  # spec: PRIV-56
        except NoiseError:
            raise RecordError(  # spec: PRIV-27
                RecordErrorCode.RECORD_FORGED,
                f"the tag of a {self._length}-byte body does not verify "
                f"under nonce {self.cipher.nonce}",
            ) from None
        after_use(self.cipher)  # spec: PRIV-25
        self._length = None
        self._ad = b""  # spec: PRIV-56 (later records have empty associated data)
        return plaintext

    def _diagnose(self, sealed: bytes) -> RecordError:
        """Why a sealed length does not verify under the expected nonce n: a record already
        opened (it verifies under n-2, ..., n-16), a later one (n+2, ..., n+16, below
        REKEY_AFTER), or neither. This costs at most 16 more decryptions of 20 bytes, once per
        connection, which closes anyway. The nonce is set back to n afterwards."""
        n = self.cipher.nonce
        offsets = [NONCES_PER_RECORD * i for i in range(1, DIAGNOSED_RECORDS + 1)]
        earlier = [n - offset for offset in offsets if n - offset >= 0]
        later = [n + offset for offset in offsets if n + offset < REKEY_AFTER]
        found = None
        for code, nonces in (
            (RecordErrorCode.RECORD_REPLAYED, earlier),  # spec: PRIV-28
            (RecordErrorCode.RECORD_REORDERED, later),  # spec: PRIV-28
        ):
            for nonce in nonces:
                if self._verifies(sealed, nonce):
                    found = code, nonce
                    break
            if found:
                break
        self.cipher.set_nonce(n)
        if found is None:
            return RecordError(  # spec: PRIV-27
                RecordErrorCode.RECORD_FORGED,
                f"the tag of a record's length does not verify under nonce {n}",
            )
        code, nonce = found
        return RecordError(
            code, f"the record's length verifies under nonce {nonce}, not the expected {n}"
        )

    def _verifies(self, sealed: bytes, nonce: int) -> bool:
        first = (self.cipher.key, nonce) == self._first_at
        self.cipher.set_nonce(nonce)
        try:
            # spec: PRIV-28, PRIV-56 (as the record at that nonce was sealed)
            self.cipher.decrypt_with_ad(self._first_ad if first else b"", sealed)
        except NoiseError:
            return False
        return True


def split_record(
    plaintext: bytes, max_payload: int = MAX_PAYLOAD
) -> tuple[Frame, int] | DecodeError | RecordError:
    """The frame a record's plaintext begins with and the number of padding bytes after it
    (spec: PRIV-30), decoded by spec/wire.md's rules with the receiver's ``max_payload``; the
    wire's DecodeError when the frame is invalid, ``record_not_one_frame`` when the plaintext
    ends before the frame does. The padding's values are not looked at."""
    decoder = FrameDecoder(max_payload)
    decoder.push(plaintext)
    item = decoder.pull()
    if item is None:  # spec: PRIV-30
        return RecordError(
            RecordErrorCode.RECORD_NOT_ONE_FRAME,
            f"the record's {len(plaintext)} bytes end before the frame they begin with",
        )
    if isinstance(item, DecodeError):
        return item
    return item, decoder.pending  # spec: PRIV-30 (what follows the frame is padding)
