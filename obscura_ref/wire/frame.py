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


@dataclass(frozen=True, slots=True)
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
    return frame_bytes(message.message_type, message.encode(), padding)


def frame_bytes(message_type: MessageType, fields: bytes, padding: bytes = b"") -> bytes:
    """The bytes of one frame whose payload is ``fields``, a message's encoding, followed by
    ``padding``: for a sender that encodes the message once and pads by the encoding's length.

    Raises EncodeError when the payload would break a size limit."""
    payload = fields + padding  # spec: WIRE-31
    if len(payload) > MAX_PAYLOAD:  # spec: WIRE-4
        raise EncodeError(
            "padding", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}", "WIRE-4"
        )
    if message_type is MessageType.Handshake and len(payload) > MAX_HANDSHAKE_PAYLOAD:
        # spec: WIRE-41
        raise EncodeError(
            "padding",
            f"handshake payload of {len(payload)} bytes exceeds {MAX_HANDSHAKE_PAYLOAD}",
            "WIRE-41",
        )
    header = _HEADER.pack(  # spec: WIRE-1, WIRE-2 (magic, type, length, then the checksum)
        MAGIC, message_type, len(payload), checksum(payload)
    )
    return header + payload


def check_magic(received: Payload, offset: int) -> None:
    """Check bytes of the magic field that start at ``offset`` of it, as they arrive
    (spec/wire.md section 2.1, row 1)."""
    arrived = received[: len(MAGIC) - offset]  # compared in place, not copied
    if arrived == MAGIC[offset : offset + len(arrived)]:
        return  # the common case, in one comparison
    for index, byte in enumerate(arrived, offset):
        if byte != MAGIC[index]:  # spec: WIRE-5
            raise DecodeError(
                ErrorCode.BAD_MAGIC,
                f"byte {index} of magic is {byte:#04x}, expected {MAGIC[index]:#04x}",
            )


def check_header(header: Payload, limit: int = MAX_PAYLOAD) -> tuple[MessageType, int, bytes]:
    """The message type, payload length and checksum of a complete 16-byte header whose magic
    has passed ``check_magic``, checked in the order of spec/wire.md section 2.1 (rows 2 to 5)."""
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
    if length > limit:  # spec: WIRE-15
        raise DecodeError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"payload_length {length} exceeds this connection's current limit of {limit}",
            "WIRE-15",
        )
    return message_type, length, expected


