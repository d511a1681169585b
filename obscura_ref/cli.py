"""The ``obscura-ref`` command line.

    obscura-ref decode HEX|-        one JSON object per frame, or the error that stopped decoding
    obscura-ref explain [--json] HEX|-
                                    every field of the frames, with its offset and meaning
    obscura-ref encode JSON|-       the frames described by JSON (an object, an array of objects,
                                    or one object per line, as ``decode`` prints), as hex
    obscura-ref node [--listen HOST:PORT] [--connect HOST:PORT ...] [--persistent HOST:PORT ...]
                     [--config FILE] [--set KEY=VALUE ...] [--seed N] [--log-level LEVEL]
                     [--log-format text|json] [--status-interval SECONDS]
                     [--status-json FILE]
                                    run a node until SIGINT or SIGTERM
    obscura-ref config show         the effective configuration and where each value came from
    obscura-ref spec check          the traceability check; writes spec/TRACE.md
    obscura-ref vectors generate    regenerate conformance/vectors/ from the reference
    obscura-ref vectors check       replay the checked-in vectors against the reference
    obscura-ref conformance run [--target HOST:PORT | --spawn COMMAND] [--adapter COMMAND]
                    [--only PATTERN ...] [--junit FILE] [--json FILE] [--jobs N]
                                    replay the conformance vectors and report
    obscura-ref conformance adapter the reference's decision adapter (JSON lines on stdin/stdout)

Exit status: 0 on success, 1 when the input is invalid or a check fails, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import random
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import __version__, demo
from .banfile import BanFileError, write_json_atomically
from .config import ConfigError, NodeConfig, describe
from .config import load as load_configuration
from .conformance import codec, decision, session_vectors
from .conformance.runner import Options
from .conformance.runner import run as run_conformance
from .explain import explain as explain_stream
from .explain import to_json as explain_json
from .explain import to_text as explain_text
from .logs import configure as configure_logging
from .logs import frame_logger
from .machines.events import MessageReceived
from .node import Node, NodeError, NodeEvent, parse_address
from .sim import command as simulate
from .specgen import refresh as refresh_generated
from .trace import run as run_trace
from .wire import EncodeError, Opaque, decode_frames, encode_frame
from .wire.jsonform import frame_from_json, frame_to_json

# The status of a process killed by SIGPIPE, as shells report it: the reader of our output
# stopped reading (``obscura-ref decode - | head -n 1``).
STOPPED_READING = 128 + 13


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Any = args.handler
    try:
        return int(handler(args))
    except BrokenPipeError:
        # No traceback for a reader that stopped reading; and nothing more is written, not
        # even by the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return STOPPED_READING


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obscura-ref",
        description="Reference tools for Obscura's peer-to-peer connection management.",
    )
    parser.add_argument("--version", action="version", version=f"obscura-ref {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    decode = commands.add_parser("decode", help="decode frames from hex")
    decode.add_argument("hex", metavar="HEX", help="frame bytes as hex, or - to read stdin")
    decode.set_defaults(handler=_decode)

    explain = commands.add_parser(
        "explain", help="every field of the frames in hex, with its offset and meaning"
    )
    explain.add_argument("hex", metavar="HEX", help="frame bytes as hex, or - to read stdin")
    explain.add_argument("--json", action="store_true", help="the rows as a JSON list")
    explain.set_defaults(handler=_explain)

    encode = commands.add_parser("encode", help="encode frames described by JSON")
    encode.add_argument("json", metavar="JSON", help="the frames as JSON, or - to read stdin")
    encode.set_defaults(handler=_encode)

    spec = commands.add_parser("spec", help="specification tools").add_subparsers(
        required=True, metavar="ACTION"
    )
    spec_check = spec.add_parser("check", help="check traceability and write spec/TRACE.md")
    spec_check.add_argument("--root", type=Path, default=Path("."), help="project folder")
    spec_check.add_argument(
        "--no-write", action="store_true", help="fail if spec/TRACE.md is stale instead of writing"
    )
    spec_check.set_defaults(handler=_spec_check)

    node = commands.add_parser("node", help="run a node")
    node.add_argument("--listen", metavar="HOST:PORT", help="accept connections here")
    node.add_argument(
        "--connect", action="append", default=[], metavar="HOST:PORT", help="open a connection"
    )
    node.add_argument(
        "--persistent",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="open a connection, and again reconnect_interval seconds after every close the "
        "node did not ask for",
    )
    add_config_arguments(node)
    node.add_argument("--seed", type=int, help="seed the random source: a reproducible run")
    node.add_argument(
        "--echo",
        action="store_true",
        help="send every opaque message back to its sender (the conformance profile's application)",
    )
    node.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    node.add_argument("--log-format", default="text", choices=["text", "json"])
    node.add_argument(
        "--status-interval",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="seconds between status lines (0: none)",
    )
    node.add_argument(
        "--status-json",
        type=Path,
        metavar="FILE",
        help="write a JSON snapshot of every connection and of the manager to FILE, replaced "
        "atomically at start, at every status interval and at stop",
    )
    node.set_defaults(handler=_node)

    config = commands.add_parser("config", help="node configuration").add_subparsers(
        required=True, metavar="ACTION"
    )
    show = config.add_parser("show", help="print the effective configuration and its sources")
    add_config_arguments(show)
    show.set_defaults(handler=_config_show)

    vectors = commands.add_parser("vectors", help="conformance vectors").add_subparsers(
        required=True, metavar="ACTION"
    )
    for action, handler, text in (
        ("generate", _vectors_generate, "write conformance/vectors/ from the reference"),
        ("check", _vectors_check, "check the vectors are current and pass on the reference"),
    ):
        sub = vectors.add_parser(action, help=text)
        sub.add_argument("--root", type=Path, default=Path("."), help="project folder")
        sub.set_defaults(handler=handler)

    conformance = commands.add_parser("conformance", help="the conformance suite").add_subparsers(
        required=True, metavar="ACTION"
    )
    run = conformance.add_parser(
        "run",
        help="replay the vectors against the reference or an implementation and report",
        description="Without --target, --spawn or --adapter, replay every vector against the "
        "embedded reference. Exit status 1 when a case fails, 2 on a usage error.",
    )
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--target",
        metavar="HOST:PORT",
        help="an implementation already listening (responder cases)",
    )
    where.add_argument(
        "--spawn",
        metavar="COMMAND",
        help="start the implementation for each case; {listen} and {connect} are replaced by "
        "loopback addresses",
    )
    run.add_argument("--adapter", metavar="COMMAND", help="replay the decision vectors through it")
    run.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="a file, group, FILE#tcId or requirement ID (wildcards allowed; repeatable)",
    )
    run.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report")
    run.add_argument("--json", type=Path, metavar="FILE", help="write a JSON report")
    run.add_argument("--jobs", type=int, default=4, metavar="N", help="cases run at once (4)")
    run.add_argument(
        "--vectors",
        type=Path,
        default=Path("conformance") / "vectors",
        metavar="DIR",
        help="the vector files (conformance/vectors)",
    )
    run.set_defaults(handler=_conformance_run)
    adapter = conformance.add_parser(
        "adapter", help="answer decision requests, one JSON line in, one JSON line out"
    )
    adapter.set_defaults(handler=lambda args: decision.adapter_main(sys.stdin, sys.stdout))
    demo.add_parser(commands)
    simulate.add_parser(commands)
    return parser


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="a TOML configuration file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one key (repeatable); the value as in TOML",
    )


def _seconds(text: str) -> float:
    """A number of seconds, zero or more (argparse names the option on a refusal)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be 0 or more")
    return value


