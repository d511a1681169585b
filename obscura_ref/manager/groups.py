"""Address groups and the node's keyed hash (spec/manager.md section 2).

A group is what an attacker pays for: a /16 of IPv4, a /32 of IPv6. ``H`` orders groups and
addresses with a key only this node knows, so that no one can choose an address that lands
first in its orderings.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress


@functools.lru_cache(maxsize=4096)
def address_group(ip: str) -> str:
    """The address group of ``ip``: ``a.b.0.0/16`` or ``w0:w1::/32``; ValueError for text that
    is not an IP address. Remembered for the last 4,096 addresses: parsing an address costs
    more than all else the manager does for a connection's fact."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4-mapped address is in its IPv4 address's group
    if isinstance(address, ipaddress.IPv4Address):
        first, second = address.packed[:2]
        return f"{first}.{second}.0.0/16"  # spec: LIM-10
    words = int(address) >> 96  # the first two 16-bit words
    return f"{words >> 16:x}:{words & 0xFFFF:x}::/32"  # spec: LIM-10


def keyed_hash(key: bytes, text: str) -> int:
    """``H(text)``: the first 8 bytes of SHA-256(key || UTF-8(text)), big-endian."""
    digest = hashlib.sha256(key + text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")  # spec: LIM-11


def canonical_ip(ip: str) -> str:
    """``ip`` written one way only, so that it hashes and compares the same however it was
    typed: IPv6 in the compressed lowercase form of RFC 5952, an IPv4-mapped address as
    ``::ffff:a.b.c.d`` (RFC 5952 section 5, and what the system's inet_ntop writes). ValueError
    for text that is not an IP address."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"  # Python before 3.13 would write ::ffff:102:304
    return str(address)
