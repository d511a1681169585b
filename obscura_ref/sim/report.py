"""The simulator's report: the measures of spec/simulation.md section 4, as Markdown with PNG
plots, beside the run's event log.

Plots need matplotlib (``pip install -e '.[dev]'`` installs it); everything else here is plain
arithmetic over ``Measures``.
"""

from __future__ import annotations

import hashlib
import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .scenario import Scenario
from .simulation import Measures

EVENTS_FILE = "events.log"
REPORT_FILE = "report.md"


@dataclass(frozen=True)
class Run:
    """One simulation's scenario and what it measured."""

    scenario: Scenario
    measures: Measures
    events: list[str]
    seconds: float  # CPU seconds the run took


def events_text(events: Sequence[str]) -> str:
    return "".join(f"{line}\n" for line in events)


def digest(events: Sequence[str]) -> str:
    return hashlib.sha256(events_text(events).encode()).hexdigest()


# ---- the numbers ---------------------------------------------------------------------------


def _quantile(sorted_values: Sequence[int | float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[index])


def attack_settled(s: Scenario) -> float:
    """The start of the attack's second half: its steady state, measured from then on."""
    return s.attack_at + (s.duration - s.attack_at) / 2


def attacker_share(m: Measures, since: float) -> float:
    """The share of the victim's established connections the attacker held, over the samples
    from ``since`` on."""
    held = [a for t, a in zip(m.times, m.victim_attacker, strict=False) if t >= since]
    total = [n for t, n in zip(m.times, m.victim_total, strict=False) if t >= since]
    return sum(held) / sum(total) if sum(total) else 0.0


def address_share(s: Scenario) -> float:
    """The attacker's share of the addresses that compete for the victim's inbound slots."""
    return s.attackers / (s.attackers + s.victim_fans) if s.attackers else 0.0


def turnover(m: Measures) -> list[float]:
    """Per node, the mean share of its outbound peers replaced between two samples one
    rotation interval apart."""
    result = []
    for sets in m.outbound_sets.values():
        changes = [
            len(before - after) / len(before)
            for before, after in itertools.pairwise(sets)
            if before
        ]
        if changes:
            result.append(statistics.fmean(changes))
    return sorted(result)


def group_reach(m: Measures) -> list[float]:
    """Per node, the share of the honest address groups its outbound peers came from."""
    if not m.honest_groups:
        return []
    return sorted(len(groups) / m.honest_groups for groups in m.groups_reached.values())


def book_reach(m: Measures) -> list[float]:
    """Per node, the share of the address groups of its book its outbound peers came from:
    without address relay a node reaches no group its book does not hold."""
    return sorted(
        len(groups & m.book_groups[ip]) / len(m.book_groups[ip])
        for ip, groups in m.groups_reached.items()
        if m.book_groups.get(ip)
    )


# ---- the plots -------------------------------------------------------------------------------


def _plots(out: Path, main: Run, spec: Run | None, baseline: Run | None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.pyplot as plt

    m = main.measures
    minutes = [t / 60 for t in m.times]
    written = []

    def shade(axis: object) -> None:
        if m.partition_start is not None:
            end = m.partition_end if m.partition_end is not None else m.times[-1]
            axis.axvspan(m.partition_start / 60, end / 60, color="0.9", label="partition")  # type: ignore[attr-defined]

    fig, ax = plt.subplots(figsize=(8, 4))
    for series, name in ((m.outbound, "outbound"), (m.connections, "all")):
        ax.plot(minutes, [_quantile(s, 0.5) for s in series], label=f"{name}, median")
        ax.fill_between(
            minutes,
            [_quantile(s, 0.05) for s in series],
            [_quantile(s, 0.95) for s in series],
            alpha=0.25,
            label=f"{name}, 5th to 95th percentile",
        )
    shade(ax)
    ax.set_xlabel("minutes")
    ax.set_ylabel("established connections per node")
    ax.set_title(f"Connections per node ({main.scenario.nodes} nodes)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "connections.png", dpi=110)
    plt.close(fig)
    written.append("connections.png")

    if m.partition_start is not None:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        left.plot(minutes, m.across_cut)
        shade(left)
        left.set_xlabel("minutes")
        left.set_ylabel("outbound connections across the cut")
        left.set_title("The partition's cut")
        recovered = sorted(m.recovered.values())
        right.hist(recovered, bins=30)
        right.axvline(m.bound, color="red", linestyle="--", label="recovery bound (RECO-9)")
        right.set_xlabel("seconds after the heal")
        right.set_ylabel("nodes")
        right.set_title("Outbound connections regained")
        right.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(out / "partition.png", dpi=110)
        plt.close(fig)
        written.append("partition.png")

    if spec is not None and baseline is not None:
        fig, ax = plt.subplots(figsize=(8, 4))
        for run, name in ((spec, "the spec's eviction and outbound rules"), (baseline, "random")):
            rm = run.measures
            share = [
                a / n if n else 0.0
                for a, n in zip(rm.victim_attacker, rm.victim_total, strict=False)
            ]
            ax.plot([t / 60 for t in rm.times], share, label=name)
        ax.axhline(
            address_share(spec.scenario),
            color="black",
            linestyle="--",
            label="attacker's share of addresses",
        )
        ax.set_ylim(0, 1)
        ax.set_xlabel("minutes")
        ax.set_ylabel("victim's connections held by the attacker")
        ax.set_title("Eclipse attempt")
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(out / "eclipse.png", dpi=110)
        plt.close(fig)
        written.append("eclipse.png")

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.hist(turnover(m), bins=20)
    left.set_xlabel("share of outbound peers replaced per rotation interval")
    left.set_ylabel("nodes")
    left.set_title("Rotation")
    right.hist(group_reach(m), bins=20)
    right.set_xlabel("share of address groups reached by outbound connections")
    right.set_ylabel("nodes")
    right.set_title("Diversity")
    fig.tight_layout()
    fig.savefig(out / "rotation.png", dpi=110)
    plt.close(fig)
    written.append("rotation.png")
    return written


# ---- the text ---------------------------------------------------------------------------------


def _stats(values: Sequence[float], form: str = ".1f") -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    median, high = statistics.median(ordered), _quantile(ordered, 0.95)
    return f"median {median:{form}}, 95th percentile {high:{form}}, max {ordered[-1]:{form}}"


def render(main: Run, spec: Run | None, baseline: Run | None, plots: list[str]) -> str:
    s, m = main.scenario, main.measures
    last = m.connections[-1] if m.connections else []
    lines = [
        "# Simulation report",
        "",
        f"Seed {s.seed}: {s.nodes} honest nodes for {s.duration:.0f} simulated seconds, "
        f"{m.steps:,} passes of the loop, {m.connections_made:,} connections made, "
        f"{main.seconds:.0f} s of CPU. Every invariant of spec/simulation.md section 3 held "
        "after every pass.",
        f"Event log: `{EVENTS_FILE}`, {len(main.events):,} lines, SHA-256 `{digest(main.events)}`.",
        "",
        "## Faults and adversaries",
        "",
        f"- latency per host {s.min_latency * 1000:.0f} to {s.max_latency * 1000:.0f} ms, jitter "
        f"{s.jitter * 1000:.0f} ms; {m.resets} resets; {m.departures} departures (half crashes), "
        f"{m.arrivals} returns;",
        f"- {s.flooders} flooders, {s.violators} violators ({m.violations_sent} frames that do not "
        f"decode, {m.bans_refused} connections closed or refused `banned`), {s.silent} silent "
        f"hosts ({m.silent_accepted} connections never answered);",
        f"- an eclipse attacker with {s.attackers} addresses in {s.attacker_groups} address "
        f"groups against one victim, which {s.victim_fans} honest nodes also keep a persistent "
        "connection to.",
        "",
        "Closes by reason: "
        + ", ".join(f"`{reason}` {count:,}" for reason, count in m.closes.most_common())
        + ".",
        "",
        "## Connections per node",
        "",
        f"At the end: all connections {_stats([float(v) for v in last])}; outbound "
        f"{_stats([float(v) for v in (m.outbound[-1] if m.outbound else [])])}.",
        "",
    ]
    if "connections.png" in plots:
        lines += ["![connections per node](connections.png)", ""]
    lines += ["## Partition", ""]
    if m.partition_start is None:
        lines += ["No partition in this run.", ""]
    else:
        before = max(
            (a for t, a in zip(m.times, m.across_cut, strict=False) if t <= m.partition_start),
            default=0,
        )
        after = [
            a for t, a in zip(m.times, m.across_cut, strict=False) if t >= (m.partition_end or 0)
        ]
        lost = len(m.lost_all)
        lines += [
            f"{m.cut_nodes} nodes were cut off at {m.partition_start:.0f} s for "
            f"{(m.partition_end or s.duration) - m.partition_start:.0f} s.",
            "",
            f"- Outbound connections across the cut: {before} before, "
            f"{max(after, default=0)} at most after the heal, "
            f"{after[-1] if after else 0} at the end.",
            f"- Cut-off nodes left with no outbound connection: {lost}; of them, "
            f"{len(m.detected)} noticed they were partitioned (RECO-7), in seconds: "
            f"{_stats(list(m.detected.values()))}. A node that still reaches other nodes of its "
            "side is not partitioned by section 10's definition.",
            f"- After the heal, {len(m.recovered)} of the {len(m.recovery_targets)} nodes up "
            "through the partition regained the outbound connections they had before it, in "
            f"seconds: {_stats(list(m.recovered.values()))}; the bound of RECO-9 is "
            f"{m.bound:.0f} s, and every one still up at the bound had met it (an invariant; "
            "the others left meanwhile).",
            "",
        ]
        if "partition.png" in plots:
            lines += ["![partition](partition.png)", ""]
    lines += ["## Eclipse attempt", ""]
    if s.attackers:
        lines.append(
            f"The attack began at {s.attack_at:.0f} s. In this run the attacker held "
            f"{attacker_share(m, attack_settled(s)):.1%} of the victim's connections over the "
            f"second half of the attack, with {address_share(s):.1%} of the addresses that "
            "compete for its inbound slots."
        )
        lines.append("")
    if spec is not None and baseline is not None:
        es = spec.scenario
        since = attack_settled(es)
        lines += [
            f"The same attack on a network of {es.nodes} nodes for {es.duration:.0f} s, run twice "
            "with one seed, once with the spec's rules and once with random eviction and random "
            "outbound choice (obscura_ref/sim/baseline.py):",
            "",
            "| rules | attacker's share of the victim's connections (the attack's second half) "
            "| of its outbound | attacker's share of addresses |",
            "|---|---|---|---|",
        ]
        for run, name in ((spec, "spec (LIM-17, RECO-1)"), (baseline, "random (baseline)")):
            rm = run.measures
            outbound = [
                o for t, o in zip(rm.times, rm.victim_outbound_attacker, strict=False) if t >= since
            ]
            mean_out = statistics.fmean(outbound) if outbound else 0.0
            lines.append(
                f"| {name} | {attacker_share(rm, since):.1%} | {mean_out:.1f} of "
                f"{run.scenario.settings.get('max_outbound_connections', 8)} | "
                f"{address_share(run.scenario):.1%} |"
            )
        lines.append("")
        if "eclipse.png" in plots:
            lines += ["![eclipse](eclipse.png)", ""]
    rotated = [float(m.rotations.get(ip, 0)) for ip in m.outbound_sets]
    hours = s.duration / 3600
    reach = group_reach(m)
    lines += [
        "## Rotation and diversity",
        "",
        f"- Outbound connections rotated away per node per hour: "
        f"{_stats([r / hours for r in rotated])}.",
        f"- Share of a node's outbound peers replaced per rotation interval: "
        f"{_stats(turnover(m), '.0%')}.",
        f"- Share of the {m.honest_groups} honest address groups a node's outbound connections "
        f"reached over the run: {_stats(reach, '.0%')}; of the groups its book held: "
        f"{_stats(book_reach(m), '.0%')} (a node learns no address beyond its book: its "
        f"{s.book_size} seed nodes).",
        "",
    ]
    if "rotation.png" in plots:
        lines += ["![rotation and diversity](rotation.png)", ""]
    return "\n".join(lines)


def write(out: Path, main: Run, spec: Run | None = None, baseline: Run | None = None) -> Path:
    """Write the event log, the plots and report.md into ``out``; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / EVENTS_FILE).write_text(events_text(main.events))
    plots = _plots(out, main, spec, baseline)
    report = out / REPORT_FILE
    report.write_text(render(main, spec, baseline, plots))
    return report
