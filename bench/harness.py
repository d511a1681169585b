"""What the benchmarks share: server and client processes, CPU accounting, statistics."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from obscura_ref.wire import Handshake, encode_frame

HERE = Path(__file__).resolve().parent
BUILD = HERE / ".build"  # the C client is built here at run time (bench/.gitignore)
HOST = "127.0.0.9"
SERVER_CPU, CLIENT_CPU = 0, 1  # the cores the server and the client are pinned to
_pin = len(os.sched_getaffinity(0)) >= 2


def set_pinning(on: bool) -> None:
    global _pin
    _pin = on and len(os.sched_getaffinity(0)) >= 2


def pin(pid: int, cpu: int) -> None:
    if _pin:
        os.sched_setaffinity(pid, {sorted(os.sched_getaffinity(0))[cpu]})


def raise_descriptor_limit() -> None:
    """As many open sockets as the machine allows this process (and its children)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def descriptor_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# ---- the kernel's accounting of a process -------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used, all its threads: the sum of the
    threads' ``schedstat`` run times (nanoseconds), else ``utime + stime`` of ``stat``
    (clock ticks)."""
    try:
        total = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# ---- processes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    address: tuple[str, int]
    pid: int
    detail: str  # what its ready line said after "ready"


@contextmanager
def server(kind: str) -> Iterator[Server]:
    """Run ``servers.py KIND`` in its own process, pinned to the server's core."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(HERE / "servers.py"), kind, HOST, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pin(process.pid, SERVER_CPU)
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError(f"server {kind} did not start")
        yield Server((HOST, port), process.pid, " ".join(line[1:]))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_client: list[str] = []


def client_command(force_python: bool = False) -> list[str]:
    """The load client: bench/client.c built with the system's C compiler, else client.py."""
    if not _client:
        _client.extend(_build_c_client(force_python) or python_client())
    return _client


def python_client() -> list[str]:
    """The Python load client, whatever client_command chose (a fresh list each time)."""
    return [sys.executable, str(HERE / "client.py")]


def _build_c_client(force_python: bool) -> list[str] | None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if force_python or compiler is None:
        return None
    source, binary = HERE / "client.c", BUILD / "client"
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        BUILD.mkdir(exist_ok=True)
        partial = BUILD / f"client.{os.getpid()}"
        built = subprocess.run([compiler, "-O2", "-o", str(partial), str(source)], check=False)
        if built.returncode != 0:
            print("the C client did not build: the Python client is used", file=sys.stderr)
            return None
        partial.replace(binary)
    return [str(binary)]


def client_kind() -> str:
    return "C" if len(client_command()) == 1 else "Python"


@dataclass(frozen=True)
class Window:
    """One timed window: what the client counted, and the CPU both processes used."""

    ops: int  # operations completed inside the window
    all_ops: int  # and with those finished after it (the ones in flight at its end)
    seconds: float  # the window's length, as the client timed it
    server_cpu: float  # seconds of CPU the server used from just before the window to its end
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.ops / self.seconds

    @property
    def server_us_per_op(self) -> float:
        return self.server_cpu / max(self.all_ops, 1) * 1e6

    @property
    def client_share(self) -> float:
        return self.client_cpu / self.seconds


class Client:
    """The load client in its own process, pinned to the client's core. It sets up (prints
    ``ready``), runs one window when told (prints ``done OPS ALL_OPS SECONDS``), and exits when
    its standard input closes. ``command`` is the client to run, client_command() if None."""

    def __init__(self, args: list[str], command: list[str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*(command or client_command()), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        pin(self.process.pid, CLIENT_CPU)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _line(self) -> list[str]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if not line or line[0] == "error":
            raise RuntimeError(f"client failed: {' '.join(line) or 'no output'}")
        return line

    def ready(self) -> None:
        if self._line()[0] != "ready":
            raise RuntimeError("client did not get ready")

    def window(self, server_pid: int, settle: float = 0.2) -> Window:
        """Run the window; ``settle`` seconds after it let the server finish its work (closes)."""
        assert self.process.stdin is not None
        server_before, client_before = cpu_seconds(server_pid), cpu_seconds(self.process.pid)
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        _, ops, all_ops, seconds = self._line()
        time.sleep(settle)
        return Window(
            int(ops),
            int(all_ops),
            float(seconds),
            cpu_seconds(server_pid) - server_before,
            cpu_seconds(self.process.pid) - client_before,
        )


# ---- statistics and text ------------------------------------------------------------------


def median_range(values: list[float], digits: int = 1, unit: str = "") -> str:
    """``median (min to max)`` of the repetitions."""
    if not values:
        return "n/a"
    text = f"{statistics.median(values):,.{digits}f}{unit}"
    if len(values) > 1:
        text += f" ({min(values):,.{digits}f} to {max(values):,.{digits}f})"
    return text


def machine() -> str:
    """Cores, processor, memory, kernel and Python: what the figures depend on."""
    uname = os.uname()
    model, memory = "", ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.splitlines()
                if "model name" in line
            ),
            "",
        )
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} cores{f' ({model})' if model else ''}{memory}, "
        f"Linux {uname.release} ({uname.machine}), Python {sys.version.split()[0]}"
    )


def client_handshake(privacy_features: int = 0) -> bytes:
    """The handshake every benchmark client sends (one nonce for all: the node only refuses
    its own nonces), with ``privacy_features`` set (EncryptedTransport for an encrypted run)."""
    return encode_frame(
        Handshake(1, int(time.time()), 1, privacy_features, "bench/1", bytes(32), 0, 0x5EED)
    )
