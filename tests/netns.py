"""A small network of Linux network namespaces for the tests: hosts on two bridges joined by one
link, every address in 127.0.0.0/8.

    h1 127.1.0.1 --+                                +-- h4 127.4.0.1
    h2 127.2.0.1 --+-- br0 ==== up0/up1 ==== br1 --+-- h5 127.5.0.1
    h3 127.3.0.1 --+
                       (br0, br1 and the uplink: the switch namespace)

Each host is a namespace with one veth, ``eth0``, whose other end is a port of its side's bridge;
both bridges live in one more namespace, the switch. Setting the uplink down cuts the network in
two while each side still reaches its own hosts: a partition with two sides that keep talking.

Loopback addresses on a real interface: every host's ``eth0`` holds ``127.N.0.1/8``, one /16 per
host so that each is an address group of its own (spec/manager.md section 2), and the /8 prefix
puts all of them on the link. Without ``route_localnet`` Linux refuses to send from 127.0.0.0/8
by any interface but ``lo`` (connect fails with EINVAL) and drops what arrives for it as martian;
and a ``lo`` that is up claims the whole /8 as local (``local 127.0.0.0/8 dev lo``), so that a
connection to another host's address is refused by the host itself. So ``route_localnet`` is set
in every host namespace and ``lo`` is left down there, as a new namespace has it. IPv6 is
turned off on every interface made here, so that not even a link-local address is used.

Every name is unique to one ``Lab`` (a prefix with the process id and random digits), nothing is
made outside the namespaces it creates, and ``close`` deletes them all; deleting a namespace
destroys the veth ends in it, and with them their peers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

# A command of `ip` or `tc` that takes longer than this is stuck: better an error than a hang.
COMMAND_TIMEOUT = 20.0

# Host namespaces only: the kernel routes 127.0.0.0/8 on their eth0, and no IPv6 address appears.
HOST_SYSCTLS = (
    "net/ipv4/conf/all/route_localnet",
    "net/ipv4/conf/default/route_localnet",
    "net/ipv6/conf/all/disable_ipv6",
    "net/ipv6/conf/default/disable_ipv6",
)
# The switch holds no address at all; IPv6 off so that its ports take no link-local address.
SWITCH_SYSCTLS = (
    "net/ipv6/conf/all/disable_ipv6",
    "net/ipv6/conf/default/disable_ipv6",
)


class LabError(RuntimeError):
    """A command that builds or changes the network failed."""


def run(*command: str) -> str:
    """Run one command; its output, or LabError with what it wrote to stderr."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(command)}: {exc}") from None
    if done.returncode != 0:
        raise LabError(f"{' '.join(command)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def unique_prefix() -> str:
    """A prefix no other run shares: this process's id and random digits."""
    return f"obscura-{os.getpid()}-{secrets.token_hex(3)}-"


def unavailable() -> str | None:
    """Why this process cannot build the network, as a sentence; None when it can. It tries
    what the lab does (a namespace, a veth, a bridge) in a namespace of its own, then deletes
    it."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces are Linux's; this is {sys.platform}"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if shutil.which("timeout") is None:  # bounds the life of every process run in the lab
        return "coreutils' `timeout` command is not installed"
    if os.geteuid() != 0:
        return "not running as root: creating network namespaces needs CAP_SYS_ADMIN"
    name = unique_prefix() + "probe"
    try:
        run("ip", "netns", "add", name)
    except LabError as exc:
        delete_namespace(name)  # in case the command left its name behind
        return f"network namespaces cannot be created here ({exc})"
    try:
        # ("a" would not do as a name: `ip` reads it as the keyword "address")
        run("ip", "-n", name, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
        run("ip", "-n", name, "link", "add", "probe2", "type", "bridge")
    except LabError as exc:
        return f"the kernel lacks veth or bridge devices ({exc})"
    finally:
        delete_namespace(name)
    return None


def delete_namespace(name: str) -> None:
    """Delete a namespace, ignoring one already gone (cleanup must not fail a test twice)."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(
            ["ip", "netns", "delete", name],
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )


