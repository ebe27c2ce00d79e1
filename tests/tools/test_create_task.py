"""create_task: arguments (defaults, limits, kept payload keys), the proposal, the live write."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from app.conversation import replies
from app.domain.mesh import CreatedTask, NewTask, TaskState
from app.tools.base import ArgsInvalid
from app.tools.create_task import DEFAULT_PRIORITY, CreatedTaskReport, CreateTask, default_title
from sandbox.testing import MeshHandle
from tests.tools.support import (
    HOSTILE_NAMES,
    NAMES,
    READER,
    LiveMesh,
    assert_speakable,
    plain_schema_problems,
    say,
    tool,
)

NAME = "create_task"
CREATE = CreateTask()


def created(
    task_type: str = "verify", title: str = "Verify droplet 14", **extra: Any
) -> CreatedTaskReport:
    return CreatedTaskReport(
        created=CreatedTask(task_id=12, status=TaskState.PENDING),
        request=NewTask(task_type=task_type, title=title, priority=3, **extra),
    )


# ---- the answer ----------------------------------------------------------------------------------


def test_created_for_chat() -> None:
    assert say(NAME, created(), "chat") == (
        "✅ Created task **12**: verify 'Verify droplet 14', priority 3 (status pending)."
    )


def test_created_for_voice() -> None:
    assert say(NAME, created("build", "B"), "voice") == (
        "Done. I created a build task, number 12. It is pending."
    )


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_title_shows_as_text(name: str) -> None:
    chat = say(NAME, created(title=name), "chat")
    assert "<script>" not in chat
    assert "[link](" not in chat
    assert "\n" not in chat
    assert chat.endswith(", priority 3 (status pending).")


@settings(max_examples=100, deadline=None)
@given(NAMES)
def test_voice_never_contains_markdown_or_emoji(task_type: str) -> None:
    assert_speakable(say(NAME, created(task_type=task_type[:50] or "x"), "voice"))


# ---- arguments -----------------------------------------------------------------------------------


def test_priority_defaults_to_five() -> None:
    args = CREATE.parse({"task_type": "build", "payload": {"target_droplet_id": 3}})
    assert args.priority == DEFAULT_PRIORITY == 5
    assert args.title is None
    assert args.effective_title == "Build droplet 3"


@pytest.mark.parametrize(
    ("task_type", "title"),
    [
        ("verify", "Verify droplet 7"),
        ("build", "Build droplet 7"),
        ("deploy", "Deploy droplet 7"),
        ("monitor", "Monitor droplet 7"),
        ("provision", "Provision droplet 7"),
        ("custom", "Custom task for droplet 7"),
    ],
)
def test_default_titles(task_type: str, title: str) -> None:
    assert default_title(task_type, 7) == title


def test_a_title_given_is_kept() -> None:
    args = CREATE.parse(
        {"task_type": "build", "title": "Nightly", "payload": {"target_droplet_id": 3}}
    )
    assert args.effective_title == "Nightly"


def test_extra_payload_keys_are_kept() -> None:
    args = CREATE.parse(
        {
            "task_type": "deploy",
            "payload": {"target_droplet_id": 2, "branch": "main", "env": "staging"},
        }
    )
    assert args.payload.model_extra == {"branch": "main", "env": "staging"}
    assert args.model_dump(exclude_none=True)["payload"] == {
        "target_droplet_id": 2,
        "branch": "main",
        "env": "staging",
    }


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"task_type": "build"}, "payload: Field required"),
        ({"task_type": "build", "payload": {}}, "payload.target_droplet_id: Field required"),
        (
            {"task_type": "build", "payload": {"target_droplet_id": 0}},
            "payload.target_droplet_id: Input should be greater than or equal to 1",
        ),
        ({"payload": {"target_droplet_id": 3}}, "task_type: Field required"),
        (
            {"task_type": "bake", "payload": {"target_droplet_id": 3}},
            "task_type: Input should be 'verify', 'build', 'deploy', 'monitor', 'provision' or "
            "'custom'",
        ),
        (
            {"task_type": "build", "priority": 0, "payload": {"target_droplet_id": 3}},
            "priority: Input should be greater than or equal to 1",
        ),
        (
            {"task_type": "build", "priority": 11, "payload": {"target_droplet_id": 3}},
            "priority: Input should be less than or equal to 10",
        ),
        (
            {"task_type": "build", "title": "", "payload": {"target_droplet_id": 3}},
            "title: String should have at least 1 character",
        ),
        (
            {"task_type": "build", "title": "x" * 256, "payload": {"target_droplet_id": 3}},
            "title: String should have at most 255 characters",
        ),
        (
            {"task_type": "build", "owner": "me", "payload": {"target_droplet_id": 3}},
            "owner: is not an argument of this tool",
        ),
    ],
)
def test_invalid_arguments_are_refused_readably(args: dict[str, Any], problem: str) -> None:
    with pytest.raises(ArgsInvalid) as caught:
        CREATE.parse(args)
    assert problem in caught.value.problems


def test_schema_is_plain_and_complete() -> None:
    schema = CREATE.schema()
    assert plain_schema_problems(schema) == []
    assert schema["required"] == ["task_type", "payload"]
    assert schema["properties"]["priority"]["default"] == 5
    payload = schema["properties"]["payload"]
    assert payload["type"] == "object"
    assert payload["required"] == ["target_droplet_id"]
    assert payload["additionalProperties"] is True


def test_the_schema_keeps_every_argument() -> None:
    # Dropping schema *titles* must not drop the argument *named* title: a model given this
    # schema could otherwise never set a task's title.
    assert set(CREATE.schema()["properties"]) == set(CREATE.Args.model_fields)


def test_required_missing_and_questions() -> None:
    create = tool(NAME)
    assert create.required() == ("task_type", "payload.target_droplet_id")
    assert create.missing({}) == ["task_type", "payload.target_droplet_id"]
    assert create.missing({"task_type": "build", "payload": {}}) == ["payload.target_droplet_id"]
    assert create.missing({"task_type": "build", "payload": {"target_droplet_id": 3}}) == []
    assert create.question(["task_type", "payload.target_droplet_id"], "chat") == (
        "What kind of task? **verify**, **build**, **deploy**, **monitor**, **provision** or "
        "**custom**."
    )
    assert create.question(["task_type"], "voice") == (
        "What kind of task? verify, build, deploy, monitor, provision or custom."
    )
    assert create.question(["payload.target_droplet_id"], "chat") == (
        "Which droplet is the task for? Give me its number or name, for example **droplet 14**."
    )
    assert create.question(["payload.target_droplet_id"], "voice") == (
        "Which droplet is the task for? Tell me its number or name."
    )


def test_it_is_a_write_that_needs_write() -> None:
    create = tool(NAME)
    assert create.writes
    assert create.permission == "write"
    assert not create.allowed(READER)


# ---- the proposal --------------------------------------------------------------------------------


def test_the_proposal_says_exactly_what_will_happen() -> None:
    args = CREATE.parse(
        {
            "task_type": "verify",
            "payload": {
                "target_droplet_id": 14,
                "code_url": "https://github.com/x/droplet-14",
                "branch": "main",
            },
        }
    )
    assert CREATE.propose(args, "chat") == (
        "I will create a **verify** task 'Verify droplet 14' with priority 5 for Visibility Deck "
        "(droplet 14) (code: <https://github.com/x/droplet-14>; branch: main)."
    )
    assert CREATE.propose(args, "voice") == (
        "I will create a verify task called Verify droplet 14, priority 5, for Visibility Deck, "
        "droplet 14, with a code link."
    )


def test_a_hostile_proposal_is_inert() -> None:
    args = CREATE.parse(
        {
            "task_type": "deploy",
            "priority": 2,
            "title": "<b>Ship</b> | it",
            "description": "long *desc*",
            "required_capability": "dash|board",
            "payload": {
                "target_droplet_id": 2,
                "spec_url": "javascript:alert(1)",
                "env": "<staging>",
            },
        }
    )
    chat = CREATE.propose(args, "chat")
    assert "<b>" not in chat and "<staging>" not in chat
    assert "spec: javascript:alert(1)" in chat  # shown, never a link
    assert "<javascript" not in chat
    assert "needs capability dash\\|board" in chat
    assert "description: long \\*desc\\*" in chat
    voice = CREATE.propose(args, "voice")
    assert_speakable(voice)
    assert voice.endswith("with a spec link and capability dash board.")


def test_an_unknown_droplet_is_named_by_number() -> None:
    args = CREATE.parse({"task_type": "custom", "payload": {"target_droplet_id": 40}})
    assert CREATE.propose(args, "chat") == (
        "I will create a **custom** task 'Custom task for droplet 40' with priority 5 "
        "for droplet 40."
    )


def test_the_summary_is_a_short_line() -> None:
    assert CREATE.summary(
        {"task_type": "build", "priority": 2, "payload": {"target_droplet_id": 14}}
    ) == ("create a build task, priority 2, target: droplet 14, Visibility Deck")
    assert CREATE.summary({"priority": 5}) == "create a new task, priority 5"
    assert CREATE.summary({"task_type": "custom", "payload": {"target_droplet_id": 40}}) == (
        "create a custom task, target: droplet 40"
    )


# ---- against the sandbox mesh --------------------------------------------------------------------


async def test_the_task_is_created_in_the_orchestrator(live: LiveMesh) -> None:
    out = await live.run(
        NAME,
        {
            "task_type": "build",
            "priority": 2,
            "payload": {"target_droplet_id": 14, "branch": "main"},
        },
    )
    assert out.status == "ok", out.message
    task_id = out.result.created.task_id
    assert out.context == {"last_task_id": task_id, "last_droplet_id": 14}
    stored = await live.peers.orchestrator.get_task(task_id)
    assert stored.status is TaskState.PENDING
    assert stored.title == "Build droplet 14"
    assert stored.priority == 2
    assert stored.payload == {"target_droplet_id": 14, "branch": "main"}
    assert [h.changed_by for h in stored.history] == ["droplet_12"]
    assert say(NAME, out.result, "chat") == (
        f"✅ Created task **{task_id}**: build 'Build droplet 14', priority 2 (status pending)."
    )


async def test_invalid_or_forbidden_calls_never_reach_the_orchestrator(live: LiveMesh) -> None:
    before = await live.peers.orchestrator.list_tasks(limit=100)
    invalid = await live.run(NAME, {"task_type": "build", "priority": 12, "payload": {}})
    assert invalid.status == "invalid"
    assert invalid.message is not None and "priority" in invalid.message
    forbidden = await live.run(
        NAME, {"task_type": "build", "payload": {"target_droplet_id": 14}}, caller=READER
    )
    assert forbidden.status == "forbidden"
    assert len(await live.peers.orchestrator.list_tasks(limit=100)) == len(before)


async def test_the_orchestrator_down_is_unavailable(sandbox: MeshHandle, live: LiveMesh) -> None:
    sandbox.stop_orchestrator()
    out = await live.run(NAME, {"task_type": "build", "payload": {"target_droplet_id": 14}})
    assert out.status == "unavailable"
    assert replies.failure(tool(NAME), out, "chat") == (
        "I couldn't create the task: the Orchestrator is unreachable right now. "
        "Try again in a moment."
    )
