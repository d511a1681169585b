"""Misbehaviour points and bans (spec/manager.md section 6).

Points and bans belong to an IP address, not to a connection: a peer that reconnects from
another port is the same peer. Bans run on wall-clock time (Unix seconds), so that they survive
a restart; the ban file of section 6.1 is built and read here, and written by the node.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any

from ..wire import ERROR_REQUIREMENTS
from .groups import canonical_ip

BAN_THRESHOLD = 100  # points at which an address is banned
MAX_BANS = 10_000  # bans kept at most
MAX_MISBEHAVIOUR_RECORDS = 10_000  # records kept at most; the oldest goes first
BAN_FILE_VERSION = 1

# The table of section 6, by the requirement a Misbehaviour event names: a frame that does not
# decode (the requirement of its error code, or WIRE-15, the rule that reuses payload_too_large
# for the handshake's lower limit), a stream cut inside a frame, an unexpected message.
POINTS: dict[str, int] = {
    **{requirement: 100 for requirement in ERROR_REQUIREMENTS.values()},
    "WIRE-15": 100,
    "WIRE-11": 20,
    "HS-20": 50,
}


def misbehaviour_points(requirement: str) -> int:
    """The points a report of ``requirement`` adds; 0 for one the table does not name."""
    return POINTS.get(requirement, 0)


@dataclass
class _Record:
    points: int
    last: float  # wall time of the last report


class MisbehaviourRecords:
    """Points per IP address. Records are kept in the order of their last report, so the
    oldest is the first."""

    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}

    def add(self, ip: str, requirement: str, wall: float, ban_duration: float) -> bool:
        """Adds the points of a report; True when ``ip`` reaches BAN_THRESHOLD, its points then
        cleared (the caller bans it). Records ``ban_duration`` seconds old are forgotten first."""
        self.forget(wall, ban_duration)
        points = misbehaviour_points(requirement)
        if points == 0:
            return False  # nothing to add: no record is made or refreshed
        record = self._records.pop(ip, None) or _Record(0, wall)
        record.points += points  # spec: BAN-1
        record.last = wall
        if record.points >= BAN_THRESHOLD:
            return True  # the record stays out: its points are cleared
        self._records[ip] = record  # at the end: the newest report
        if len(self._records) > MAX_MISBEHAVIOUR_RECORDS:
            del self._records[next(iter(self._records))]
        return False

    def forget(self, wall: float, ban_duration: float) -> None:
        """Forgets the records whose last report is ``ban_duration`` seconds old or older."""
        while self._records:
            ip, record = next(iter(self._records.items()))
            if wall - record.last < ban_duration:
                break
            del self._records[ip]

    def points(self, ip: str) -> int:
        record = self._records.get(ip)
        return record.points if record is not None else 0

    def __len__(self) -> int:
        return len(self._records)


@dataclass(frozen=True)
class Ban:
    address: str  # an IP address
    until: float  # Unix seconds
    requirement: str  # the rule whose breaking led to the ban


class BanFileError(ValueError):
    """A document that is not a ban file of section 6.1."""


class BanList:
    """The bans in force, by address."""

    def __init__(self) -> None:
        self._bans: dict[str, Ban] = {}
        # The bans by their end, soonest first (then by address). An entry whose ban was
        # replaced or removed stays until it comes to the top: finding the next end costs no
        # look at every ban, which the manager asks after every fact, however many bans.
        self._ends: list[tuple[float, str]] = []

    def _add(self, ban: Ban) -> None:
        self._bans[ban.address] = ban
        heapq.heappush(self._ends, (ban.until, ban.address))
        if len(self._ends) > 2 * len(self._bans) + 64:  # mostly stale: rebuilt, O(1) a change
            self._ends = [(b.until, b.address) for b in self._bans.values()]
            heapq.heapify(self._ends)

    def _soonest(self) -> Ban | None:
        """The ban that ends first (the lowest address among equals), or None."""
        while self._ends:
            until, address = self._ends[0]
            ban = self._bans.get(address)
            if ban is not None and ban.until == until:
                return ban
            heapq.heappop(self._ends)  # stale: replaced or removed
        return None

    def ban(self, address: str, until: float, requirement: str) -> None:
        """Bans ``address`` until ``until``, in place of any ban it had; beyond ``MAX_BANS`` the
        ban that ends soonest is dropped, so that bans cannot grow without bound."""
        self._add(Ban(address, until, requirement))
        if len(self._bans) > MAX_BANS:  # spec: BAN-9
            soonest = self._soonest()
            assert soonest is not None
            del self._bans[soonest.address]

    def is_banned(self, address: str, wall: float) -> bool:
        ban = self._bans.get(address)
        return ban is not None and wall < ban.until  # spec: BAN-5

    def expire(self, wall: float) -> list[Ban]:
        """Removes and returns the bans that are over at ``wall``, by address."""
        over = []
        while (ban := self._soonest()) is not None and wall >= ban.until:
            del self._bans[ban.address]  # spec: BAN-5
            over.append(ban)
        return sorted(over, key=lambda ban: ban.address)

    def next_expiry(self) -> float | None:
        soonest = self._soonest()
        return None if soonest is None else soonest.until

    def bans(self) -> list[Ban]:
        return sorted(self._bans.values(), key=lambda ban: ban.address)

    def __len__(self) -> int:
        return len(self._bans)

    def to_document(self) -> dict[str, Any]:
        """The ban file's document (section 6.1), sorted by address."""
        bans = [
            {"address": ban.address, "until": ban.until, "requirement": ban.requirement}
            for ban in self.bans()
        ]
        return {"version": BAN_FILE_VERSION, "bans": bans}

    @classmethod
    def from_document(cls, document: object, wall: float) -> BanList:
        """The bans of a ban file's document, without those over at ``wall``; BanFileError
        saying what is wrong for anything else."""
        if not isinstance(document, dict) or set(document) != {"version", "bans"}:
            raise BanFileError('a ban file is an object with exactly "version" and "bans"')
        version = document["version"]
        if type(version) is not int or version != BAN_FILE_VERSION:
            raise BanFileError(f"version must be {BAN_FILE_VERSION}, not {version!r}")
        if not isinstance(document["bans"], list):
            raise BanFileError('"bans" must be a list')
        found = cls()
        for number, item in enumerate(document["bans"], 1):
            ban = _ban_of(item, number)
            if ban.address in found._bans:
                raise BanFileError(f"ban {number}: {ban.address} is banned twice")
            found._add(ban)
        found.expire(wall)  # spec: BAN-7
        return found


def _ban_of(item: object, number: int) -> Ban:
    where = f"ban {number}"
    if not isinstance(item, dict) or set(item) != {"address", "until", "requirement"}:
        raise BanFileError(
            f'{where}: must be an object with exactly "address", "until" and "requirement"'
        )
    address, until, requirement = item["address"], item["until"], item["requirement"]
    if not isinstance(address, str):
        raise BanFileError(f"{where}: address must be text, not {address!r}")
    try:
        address = canonical_ip(address)  # as the node's sockets write it
    except ValueError:
        raise BanFileError(f"{where}: address {address!r} is not an IP address") from None
    if type(until) not in (int, float) or not math.isfinite(until):
        raise BanFileError(f"{where}: until must be a number of Unix seconds, not {until!r}")
    if not isinstance(requirement, str):
        raise BanFileError(f"{where}: requirement must be text, not {requirement!r}")
    return Ban(address, float(until), requirement)
