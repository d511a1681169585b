"""The connection manager (the origin's ``ConnectionManager``): the policy that decides which
connections to open, keep, evict, retry and ban.

Sans-IO and pure: it reads plain data (counts, connection records, time) and returns decisions;
the node carries them out. Each decision is deterministic given its inputs, so the decision
vectors of ``conformance/`` can write it down (spec/manager.md). ``manager.py`` holds the
``ConnectionManager``, which keeps the state; each other module is one rule.
"""

from .admission import inbound_admission, may_open_outbound

__all__ = ["inbound_admission", "may_open_outbound"]
