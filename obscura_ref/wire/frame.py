"""The frame envelope and the incremental frame decoder (spec/wire.md section 2).

Pure: no sockets, no clock. The decoder is fed whatever chunks a transport happens to read and
returns whole frames, or one named error after which it decodes nothing more.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from .errors import DecodeError, EncodeError, ErrorCode
from .messages import MAX_HANDSHAKE_PAYLOAD, Message, Payload, decode_payload
from .registry import MessageType, lookup_type

MAGIC = b"OBX\x00"
HEADER_SIZE = 16
MAX_PAYLOAD = 10 * 1024 * 1024
_HEADER = struct.Struct("<4sII4s")  # magic, message_type, payload_length, checksum


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its message and the padding that followed the message's fields."""

    message: Message
    padding: bytes = b""


def checksum(payload: Payload) -> bytes:
    """The first four bytes of SHA-256(SHA-256(payload))."""
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]  # spec: WIRE-3


def encode_frame(message: Message, padding: bytes = b"") -> bytes:
    """The bytes of one frame carrying ``message`` followed by ``padding``.

    Raises EncodeError when the payload would break a size limit."""
    payload = message.encode() + padding  # spec: WIRE-31
    if len(payload) > MAX_PAYLOAD:  # spec: WIRE-4
        raise EncodeError(
            "padding", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}", "WIRE-4"
        )
    if message.message_type is MessageType.Handshake and len(payload) > MAX_HANDSHAKE_PAYLOAD:
        # spec: WIRE-41
        raise EncodeError(
            "padding",
            f"handshake payload of {len(payload)} bytes exceeds {MAX_HANDSHAKE_PAYLOAD}",
            "WIRE-41",
        )
    header = _HEADER.pack(  # spec: WIRE-1, WIRE-2 (magic, type, length, then the checksum)
        MAGIC, message.message_type, len(payload), checksum(payload)
    )
    return header + payload


def check_magic(received: bytes | memoryview, offset: int) -> None:
    """Check bytes of the magic field that start at ``offset`` of it, as they arrive
    (spec/wire.md section 2.1, row 1)."""
    for index, byte in enumerate(received[: len(MAGIC) - offset], offset):
        if byte != MAGIC[index]:  # spec: WIRE-5
            raise DecodeError(
                ErrorCode.BAD_MAGIC,
                f"byte {index} of magic is {byte:#04x}, expected {MAGIC[index]:#04x}",
            )


def check_header(header: bytes) -> tuple[MessageType, int, bytes]:
    """The message type, payload length and checksum of a complete 16-byte header whose magic
    has passed ``check_magic``, checked in the order of spec/wire.md section 2.1 (rows 2 to 4)."""
    _, code, length, expected = _HEADER.unpack(header)
    message_type = lookup_type(code)  # spec: WIRE-10 (type, general limit, handshake limit)
    if message_type is None:  # spec: WIRE-6
        raise DecodeError(ErrorCode.UNKNOWN_MESSAGE_TYPE, f"message type {code:#x}")
    if length > MAX_PAYLOAD:  # spec: WIRE-7
        raise DecodeError(
            ErrorCode.PAYLOAD_TOO_LARGE, f"payload_length {length} exceeds {MAX_PAYLOAD}"
        )
    if message_type is MessageType.Handshake and length > MAX_HANDSHAKE_PAYLOAD:  # spec: WIRE-8
        raise DecodeError(
            ErrorCode.HANDSHAKE_TOO_LARGE,
            f"handshake payload_length {length} exceeds {MAX_HANDSHAKE_PAYLOAD}",
        )
    return message_type, length, expected


def decode_body(message_type: MessageType, expected: bytes, payload: Payload) -> Frame:
    """The frame whose header has passed ``check_header``, from its whole payload
    (spec/wire.md section 2.1, rows 5 and 6)."""
    actual = checksum(payload)  # spec: WIRE-10 (the checksum before any payload field)
    if actual != expected:  # spec: WIRE-9
        raise DecodeError(
            ErrorCode.BAD_CHECKSUM, f"checksum is {expected.hex()}, payload gives {actual.hex()}"
        )
    message, padding = decode_payload(message_type, payload)
    return Frame(message, padding)


