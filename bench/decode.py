"""Frame decode throughput against hashlib's double SHA-256 of the same bytes (the floor any
checksummed decoder pays), measured in the same run.

    python bench/decode.py [--budget 1.0]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable

from harness import machine, ratio

from obscura_ref.wire import FrameDecoder, MessageType, Opaque, encode_frame

SIZES = [64, 1024, 64 * 1024, 1024 * 1024, 10 * 1024 * 1024 - 64]


def best_rate(work: Callable[[], object], size: int, budget: float = 1.0) -> float:
    """Bytes per second of the fastest of several timed batches."""
    best = float("inf")
    spent = 0.0
    while spent < budget:
        runs = max(1, int(2_000_000 / max(size, 1)))
        start = time.perf_counter()
        for _ in range(runs):
            work()
        elapsed = time.perf_counter() - start
        spent += elapsed
        best = min(best, elapsed / runs)
    return size / best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    args = parser.parse_args()
    print(f"frame decode throughput ({machine()})")
    print(f"{'payload':>10} {'decode MB/s':>12} {'SHA256d MB/s':>13} {'ratio':>7}")
    for size in SIZES:
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        frame = encode_frame(Opaque(MessageType.Blocks, payload))

        def decode(frame: bytes = frame) -> object:
            return FrameDecoder().feed(frame)

        def sha256d(payload: bytes = payload) -> object:
            return hashlib.sha256(hashlib.sha256(payload).digest()).digest()

        decoded = best_rate(decode, size, args.budget)
        hashed = best_rate(sha256d, size, args.budget)
        print(
            f"{size:>10} {decoded / 1e6:>12.1f} {hashed / 1e6:>13.1f} {ratio(decoded, hashed):>7}"
        )


if __name__ == "__main__":
    main()