def load_config(args: argparse.Namespace) -> NodeConfig | None:
    """The configuration the arguments describe, or None after printing why it is refused."""
    try:
        return load_configuration(args.config, args.set)
    except ConfigError as exc:
        print(f"error: configuration: {exc}", file=sys.stderr)
        return None


def _node(args: argparse.Namespace) -> int:
    config = load_config(args)
    if config is None:
        return 2
    configure_logging(args.log_level, args.log_format)
    try:
        listen = None if args.listen is None else parse_address(args.listen)
        targets = [(parse_address(t), False) for t in args.connect]
        targets += [(parse_address(t), True) for t in args.persistent]
    except NodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if listen is None and not targets and not config.seed_nodes:
        print(
            "error: nothing to do: give --listen HOST:PORT to accept connections, or --connect, "
            "--persistent or the seed_nodes key to open them",
            file=sys.stderr,
        )
        return 2
    rng = None if args.seed is None else random.Random(args.seed)
    if rng is not None:
        logging.getLogger("obscura_ref.node").warning(
            "--seed %d: every random draw, the Noise keys included, follows from the seed: "
            "for tests and demos only, never for privacy",
            args.seed,
        )
    try:
        node = Node(
            config,
            rng=rng,
            on_event=_echo_to(lambda: node) if args.echo else _ignore,
            # One line per frame sent and received at debug; no observer costs nothing above.
            observer=frame_logger() if args.log_level == "debug" else None,
        )
    except BanFileError as exc:  # spec: BAN-8 (refuse to start, naming the file)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log = logging.getLogger("obscura_ref.node")
    status_json: Path | None = args.status_json
    signals = _SignalWatch(node, log)  # before anything can be interrupted
    try:
        if listen is not None:
            node.listen(*listen)
        for (host, port), persistent in targets:
            node.connect(host, port, persistent=persistent)
        if status_json is not None and not _write_status(node, status_json, running=True):
            node.shutdown(0)
            return 2  # a file the operator named and the node cannot write: a usage error
        if args.status_interval > 0:
            _log_status_every(node, args.status_interval, status_json)
        node.run_forever()
        graceful = node.shutdown()  # spec: NODE-5
    except (OSError, NodeError) as exc:
        said = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"error: {said}", file=sys.stderr)
        node.shutdown(0)
        return 1
    finally:
        signals.restore()
    if status_json is not None:
        _write_status(node, status_json, running=False)
    log.info("stopped%s", "" if graceful else " (some connections were cut before they closed)")
    return 0


