"""The encrypted transport's sub-machine, ``SecureChannel`` (spec/privacy.md section 3).

``PeerConnection`` makes one when both handshakes set ``EncryptedTransport`` and hands it every
byte from then on. It runs the Noise handshake (section 3.2), then stands where the frame
decoder stood: it opens sealed records and hands back the frames inside them, and seals the
frames the connection sends (section 3.3). Like ``HandshakeProtocol`` it returns outcomes; the
connection machine turns them into actions.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..transport.elligator import (
    FIRST_PROLOGUE,
    HIDDEN_SIZE,
    HiddenKeyPair,
    draw_hidden_key_pair,
    hide_message,
    unhide_message,
)
from ..transport.garbage import (
    Found,
    GarbageError,
    TerminatorScanner,
    draw_garbage,
    garbage_terminators,
)
from ..transport.noise import (
    MESSAGE1_SIZE,
    MESSAGE2_SIZE,
    CipherState,
    NoiseError,
    NoiseHandshake,
    public_key,
)
from ..transport.records import (
    MAX_RECORD,
    RecordError,
    RecordOpener,
    RecordSealer,
    bucket_size,
    split_record,
)
from ..wire import (
    HEADER_SIZE,
    MAGIC,
    MAX_HANDSHAKE_PAYLOAD,
    MAX_PAYLOAD,
    DecodeError,
    Disconnect,
    Frame,
    FrameDecoder,
)
from .padding import RandomSource, random_bytes
from .reasons import CloseReason

PROLOGUE_LABEL = b"OBX noise v1"  # spec: PRIV-20 (the prologue's first 12 bytes)


def noise_prologue(initiator_handshake: bytes, responder_handshake: bytes) -> bytes:
    """Both handshake frames as they travelled, bound into the Noise handshake (PRIV-20)."""
    return PROLOGUE_LABEL + initiator_handshake + responder_handshake


def draw_ephemeral(rng: RandomSource) -> bytes:
    """A Noise ephemeral private key from the node's random source, drawn again while its
    public key begins with MAGIC, which a receiver would take for a frame (spec: PRIV-33)."""
    while True:
        private = random_bytes(rng, 32)
        if public_key(private)[: len(MAGIC)] != MAGIC:
            return private


@dataclass(frozen=True)
class NeedMore:
    """The Noise message is incomplete."""


@dataclass(frozen=True)
class Secured:
    """The Noise handshake is complete; ``reply`` is the responder's message 2, to send now."""

    reply: bytes | None
    session_id: bytes


@dataclass(frozen=True)
class NoiseFailed:
    reason: CloseReason
    detail: str


@dataclass(frozen=True)
class RejectedInPlaintext:
    """Responder only: the initiator rejected our handshake and said so with a plaintext
    Disconnect where its Noise message 1 would be (spec: PRIV-23, HS-13)."""

    frame: Frame


NoiseStep = NeedMore | Secured | NoiseFailed | RejectedInPlaintext

_RECORD_REASONS = {reason.label: reason for reason in CloseReason}


def record_reason(error: RecordError | GarbageError) -> CloseReason:
    """The close reason of a record or garbage error: the reasons are named as the codes."""
    return _RECORD_REASONS[error.code.value]


