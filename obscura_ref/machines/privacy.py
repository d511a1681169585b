"""The privacy levels (spec/privacy.md section 1): each level mapped once to what it turns on.

The machines and the manager ask a level's ``PrivacyPolicy``; nothing compares level names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..wire.registry import PrivacyFeature

# The user agent sent at a level that hides the implementation (spec: PRIV-13): the protocol's
# name alone, which every Obscura peer shares, with no implementation and no version.
GENERIC_USER_AGENT = "Obscura"


@dataclass(frozen=True)
class PrivacyPolicy:
    """What one privacy level turns on; spec/privacy.md table 1 is generated from these."""

    pad_frames: bool  # PRIV-1: the origin's padding of the frames the spec defines
    offer_encryption: bool  # PRIV-11: the EncryptedTransport bit in our handshakes
    require_encryption: bool  # PRIV-12: a peer that does not set the bit is refused
    pad_records: bool  # PRIV-31: sealed records padded to size buckets
    rotate: bool  # PRIV-10: outbound connections rotated every rotation_interval
    generic_user_agent: bool  # PRIV-13: GENERIC_USER_AGENT instead of the configured one
    accepts_encrypted_first: bool  # PRIV-53: inbound connections may start encrypted
    starts_encrypted: bool  # PRIV-50: our outbound connections start encrypted
    shapes: bool  # PRIV-60, PRIV-61: send delays and dummies on encrypted connections

    @property
    def privacy_features(self) -> int:
        """The privacy feature bits our handshakes set at this level."""
        return int(PrivacyFeature.EncryptedTransport) if self.offer_encryption else 0


class PrivacyLevel(Enum):
    """The values of the configuration key ``privacy_level``, weakest first."""

    NONE = "none"
    STANDARD = "standard"
    HIGH = "high"
    MAXIMUM = "maximum"

    @property
    def policy(self) -> PrivacyPolicy:
        return LEVEL_POLICIES[self]


LEVEL_POLICIES: dict[PrivacyLevel, PrivacyPolicy] = {
    PrivacyLevel.NONE: PrivacyPolicy(
        pad_frames=False,
        offer_encryption=False,
        require_encryption=False,
        pad_records=False,
        rotate=False,
        generic_user_agent=False,
        accepts_encrypted_first=False,
        starts_encrypted=False,
        shapes=False,
    ),
    PrivacyLevel.STANDARD: PrivacyPolicy(
        pad_frames=True,
        offer_encryption=True,
        require_encryption=False,
        pad_records=False,
        rotate=True,
        generic_user_agent=False,
        accepts_encrypted_first=True,
        starts_encrypted=False,
        shapes=False,
    ),
    PrivacyLevel.HIGH: PrivacyPolicy(
        pad_frames=True,
        offer_encryption=True,
        require_encryption=True,
        pad_records=True,
        rotate=True,
        generic_user_agent=True,
        accepts_encrypted_first=True,
        starts_encrypted=False,
        shapes=False,
    ),
    PrivacyLevel.MAXIMUM: PrivacyPolicy(
        pad_frames=True,
        offer_encryption=True,
        require_encryption=True,
        pad_records=True,
        rotate=True,
        generic_user_agent=True,
        accepts_encrypted_first=True,
        starts_encrypted=True,
        shapes=True,
    ),
}

PRIVACY_LEVELS = tuple(level.value for level in PrivacyLevel)
DEFAULT_PRIVACY_LEVEL = PrivacyLevel.STANDARD


def policy_of(level: str) -> PrivacyPolicy:
    """The policy of a level given by name; a ValueError names the levels for any other."""
    try:
        return PrivacyLevel(level).policy
    except ValueError:
        raise ValueError(f"privacy_level must be one of {PRIVACY_LEVELS}, not {level!r}") from None