def _ignore(event: NodeEvent) -> None:
    pass


def _echo_to(node: Callable[[], Node]) -> Callable[[NodeEvent], None]:
    """The conformance profile's application: every opaque message goes back unchanged."""

    def echo(event: NodeEvent) -> None:
        if isinstance(event.event, MessageReceived) and isinstance(event.event.message, Opaque):
            with contextlib.suppress(NodeError):  # closing meanwhile: nothing to echo to
                node().send(event.peer, event.event.message)

    return echo


class _SignalWatch:
    """SIGINT and SIGTERM: the first stops the node gracefully, a second cuts the graceful
    close short. A wakeup descriptor in the loop makes the loop notice at once."""

    def __init__(self, node: Node, log: logging.Logger) -> None:
        self._node = node
        self._log = log
        self._count = 0
        self._reader, self._writer = socket.socketpair()
        for end in (self._reader, self._writer):
            end.setblocking(False)
        node.loop.register(self._reader, selectors.EVENT_READ, self._drain)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno())
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}

    def _on_signal(self, signum: int, frame: object) -> None:
        self._count += 1
        if self._count == 1:
            self._log.info("signal %d: shutting down (again to stop at once)", signum)
            self._node.stop()
        else:
            self._log.info("signal %d: stopping at once", signum)
            self._node.cut_shutdown()

    def _drain(self, mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            self._reader.recv(512)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_fd)
        with contextlib.suppress(KeyError, ValueError):
            self._node.loop.unregister(self._reader)
        self._reader.close()
        self._writer.close()


MiB = 1024 * 1024
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _log_status_every(node: Node, interval: float, status_json: Path | None = None) -> None:
    """Every ``interval`` seconds, the status line, and the snapshot when asked for one: what
    spec/manager.md NODE-9 asks a node to report."""
    log = logging.getLogger("obscura_ref.node")

    def report() -> None:
        log.info("%s", status_line(node))  # spec: NODE-9
        if status_json is not None:
            _write_status(node, status_json, running=True)
        node.loop.call_at(node.loop.clock() + interval, report)

    node.loop.call_at(node.loop.clock() + interval, report)


