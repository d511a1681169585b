"""The campaign's driver (fuzz/README.md).

    python -m fuzz.run TARGET --inputs N [--seed S] [--engine atheris|mutate]
    python -m fuzz.run TARGET --replay FILE...

The first builds TARGET's seed corpus from the conformance vectors, runs N inputs through the
engine with a time box per input and a memory limit, and prints one JSON line of figures (also
appended to WORKDIR/results.jsonl). ``atheris`` is coverage-guided (libFuzzer); it runs in a
child process, whose output is kept in WORKDIR/TARGET/log.txt, and saves each failing input in
WORKDIR/TARGET/artifacts/. ``mutate`` needs no engine: random mutations of the seeds (bit
flips, byte inserts and deletes, copies of chunks, splices of two inputs), from a fixed seed.
``--replay`` runs inputs through the target without any engine and reports each one's outcome.
Arguments after ``--`` go to libFuzzer as they are (``-minimize_crash=1``, say).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib
import json
import random
import re
import resource
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

WORKDIR = Path(__file__).resolve().parent / "runs"
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF)


class Hang(BaseException):
    """An input that outlived its time box (a BaseException: no target code catches it)."""


def _targets() -> tuple[dict[str, Callable[[bytes], None]], dict[str, int]]:
    from .targets import MAX_LEN, TARGETS

    return TARGETS, MAX_LEN


def mutate(rng: random.Random, data: bytes, corpus: list[bytes], max_len: int) -> bytes:
    """One to four random mutations of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(7)
        at = rng.randrange(len(out) + 1)
        if kind == 0 and out:  # flip one bit
            out[at % len(out)] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:  # an interesting byte
            out[at % len(out)] = rng.choice(INTERESTING)
        elif kind == 2:  # insert random bytes
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif kind == 3 and out:  # delete a range
            del out[at : at + rng.randint(1, 16)]
        elif kind == 4 and out:  # copy a chunk elsewhere (chunk boundaries move)
            start = rng.randrange(len(out))
            chunk = out[start : start + rng.randint(1, 64)]
            out[at:at] = chunk
        elif kind == 5:  # splice: this input's head, another's tail
            other = rng.choice(corpus)
            out = out[:at] + other[rng.randrange(len(other) + 1) :]
        elif kind == 6 and len(out) >= 2:  # a u16 at its extremes
            value = rng.choice((0, 1, 0xFF, 0x100, 0x7FFF, 0xFFFF))
            out[at % (len(out) - 1) : at % (len(out) - 1) + 2] = value.to_bytes(2, "little")
    return bytes(out[:max_len])


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang("the input outlived its time box")


def run_mutate(args: argparse.Namespace, seeds: list[bytes], folder: Path) -> dict[str, Any]:
    """The engine without coverage: the figures it measured."""
    targets, max_len = _targets()
    test, rng = targets[args.target], random.Random(args.seed)
    corpus = seeds or [b""]
    artifacts = folder / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    signal.signal(signal.SIGALRM, _on_alarm)
    start = time.monotonic()
    runs = 0
    for runs in range(1, args.inputs + 1):
        data = mutate(rng, rng.choice(corpus), corpus, max_len[args.target])
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        try:
            test(data)
        except (Exception, Hang) as exc:
            kind = "timeout" if isinstance(exc, Hang) else "crash"
            path = artifacts / f"{kind}-{hashlib.sha1(data).hexdigest()}"
            path.write_bytes(data)
            failures.append(path.name)
            print(f"{kind}: {path}\n{traceback.format_exc()}", file=sys.stderr)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if runs % 1000 == 0 and _rss_mb() > args.rss_limit_mb:
            failures.append(f"oom: {_rss_mb():.0f} MB after {runs} inputs")
            break
    wall = time.monotonic() - start
    return {
        "inputs": runs,
        "exec_per_sec": round(runs / wall) if wall else None,
        "peak_rss_mb": round(_rss_mb()),
        "failures": failures,
    }


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def run_atheris(args: argparse.Namespace, folder: Path, seeds_dir: Path) -> dict[str, Any]:
    """libFuzzer through atheris, in a child process: the figures of its final report."""
    _, max_len = _targets()
    corpus, artifacts = folder / "corpus", folder / "artifacts"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    flags = [
        str(corpus),
        str(seeds_dir),
        f"-runs={args.inputs}",
        f"-seed={args.seed}",
        f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        f"-max_len={max_len[args.target]}",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/",
        *args.libfuzzer,
    ]
    command = [sys.executable, "-m", "fuzz.run", args.target, "--child", "--", *flags]
    log = folder / "log.txt"
    start = time.monotonic()
    with log.open("w") as out:
        status = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - start
    text = log.read_text(errors="replace")
    stats = dict(re.findall(r"stat::(\w+):\s*(\d+)", text))
    coverage = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", text)
    inputs = int(stats.get("number_of_executed_units", 0))
    return {
        "inputs": inputs,
        "exec_per_sec": round(inputs / wall),  # libFuzzer's own is in whole seconds
        "peak_rss_mb": int(stats.get("peak_rss_mb", 0)),
        "new_units": int(stats.get("new_units_added", 0)),
        "coverage": int(coverage[-1][0]) if coverage else None,
        "features": int(coverage[-1][1]) if coverage else None,
        "corpus": int(coverage[-1][2]) if coverage else None,
        "exit": status.returncode,
        "failures": sorted(p.name for p in artifacts.iterdir()),
    }


def child(target: str, flags: list[str]) -> None:
    """The atheris process: the target's code instrumented for coverage as it is imported."""
    atheris: Any = importlib.import_module("atheris")
    with atheris.instrument_imports(include=["obscura_ref"]):
        from .targets import TARGETS
    atheris.Setup([sys.argv[0], *flags], TARGETS[target])
    atheris.Fuzz()


def replay(target: str, files: list[Path]) -> int:
    targets, _ = _targets()
    failed = 0
    for path in files:
        try:
            targets[target](path.read_bytes())
        except Exception:
            failed += 1
            print(f"FAIL {path}\n{traceback.format_exc()}")
        else:
            print(f"ok   {path}")
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=("decoder", "handshake", "connection", "manager"))
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs to run")
    parser.add_argument("--seed", type=int, default=1, help="the engine's random seed")
    parser.add_argument("--engine", choices=("atheris", "mutate"), default="atheris")
    parser.add_argument("--timeout", type=int, default=1, help="seconds an input may take")
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="memory limit")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--replay", type=Path, nargs="+", help="run these inputs and stop")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    args.libfuzzer = argv[cut + 1 :]  # after --: flags for libFuzzer, as they are
    if args.child:
        child(args.target, args.libfuzzer)
        return 0
    if args.replay:
        return replay(args.target, args.replay)

    from .seeds import write

    folder = args.workdir / args.target
    seeds_dir = folder / "seeds"
    seeds = write(seeds_dir, args.target)
    started = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    if args.engine == "atheris":
        figures = run_atheris(args, folder, seeds_dir)
    else:
        files = sorted(seeds_dir.iterdir())
        figures = run_mutate(args, [p.read_bytes() for p in files], folder)
    summary = {
        "target": args.target,
        "engine": args.engine,
        "seed": args.seed,
        "seeds": seeds,
        **figures,
        "wall_seconds": round(time.monotonic() - clock, 1),
        "timeout_seconds": args.timeout,
        "rss_limit_mb": args.rss_limit_mb,
        "commit": _commit(),
        "started": started.isoformat(timespec="seconds"),
    }
    line = json.dumps(summary)
    print(line)
    with (args.workdir / "results.jsonl").open("a") as out:
        out.write(line + "\n")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
