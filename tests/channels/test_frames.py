"""Client frames: each type's model, the connection's session as default, one sentence per fault."""

from __future__ import annotations

import json

import pytest

from app.channels.frames import (
    INVALID_JSON,
    NOT_AN_OBJECT,
    CancelFrame,
    ConfirmFrame,
    FollowFrame,
    FrameError,
    MessageFrame,
    PingFrame,
    parse_frame,
)
from app.channels.schemas import MAX_MESSAGE_CHARS
from app.domain.identity import SESSION_ID_RULE

UNKNOWN = "; expected one of: message, confirm, cancel, ping, follow"
EMPTY = "'content' must be a non-empty string"
PROPOSAL = "proposal_id must be the id of the proposal you were shown"


def _error(text: str, *, session_id: str | None = None) -> str:
    with pytest.raises(FrameError) as caught:
        parse_frame(text, session_id=session_id)
    return str(caught.value)


# ---- each type -------------------------------------------------------------------------------


def test_a_message_is_trimmed_and_continues_the_connections_session() -> None:
    frame = parse_frame('{"type": "message", "content": "  list tasks \\n"}', session_id="s-1")
    assert frame == MessageFrame(type="message", content="list tasks", session_id="s-1")


def test_a_message_naming_a_session_or_null_overrides_the_connections() -> None:
    named = parse_frame(
        '{"type": "message", "content": "hi", "session_id": "other"}', session_id="s-1"
    )
    assert isinstance(named, MessageFrame) and named.session_id == "other"
    fresh = parse_frame('{"type": "message", "content": "hi", "session_id": null}', session_id="s")
    assert isinstance(fresh, MessageFrame) and fresh.session_id is None  # a new session


@pytest.mark.parametrize(
    ("kind", "model", "text"), [("confirm", ConfirmFrame, "yes"), ("cancel", CancelFrame, "no")]
)
def test_confirm_and_cancel_answer_a_sessions_proposal(
    kind: str, model: type[ConfirmFrame | CancelFrame], text: str
) -> None:
    frame = parse_frame(json.dumps({"type": kind, "proposal_id": "p-1"}), session_id="s-1")
    assert isinstance(frame, model)
    assert (frame.session_id, frame.proposal_id, frame.text) == ("s-1", "p-1", text)
    bare = parse_frame(json.dumps({"type": kind, "session_id": "s-2"}))
    assert isinstance(bare, model) and bare.proposal_id is None


def test_follow_and_ping() -> None:
    assert parse_frame('{"type": "follow", "session_id": "s-2"}') == FollowFrame(
        type="follow", session_id="s-2"
    )
    assert parse_frame('{"type": "follow"}', session_id="s-1") == FollowFrame(
        type="follow", session_id="s-1"
    )
    # A ping is answered whatever else it carries.
    assert parse_frame('{"type": "ping", "session_id": "not valid!"}') == PingFrame(type="ping")


def test_unknown_fields_are_ignored() -> None:
    frame = parse_frame('{"type": "message", "content": "hi", "metadata": {"a": 1}}')
    assert frame == MessageFrame(type="message", content="hi", session_id=None)


# ---- what a client is told -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", INVALID_JSON),
        ("", INVALID_JSON),
        ("[1, 2]", NOT_AN_OBJECT),
        ('"text"', NOT_AN_OBJECT),
        ("null", NOT_AN_OBJECT),
        ('{"type": "dance"}', f"Unknown frame type 'dance'{UNKNOWN}"),
        ('{"type": 5}', f"Unknown frame type '5'{UNKNOWN}"),
        ("{}", f"Unknown frame type 'None'{UNKNOWN}"),
        ('{"type": "' + "x" * 100 + '"}', f"Unknown frame type '{'x' * 40}'{UNKNOWN}"),
        ('{"type": "message"}', EMPTY),
        ('{"type": "message", "content": ""}', EMPTY),
        ('{"type": "message", "content": "   "}', EMPTY),
        ('{"type": "message", "content": 5}', EMPTY),
        ('{"type": "message", "content": ["hi"]}', EMPTY),
        (
            json.dumps({"type": "message", "content": "x" * (MAX_MESSAGE_CHARS + 1)}),
            f"'content' must be at most {MAX_MESSAGE_CHARS} characters",
        ),
        ('{"type": "message", "content": "hi", "session_id": "has space"}', SESSION_ID_RULE),
        ('{"type": "message", "content": "hi", "session_id": ""}', SESSION_ID_RULE),
        ('{"type": "message", "content": "hi", "session_id": 12}', SESSION_ID_RULE),
        (
            json.dumps({"type": "message", "content": "hi", "session_id": "s" * 129}),
            SESSION_ID_RULE,
        ),
        # The session id is reported first, then the content.
        ('{"type": "message", "content": "", "session_id": "bad id"}', SESSION_ID_RULE),
        ('{"type": "confirm"}', "confirm needs the session_id of the pending action"),
        (
            '{"type": "cancel", "session_id": null}',
            "cancel needs the session_id of the pending action",
        ),
        ('{"type": "confirm", "session_id": "bad id"}', SESSION_ID_RULE),
        ('{"type": "confirm", "session_id": "s", "proposal_id": ""}', PROPOSAL),
        ('{"type": "confirm", "session_id": "s", "proposal_id": 7}', PROPOSAL),
        (json.dumps({"type": "cancel", "session_id": "s", "proposal_id": "p" * 65}), PROPOSAL),
        # Without a session, that is what is missing first.
        (
            '{"type": "confirm", "proposal_id": ""}',
            "confirm needs the session_id of the pending action",
        ),
        ('{"type": "follow"}', "follow needs a session_id"),
        ('{"type": "follow", "session_id": ""}', SESSION_ID_RULE),
    ],
)
def test_every_bad_frame_has_one_clear_sentence(text: str, message: str) -> None:
    assert _error(text) == message


def test_deeply_nested_json_is_a_bad_frame_not_a_crash() -> None:
    nested = '{"type": "message", "content": ' + "[" * 5000 + "]" * 5000 + "}"
    assert _error(nested) == INVALID_JSON


def test_a_confirm_without_a_session_uses_the_connections() -> None:
    assert _error('{"type": "confirm"}') == "confirm needs the session_id of the pending action"
    frame = parse_frame('{"type": "confirm"}', session_id="s-1")
    assert isinstance(frame, ConfirmFrame) and frame.session_id == "s-1"