def status_line(node: Node) -> str:
    """One short line: connections per type (those that count against the limits), address
    groups, bans in force, addresses waiting for their next attempt, the partition, and the
    memory held against memory_budget (spec/node.md section 2.1)."""
    manager = node.manager_status()
    counts = ", ".join(f"{count} {kind}" for kind, count in manager.counts.items())
    rtts = [row.rtt for row in node.status() if row.rtt is not None]
    mean = f"{1000 * sum(rtts) / len(rtts):.1f} ms" if rtts else "-"
    memory = node.memory()
    held = (memory.buffers + memory.events) / MiB
    return (
        f"status: {counts}; address groups {len(manager.groups)}, bans {len(manager.bans)}, "
        f"waiting {len(manager.waiting)}, mean rtt {mean}, "
        + ("partitioned" if manager.partitioned else "not partitioned")
        + f"; memory {held:.1f} of {memory.budget / MiB:g} MiB"
        + (", largest peers not read" if memory.pressure else "")
    )


def status_snapshot(node: Node, *, running: bool) -> dict[str, object]:
    """The document of ``--status-json`` (README.md, "Running nodes"): every connection as
    ``Node.status`` describes it, and the manager's view (``Node.manager_status``)."""
    manager = node.manager_status()
    now = node.loop.clock()
    return {
        "time": round(time.time(), 3),
        "running": running,
        "counts": manager.counts,
        "groups": manager.groups,
        "partitioned": manager.partitioned,
        "book": manager.book,
        "bans": [{"address": address, "until": until} for address, until in manager.bans],
        "waiting": [
            {"address": address, "failures": failures, "next_attempt_in": round(at - now, 3)}
            for address, failures, at in manager.waiting
        ],
        "memory": asdict(node.memory()),
        "connections": [asdict(row) for row in node.status()],
    }


def _write_status(node: Node, path: Path, *, running: bool) -> bool:
    """Replace the snapshot file; a failure is logged, and the node goes on."""
    try:
        write_json_atomically(path, status_snapshot(node, running=running))  # spec: NODE-9
    except OSError as exc:
        logging.getLogger("obscura_ref.node").error("status file %s: %s", path, exc)
        return False
    return True


def _config_show(args: argparse.Namespace) -> int:
    config = load_config(args)
    if config is None:
        return 2
    for line in describe(config):
        print(line)
    return 0


def _argument_text(value: str) -> str:
    return sys.stdin.read() if value == "-" else value


def _print(obj: object) -> None:
    # ASCII with \u escapes: valid JSON on any terminal encoding, whatever the user agent holds.
    print(json.dumps(obj))


def _input_error(detail: str) -> int:
    _print({"error": "invalid_input", "requirement": None, "detail": detail})
    return 1


def _decode(args: argparse.Namespace) -> int:
    given = _argument_text(args.hex)
    for position, char in enumerate(given):  # whitespace anywhere is ignored
        if not (char in "0123456789abcdefABCDEF" or char.isspace()):
            return _input_error(f"not hex: {char!r} at position {position} (from 0)")
    text = "".join(given.split())
    if len(text) % 2:
        return _input_error(f"not hex: an odd number of hex digits ({len(text)})")
    # An empty stream is a valid stream with no frames: nothing to print, status 0.
    frames, error = decode_frames(bytes.fromhex(text))
    for frame in frames:
        _print(frame_to_json(frame))
    if error is not None:
        _print(
            {"error": error.code.value, "requirement": error.requirement, "detail": error.detail}
        )
        return 1
    return 0


