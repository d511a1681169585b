"""Partitions (spec/manager.md section 10): noticing that the node has lost touch with the
network, and the temporary connections that look for a way back.

An eclipse shows as silence (no outbound or persistent connection established for a while) or
as sameness (every one of them in one address group); probing other groups finds out whether
the rest of the network still answers.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Sequence

from .book import BookEntry, eligible
from .groups import address_group, keyed_hash


def partitioned(
    established: Sequence[str],
    last_established_at: float | None,
    started_at: float,
    now: float,
    partition_timeout: float,
) -> bool:
    """Whether the node is partitioned. ``established``: the IP addresses of its established
    outbound and persistent connections; ``last_established_at``: the last time it had one
    (None: never), from which, or else from ``started_at``, the silence is counted."""
    if not established:
        since = last_established_at if last_established_at is not None else started_at
        return now >= since + partition_timeout  # spec: RECO-7, KA-10 (the deadline, as armed)
    groups = {address_group(ip) for ip in established}
    return len(established) >= 2 and len(groups) == 1  # spec: RECO-7


def probe_slots(temporary: int, total: int, max_temporary: int, max_total: int) -> int:
    """How many temporary connections may be dialled while ``temporary`` temporary and
    ``total`` connections in all count (section 3)."""
    return max(0, min(max_temporary - temporary, max_total - total))  # spec: LIM-13, LIM-14


def probe_order(entry: BookEntry, key: bytes) -> tuple[bool, int]:
    """Seed nodes first, then the order of section 7 (every group probed holds no connection,
    so its first criterion does not tell them apart): the lower H(address)."""
    return entry.source != "seed", keyed_hash(key, entry.text)  # spec: RECO-7


def choose_probes(
    entries: Iterable[BookEntry],
    *,
    now: float,
    key: bytes,
    own: set[tuple[str, int]],
    connected_ips: Container[str],
    connected_groups: Container[str],
    banned: Callable[[str], bool],
    free_slots: int,
) -> list[BookEntry]:
    """The entries to dial temporary connections to, at most ``free_slots``: eligible ones
    (section 7) in groups that hold no connection, seed nodes first, then in the order of
    section 7 (the lower H(address)); one per group and per IP address,
    since each probe dialled puts a connection in its group."""
    choices = [
        entry
        for entry in entries
        if eligible(entry, now=now, own=own, connected_ips=connected_ips, banned=banned)
    ]
    choices.sort(key=lambda entry: probe_order(entry, key))
    ips: set[str] = set()  # those of the probes chosen so far
    groups: set[str] = set()
    probes: list[BookEntry] = []
    for entry in choices:
        if len(probes) >= free_slots:
            break
        if entry.group in groups or entry.group in connected_groups:
            continue
        if entry.host in ips or entry.host in connected_ips:
            continue
        probes.append(entry)  # spec: RECO-7
        groups.add(entry.group)
        ips.add(entry.host)
    return probes


def recovery_bound(
    reconnect_max_interval: float, connection_timeout: float, handshake_timeout: float
) -> float:
    """The seconds within which a node regains its outbound connections once a partition
    heals (section 8): a dial under way at the heal fails within ``connection_timeout``, the
    next attempt comes within the longest backoff delay, ``1.25 * reconnect_max_interval``
    (RECO-9), and its connection and handshake complete within their timeouts."""
    return 1.25 * reconnect_max_interval + 2 * connection_timeout + handshake_timeout
