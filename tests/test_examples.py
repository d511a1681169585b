"""The programs of examples/, each run as a user runs it; and nodes on separate loops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from obscura_ref.config import NodeConfig
from obscura_ref.loop import EventLoop
from obscura_ref.node import Node, NodeError

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_example_is_tested_and_short() -> None:
    names = sorted(path.name for path in EXAMPLES.glob("*.py"))
    assert names == ["custom_message.py", "echo_callback.py", "virtual_clock.py"]
    for name in names:
        assert len((EXAMPLES / name).read_text().splitlines()) <= 70, name


def test_echo_callback() -> None:
    assert run_example("echo_callback.py").splitlines() == [
        "established, user agent 'obscura-ref/0.1.0'",
        "echoed: hello",
    ]


def test_custom_message() -> None:
    assert run_example("custom_message.py") == (
        "received a Transactions message (type 0x07): {'amount': 3, 'to': 'carol'}\n"
    )


def test_virtual_clock() -> None:
    assert run_example("virtual_clock.py").splitlines() == [
        "established at virtual time 1000.0",
        "virtual time 1060.0: ping answered, rtt 0.0 s (virtual: no time passed)",
    ]


def test_two_nodes_on_separate_loops_driven_in_turn_are_refused_with_a_clear_error() -> None:
    a, b = Node(), Node()  # each makes its own loop
    try:
        a.step()
        b.step()
        with pytest.raises(NodeError, match=r"different EventLoop.*loop=loop"):
            a.step()
    finally:
        a.shutdown(0)
        b.shutdown(0)


def test_a_shared_loop_or_a_node_shut_down_first_is_fine() -> None:
    loop = EventLoop()
    a, b = Node(NodeConfig(), loop=loop), Node(NodeConfig(), loop=loop)
    for node in (a, b, a, b):
        node.step()
    c = Node()
    c.step()
    c.shutdown(0)
    a.step()  # c is shut down: a's loop is the only one left
    a.shutdown(0)
    b.shutdown(0)
    loop.close()
