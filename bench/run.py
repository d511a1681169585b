"""Every benchmark of bench/ in one run, interleaved, printed as the tables of RESULTS.md.

    python bench/run.py            # the full run, about 7 minutes on 2 cores
    python bench/run.py --quick    # a smoke run of a few seconds per case, one repetition

Each repetition runs every case against every server in turn (the order rotating from one
repetition to the next), each server in a fresh process pinned to one core and the load client
(bench/client.c, built here; else bench/client.py) pinned to the other. The round trips over the
encrypted transport take the Python client for every transport they compare, the C client having
no encrypted mode. A figure is the median of the repetitions with their range in brackets; a
ratio is taken within each repetition, then its median and range are given. The primary figure
is the server's CPU time per operation, from the kernel's accounting of the server process over
the timed window. Progress goes to standard error, the tables to standard output.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

import decode
import handshakes
import idle
import roundtrip
from harness import (
    HERE,
    Window,
    client_command,
    client_kind,
    descriptor_limit,
    machine,
    median_range,
    raise_descriptor_limit,
    set_pinning,
)

T = TypeVar("T")
KiB = 1024
RT_SERVERS = ("node", "frames", "uvloop", "node-padded")
HS_SERVERS = ("node", "accept")
IDLE_SERVERS = ("node", "frames")
NAMES = {
    "node": "node (privacy none)",
    "node-padded": "node (privacy standard)",
    "frames": "selectors, frame-checking",
    "uvloop": "uvloop Protocol, frame-checking",
    "accept": "selectors accept-send-read-close",
}
# The round trips over the encrypted transport: each against its server, all through the Python
# client. The first is the baseline the others' ratios are taken against; the shaped transport
# (privacy_level "maximum": sends held up to 50 ms, dummies, spec/privacy.md section 5) is also
# measured against the unshaped encrypted one.
TRANSPORTS = (
    roundtrip.Transport("plaintext", "node-padded", encrypted=False),
    roundtrip.Transport("encrypted", "node-padded", encrypted=True),
    roundtrip.Transport("shaped", "node@maximum", encrypted=True),
)


@dataclass(frozen=True)
class Plan:
    repeat: int = 5
    rt_connections: tuple[int, ...] = (1, 100, 1000)
    rt_seconds: float = 2.0
    hs_in_flight: int = 32
    hs_seconds: float = 3.0
    idle_counts: tuple[int, ...] = (1000, 10000)
    idle_seconds: float = 3.0
    decode_budget: float = 0.6
    transport_connections: tuple[int, ...] = (100, 1000)
    parts: tuple[str, ...] = ("roundtrip", "transport", "handshakes", "idle", "decode")


QUICK = Plan(
    repeat=1,
    rt_connections=(1, 100),
    rt_seconds=0.5,
    hs_seconds=0.5,
    idle_counts=(1000,),
    idle_seconds=1.0,
    decode_budget=0.05,
    transport_connections=(100,),
)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def attempt(what: str, work: Callable[[], T]) -> T | None:
    """One measurement; a failure is reported and leaves a gap, the run goes on."""
    progress(f"  {what}")
    try:
        return work()
    except Exception:  # a broken server or client must not lose the rest of the run
        progress(f"  {what} FAILED:\n{traceback.format_exc()}")
        return None


def rotated(items: Sequence[T], by: int) -> list[T]:
    """The items, the first ``by`` moved to the end (each repetition starts with another)."""
    return [items[(i + by) % len(items)] for i in range(len(items))]


class Results:
    def __init__(self) -> None:
        self.rt: dict[tuple[str, int], list[Window | None]] = {}
        self.rt_detail: dict[str, str] = {}
        self.transport: dict[tuple[str, int], list[Window | None]] = {}
        self.hs: dict[str, list[Window | None]] = {}
        self.idle: dict[tuple[str, int], list[idle.Idle | None]] = {}
        self.decode: dict[tuple[str, str], list[float]] = {}


def run(plan: Plan) -> Results:
    results = Results()
    decode_cases = decode.cases() if "decode" in plan.parts else []
    for rep in range(plan.repeat):
        progress(f"repetition {rep + 1} of {plan.repeat}")
        if "roundtrip" in plan.parts:
            for count in plan.rt_connections:
                for kind in rotated(RT_SERVERS, rep):
                    measured = attempt(
                        f"round trips, {count} connections, {kind}",
                        partial(roundtrip.measure, kind, count, plan.rt_seconds),
                    )
                    if measured is not None:
                        results.rt_detail[kind] = measured[1]
                    window = None if measured is None else measured[0]
                    results.rt.setdefault((kind, count), []).append(window)
        if "transport" in plan.parts:
            for count in plan.transport_connections:
                for transport in rotated(TRANSPORTS, rep):
                    got = attempt(
                        f"round trips, {count} connections, {transport.name} (Python client)",
                        partial(roundtrip.measure_transport, transport, count, plan.rt_seconds),
                    )
                    results.transport.setdefault((transport.name, count), []).append(got)
        if "handshakes" in plan.parts:
            for kind in rotated(HS_SERVERS, rep):
                got = attempt(
                    f"handshakes, {kind}",
                    partial(handshakes.measure, kind, plan.hs_in_flight, plan.hs_seconds),
                )
                results.hs.setdefault(kind, []).append(got)
        for case in decode_cases:
            progress(f"  decode, {case.name}")
            works: list[tuple[str, Callable[[decode.Case], None]]] = [
                ("decode", decode.decode),
                ("sha256d", decode.sha256d),
            ]
            for name, work in rotated(works, rep):
                value = decode.rate(work, case, plan.decode_budget)
                results.decode.setdefault((case.name, name), []).append(value)
    if "idle" in plan.parts:
        run_idle(plan, results)
    return results


def run_idle(plan: Plan, results: Results) -> None:
    """Each server holds the connections once per count; the windows are interleaved."""
    limit = descriptor_limit()
    for count in plan.idle_counts:
        if count + 100 > limit:
            progress(f"idle, {count}: skipped, the descriptor limit is {limit}")
            continue
        with ExitStack() as stack:
            held: dict[str, idle.Held | None] = {}
            for kind in IDLE_SERVERS:
                context = idle.hold(kind, count, plan.idle_seconds)
                held[kind] = attempt(
                    f"idle: {kind} opening {count} connections",
                    partial(stack.enter_context, context),
                )
            for rep in range(plan.repeat):
                progress(f"idle, {count} connections: repetition {rep + 1} of {plan.repeat}")
                for kind in rotated(IDLE_SERVERS, rep):
                    one = held[kind]
                    window = None if one is None else attempt(f"idle, {kind}", one.window)
                    results.idle.setdefault((kind, count), []).append(window)


# ---- the report ---------------------------------------------------------------------------


def present(values: list[T | None]) -> list[T]:
    return [value for value in values if value is not None]


def paired(
    top: list[Window | None], bottom: list[Window | None], of: Callable[[Window], float]
) -> list[float]:
    """``of(top) / of(bottom)`` within each repetition that has both."""
    return [of(a) / of(b) for a, b in zip(top, bottom, strict=True) if a and b and of(b)]


def us(window: Window) -> float:
    return window.server_us_per_op


def rate(window: Window) -> float:
    return window.rate


def window_rows(label: str, windows: list[Window | None]) -> str:
    got = present(windows)
    return (
        f"| {label} | {median_range([w.server_us_per_op for w in got])} "
        f"| {median_range([w.rate for w in got], 0)} "
        f"| {median_range([100 * w.client_share for w in got], 0, '%')} "
        f"| {len(got)} |"
    )


def server_name(kind: str) -> str:
    if kind.startswith("node@"):
        return f"node (privacy {kind.removeprefix('node@')})"
    return NAMES.get(kind, kind)


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class Report:
    def __init__(self, plan: Plan, results: Results) -> None:
        self.plan = plan
        self.results = results
        self.targets: list[tuple[str, str, str]] = []

    def target(self, name: str, value: float | None, form: str, met: bool) -> None:
        """A target's line: ``form`` formats the value (None: not measured)."""
        if value is None:
            self.targets.append((name, "n/a", "n/a"))
        else:
            self.targets.append((name, form.format(value), "met" if met else "**missed**"))

    def roundtrip(self) -> None:
        plan, res = self.plan, self.results
        print(
            f"### Round trips: one 24-byte Ping in flight per connection, "
            f"{plan.rt_seconds:g} s windows\n"
        )
        print(
            "| connections | server | server CPU per round trip (µs) | round trips per second "
            "| client CPU share | runs |"
        )
        print("|---|---|---|---|---|---|")
        for count in plan.rt_connections:
            for kind in RT_SERVERS:
                name = NAMES[kind]
                if kind == "uvloop":
                    name = name.replace("uvloop", res.rt_detail.get(kind, "uvloop"))
                print(window_rows(f"{count:,} | {name}", res.rt.get((kind, count), [])))
        print()
        print(
            "Ratios, node against each baseline (CPU: the baseline's CPU per round trip over "
            "the node's, so higher is better and 1.00x is parity; rate: the node's over the "
            "baseline's):\n"
        )
        print(
            "| connections | vs selectors: CPU | vs selectors: rate | vs uvloop: CPU "
            "| vs uvloop: rate | padded node vs selectors: CPU |"
        )
        print("|---|---|---|---|---|---|")
        for count in plan.rt_connections:
            node = res.rt.get(("node", count), [])
            padded = res.rt.get(("node-padded", count), [])
            frames = res.rt.get(("frames", count), [])
            uv = res.rt.get(("uvloop", count), [])
            cpu = paired(frames, node, us)
            print(
                f"| {count:,} | {median_range(cpu, 2, 'x')} "
                f"| {median_range(paired(node, frames, rate), 2, 'x')} "
                f"| {median_range(paired(uv, node, us), 2, 'x')} "
                f"| {median_range(paired(node, uv, rate), 2, 'x')} "
                f"| {median_range(paired(frames, padded, us), 2, 'x')} |"
            )
            if count >= 100:
                ratio = median_or_none(cpu)
                self.target(
                    f"ping round trip at {count:,} connections: node CPU per round trip, "
                    "selectors frame-checking server's over the node's >= 0.65x",
                    ratio,
                    "{:.2f}x",
                    ratio is not None and ratio >= 0.65,
                )
                per = median_or_none([w.server_us_per_op for w in present(node)])
                self.target(
                    f"ping round trip at {count:,} connections: node CPU per round trip "
                    "<= about 18 µs",
                    per,
                    "{:.1f} µs",
                    per is not None and per <= 18.0,
                )
        print()

    def transport(self) -> None:
        plan, res = self.plan, self.results
        print(
            "### Round trips over the encrypted transport: one 24-byte Ping in flight per "
            f"connection, the Python client for every transport, {plan.rt_seconds:g} s windows\n"
        )
        print(
            "| connections | transport | server | server CPU per round trip (µs) "
            "| round trips per second | client CPU share | client CPU per round trip (µs) "
            "| runs |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for count in plan.transport_connections:
            for transport in TRANSPORTS:
                got = present(res.transport.get((transport.name, count), []))
                print(
                    f"| {count:,} | {transport.name} | {server_name(transport.server)} "
                    f"| {median_range([w.server_us_per_op for w in got])} "
                    f"| {median_range([w.rate for w in got], 0)} "
                    f"| {median_range([100 * w.client_share for w in got], 0, '%')} "
                    f"| {median_range([w.client_cpu / max(w.all_ops, 1) * 1e6 for w in got])} "
                    f"| {len(got)} |"
                )
        base = TRANSPORTS[0]
        print(
            f"\nRatios against {base.name} (CPU: {base.name}'s server CPU per round trip over the "
            "transport's, so higher is better and 1.00x is no cost; rate: the transport's over "
            f"{base.name}'s):\n"
        )
        print("| connections | transport | CPU | rate |")
        print("|---|---|---|---|")
        for count in plan.transport_connections:
            baseline = res.transport.get((base.name, count), [])
            for transport in TRANSPORTS[1:]:
                other = res.transport.get((transport.name, count), [])
                cpu = paired(baseline, other, us)
                print(
                    f"| {count:,} | {transport.name} | {median_range(cpu, 2, 'x')} "
                    f"| {median_range(paired(other, baseline, rate), 2, 'x')} |"
                )
                if transport.name == "shaped":
                    encrypted = res.transport.get(("encrypted", count), [])
                    print(
                        f"| {count:,} | shaped against encrypted "
                        f"| {median_range(paired(encrypted, other, us), 2, 'x')} "
                        f"| {median_range(paired(other, encrypted, rate), 2, 'x')} |"
                    )
                if transport.name == "encrypted":
                    ratio = median_or_none(cpu)
                    self.target(
                        f"encrypted round trip at {count:,} connections: {base.name} CPU per "
                        "round trip over encrypted's >= 0.6x",
                        ratio,
                        "{:.2f}x",
                        ratio is not None and ratio >= 0.6,
                    )
        print()

    def handshakes(self) -> None:
        plan, res = self.plan, self.results
        print(f"### Handshakes: {plan.hs_in_flight} in flight, {plan.hs_seconds:g} s windows\n")
        print(
            "| server | server CPU per handshake (µs) | handshakes per second "
            "| client CPU share | runs |"
        )
        print("|---|---|---|---|---|")
        for kind in HS_SERVERS:
            print(window_rows(NAMES[kind], res.hs.get(kind, [])))
        node, base = res.hs.get("node", []), res.hs.get("accept", [])
        cpu = paired(base, node, us)
        print(
            f"\nNode against accept-send-read-close: CPU {median_range(cpu, 2, 'x')}, "
            f"rate {median_range(paired(node, base, rate), 2, 'x')}.\n"
        )
        ratio = median_or_none(cpu)
        self.target(
            "handshakes at 32 in flight: baseline's CPU per handshake over the node's >= 0.5x",
            ratio,
            "{:.2f}x",
            ratio is not None and ratio >= 0.5,
        )

    def idle(self) -> None:
        plan, res = self.plan, self.results
        print(f"### Idle established connections, {plan.idle_seconds:g} s windows\n")
        print(
            "| connections | server | resident before (MiB) | resident per connection (KiB) "
            "| server CPU while idle (µs per s) | fewest alive at the end | opened in (s) | runs |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for count in plan.idle_counts:
            for kind in IDLE_SERVERS:
                got = present(res.idle.get((kind, count), []))
                print(
                    f"| {count:,} | {NAMES[kind].split(',')[0]} "
                    f"| {median_range([h.before / KiB / KiB for h in got])} "
                    f"| {median_range([h.bytes_per_connection(count) / KiB for h in got], 2)} "
                    f"| {median_range([h.cpu_per_second * 1e6 for h in got], 0)} "
                    f"| {min((h.alive for h in got), default=0):,} "
                    f"| {f'{got[0].opened_in:.1f}' if got else 'n/a'} | {len(got)} |"
                )
        print()
        counts = plan.idle_counts
        node_at = {n: res.idle.get(("node", n), []) for n in counts}
        if 10000 in counts:
            per = median_or_none(
                [h.bytes_per_connection(10000) / KiB for h in present(node_at[10000])]
            )
            self.target(
                "idle: node's resident memory per established connection at 10,000 <= 4 KiB",
                per,
                "{:.2f} KiB",
                per is not None and per <= 4.0,
            )
        if len(counts) >= 2:
            low, high = counts[0], counts[-1]
            ratios = [
                b.cpu_per_second / a.cpu_per_second
                for a, b in zip(node_at[low], node_at[high], strict=True)
                if a and b and a.cpu_per_second
            ]
            print(
                f"Timer tick: the node's CPU per second while idle at {high:,} connections over "
                f"that at {low:,}: {median_range(ratios, 2, 'x')}.\n"
            )
            ratio = median_or_none(ratios)
            self.target(
                f"timer tick flat: node's idle CPU per second at {high:,} over {low:,} "
                "connections <= 1.5x",
                ratio,
                "{:.2f}x",
                ratio is not None and ratio <= 1.5,
            )

    def decode(self) -> None:
        res = self.results
        print("### Decoding in the node's read size (64 KiB pieces), CPU time\n")
        print("| stream | decode (MB/s) | SHA-256d of the payloads (MB/s) | ratio |")
        print("|---|---|---|---|")
        names = list(dict.fromkeys(name for name, _ in res.decode))
        for name in names:
            dec, sha = res.decode[(name, "decode")], res.decode[(name, "sha256d")]
            ratios = [a / b for a, b in zip(dec, sha, strict=True)]
            print(
                f"| {name} | {median_range([v / 1e6 for v in dec])} "
                f"| {median_range([v / 1e6 for v in sha])} | {median_range(ratios, 2, 'x')} |"
            )
            if name.startswith("1 MiB"):
                ratio = median_or_none(ratios)
                self.target(
                    "1 MiB frames decoded in 64 KiB pieces: decode rate over SHA-256d >= 0.9x",
                    ratio,
                    "{:.2f}x",
                    ratio is not None and ratio >= 0.9,
                )
        print()

    def print_targets(self) -> None:
        print("### Targets\n")
        print("| target | measured (median) | verdict |")
        print("|---|---|---|")
        for name, text, verdict in self.targets:
            print(f"| {name} | {text} | {verdict} |")
        print()


def load_average() -> str:
    """The machine's one-minute load average: other work competing for the two cores."""
    try:
        with open("/proc/loadavg") as file:
            return file.read().split()[0]
    except OSError:
        return "unknown"


def revision() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "obscura_ref"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes to obscura_ref/" if changed else "")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--repeat", type=int, help="repetitions (default 5; --quick: 1)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=Plan().parts,
        help="run only these benchmarks",
    )
    parser.add_argument("--python-client", action="store_true", help="not the C client")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan()
    if args.repeat:
        plan = replace(plan, repeat=args.repeat)
    if args.only:
        plan = replace(plan, parts=tuple(args.only))
    raise_descriptor_limit()
    set_pinning(not args.no_pin)
    client_command(force_python=args.python_client)
    began, load_before, code_before = time.monotonic(), load_average(), revision()
    results = run(plan)
    minutes = (time.monotonic() - began) / 60
    print(f"- Command: `{' '.join(['python bench/run.py', *sys.argv[1:]])}`")
    print(f"- Machine: {machine()}; descriptor limit {descriptor_limit()}")
    code = revision()
    if code != code_before:
        code = f"{code_before} at the start, {code} at the end (it changed during the run)"
    clients = f"{client_kind()} load client"
    if "transport" in plan.parts:
        clients += " (the Python client for the encrypted transport's round trips)"
    print(f"- Code: {code}; {clients}")
    print(
        f"- Run: {plan.repeat} repetition{'s' if plan.repeat != 1 else ''} in {minutes:.1f} "
        f"minutes; load average (1 minute) "
        f"{load_before} before it, {load_average()} after it\n"
    )
    report = Report(plan, results)
    if "roundtrip" in plan.parts:
        report.roundtrip()
    if "transport" in plan.parts:
        report.transport()
    if "handshakes" in plan.parts:
        report.handshakes()
    if "idle" in plan.parts:
        report.idle()
    if "decode" in plan.parts:
        report.decode()
    report.print_targets()


if __name__ == "__main__":
    main()
