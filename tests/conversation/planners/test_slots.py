"""Write-tool arguments from text: task slots, titles, edits, message parts."""

from __future__ import annotations

from app.conversation.planners import entities as dx
from app.conversation.planners import slots

ALIASES = {"registry": 1, "voice": 18}


def task_slots(text: str, *, loose: bool = False) -> slots.TaskSlots:
    return slots.task_slots(
        text, dx.extract(text, aliases=ALIASES), aliases=ALIASES, loose_priority=loose
    )


def test_default_titles() -> None:
    assert slots.default_title("verify", {"target_droplet_id": 14}) == "Verify droplet 14"
    assert slots.default_title("custom", {"target_droplet_id": 1}) == "Custom task for droplet 1"
    assert (
        slots.default_title("build", {"code_url": "https://github.com/x/y/"})
        == "Build github.com/x/y"
    )
    assert slots.default_title("deploy", {}) == "Deploy task"
    assert slots.default_title("custom", {}) == "Custom task"
    assert slots.default_title(None, {"target_droplet_id": 3}) is None


def test_code_and_spec_urls_follow_their_cue_words() -> None:
    said = task_slots(
        "verify droplet 14 with code at https://github.com/acme/d14.git "
        "and spec at https://example.com/specs/d14.yaml"
    )
    assert said.code_url == "https://github.com/acme/d14.git"
    assert said.spec_url == "https://example.com/specs/d14.yaml"


def test_a_spec_looking_url_without_cue_is_a_spec() -> None:
    assert (
        task_slots("build droplet 3 https://x.io/openapi.json").spec_url
        == "https://x.io/openapi.json"
    )
    assert task_slots("build droplet 3 https://github.com/x/y").code_url == "https://github.com/x/y"


def test_other_pairs_go_to_the_payload_but_sentence_words_do_not() -> None:
    said = task_slots("create a task: build droplet 3, branch: main, env=staging, title: Nightly")
    assert dict(said.extra) == {"branch": "main", "env": "staging"}
    assert said.title == "Nightly"
    assert said.targets == (3,)


def test_capability_and_description() -> None:
    said = task_slots("create a build task requiring capability docker, description: fast path")
    assert said.capability == "docker"
    assert said.description == "fast path"


def test_target_given_as_a_pair_or_an_alias() -> None:
    assert task_slots("target: voice").targets == (18,)
    assert task_slots("for the registry").targets == (1,)


def test_loose_priority_only_for_replies() -> None:
    assert task_slots("high").priority is None
    assert task_slots("high", loose=True).priority == 3


def test_task_arguments_fill_defaults() -> None:
    said = task_slots("verify droplet 14")
    assert slots.task_arguments(said, target=14) == {
        "task_type": "verify",
        "title": "Verify droplet 14",
        "priority": slots.DEFAULT_PRIORITY,
        "payload": {"target_droplet_id": 14},
    }


def test_update_regenerates_only_generated_titles() -> None:
    args = {
        "task_type": "verify",
        "title": "Verify droplet 14",
        "priority": 3,
        "payload": {"target_droplet_id": 14},
    }
    moved = slots.update_task(args, task_slots("droplet 16"))
    assert moved["title"] == "Verify droplet 16"
    assert moved["payload"] == {"target_droplet_id": 16}
    kept = slots.update_task({**args, "title": "Audit"}, task_slots("droplet 16"))
    assert kept["title"] == "Audit"


def test_message_parts_find_target_and_text() -> None:
    text = "send it to droplet 19 instead"
    parts = slots.message_parts(text, dx.extract(text), verb_end=4, last_droplet_id=5)
    assert parts.target == 19
    assert parts.message is None

    text = "tell it to restart"
    parts = slots.message_parts(text, dx.extract(text), verb_end=4, last_droplet_id=5)
    assert (parts.target, parts.message, parts.target_from_pronoun) == (5, "restart", True)

    text = 'send "maintenance at 22:00" to droplet 3'
    parts = slots.message_parts(text, dx.extract(text), verb_end=4, last_droplet_id=None)
    assert (parts.target, parts.message) == (3, "maintenance at 22:00")


def test_reply_as_message_drops_say() -> None:
    assert slots.reply_as_message("say hello from droplet 12") == "hello from droplet 12"
    assert slots.reply_as_message("change the message to: good morning") == "good morning"
    assert slots.reply_as_message("   ") is None