Decoded = Frame | DecodeError


class FrameDecoder:
    """Incremental decoder for one connection's byte stream.

    ``feed`` takes any chunk and returns the frames it completes, in order; if the stream breaks
    a rule the last item returned is the DecodeError and the decoder decodes nothing more
    (spec: WIRE-14): feeding it again raises RuntimeError, a caller's bug. ``eof`` reports a
    stream that ended inside a frame, once.

    Memory: the decoder holds at most one header, or one payload whose length the header has
    already accepted, so never more than ``HEADER_SIZE + MAX_PAYLOAD`` bytes (spec: WIRE-13).
    A completed payload is handed over before its frame is built, so while one frame is being
    built its bytes exist at most twice: the payload handed over and the frame's own copy.
    """

    def __init__(self) -> None:
        # spec: WIRE-12 (all state between chunks: the partial header or payload and the header)
        self._buffer = bytearray()  # the header being read, then the payload being read
        self._header: tuple[MessageType, int, bytes] | None = None  # once the header passed
        self._error: DecodeError | None = None

    @property
    def error(self) -> DecodeError | None:
        """The error that stopped this decoder, if any."""
        return self._error

    @property
    def buffered(self) -> int:
        """How many bytes of an unfinished frame are held."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Decoded]:
        if self._error is not None:  # spec: WIRE-14
            raise RuntimeError(f"decoder already failed with {self._error.code.value}")
        out: list[Decoded] = []
        view = memoryview(data).cast("B")
        pos = 0
        try:
            while True:
                if self._header is None:
                    pos = self._read_header(view, pos)
                    if self._header is None:
                        break  # need more header bytes
                message_type, length, expected = self._header
                have = len(self._buffer)
                if have == 0 and len(view) - pos >= length:
                    # The whole payload is in this chunk: decode it in place, copy nothing.
                    payload: Payload = view[pos : pos + length]
                    pos += length
                else:
                    take = min(length - have, len(view) - pos)  # spec: WIRE-13 (this frame only)
                    self._buffer += view[pos : pos + take]
                    pos += take
                    if len(self._buffer) < length:
                        break  # need more payload bytes
                    # Hand the buffer over: the decoder stops holding it before the frame is built.
                    payload, self._buffer = self._buffer, bytearray()
                self._header = None
                out.append(decode_body(message_type, expected, payload))
        except DecodeError as error:
            self._error = error
            self._buffer = bytearray()
            out.append(error)
        return out

    def _read_header(self, view: memoryview, pos: int) -> int:
        have = len(self._buffer)
        take = view[pos : pos + HEADER_SIZE - have]
        if have < len(MAGIC):
            check_magic(take, have)  # spec: WIRE-5 (each byte checked the moment it arrives)
        self._buffer += take
        if len(self._buffer) == HEADER_SIZE:
            self._header = check_header(bytes(self._buffer))  # spec: WIRE-6, WIRE-7, WIRE-8
            self._buffer = bytearray()
        return pos + len(take)

    def eof(self) -> DecodeError | None:
        """Tell the decoder the stream has ended; returns ``truncated_frame`` when it ended inside
        a frame, else None."""
        if self._error is not None:
            return None
        if self._buffer or self._header is not None:  # spec: WIRE-11
            self._error = DecodeError(
                ErrorCode.TRUNCATED_FRAME,
                f"stream ended inside a frame ({len(self._buffer)} bytes of it held)",
            )
            return self._error
        return None


def decode_frames(data: bytes) -> tuple[list[Frame], DecodeError | None]:
    """Every frame of a complete byte string, and the error that ended it, if any."""
    decoder = FrameDecoder()
    frames: list[Frame] = []
    for item in decoder.feed(data):
        if isinstance(item, DecodeError):
            return frames, item
        frames.append(item)
    return frames, decoder.eof()