def decode_body(message_type: MessageType, expected: bytes, payload: Payload) -> Frame:
    """The frame whose header has passed ``check_header``, from its whole payload
    (spec/wire.md section 2.1, rows 6 and 7)."""
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

    ``push`` hands it bytes as they are read; ``pull`` returns the next whole frame, or None
    when more bytes are needed, or the DecodeError that ends the stream (spec: WIRE-14: after
    it the decoder decodes nothing more, and using it again raises RuntimeError, a caller's
    bug). ``feed`` pushes and pulls everything. A caller that pulls one frame at a time can
    change ``max_payload`` between frames and can stop pulling when its connection closes,
    leaving the rest undecoded. ``eof`` reports a stream that ended inside a frame, once.

    Memory: besides what was pushed and not yet pulled, the decoder holds at most one header,
    or one payload whose length the header has already accepted, so never more than
    ``HEADER_SIZE + MAX_PAYLOAD`` bytes (spec: WIRE-13). A completed payload is handed over
    before its frame is built, so while one frame is being built its bytes exist at most
    twice: the payload handed over and the frame's own copy.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload  # this connection's own limit (spec: HS-23)
        # Pushed, not yet pulled: a list, not a deque, as it holds one or two reads and an empty
        # deque alone takes more memory than an idle connection's every other buffer.
        self._input: list[memoryview] = []
        self._input_size = 0
        # spec: WIRE-12 (all state between reads: the partial header or payload and the header)
        self._buffer = bytearray()  # the header being read, then the payload being read
        self._header: tuple[MessageType, int, bytes] | None = None  # once the header passed
        self._error: DecodeError | None = None
        self._handed_on = False  # take_rest() was called: the stream is another layer's

    @property
    def error(self) -> DecodeError | None:
        """The error that stopped this decoder, if any."""
        return self._error

    @property
    def buffered(self) -> int:
        """How many bytes of an unfinished frame are held."""
        return len(self._buffer)

    @property
    def pending(self) -> int:
        """How many pushed bytes have not been pulled yet."""
        return self._input_size

    def push(self, data: bytes | bytearray | memoryview) -> None:
        self._check_usable()
        if data:
            # A copy unless the caller's bytes are immutable: a read buffer may be reused.
            self._input.append(memoryview(data if isinstance(data, bytes) else bytes(data)))
            self._input_size += len(data)

    def pull(self) -> Decoded | None:
        self._check_usable()
        try:
            return self._next_frame()
        except DecodeError as error:
            self._error = error
            self._input.clear()
            self._input_size = 0
            self._buffer = bytearray()
            return error

    def feed(self, data: bytes | bytearray | memoryview) -> list[Decoded]:
        """Push ``data`` and pull every frame it completes (the error last, if any)."""
        self.push(data)
        out: list[Decoded] = []
        while (item := self.pull()) is not None:
            out.append(item)
            if isinstance(item, DecodeError):
                break
        return out

    def _check_usable(self) -> None:
        if self._handed_on:
            raise RuntimeError("the decoder handed the stream on (take_rest)")
        if self._error is not None:  # spec: WIRE-14
            raise RuntimeError(f"decoder already failed with {self._error.code.value}")

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

    def _next_frame(self) -> Frame | None:
        if not self._input:
            # Nothing new to read: no frame can complete (one whose header is read and that
            # still waits has a payload of at least one byte to wait for).
            return None
        if self._header is None:
            if not self._buffer and len(self._input[0]) >= HEADER_SIZE:
                header: Payload = self._take(HEADER_SIZE)  # the whole header in one read
                check_magic(header, 0)  # spec: WIRE-5
            else:
                while len(self._buffer) < HEADER_SIZE:
                    piece = self._take(HEADER_SIZE - len(self._buffer))
                    if not piece:
                        return None  # need more header bytes
                    if len(self._buffer) < len(MAGIC):
                        check_magic(piece, len(self._buffer))  # spec: WIRE-5 (as bytes arrive)
                    self._buffer += piece
                header, self._buffer = self._buffer, bytearray()
            # spec: WIRE-6, WIRE-7, WIRE-8, WIRE-15 (from the header, before any payload byte)
            self._header = check_header(header, self.max_payload)
        message_type, length, expected = self._header
        payload: Payload
        if not self._buffer and self._input and len(self._input[0]) >= length:
            payload = self._take(length)  # the whole payload is in one read: no copy
        else:
            while len(self._buffer) < length:
                piece = self._take(length - len(self._buffer))  # spec: WIRE-13 (this frame only)
                if not piece:
                    return None  # need more payload bytes
                self._buffer += piece
            # Hand the buffer over: the decoder stops holding it before the frame is built.
            payload, self._buffer = self._buffer, bytearray()
        self._header = None
        return decode_body(message_type, expected, payload)

    def take_rest(self) -> bytes:
        """Hand back the bytes pushed and not yet decoded, between two frames, and decode
        nothing more: the stream goes on in another layer's format (spec/privacy.md PRIV-11,
        the Noise handshake that follows the handshake frames in the same reads)."""
        self._check_usable()
        if self._buffer or self._header is not None:
            raise RuntimeError("take_rest() inside a frame")
        rest = b"".join(self._input)
        self._input.clear()
        self._input_size = 0
        self._handed_on = True
        return rest

    def eof(self) -> DecodeError | None:
        """Tell the decoder the stream has ended; returns ``truncated_frame`` when it ended inside
        a frame, else None."""
        if self._error is not None or self._handed_on:
            return None
        if self._buffer or self._header is not None or self._input:  # spec: WIRE-11
            held = len(self._buffer) + self._input_size
            self._error = DecodeError(
                ErrorCode.TRUNCATED_FRAME,
                f"stream ended inside a frame ({held} bytes of it held)",
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
