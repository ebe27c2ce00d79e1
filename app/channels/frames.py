"""What a WebSocket client may send: one model per frame type, told apart by `type`.

    {"type": "message", "content": "show me all droplets", "session_id": "..."}
    {"type": "confirm", "session_id": "...", "proposal_id": "..."}   (or "cancel")
    {"type": "follow", "session_id": "..."}
    {"type": "ping"}

A frame that names no `session_id` continues the connection's session (passed in as the
validation context); an explicit `null` asks for a new one. Every way a frame can be wrong has
one sentence for the client, raised as `FrameError`; the socket stays open.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.channels.schemas import MAX_MESSAGE_CHARS
from app.domain.identity import SESSION_ID_RULE, valid_session_id

FRAME_TYPES = ("message", "confirm", "cancel", "ping", "follow")
MAX_PROPOSAL_ID_CHARS = 64

INVALID_JSON = (
    'Invalid JSON: send an object like {"type":"message","content":"hello","session_id":"..."}'
)
NOT_AN_OBJECT = "Each frame must be a JSON object with a 'type'"


class FrameError(ValueError):
    """A frame the client must be told about; the message is what the client reads."""


def _problem(kind: str, message: str) -> PydanticCustomError:
    # The message goes through str.format-like templating: keep braces out of it.
    return PydanticCustomError(kind, message)


def _session_id(value: object) -> object:
    if value is not None and not valid_session_id(value):
        raise _problem("session_id", SESSION_ID_RULE)
    return value


def _content(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _problem("content", "'content' must be a non-empty string")
    content = value.strip()
    if len(content) > MAX_MESSAGE_CHARS:
        raise _problem("content", f"'content' must be at most {MAX_MESSAGE_CHARS} characters")
    return content


def _proposal_id(value: object) -> object:
    if value is not None and (
        not isinstance(value, str) or not 0 < len(value) <= MAX_PROPOSAL_ID_CHARS
    ):
        raise _problem("proposal_id", "proposal_id must be the id of the proposal you were shown")
    return value


SessionId = Annotated[str | None, BeforeValidator(_session_id)]
Content = Annotated[str, BeforeValidator(_content)]
ProposalId = Annotated[str | None, BeforeValidator(_proposal_id)]


class _ConnectionSession(BaseModel):
    """A frame about a session: without `session_id` it is the connection's session."""

    @model_validator(mode="before")
    @classmethod
    def _connection_session(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and "session_id" not in data:
            context = info.context if isinstance(info.context, dict) else {}
            return {**data, "session_id": context.get("session_id")}
        return data


class MessageFrame(_ConnectionSession):
    """Something the operator said: a turn (in a new session when there is none)."""

    # Fields are checked in this order: a bad session id is reported before bad content.
    session_id: SessionId
    content: Content = Field(default="", validate_default=True)
    type: Literal["message"]


class _AnswerFrame(_ConnectionSession):
    """A yes or no to the pending proposal of a session, optionally naming that proposal."""

    session_id: str
    proposal_id: ProposalId = None

    kind: ClassVar[str]
    text: ClassVar[str]
    """What the turn says for the operator."""

    @field_validator("session_id", mode="before")
    @classmethod
    def _needs_session(cls, value: object) -> object:
        if value is None:
            raise _problem("session_id", f"{cls.kind} needs the session_id of the pending action")
        return _session_id(value)


class ConfirmFrame(_AnswerFrame):
    type: Literal["confirm"]
    kind = "confirm"
    text = "yes"


class CancelFrame(_AnswerFrame):
    type: Literal["cancel"]
    kind = "cancel"
    text = "no"


class FollowFrame(_ConnectionSession):
    """Stream a session's messages to this connection (the caller's own sessions only)."""

    session_id: str
    type: Literal["follow"]

    @field_validator("session_id", mode="before")
    @classmethod
    def _needs_session(cls, value: object) -> object:
        if value is None:
            raise _problem("session_id", "follow needs a session_id")
        return _session_id(value)


class PingFrame(BaseModel):
    """Are you there? Answered with `pong`, whatever else the frame holds."""

    type: Literal["ping"]


ClientFrame = Annotated[
    MessageFrame | ConfirmFrame | CancelFrame | FollowFrame | PingFrame,
    Field(discriminator="type"),
]

_FRAMES: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


def parse_frame(text: str, *, session_id: str | None = None) -> ClientFrame:
    """The frame in `text`; `session_id` is the connection's session. Raises FrameError."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError: deeply nested JSON is just another invalid frame.
        raise FrameError(INVALID_JSON) from None
    if not isinstance(data, dict):
        raise FrameError(NOT_AN_OBJECT)
    kind = data.get("type")
    if kind not in FRAME_TYPES:
        raise FrameError(
            f"Unknown frame type {str(kind)[:40]!r}; expected one of: {', '.join(FRAME_TYPES)}"
        )
    try:
        return _FRAMES.validate_python(data, context={"session_id": session_id})
    except ValidationError as exc:
        # Fields are checked in declaration order; the first problem is the one to fix first.
        raise FrameError(exc.errors(include_url=False)[0]["msg"]) from None
