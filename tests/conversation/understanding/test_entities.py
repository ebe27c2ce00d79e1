"""What a request names: ids, lists and ranges, aliases, priorities, limits, states, types,
URLs, key: value pairs."""

from __future__ import annotations

import pytest

from app.conversation.understanding.entities import MAX_IDS, AliasIndex, Entities, extract, pairs
from app.conversation.understanding.text import tokenize

ALIASES = {
    "registry": 1,
    "orchestrator": 10,
    "chat orchestrator": 12,
    "voice": 18,
    "visibility deck": 14,
}


def entities(text: str) -> Entities:
    parsed = tokenize(text)
    return extract(parsed, parsed.tokens, AliasIndex.of(ALIASES))


def values(text: str, kind: str) -> list[object]:
    return entities(text).values(kind)


# ---- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("is droplet 14 healthy?", [14]),
        ("health of d14", [14]),
        ("droplet-14", [14]),
        ("droplet number 11", [11]),
        ("status of droplet forty two", [42]),
        ("what is service 10 doing", [10]),
        ("status of droplets 1 and 10", [1, 10]),
        ("check droplets 3, 5 and 7", [3, 5, 7]),
        ("droplets 4 to 7", [4, 5, 6, 7]),
        ("nodes 2 through 4", [2, 3, 4]),
    ],
)
def test_droplet_ids(text: str, expected: list[int]) -> None:
    assert values(text, "droplet") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status of task 7", [7]),
        ("task #7", [7]),
        ("task7", [7]),
        ("cancel job 4", [4]),
        ("task id 17", [17]),
        ("cancel tasks 4, 7 and 9", [4, 7, 9]),
        ("tasks four, seven and nine", [4, 7, 9]),
        ("retry tasks 100 through 103", [100, 101, 102, 103]),
        ("last 5 tasks", []),
    ],
)
def test_task_ids(text: str, expected: list[int]) -> None:
    assert values(text, "task") == expected


def test_several_tasks_are_also_one_list() -> None:
    assert values("cancel tasks 4, 7 and 9", "tasks") == [(4, 7, 9)]
    assert values("cancel task 4", "tasks") == []


def test_a_range_is_never_longer_than_the_cap() -> None:
    ids = values("cancel tasks 1 to 400", "task")
    assert 1 <= len(ids) <= MAX_IDS


def test_ids_of_two_kinds_stay_apart() -> None:
    ents = entities("task 7 and droplet 14")
    assert ents.values("task") == [7]
    assert ents.values("droplet") == [14]


def test_a_bare_number_is_left_for_the_request_to_read() -> None:
    ents = entities("cancel 33")
    assert ents.values("number") == [33]
    assert not ents.has("task") and not ents.has("droplet")


# ---- aliases -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("how are the registry and the orchestrator?", [1, 10]),
        ("is the chat orchestrator running?", [12]),
        ("tasks for the voice droplet", [18]),
        ("what can the visibility deck do", [14]),
    ],
)
def test_aliases_name_droplets(text: str, expected: list[int]) -> None:
    ents = entities(text)
    assert ents.values("droplet") == expected
    assert {f.detail for f in ents.of("droplet")} == {"alias"}


def test_the_longest_alias_wins() -> None:
    assert values("is the chat orchestrator up", "droplet") == [12]


def test_an_alias_takes_the_droplet_noun_after_it() -> None:
    (found,) = entities("tasks for the voice droplet").of("droplet")
    assert (found.first, found.last) == (3, 4)


# ---- priorities ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("priority 3", 3),
        ("p2", 2),
        ("prio 2", 2),
        ("priority: 4", 4),
        ("priority two", 2),
        ("with priority 10", 10),
        ("3 priority", 3),
        ("an urgent deploy", 1),
        ("critical fix", 1),
        ("asap", 1),
        ("high priority", 3),
        ("priority high", 3),
        ("a high task", 3),
        ("normal priority", 5),
        ("medium priority", 5),
        ("low priority", 8),
        ("no rush", 8),
        ("the lowest priority", 10),
        ("as soon as possible", 1),
        ("deploy droplet 5 priority 1", 1),
        ("a priority-2 task", 2),
    ],
)
def test_priorities(text: str, expected: int) -> None:
    assert values(text, "priority")[:1] == [expected]


