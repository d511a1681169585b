"""obscura-ref: the normative reference for Obscura's peer-to-peer connection management.

Layers, each importing only those below it: ``wire`` (bytes <-> messages), then the machines,
the manager, the loop and the command line. See ``spec/README.md``.
"""

__version__ = "0.1.0"
