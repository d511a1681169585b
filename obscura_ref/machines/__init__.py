"""The per-connection state machines (sans-IO): ``HandshakeProtocol`` and ``PeerConnection``.

They take events and the current time and return actions; they never touch a socket, a clock
or a global random source (spec/handshake.md, spec/connection.md).
"""
