"""The named errors of the wire layer (spec/wire.md section 8)."""

from __future__ import annotations

from enum import Enum


class ErrorCode(Enum):
    """One code for each way a frame or payload can be invalid (spec/wire.md section 8)."""

    BAD_MAGIC = "bad_magic"
    UNKNOWN_MESSAGE_TYPE = "unknown_message_type"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    HANDSHAKE_TOO_LARGE = "handshake_too_large"
    BAD_CHECKSUM = "bad_checksum"
    TRUNCATED_FRAME = "truncated_frame"
    PAYLOAD_TRUNCATED = "payload_truncated"
    USER_AGENT_TOO_LONG = "user_agent_too_long"
    USER_AGENT_NOT_UTF8 = "user_agent_not_utf8"

    @property
    def requirement(self) -> str:
        """The requirement ID whose rule this error reports."""
        return ERROR_REQUIREMENTS[self]


# spec/wire.md section 8 is generated from this table (obscura_ref/specgen.py).
ERROR_REQUIREMENTS: dict[ErrorCode, str] = {
    ErrorCode.BAD_MAGIC: "WIRE-5",
    ErrorCode.UNKNOWN_MESSAGE_TYPE: "WIRE-6",
    ErrorCode.PAYLOAD_TOO_LARGE: "WIRE-7",
    ErrorCode.HANDSHAKE_TOO_LARGE: "WIRE-8",
    ErrorCode.BAD_CHECKSUM: "WIRE-9",
    ErrorCode.TRUNCATED_FRAME: "WIRE-11",
    ErrorCode.PAYLOAD_TRUNCATED: "WIRE-33",
    ErrorCode.USER_AGENT_TOO_LONG: "WIRE-43",
    ErrorCode.USER_AGENT_NOT_UTF8: "WIRE-44",
}


class DecodeError(Exception):
    """Bytes from a peer that break a rule of spec/wire.md: ``code`` is the error code, and
    ``requirement`` the rule broken (the code's own, unless a rule that reuses the code, such
    as WIRE-15 for ``payload_too_large``, is named)."""

    def __init__(self, code: ErrorCode, detail: str, requirement: str | None = None) -> None:
        self.requirement = requirement or code.requirement
        super().__init__(f"{code.value} ({self.requirement}): {detail}")
        self.code = code
        self.detail = detail

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DecodeError) and (self.code, self.detail) == (
            other.code,
            other.detail,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.detail))


class EncodeError(ValueError):
    """A message that this node must not send (a value out of its field's range or a limit
    broken); ``field`` names the offending field and ``requirement`` the rule, when one applies."""

    def __init__(self, field: str, detail: str, requirement: str | None = None) -> None:
        super().__init__(f"{field}: {detail}" + (f" ({requirement})" if requirement else ""))
        self.field = field
        self.detail = detail
        self.requirement = requirement