def test_priority_phrases_are_read_in_the_order_of_the_table() -> None:
    # "as soon as possible" stands before "no rush" in PRIORITY_PHRASES: its value comes first.
    assert values("no rush on it, but as soon as possible would be nice", "priority") == [1, 8]


@pytest.mark.parametrize("text", ["show high cpu droplets", "droplet 5", "the default", "open"])
def test_no_priority(text: str) -> None:
    assert values(text, "priority") == []


def test_an_out_of_range_priority_is_kept_for_validation_to_refuse() -> None:
    assert values("priority twelve", "priority") == [12]


def test_a_stated_priority_does_not_swallow_the_droplet_id() -> None:
    ents = entities("deploy droplet 5 priority 1")
    assert ents.values("droplet") == [5]
    assert ents.values("priority") == [1]


# ---- limits --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("last 5 tasks", 5),
        ("the last five alerts", 5),
        ("top 3 failed tasks", 3),
        ("first five tasks", 5),
        ("10 most recent", 10),
        ("limit 30", 30),
        ("at most 4", 4),
        ("the latest alert", 1),
        ("20 tasks", 20),
    ],
)
def test_limits(text: str, expected: int) -> None:
    assert values(text, "limit") == [expected]


@pytest.mark.parametrize("text", ["task 5", "droplets 5 and 6", "priority 3"])
def test_ids_are_not_limits(text: str) -> None:
    assert values(text, "limit") == []


# ---- states and types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("failed tasks", "failed"),
        ("pending jobs", "pending"),
        ("queued tasks", "pending"),
        ("tasks in progress", "in_progress"),
        ("running tasks", "in_progress"),
        ("completed tasks", "completed"),
        ("done tasks", "completed"),
        ("cancelled tasks", "cancelled"),
        ("aborted jobs", "cancelled"),
        ("assigned tasks", "assigned"),
    ],
)
def test_task_states(text: str, expected: str) -> None:
    assert values(text, "task_status") == [expected]


@pytest.mark.parametrize(
    "text", ["tasks assigned to droplet 14", "tasks running on droplet 3", "can it be cancelled"]
)
def test_words_that_are_not_a_task_state_here(text: str) -> None:
    assert values(text, "task_status") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("which droplets are down", "down"),
        ("offline droplets", "down"),
        ("healthy droplets", "healthy"),
        ("inactive droplets", "inactive"),
        ("droplets in error", "error"),
        ("online droplets", "active"),
    ],
)
def test_droplet_states(text: str, expected: str) -> None:
    assert values(text, "droplet_status") == [expected]


@pytest.mark.parametrize(
    ("text", "expected", "plural"),
    [
        ("a verification task", "verify", False),
        ("verify droplet 14", "verify", False),
        ("a build job", "build", False),
        ("a new deployment", "deploy", False),
        ("redeploy droplet 11", "deploy", False),
        ("a monitoring one", "monitor", False),
        ("provisioning task", "provision", False),
        ("a custom task", "custom", False),
        ("the last five deploys", "deploy", True),
        ("failed builds", "build", True),
        ("verifications", "verify", True),
        ("deployments", "deploy", True),
    ],
)
def test_task_types_singular_and_plural(text: str, expected: str, plural: bool) -> None:
    (found,) = entities(text).of("task_type")
    assert found.value == expected
    assert (found.detail == "plural") is plural


def test_no_task_type_in_a_plain_listing() -> None:
    assert values("show droplets", "task_type") == []


