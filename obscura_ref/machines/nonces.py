"""The node's own outstanding handshake nonces (spec: HS-12, HS-13).

The node owns this set; every connection's machine reads it to detect a connection to the node
itself, and says (ReleaseNonce) when its own nonce leaves it.
"""

from __future__ import annotations

from .padding import RandomSource


class OwnNonces:
    def __init__(self) -> None:
        self._outstanding: set[int] = set()

    def issue(self, rng: RandomSource) -> int:
        """A fresh random u64 that no outstanding handshake of this node uses."""
        while True:
            nonce = rng.getrandbits(64)  # spec: HS-13
            if nonce not in self._outstanding:
                self._outstanding.add(nonce)
                return nonce

    def release(self, nonce: int) -> None:
        self._outstanding.discard(nonce)

    def __contains__(self, nonce: object) -> bool:
        return nonce in self._outstanding

    def __len__(self) -> int:
        return len(self._outstanding)