def _explain(args: argparse.Namespace) -> int:
    given = _argument_text(args.hex)
    try:
        data = _hex_bytes(given)
    except ValueError as exc:
        if args.json:
            return _input_error(str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = explain_stream(data)
    if args.json:
        print(explain_json(rows))
    else:
        print(explain_text(rows) if rows else "an empty stream: no frames")
    return 1 if rows and rows[-1].field == "error" else 0


def _hex_bytes(given: str) -> bytes:
    """The bytes of hex text, whitespace anywhere ignored; ValueError says what is not hex,
    in the words ``decode`` uses."""
    for position, char in enumerate(given):
        if not (char in "0123456789abcdefABCDEF" or char.isspace()):
            raise ValueError(f"not hex: {char!r} at position {position} (from 0)")
    text = "".join(given.split())
    if len(text) % 2:
        raise ValueError(f"not hex: an odd number of hex digits ({len(text)})")
    return bytes.fromhex(text)


def _encode(args: argparse.Namespace) -> int:
    text = _argument_text(args.json).strip()
    try:
        objects = _json_frames(text)
    except ValueError as exc:
        return _input_error(str(exc))
    out = []
    for index, obj in enumerate(objects):
        try:
            frame = frame_from_json(obj)
            out.append(encode_frame(frame.message, frame.padding))
        except EncodeError as exc:
            _print(
                {
                    "error": "invalid_field",
                    "requirement": exc.requirement,
                    "detail": f"frame {index}: {exc}",
                }
            )
            return 1
    print(b"".join(out).hex())
    return 0


def _json_frames(text: str) -> list[object]:
    """An object, an array of objects, or one object per line (what ``decode`` prints)."""
    if not text:
        raise ValueError("no JSON given")
    try:
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            document = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    frames = document if isinstance(document, list) else [document]
    if not frames:
        raise ValueError("no frames given")
    return frames


def _spec_check(args: argparse.Namespace) -> int:
    if not (args.root / "spec").is_dir():
        print(f"error: no spec/ folder under {args.root}", file=sys.stderr)
        return 1
    stale = refresh_generated(args.root, write=not args.no_write)
    trace = args.root / "spec" / "TRACE.md"
    before = trace.read_text(encoding="utf-8") if trace.is_file() else None
    report, current = run_trace(args.root, write=not args.no_write)
    rewritten = trace.is_file() and trace.read_text(encoding="utf-8") != before
    for problem in stale + report.problems:
        print(f"error: {problem}", file=sys.stderr)
    if not current:
        print("error: spec/TRACE.md is stale; run `obscura-ref spec check`", file=sys.stderr)
    enforced = sum(1 for r in report.requirements.values() if r.level in ("MUST", "MUST NOT"))
    print(
        f"{len(report.requirements)} requirements ({enforced} MUST/MUST NOT), "
        f"{len(report.problems)} problems; spec/TRACE.md "
        + ("rewritten" if rewritten else "current" if current else "stale")
    )
    return 0 if report.ok and current and not stale else 1


_VECTOR_KINDS = (("codec", codec), ("session", session_vectors), ("decision", decision))


def _vectors_generate(args: argparse.Namespace) -> int:
    if not (args.root / "conformance").is_dir() or not (args.root / "spec").is_dir():
        # Outside a checkout this would make a conformance/ folder wherever it was run.
        print(
            f"error: no spec/ and conformance/ folders under {args.root}: run from the top "
            "folder of a checkout, or give it with --root",
            file=sys.stderr,
        )
        return 2
    for _, module in _VECTOR_KINDS:
        for path in module.write_vectors(args.root):
            print(f"wrote {path}")
    return 0


def _vectors_check(args: argparse.Namespace) -> int:
    status = 0
    for kind, module in _VECTOR_KINDS:
        failures = module.check_vectors(args.root)
        for failure in failures:
            print(f"FAIL {failure}")
        print(f"{kind} vectors: {len(failures)} failures")
        status = status or (1 if failures else 0)
    return status


def _conformance_run(args: argparse.Namespace) -> int:
    try:
        target = None if args.target is None else parse_address(args.target)
    except NodeError as exc:
        print(f"error: --target: {exc}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("error: --jobs must be at least 1", file=sys.stderr)
        return 2
    options = Options(
        vectors=args.vectors,
        target=target,
        spawn=args.spawn,
        adapter=args.adapter,
        only=args.only,
        jobs=args.jobs,
        junit=args.junit,
        json=args.json,
    )
    return run_conformance(options, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
