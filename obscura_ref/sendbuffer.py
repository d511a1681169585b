"""The bytes queued for one socket, in one contiguous buffer (spec/node.md section 2).

``max_send_queue`` (NODE-2) counts the bytes of the queued frames. Holding each frame as its
own object would add a few hundred bytes of bookkeeping per frame, so a peer that is sent small
frames (24-byte pongs) and reads none could take many times the limit in memory. Here the frames
are appended to one ``bytearray`` and what the socket has taken is dropped from its front, so
the memory held stays within a small factor of the bytes counted, whatever the frame sizes.
"""

from __future__ import annotations

# Bytes sent from the front of the buffer are dropped once they are more than half the buffer
# and more than this: the move costs at most the bytes consumed since the last one, so O(1) per
# byte, and the buffer stays below twice its unsent bytes plus this.
COMPACT_AT = 64 * 1024


class SendBuffer:
    """Bytes appended at the end and consumed from the front, as a socket takes them."""

    __slots__ = ("_data", "_start")

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0  # bytes of _data already sent

    def __len__(self) -> int:
        """The bytes not yet sent."""
        return len(self._data) - self._start

    @property
    def allocated(self) -> int:
        """The bytes the buffer holds: the unsent ones and the sent ones not yet dropped
        (spec: NODE-14 counts these)."""
        return len(self._data)

    def append(self, data: bytes | bytearray | memoryview) -> None:
        self._data += data

    def view(self) -> memoryview:
        """The unsent bytes, for ``socket.send``. Release the view (``with buffer.view() as
        unsent:``) before the next ``append`` or ``consume``: a bytearray with a live view
        cannot be resized."""
        return memoryview(self._data)[self._start :]

    def consume(self, count: int) -> None:
        """Drop the first ``count`` unsent bytes (those the socket took)."""
        if not 0 <= count <= len(self):
            raise ValueError(f"cannot consume {count} of {len(self)} bytes")
        self._start += count
        if self._start == len(self._data):
            self.clear()  # the usual case, a whole write: nothing to move
        elif self._start > COMPACT_AT and 2 * self._start > len(self._data):
            del self._data[: self._start]
            self._start = 0

    def clear(self) -> None:
        """Drop everything, and give its memory back."""
        self._data.clear()
        self._start = 0
