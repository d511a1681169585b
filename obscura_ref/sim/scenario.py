"""What a simulation runs: the network, its faults and its adversaries, as one typed record
that ``obscura-ref simulate`` fills from its options (spec/simulation.md section 2)."""

from __future__ import annotations

from dataclasses import dataclass, field

# A virtual wall clock: the nodes' bans are kept in wall-clock time; a fixed start keeps the
# run repeatable.
WALL_CLOCK_START = 1_800_000_000.0

# Node configuration of every simulated node, before the scenario's own --set values: bans in
# memory (no ban file), and a backoff cap short enough that the recovery bound of RECO-9 fits
# in a run of an hour.
NODE_DEFAULTS: dict[str, object] = {
    "data_dir": "",
    "reconnect_max_interval": 300.0,
}


@dataclass(frozen=True)
class Scenario:
    """A simulated network. Times are in virtual seconds; rates are per virtual hour, over
    the whole network."""

    nodes: int = 1000
    duration: float = 3600.0
    seed: int = 1
    book_size: int = 30  # addresses of other honest nodes in each node's seed_nodes
    min_latency: float = 0.005  # each host's access latency is drawn in [min, max]
    max_latency: float = 0.050
    jitter: float = 0.005  # added to each delivery, drawn in [0, jitter)
    resets_per_hour: float = 200.0  # connections torn down at both ends
    departures_per_hour: float = 60.0  # nodes that leave (half crash, half shut down)
    mean_downtime: float = 600.0  # a departed node comes back after this, on average
    partition_at: float | None = 1200.0  # the network splits then ...
    partition_for: float = 600.0  # ... for this long
    partition_share: float = 0.2  # the share of honest nodes cut off together
    flooders: int = 2  # nodes whose application floods every peer with messages
    violators: int = 2  # peers that send frames that do not decode (bans)
    silent: int = 2  # hosts that accept connections and never answer
    attackers: int = 100  # eclipse: addresses the attacker controls ...
    attacker_groups: int = 2  # ... in this many address groups ...
    attack_at: float = 600.0  # ... from this time on, against a network already formed
    victim_fans: int = 200  # honest nodes that keep a persistent connection to the victim
    baseline: bool = False  # random eviction and outbound choice instead of the spec's
    sample_every: float = 10.0  # seconds between samples of the measures
    settings: dict[str, object] = field(default_factory=dict)  # node config (--set)

    def __post_init__(self) -> None:
        """Refuse, by name, what no network could be (``obscura-ref simulate`` says it)."""
        at_least_zero = [
            "nodes",
            "book_size",
            "min_latency",
            "max_latency",
            "jitter",
            "resets_per_hour",
            "departures_per_hour",
            "flooders",
            "violators",
            "silent",
            "attackers",
            "victim_fans",
            "attack_at",
        ]
        for name in at_least_zero:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}")
        for name in ("duration", "mean_downtime", "partition_for", "sample_every"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0, got {getattr(self, name)}")
        if not 0 <= self.partition_share <= 1:
            raise ValueError(f"partition_share must be within 0 and 1, got {self.partition_share}")
        if self.min_latency > self.max_latency:
            raise ValueError("min_latency must not be above max_latency")
        if not 1 <= self.attacker_groups <= 5:
            raise ValueError(f"attacker_groups must be 1 to 5, got {self.attacker_groups}")
        if self.nodes + self.flooders > 200 * 250 * 250:
            raise ValueError("too many nodes for the addresses of 127.0.0.0/8 this model uses")

    def node_settings(self) -> dict[str, object]:
        return {**NODE_DEFAULTS, **self.settings}
