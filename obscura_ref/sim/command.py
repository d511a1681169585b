"""``obscura-ref simulate``: run a simulated network, check its invariants, write the report
(spec/simulation.md, README.md "Simulation")."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from ..config import ConfigError
from .report import Run, digest, write
from .scenario import Scenario
from .simulation import Breach, Simulation

ECLIPSE_NODES = 300  # the eclipse experiment's honest nodes ...
ECLIPSE_DURATION = 1800.0  # ... and its duration


def add_parser(commands: Any) -> None:
    """Register ``simulate`` with the command line's subparsers."""
    d = Scenario()
    sim = commands.add_parser(
        "simulate",
        help="many real nodes on an in-memory network under a virtual clock",
        description="Runs honest nodes, faults and adversaries on one virtual clock with one "
        "seed; checks the invariants of spec/simulation.md after every pass of the loop and "
        "stops at the first breach (exit status 1), naming the seed and the step; writes the "
        "event log and a report with plots. The same seed writes the same event log.",
    )
    sim.add_argument("--nodes", type=int, default=d.nodes, help=f"honest nodes ({d.nodes})")
    sim.add_argument(
        "--duration", type=float, default=d.duration, help=f"simulated seconds ({d.duration:.0f})"
    )
    sim.add_argument("--seed", type=int, default=d.seed, help=f"the one seed of the run ({d.seed})")
    sim.add_argument(
        "--out", type=Path, default=Path("sim-report"), help="folder of the report (sim-report)"
    )
    sim.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a node configuration key for every node (repeatable), as `obscura-ref node --set`",
    )
    faults = sim.add_argument_group("faults and adversaries (rates per simulated hour)")
    for name, help_text in (
        ("book_size", "addresses of other nodes each node is given as seed_nodes"),
        ("min_latency", "least access latency of a host, seconds"),
        ("max_latency", "greatest access latency of a host, seconds"),
        ("jitter", "greatest jitter added to a delivery, seconds"),
        ("resets_per_hour", "connections reset at both ends"),
        ("departures_per_hour", "nodes that leave (half crash, half shut down)"),
        ("mean_downtime", "seconds a departed node stays away, on average"),
        ("partition_for", "seconds the partition lasts"),
        ("partition_share", "share of the honest nodes cut off"),
        ("flooders", "nodes that flood their peers with messages"),
        ("violators", "peers that send frames that do not decode"),
        ("silent", "hosts that accept connections and never answer"),
        ("attackers", "addresses of the eclipse attacker (0: no attack)"),
        ("attacker_groups", "address groups of the attacker's addresses (at most 5)"),
        ("attack_at", "when the attacker's nodes start, seconds"),
        ("victim_fans", "honest nodes with a persistent connection to the victim"),
    ):
        default = getattr(d, name)
        faults.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=type(default),
            default=default,
            help=f"{help_text} ({default})",
        )
    faults.add_argument(
        "--partition-at",
        type=float,
        default=d.partition_at,
        help=f"when the partition begins, seconds ({d.partition_at:.0f})",
    )
    faults.add_argument("--no-partition", action="store_true", help="no partition")
    faults.add_argument(
        "--baseline",
        action="store_true",
        help="the main run with random eviction and outbound choice instead of the spec's",
    )
    eclipse = sim.add_argument_group("the eclipse experiment (spec rules against a baseline)")
    eclipse.add_argument(
        "--eclipse-nodes",
        type=int,
        default=ECLIPSE_NODES,
        help=f"honest nodes of each of its two runs ({ECLIPSE_NODES}; 0: not run)",
    )
    eclipse.add_argument(
        "--eclipse-duration",
        type=float,
        default=ECLIPSE_DURATION,
        help=f"simulated seconds of each ({ECLIPSE_DURATION:.0f})",
    )
    sim.set_defaults(handler=main)


def scenarios(args: argparse.Namespace) -> tuple[Scenario, Scenario | None, Scenario | None]:
    """The main run's scenario, and the eclipse experiment's two (None when not run)."""
    overrides = dict(item.partition("=")[::2] for item in args.set)
    fields = {f.name for f in dataclasses.fields(Scenario)}
    given = {k: v for k, v in vars(args).items() if k in fields and k != "settings"}
    if args.no_partition:
        given["partition_at"] = None
    main = Scenario(**given, settings=overrides)
    if args.eclipse_nodes <= 0 or not main.attackers:
        return main, None, None
    spec = dataclasses.replace(
        main,
        nodes=args.eclipse_nodes,
        duration=args.eclipse_duration,
        partition_at=None,
        departures_per_hour=0.0,
        baseline=False,
        victim_fans=min(main.victim_fans, args.eclipse_nodes - 1),
    )
    return main, spec, dataclasses.replace(spec, baseline=True)


def run(scenario: Scenario) -> Run:
    """One simulation in this process (a worker of the pool, or the caller)."""
    started = time.process_time()
    simulation = Simulation(scenario)
    measures = simulation.run()
    return Run(scenario, measures, simulation.events, time.process_time() - started)


def main(args: argparse.Namespace) -> int:
    try:
        main_scenario, spec, baseline = scenarios(args)
        for scenario in (main_scenario, spec, baseline):
            if scenario is not None:
                Simulation(scenario)  # the node configuration refused now, not in a worker
    except (ConfigError, ValueError) as exc:
        print(f"obscura-ref simulate: {exc}", file=sys.stderr)
        return 2
    jobs = [s for s in (main_scenario, spec, baseline) if s is not None]
    print(
        f"simulating {main_scenario.nodes} nodes for {main_scenario.duration:.0f} s, seed "
        f"{main_scenario.seed}"
        + (f"; the eclipse experiment, {spec.nodes} nodes twice" if spec is not None else ""),
        file=sys.stderr,
    )
    try:
        # One process per run: the runs are independent and each is single-threaded.
        with ProcessPoolExecutor(max_workers=min(2, len(jobs))) as pool:
            runs = list(pool.map(run, jobs))
    except Breach as breach:
        print(f"obscura-ref simulate: invariant broken: {breach}", file=sys.stderr)
        return 1
    main_run = runs[0]
    spec_run, baseline_run = (runs[1], runs[2]) if len(runs) == 3 else (None, None)
    report = write(args.out, main_run, spec_run, baseline_run)
    print(f"event log SHA-256 {digest(main_run.events)}")
    print(f"report: {report}")
    return 0