# ---- urls ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "url"),
    [
        (
            "code at https://github.com/x/droplet-14",
            "code_url",
            "https://github.com/x/droplet-14",
        ),
        ("repo https://gitlab.com/a/b.git", "code_url", "https://gitlab.com/a/b.git"),
        (
            "spec at https://x.io/specs/droplet-14.md",
            "spec_url",
            "https://x.io/specs/droplet-14.md",
        ),
        ("the spec is https://x.io/a", "spec_url", "https://x.io/a"),
        ("https://x.io/openapi.yaml", "spec_url", "https://x.io/openapi.yaml"),
        ("https://x.io/api.json", "spec_url", "https://x.io/api.json"),
    ],
)
def test_urls_are_code_or_spec(text: str, kind: str, url: str) -> None:
    ents = entities(text)
    assert ents.values(kind) == [url]
    other = "spec_url" if kind == "code_url" else "code_url"
    assert ents.values(other) == []


def test_code_and_spec_in_one_request() -> None:
    ents = entities("code https://github.com/x/y and spec https://x.io/spec.yaml")
    assert ents.values("code_url") == ["https://github.com/x/y"]
    assert ents.values("spec_url") == ["https://x.io/spec.yaml"]


# ---- references ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pronouns"),
    [("cancel it", ["it"]), ("cancel that one", ["that", "one"]), ("retry those", ["those"])],
)
def test_pronouns_are_found(text: str, pronouns: list[str]) -> None:
    assert values(text, "pronoun") == pronouns


def test_all_is_found() -> None:
    assert entities("cancel all pending tasks").has("all")
    assert not entities("cancel task 7").has("all")


@pytest.mark.parametrize(
    ("text", "event"),
    [
        ("tell me when droplet 16 is back", "up"),
        ("when droplet 2 goes down", "down"),
        ("tell me when task 7 fails", "failed"),
        ("when task 7 finishes", "done"),
    ],
)
def test_watch_events(text: str, event: str) -> None:
    assert values(text, "watch_event")[:1] == [event]


# ---- the container -------------------------------------------------------------------------------


def test_entities_remember_where_they_came_from() -> None:
    ents = entities("check droplet 14 priority 3")
    assert ents.kinds() >= {"droplet", "priority"}
    assert ents.first("droplet") == 14
    assert ents.first("task") is None
    assert {1, 2, 3, 4} <= ents.used
    assert 0 not in ents.used  # "check" is left for the cues


def test_values_are_unique_in_order() -> None:
    ents = Entities()
    ents.add("droplet", 3, 0, 0)
    ents.add("droplet", 1, 1, 1)
    ents.add("droplet", 3, 2, 2)
    assert ents.values("droplet") == [3, 1]
    assert [f.value for f in ents.of("droplet")] == [3, 1, 3]
    assert ents.used == {0, 1, 2}


# ---- key: value pairs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "create a build task for droplet 3, title: Nightly build, branch: main",
            [("title", "Nightly build"), ("branch", "main")],
        ),
        ("branch: main and env: staging", [("branch", "main"), ("env", "staging")]),
        ("with Owner=ann", [("Owner", "ann")]),
        ("code: https://x.io/a", [("code", "https://x.io/a")]),
        ("note: hello, status: x", []),
        ("at 10:30", []),
        ("see https://x.io/a", []),
    ],
)
def test_key_value_pairs(text: str, expected: list[tuple[str, str]]) -> None:
    assert pairs(text) == expected


# ---- watches, bare lists, limits in context ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "watch"),
    [("remove watch 3", [3]), ("cancel the watch 7", [7]), ("watch number 4", [4])],
)
def test_a_watch_by_its_id(text: str, watch: list[int]) -> None:
    assert values(text, "watch") == watch


def test_watch_and_a_number_is_a_request_to_watch_not_a_watch_id() -> None:
    assert values("watch 14", "watch") == []


def test_several_bare_numbers_are_a_list() -> None:
    assert values("cancel 101 and 102", "tasks") == [(101, 102)]
    assert values("cancel task 101 and droplet 4", "tasks") == []


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("show me fifteen in progress tasks", 15),
        ("5 failed deploys", 5),
        ("just the single most recent alert", 1),
    ],
)
def test_a_limit_before_states_and_types(text: str, limit: int) -> None:
    assert values(text, "limit") == [limit]
