"""The implementations a conformance run can replay session vectors against.

- ``EmbeddedReference``: the reference node, in this process, on its own thread and loop, one
  fresh node per case. The mutant tests patch the reference in-process and run against it.
- ``SpawnedTarget``: any implementation, started as a process per case from a command line with
  ``{listen}`` and ``{connect}`` replaced by loopback addresses.
- ``FixedTarget``: an implementation already listening; only cases that need neither a dial
  from the implementation nor a stop can run against it.

Each runs with the conformance profile (conformance/profile.toml): short timers, small limits,
a persistent connection to the runner's ``{connect}`` address and the echo application.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
import tomllib
from pathlib import Path
from typing import IO, Any

from ..config import NodeConfig
from ..machines.events import MessageReceived
from ..node import Node, NodeError, NodeEvent
from ..wire import Opaque
from .session import Address, Skip

PROFILE_FILE = Path(__file__).with_name("profile.toml")
READY_TIMEOUT = 10.0  # seconds a spawned implementation has to start listening
SETTLE = 0.2  # seconds after the readiness probe, so the implementation sees it closed


def profile() -> dict[str, Any]:
    """The conformance profile: the configuration keys an implementation runs with."""
    with PROFILE_FILE.open("rb") as handle:
        return tomllib.load(handle)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedReference:
    """The reference node with the profile and the echo application, on a thread of its own."""

    def __init__(self, connect_to: Address | None, seed: int | None = None) -> None:
        config = NodeConfig().with_values(profile(), "conformance profile").check_together()
        rng = random.Random(seed) if seed is not None else None
        self.node = Node(config, rng=rng, on_event=self._echo)
        self._address = self.node.listen("127.0.0.1", 0)
        if connect_to is not None:
            self.node.connect(*connect_to, persistent=True)
        self._stop = threading.Event()
        self._graceful: bool | None = None
        self._thread = threading.Thread(target=self._run, name="reference-node", daemon=True)
        self._thread.start()

    def _echo(self, event: NodeEvent) -> None:
        """The profile's application: every opaque message goes back unchanged."""
        if isinstance(event.event, MessageReceived) and isinstance(event.event.message, Opaque):
            with contextlib.suppress(NodeError):  # closing meanwhile: nothing to echo to
                self.node.send(event.peer, event.event.message)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.node.step(0.01)
        self._graceful = self.node.shutdown()

    def listen_address(self) -> Address:
        return self._address

    def stop(self) -> None:
        self._stop.set()

    def wait_stopped(self, timeout: float) -> str | None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            return f"the node had not stopped after {timeout:.1f} s"
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10.0)


class SpawnedTarget:
    """An implementation started from a command line for one case."""

    def __init__(self, template: str, connect_to: Address) -> None:
        self._address: Address = ("127.0.0.1", free_port())
        command = template.replace("{listen}", f"127.0.0.1:{self._address[1]}").replace(
            "{connect}", f"{connect_to[0]}:{connect_to[1]}"
        )
        self.command = command
        self._output: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        try:
            self.process = subprocess.Popen(
                shlex.split(command),
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            raise RuntimeError(f"cannot start {command!r}: {exc}") from exc
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the implementation exited with status {self.process.returncode} before "
                    f"listening: {self.output_tail()}"
                )
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(self._address) == 0:
                    time.sleep(SETTLE)
                    return
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"the implementation did not listen on {self._address} in time")

    def output_tail(self, limit: int = 2000) -> str:
        self._output.seek(0)
        return self._output.read().decode("utf-8", "replace")[-limit:]

    def listen_address(self) -> Address:
        return self._address

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)  # spec: NODE-5 (the command's stop signal)

    def wait_stopped(self, timeout: float) -> str | None:
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return f"the implementation was still running {timeout:.1f} s after SIGTERM"
        if status != 0:
            return f"the implementation exited with status {status} (expected 0)"
        return None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(2.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._output.close()


class FixedTarget:
    """An implementation that is already listening at ``address``."""

    def __init__(self, address: Address) -> None:
        self._address = address

    def listen_address(self) -> Address:
        return self._address

    def stop(self) -> None:
        raise Skip("needs a target the runner starts (--spawn) to stop it")

    def wait_stopped(self, timeout: float) -> str | None:
        raise Skip("needs a target the runner starts (--spawn) to stop it")

    def close(self) -> None:
        pass


def quiet_reference_logs() -> None:
    """The embedded nodes log every close; the runner's report says what matters."""
    logging.getLogger("obscura_ref").setLevel(logging.ERROR)