class SecureChannel:
    """One connection's Noise handshake, then its sealed records.

    ``first``: the connection is encrypted from its first byte (section 3.5): the ephemeral
    keys travel as Elligator 2 representatives, each side's Noise message is followed by
    garbage and a terminator, and the first record each way authenticates that garbage.
    Otherwise ``prologue`` binds the two plaintext handshakes (section 3.2)."""

    def __init__(
        self,
        initiator: bool,
        prologue: bytes,
        rng: RandomSource,
        pad_records: bool,
        *,
        first: bool = False,
    ) -> None:
        self.initiator = initiator
        self.first = first
        self._rng = rng
        self._hidden: HiddenKeyPair | None = None
        if first:
            # spec: PRIV-51, PRIV-52 (an Elligator 2 key pair; its public key is Noise's e)
            self._hidden = draw_hidden_key_pair(self._draw)
            self._noise = NoiseHandshake(
                initiator, FIRST_PROLOGUE, self._hidden.secret, ephemeral_public=self._hidden.public
            )
        else:
            self._noise = NoiseHandshake(initiator, prologue, draw_ephemeral(rng))  # spec: PRIV-33
        self._garbage = b""  # what this side sent after its Noise message (PRIV-50, PRIV-53)
        self._peer_hidden = b""  # the peer's representative as it arrived (PRIV-56)
        self._scanner: TerminatorScanner | None = None  # for the peer's terminator (PRIV-55)
        self._receive: CipherState | None = None
        self._pad_records = pad_records
        self._message = bytearray()  # the peer's Noise message as it arrives (48 bytes at most)
        self._expected = MESSAGE2_SIZE if initiator else MESSAGE1_SIZE
        self._plain: FrameDecoder | None = None  # a responder's view of a plaintext frame
        self._sealer: RecordSealer | None = None
        self._opener: RecordOpener | None = None
        self.session_id: bytes | None = None
        # Encrypted from the first byte, the handshake travels in records: until it completes,
        # no frame is larger than a handshake, no record than its bucket.
        # spec: HS-23, PRIV-26
        self._max_payload = MAX_HANDSHAKE_PAYLOAD if first else MAX_PAYLOAD

    @property
    def max_payload(self) -> int:
        return self._max_payload

    @max_payload.setter
    def max_payload(self, limit: int) -> None:
        """The connection's frame limit (HS-23), and with it the longest record (PRIV-26)."""
        self._max_payload = limit
        if self._opener is not None:
            self._opener.max_record = self._max_record

    @property
    def _max_record(self) -> int:
        return min(MAX_RECORD, bucket_size(HEADER_SIZE + self._max_payload))

    def _draw(self, count: int) -> bytes:
        return random_bytes(self._rng, count)

    def start(self) -> bytes:
        """Initiator only: message 1, sent right after the responder's handshake is accepted
        (spec: PRIV-20); encrypted-first, its representative and garbage, the connection's
        first bytes (spec: PRIV-50)."""
        message = self._noise.write_message()
        if self._hidden is None:
            return message
        self._garbage = draw_garbage(self._draw)  # spec: PRIV-50
        return hide_message(message, self._hidden) + self._garbage  # spec: PRIV-51

    @property
    def can_seal(self) -> bool:
        """This side holds its sending CipherState (spec: PRIV-34)."""
        return self._sealer is not None

    @property
    def held_bytes(self) -> int:
        if self._scanner is not None:
            return self._scanner.held
        if self._opener is None:
            plain = 0 if self._plain is None else self._plain.buffered + self._plain.pending
            return len(self._message) + plain
        return self._opener.buffered + self._opener.pending

    def handshake(self, data: bytes) -> NoiseStep:
        """Bytes of the Noise handshake; any bytes after the peer's message are records, kept
        for ``pull``."""
        if self._plain is not None:
            return self._plain_frame(data)
        take = self._expected - len(self._message)
        self._message += data[:take]
        rest = data[take:]
        if len(self._message) >= len(MAGIC) and self._message[: len(MAGIC)] == MAGIC:
            if not self.initiator and not self.first:
                # spec: PRIV-37 (an initiator that rejected our handshake says so in plaintext)
                self._plain = FrameDecoder(max_payload=MAX_HANDSHAKE_PAYLOAD)
                message, self._message = bytes(self._message), bytearray()
                return self._plain_frame(message + rest)
            # spec: PRIV-23, PRIV-58 (an encrypted-first initiator never goes on in plaintext)
            return NoiseFailed(
                CloseReason.NOISE_OUT_OF_PLACE, "a frame's magic where a Noise message belongs"
            )
        if len(self._message) < self._expected:
            return NeedMore()
        message = bytes(self._message)
        if self._hidden is not None:
            self._peer_hidden = message[:HIDDEN_SIZE]  # authenticated by its first record
            message = unhide_message(message)  # spec: PRIV-51 (the peer's e from its R(e))
        try:
            self._noise.read_message(message)  # spec: PRIV-20, PRIV-22
            reply = None if self.initiator else self._noise.write_message()
        except NoiseError as error:
            return NoiseFailed(CloseReason.NOISE_FAILED, error.detail)  # spec: PRIV-22
        send, receive = self._noise.split()  # spec: PRIV-21
        self.session_id = self._noise.handshake_hash  # spec: PRIV-21
        self._message = bytearray()
        if self._hidden is None:
            self._sealer = RecordSealer(send, self._pad_records)
            self._opener = RecordOpener(receive, self._max_record)
            self._opener.push(rest)
            return Secured(reply, self.session_id)
        # spec: PRIV-54 (each side's terminator, from the handshake hash)
        initiator_end, responder_end = garbage_terminators(self.session_id)
        own_end, peer_end = (
            (initiator_end, responder_end) if self.initiator else (responder_end, initiator_end)
        )
        if reply is not None:  # the responder: message 2 hidden, its garbage, its terminator
            self._garbage = draw_garbage(self._draw)  # spec: PRIV-53
            reply = hide_message(reply, self._hidden) + self._garbage + own_end
        else:  # the initiator: its terminator, now that it knows h (spec: PRIV-54)
            reply = own_end
        # The first record each way authenticates the representative and the garbage before
        # it: the Noise hash covers the public key, not its representative.
        # spec: PRIV-56
        own_ad = self._hidden.hidden + self._garbage  # spec: PRIV-56
        self._sealer = RecordSealer(send, self._pad_records, first_ad=own_ad)
        self._receive = receive
        self._scanner = TerminatorScanner(peer_end)  # spec: PRIV-55
        self._scanner.push(rest)
        return Secured(reply, self.session_id)

    def _plain_frame(self, data: bytes) -> NoiseStep:
        assert self._plain is not None
        self._plain.push(data)
        item = self._plain.pull()
        if item is None:
            return NeedMore()
        if isinstance(item, Frame) and isinstance(item.message, Disconnect):
            return RejectedInPlaintext(item)  # spec: PRIV-37, CONN-22
        kind = item.message.message_type.name if isinstance(item, Frame) else str(item)
        # spec: PRIV-23
        return NoiseFailed(
            CloseReason.NOISE_OUT_OF_PLACE,
            f"a plaintext frame ({kind}) where Noise message 1 belongs",
        )

    def seal(self, frame: bytes) -> bytes:
        assert self._sealer is not None
        return self._sealer.seal(frame)  # spec: PRIV-24, PRIV-31

    def push(self, data: bytes) -> None:
        if self._scanner is not None:
            self._scanner.push(data)
            return
        assert self._opener is not None
        self._opener.push(data)

    def pull(self) -> Frame | DecodeError | RecordError | GarbageError | None:
        """The next frame from the records received, or the error that ends the stream."""
        if self._scanner is not None:
            found = self._scanner.pull()  # spec: PRIV-55
            if not isinstance(found, Found):
                return found
            assert self._receive is not None
            self._scanner = None
            # spec: PRIV-56 (the peer's first record is sealed with its garbage)
            self._opener = RecordOpener(
                self._receive, self._max_record, first_ad=self._peer_hidden + found.garbage
            )
            self._opener.push(found.rest)
        assert self._opener is not None
        item = self._opener.pull()  # spec: PRIV-24
        if item is None or isinstance(item, RecordError):
            return item
        split = split_record(item, self._max_payload)  # spec: PRIV-30, HS-23
        if isinstance(split, tuple):
            return split[0]
        return split

    def eof(self) -> RecordError | None:
        """The stream ended: ``record_truncated`` when inside a record (spec: PRIV-29)."""
        return None if self._opener is None else self._opener.eof()

    @property
    def receiving(self) -> bool:
        """Records can be opened: the Noise handshake, and the peer's garbage, are behind."""
        return self._opener is not None or self._scanner is not None
