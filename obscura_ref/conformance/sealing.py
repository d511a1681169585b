"""The runner's side of the encrypted transport (spec/privacy.md section 3), for session vectors.

Built from the transport codecs (``obscura_ref/transport``), never from ``SecureChannel``, so
that the runner can send wrong bytes on purpose: a record with a broken tag, a record sent twice
or early, a length above the limit, a frame cut short inside a record, a bad Noise message.

One ``PeerCrypto`` per runner connection. It notes the handshake frames both sides sent; once
both set ``EncryptedTransport`` (PRIV-11), what the implementation sends is Noise's, then
records, and the ``secure`` step runs the Noise handshake in the runner's role.
"""

from __future__ import annotations

from ..transport.garbage import Found
from ..transport.noise import TAG_SIZE, CipherState, NoiseHandshake
from ..transport.records import (
    LENGTH_SIZE,
    MAX_RECORD,
    SEALED_LENGTH_SIZE,
    RecordError,
    RecordOpener,
    RecordSealer,
    split_record,
)
from ..wire import DecodeError, Frame
from ..wire.registry import PrivacyFeature

PROLOGUE_LABEL = b"OBX noise v1"
TAMPERS = ("length_tag", "body_tag", "replay", "reorder", "too_large", "not_one_frame", "truncate")


def _offers(frame: bytes) -> bool:
    # The privacy_features field of a handshake frame: header 16, then 4 + 8 + 4 bytes.
    return bool(int.from_bytes(frame[32:36], "little") & PrivacyFeature.EncryptedTransport)


class PeerCrypto:
    """What the runner knows of one connection's encrypted transport."""

    def __init__(self) -> None:
        self.own_handshake: bytes | None = None  # the runner's handshake frame, as sent
        self.peer_handshake: bytes | None = None  # the implementation's, as received
        self.raw: bytearray | None = None  # Noise bytes received, once both offered
        self.send: CipherState | None = None
        self.sealer: RecordSealer | None = None
        self.opener: RecordOpener | None = None
        self.session_id: bytes | None = None
        self._last_record = b""

    @property
    def negotiated(self) -> bool:
        """Both handshakes set EncryptedTransport: the stream after them is Noise's."""
        own, peer = self.own_handshake, self.peer_handshake
        return own is not None and peer is not None and _offers(own) and _offers(peer)

    def sent_handshake(self, frame: bytes) -> None:
        if self.own_handshake is None:  # the first one is the one both sides bind
            self.own_handshake = frame

    def prologue(self, runner_initiates: bool) -> bytes:
        assert self.own_handshake is not None and self.peer_handshake is not None
        own, peer = self.own_handshake, self.peer_handshake
        first, second = (own, peer) if runner_initiates else (peer, own)
        return PROLOGUE_LABEL + first + second

    def noise(self, runner_initiates: bool, ephemeral: bytes) -> NoiseHandshake:
        return NoiseHandshake(runner_initiates, self.prologue(runner_initiates), ephemeral)

    def install(self, noise: NoiseHandshake) -> None:
        """The Noise handshake is done: records from now on, both ways."""
        send, receive = noise.split()
        self.send = send
        self.sealer = RecordSealer(send, pad=False)
        self.opener = RecordOpener(receive)
        self.session_id = noise.handshake_hash
        if self.raw:
            self.opener.push(bytes(self.raw))
        self.raw = None

    def install_first(
        self,
        send: CipherState,
        receive: CipherState,
        own_ad: bytes,
        peer_hidden: bytes,
        found: Found,
    ) -> None:
        """Encrypted from the first byte: records from now on, the first each way sealed with
        its sender's representative and garbage (spec: PRIV-56)."""
        self.send = send
        self.sealer = RecordSealer(send, pad=False, first_ad=own_ad)
        self.opener = RecordOpener(receive, first_ad=peer_hidden + found.garbage)
        self.opener.push(found.rest)
        self.raw = None

    def opened(self) -> list[Frame | DecodeError | RecordError]:
        """The frames of the records received so far, and the error that ends them."""
        assert self.opener is not None
        out: list[Frame | DecodeError | RecordError] = []
        while (item := self.opener.pull()) is not None:
            if isinstance(item, RecordError):
                out.append(item)
                break
            split = split_record(item)
            out.append(split[0] if isinstance(split, tuple) else split)
            if not isinstance(split, tuple):
                break
        return out

    def seal(self, frames: list[bytes], tamper: str | None = None, pad: bool = False) -> bytes:
        """The records of ``frames``, one each, or the wrong bytes ``tamper`` names; ``pad``:
        each padded to its size bucket (PRIV-31), after the first record."""
        assert self.send is not None and self.sealer is not None
        sealer = RecordSealer(self.send, pad=True) if pad else self.sealer
        if tamper is None:
            out = b"".join(sealer.seal(frame) for frame in frames)
        elif tamper == "replay":
            out = self._last_record  # the last record sent, again: nonces already used
        elif tamper == "reorder":  # two records, the second first
            first, second = sealer.seal(frames[0]), sealer.seal(frames[1])
            out = second + first
        elif tamper == "too_large":  # a length one above the limit, properly sealed
            out = self.send.encrypt_with_ad(b"", (MAX_RECORD + 1).to_bytes(LENGTH_SIZE, "little"))
        elif tamper == "not_one_frame":  # the first half of a frame, alone in its record
            out = sealer.seal(frames[0][: len(frames[0]) // 2])
        else:
            record = bytearray(sealer.seal(frames[0]))
            if tamper == "length_tag":
                record[LENGTH_SIZE + 15] ^= 0x01  # the last byte of the length's tag
            elif tamper == "body_tag":
                record[-1] ^= 0x01
            elif tamper == "truncate":
                del record[10:]  # inside the sealed length
            else:
                raise ValueError(f"unknown tamper {tamper!r}; known: {', '.join(TAMPERS)}")
            out = bytes(record)
        if tamper is None and frames:  # kept for a later ``replay``
            self._last_record = out[-(len(frames[-1]) + SEALED_LENGTH_SIZE + TAG_SIZE) :]
        return out