def write_sysctls(namespace: str, keys: Sequence[str], value: str) -> None:
    """Write ``value`` to each /proc/sys key inside the namespace (a process's /proc/sys/net is
    its own namespace's); a key the kernel does not have (no IPv6) is passed over."""
    script = "".join(
        f"[ ! -e /proc/sys/{key} ] || echo {value} > /proc/sys/{key}\n" for key in keys
    )
    run("ip", "netns", "exec", namespace, "sh", "-ec", script)


@dataclass(frozen=True)
class Host:
    label: str  # h1, h2, ...
    namespace: str
    address: str  # its IPv4 address, in its own /16 of 127.0.0.0/8
    side: int  # the bridge it hangs off: 0 or 1


class Lab:
    """Hosts on two bridges joined by an uplink (the module's drawing). ``sides``: how many
    hosts each side has. ``netem``: arguments of a ``tc netem`` qdisc for every host's link
    (delay and loss), or None for none."""

    def __init__(self, sides: tuple[int, int], netem: Sequence[str] | None = None) -> None:
        self.prefix = unique_prefix()
        self.switch = self.prefix + "switch"
        self.hosts: list[Host] = []
        self.netem_error: str | None = None  # why the links carry no delay or loss
        self._namespaces: list[str] = []
        number = 0
        for side, count in enumerate(sides):
            for _ in range(count):
                number += 1
                self.hosts.append(
                    Host(f"h{number}", f"{self.prefix}h{number}", f"127.{number}.0.1", side)
                )
        try:
            self._build(netem)
        except BaseException:
            self.close()
            raise

    def _add_namespace(self, name: str) -> None:
        run("ip", "netns", "add", name)
        self._namespaces.append(name)

    def _build(self, netem: Sequence[str] | None) -> None:
        self._add_namespace(self.switch)
        write_sysctls(self.switch, SWITCH_SYSCTLS, "1")
        for bridge in ("br0", "br1"):
            run("ip", "-n", self.switch, "link", "add", bridge, "type", "bridge")
            run("ip", "-n", self.switch, "link", "set", bridge, "up")
        # The uplink: a veth pair with one end a port of each bridge.
        run("ip", "-n", self.switch, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
        for end, bridge in (("up0", "br0"), ("up1", "br1")):
            run("ip", "-n", self.switch, "link", "set", end, "master", bridge, "up")
        for host in self.hosts:
            self._add_namespace(host.namespace)
            write_sysctls(host.namespace, HOST_SYSCTLS, "1")
            port = "p" + host.label[1:]
            # Made inside the host namespace, its peer made inside the switch: no name is ever
            # taken in the namespace this process runs in.
            veth = ("eth0", "type", "veth", "peer", "name", port, "netns", self.switch)
            run("ip", "-n", host.namespace, "link", "add", *veth)
            run("ip", "-n", self.switch, "link", "set", port, "master", f"br{host.side}", "up")
            write_sysctls(host.namespace, ("net/ipv4/conf/eth0/route_localnet",), "1")
            run("ip", "-n", host.namespace, "addr", "add", f"{host.address}/8", "dev", "eth0")
            run("ip", "-n", host.namespace, "link", "set", "eth0", "up")
            if netem is not None and self.netem_error is None:
                try:
                    qdisc = ("dev", "eth0", "root", "netem", *netem)
                    run("tc", "-n", host.namespace, "qdisc", "add", *qdisc)
                except LabError as exc:  # a kernel built without sch_netem
                    self.netem_error = str(exc)
        if self.netem_error is not None:
            for host in self.hosts:  # all links alike: none keeps a half-applied netem
                subprocess.run(
                    ["tc", "-n", host.namespace, "qdisc", "del", "dev", "eth0", "root"],
                    capture_output=True,
                    timeout=COMMAND_TIMEOUT,
                    check=False,
                )

    def exec_prefix(self, host: Host) -> list[str]:
        """The start of a command line that runs a program inside the host's namespace."""
        return ["ip", "netns", "exec", host.namespace]

    def cut(self) -> None:
        """Partition: the uplink down, and with it the carrier of its other end."""
        run("ip", "-n", self.switch, "link", "set", "up0", "down")

    def heal(self) -> None:
        run("ip", "-n", self.switch, "link", "set", "up0", "up")

    def close(self) -> None:
        """Delete every namespace made (their interfaces go with them). Processes still inside
        one keep it alive unseen: stop them first."""
        while self._namespaces:
            delete_namespace(self._namespaces.pop())
