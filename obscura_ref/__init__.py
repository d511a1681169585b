"""obscura-ref: the normative reference for Obscura's peer-to-peer connection management.

Layers, each importing only those below it: ``wire`` (bytes <-> messages), ``machines`` (one
connection's state machines), ``loop`` and ``node`` (sockets and timers), and ``cli``. A
connection manager (scores, eviction, rotation, bans) is still to come. See ``spec/README.md``.
"""

__version__ = "0.1.0"
