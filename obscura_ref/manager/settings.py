"""The manager's settings (spec/manager.md), typed, as ``NodeConfig.manager_settings`` builds
them from the configuration (spec/config.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..machines.connection import check_durations
from ..machines.privacy import policy_of

_COUNTS = (
    "max_outbound_connections",
    "max_inbound_connections",
    "max_total_connections",
    "max_temporary_connections",
)
_DURATIONS = (
    "temporary_timeout",
    "ban_duration",
    "reconnect_interval",
    "reconnect_max_interval",
    "rotation_interval",
    "partition_timeout",
)


@dataclass(frozen=True)
class ManagerSettings:
    """Limits (section 3), durations in seconds (sections 3, 6, 8, 9, 10), the privacy level
    (whether to rotate), the seed nodes of the address book (section 7), and the folder of the
    ban file (section 6.1; None keeps bans in memory only)."""

    max_outbound_connections: int = 8
    max_inbound_connections: int = 125
    max_total_connections: int = 133
    max_temporary_connections: int = 2
    temporary_timeout: float = 30.0
    ban_duration: float = 86_400.0
    reconnect_interval: float = 30.0
    reconnect_max_interval: float = 3_600.0
    rotation_interval: float = 600.0
    partition_timeout: float = 120.0
    privacy_level: str = "standard"
    seed_nodes: tuple[tuple[str, int], ...] = ()
    data_dir: Path | None = None

    def __post_init__(self) -> None:
        # Built by tests and embedders without a configuration too: refuse what the
        # configuration would refuse, so the manager never meets a nonsensical limit.
        for name in _COUNTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number of at least 0, got {value!r}")
        check_durations(self, _DURATIONS)
        policy_of(self.privacy_level)  # a ValueError naming the levels
        if self.reconnect_max_interval < self.reconnect_interval:
            raise ValueError(
                f"reconnect_max_interval ({self.reconnect_max_interval}) must not be below "
                f"reconnect_interval ({self.reconnect_interval})"
            )
