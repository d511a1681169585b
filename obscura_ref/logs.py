"""Logging for the command line: one line per record, as text or as JSON.

In JSON each record is one object: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
``message``, and the structured fields the node passes with ``extra`` when the record is about
a connection (``LOG_FIELDS``; README.md, "Running nodes", lists them). At level debug the
command line also logs one line per frame sent and received, through the node's observer
(``frame_logger``).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from .machines.connection import FrameSent, Observation, RuleApplied
from .machines.reasons import sent_reason
from .wire import Disconnect, Handshake, Message, Ping, Pong, encode_frame
from .wire.frame import Frame

# The structured fields a record may carry, in the order they are written.
LOG_FIELDS = (
    "peer",
    "address",
    "direction",
    "type",
    "event",
    "reason",
    "requirement",
    "peer_reason",
    "version",
    "features",
    "privacy_features",
    "user_agent",
    "session_id",
    "rtt",
    "frame",
    "size",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in LOG_FIELDS:
            if key in record.__dict__:
                entry[key] = record.__dict__[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(level: str, style: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if style == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def frame_logger(
    log: logging.Logger | None = None,
) -> Callable[[int, Observation], None]:
    """A node observer that logs, at debug, one line per frame a connection sends and one per
    frame it receives (a ``RuleApplied`` whose subject is a decoded frame)."""
    logger = log if log is not None else logging.getLogger("obscura_ref.frames")

    def observe(peer: int, observation: Observation) -> None:
        if isinstance(observation, FrameSent):
            sent = observation
            # A sealed frame's size is its record's: the frame's own plus the record's overhead.
            verb = "sent in a sealed record" if sent.sealed else "sent"
            message, size = sent.message, sent.size
        elif isinstance(observation, RuleApplied) and isinstance(observation.subject, Frame):
            frame = observation.subject
            # The frame's own size, padding included (a sealed record's is the sender's to say).
            verb, message = "received", frame.message
            size = len(encode_frame(frame.message, frame.padding))
        else:
            return
        name = message.message_type.name
        logger.debug(
            "peer %d %s %s, %d bytes%s",
            peer,
            verb,
            name,
            size,
            frame_details(message),
            extra={
                "peer": peer,
                "event": "frame_sent" if isinstance(observation, FrameSent) else "frame_received",
                "frame": name,
                "size": size,
            },
        )

    return observe


def frame_details(message: Message) -> str:
    """The key fields of a frame for a log line: nonces in hex, a reason by name, the user
    agent."""
    if isinstance(message, Ping | Pong):
        return f": nonce {message.nonce:#018x}"
    if isinstance(message, Disconnect):
        return f": reason {reason_text(message.reason)}"
    if isinstance(message, Handshake):
        return (
            f": version {message.version}, nonce {message.nonce:#018x}, "
            f"user agent {message.user_agent!r}"
        )
    return ""


def reason_text(code: int) -> str:
    """A Disconnect's reason code by name, with the code: ``invalid_message (10)``."""
    reason = sent_reason(code)
    if reason is None:
        return f"{code} (not a code of spec/connection.md section 5)"
    return f"{reason.label} ({code})"
