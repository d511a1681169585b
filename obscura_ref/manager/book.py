"""The address book and the choice of the next outbound connection (spec/manager.md section 7).

Diversity first (a group the node has no outbound peer in), then reliability (fewer failures),
then the keyed hash of the address, which no outsider can predict: an attacker cannot make his
addresses come first by choosing them.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass

from .groups import address_group, canonical_ip, keyed_hash

SOURCES = ("persistent", "connect", "seed", "application")


@dataclass
class BookEntry:
    """An address the node may dial, where it came from, and how dialling it has gone."""

    host: str  # an IP address, as the node's sockets write it (names are resolved before)
    port: int
    source: str  # one of SOURCES
    failures: int = 0  # consecutive failures (section 8)
    next_attempt: float = 0.0  # monotonic time before which it is not dialled

    @property
    def persistent(self) -> bool:
        return self.source == "persistent"

    @property
    def text(self) -> str:
        """The address as ``H`` reads it: ``IP:PORT``, an IPv6 address as ``[IP]:PORT``, the IP
        written one way only (canonical_ip), so that its hash does not depend on its typing."""
        ip = canonical_ip(self.host)
        return f"[{ip}]:{self.port}" if ":" in ip else f"{ip}:{self.port}"

    @property
    def group(self) -> str:
        return address_group(self.host)


def may_dial_outbound(outbound: int, total: int, max_outbound: int, max_total: int) -> bool:
    """Whether one more outbound connection may be dialled while ``outbound`` outbound and
    ``total`` connections in all count (section 3)."""
    return outbound < max_outbound and total < max_total  # spec: LIM-13, LIM-14


def eligible(
    entry: BookEntry,
    *,
    now: float,
    own: set[tuple[str, int]],
    connected_ips: Container[str],
    banned: Callable[[str], bool],
) -> bool:
    """Whether ``entry`` may be dialled now (section 7). A persistent entry never is: it is
    reopened as a persistent connection at its next attempt (RECO-5), not as an outbound one."""
    return (
        not entry.persistent
        and entry.next_attempt <= now
        and not banned(entry.host)  # spec: BAN-4
        and (entry.host, entry.port) not in own  # spec: RECO-2
        and entry.host not in connected_ips  # spec: RECO-2
    )


def choose_outbound(
    entries: Iterable[BookEntry],
    *,
    now: float,
    key: bytes,
    own: set[tuple[str, int]],
    connected_ips: Container[str],
    used_groups: set[str],
    excluded_groups: set[str],
    banned: Callable[[str], bool],
) -> BookEntry | None:
    """The best eligible entry to dial as an outbound connection, or None. ``used_groups``: the
    groups of the outbound and persistent connections that count; ``excluded_groups``: groups
    not eligible right now (those of rotated peers, section 9)."""
    choices = [
        entry
        for entry in entries
        if eligible(entry, now=now, own=own, connected_ips=connected_ips, banned=banned)
        and entry.group not in excluded_groups
    ]
    if not choices:
        return None
    return min(choices, key=lambda entry: preference(entry, used_groups, key))  # spec: RECO-1


def preference(entry: BookEntry, used_groups: set[str], key: bytes) -> tuple[bool, int]:
    """The order of section 7, the least first: a group without an outbound or persistent
    connection, then the lower H(address). Failures delay an entry (section 8) but do not
    order it: ordered by them, addresses that failed during a partition would never be
    chosen again after it heals (errata.md E-22)."""
    return entry.group in used_groups, keyed_hash(key, entry.text)  # spec: RECO-1
