"""Properties of whole dialogues, over generated conversations through the real turn service
(offline planner, real tools against the sandbox mesh, real SQLite store).

The promise: no write is ever proposed for confirmation while a required argument is missing
or invalid, whatever the operator says and in whatever order; a question that is open names
exactly what is still missing; every turn gets an answer.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conversation.test_service import Chat
from tests.conversation.test_service import chat as chat  # the fixture
from tests.tools.support import TOOLS

# Pieces an operator (or a transcriber) puts together: commands, objects, values, replies.
COMMANDS = [
    "create", "create a task", "deploy", "build", "verify", "provision", "monitor", "cancel",
    "cancel all", "retry", "tell", "send", "message", "msg", "notify", "watch", "undo", "stop",
    "kill", "make it", "change", "set", "schedule", "run", "please", "uh", "um", "can you",
]  # fmt: skip
OBJECTS = [
    "droplet 14", "droplet fourteen", "droplet 9", "the registry", "voice", "task 7",
    "task forty two", "it", "that one", "the same droplet", "a task", "the task", "them",
    "tasks", "the failed ones", "pending tasks", "builds", "droplets 1 and 10", "#3", "d16",
]  # fmt: skip
VALUES = [
    "priority 3", "priority twelve", "priority 0", "high priority", "asap", "low priority",
    "titled nightly", "code https://github.com/acme/app", "spec https://acme.io/openapi.yaml",
    "saying hello", "that the deploy is done", ": restart please", "to 5", "for droplet 16",
    "capability gpu", "when it is done", "if it fails",
]  # fmt: skip
REPLIES = [
    "yes", "no", "ok", "sure", "hmm", "14", "droplet 9", "nine", "actually priority 2",
    "no, droplet 15", "the message is hi", "never mind", "cancel", "what?", "why", "help",
]  # fmt: skip

fragment = st.sampled_from(COMMANDS + OBJECTS + VALUES + REPLIES)
message = st.lists(fragment, min_size=1, max_size=4).map(" ".join)
dialogue = st.lists(message, min_size=1, max_size=5)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(dialogue)
async def test_no_write_is_proposed_with_a_missing_or_invalid_argument(
    chat: Chat, turns: list[str]
) -> None:
    session = f"prop-{uuid.uuid4().hex[:12]}"
    for text in turns:
        reply = await chat.say(text, session=session)
        assert reply.text.strip(), text
        pending = await chat.pending(session=session)
        if pending is None:
            continue
        tool = TOOLS.get(pending.call.tool)
        assert tool is not None, pending
        if pending.missing:
            # The question names exactly what is still missing, and only that.
            assert pending.missing == tool.missing(pending.call.args), (turns, pending)
            assert TOOLS.problems(pending.call, partial=True) == [], (turns, pending)
        else:
            # A proposal awaiting "yes" is a write, complete and valid as it stands.
            assert tool.writes, pending
            assert TOOLS.problems(pending.call) == [], (turns, pending)
            assert tool.missing(pending.call.args) == [], (turns, pending)
