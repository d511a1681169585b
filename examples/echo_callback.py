"""Two nodes in one process sharing one loop; the second echoes every opaque message back
from its ``on_event`` callback, the first prints what comes back.

    .venv/bin/python examples/echo_callback.py   # from the top folder, after the install
"""

from __future__ import annotations

from obscura_ref.config import NodeConfig
from obscura_ref.eventqueue import NodeEvent
from obscura_ref.loop import EventLoop
from obscura_ref.machines.events import Established, MessageReceived
from obscura_ref.node import Node
from obscura_ref.wire import MessageType, Opaque

CONFIG = NodeConfig().with_values({"privacy_level": "none", "data_dir": ""}, "example")


def main() -> None:
    loop = EventLoop()  # one loop for both nodes: one select serves every socket
    replies: list[bytes] = []

    def server_event(item: NodeEvent) -> None:
        if isinstance(item.event, MessageReceived) and isinstance(item.event.message, Opaque):
            server.send(item.peer, item.event.message)  # the echo

    def client_event(item: NodeEvent) -> None:
        if isinstance(item.event, Established):
            print("established, user agent", repr(item.event.negotiated.peer_user_agent))
            client.send(item.peer, Opaque(MessageType.Inv, b"hello"))
        elif isinstance(item.event, MessageReceived) and isinstance(item.event.message, Opaque):
            replies.append(item.event.message.payload)

    server = Node(CONFIG, loop=loop, on_event=server_event)
    client = Node(CONFIG, loop=loop, on_event=client_event)
    address = server.listen("127.0.0.1", 0)
    client.connect(*address)
    if not client.run_until(lambda: bool(replies), timeout=5):
        raise SystemExit("no echo within 5 s")
    print("echoed:", replies[0].decode())
    client.shutdown()
    server.shutdown()
    loop.close()


if __name__ == "__main__":
    main()
