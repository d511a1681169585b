"""An application's own message: a registered type the specification leaves opaque
(``MessageType.Transactions`` here) carrying the application's format, JSON. The node carries
the payload whole; encoding and decoding it is the application's.

    .venv/bin/python examples/custom_message.py   # from the top folder, after the install
"""

from __future__ import annotations

import json

from obscura_ref.config import NodeConfig
from obscura_ref.loop import EventLoop
from obscura_ref.machines.events import Established, MessageReceived
from obscura_ref.node import Node
from obscura_ref.wire import MessageType, Opaque

CONFIG = NodeConfig().with_values({"privacy_level": "none", "data_dir": ""}, "example")
KIND = MessageType.Transactions


def encode(note: dict[str, object]) -> Opaque:
    return Opaque(KIND, json.dumps(note, sort_keys=True).encode())


def decode(message: Opaque) -> dict[str, object]:
    value = json.loads(message.payload)
    if not isinstance(value, dict):
        raise ValueError("not a note")
    return value


def main() -> None:
    loop = EventLoop()
    sender, receiver = Node(CONFIG, loop=loop), Node(CONFIG, loop=loop)
    peer = sender.connect(*receiver.listen("127.0.0.1", 0))
    notes: list[dict[str, object]] = []

    def take_events() -> bool:
        # Without a callback, events wait in the node's queue: take them, or it stops reading.
        for node in (sender, receiver):
            while node.events:
                event = node.events.popleft().event
                if node is sender and isinstance(event, Established):
                    sender.send(peer, encode({"amount": 3, "to": "carol"}))
                message = event.message if isinstance(event, MessageReceived) else None
                if isinstance(message, Opaque) and message.message_type is KIND:
                    notes.append(decode(message))
        return bool(notes)

    if not loop.run_until(take_events, timeout=5):
        raise SystemExit("no note within 5 s")
    print(f"received a {KIND.name} message (type {int(KIND):#04x}):", notes[0])
    sender.shutdown()
    receiver.shutdown()
    loop.close()


if __name__ == "__main__":
    main()
