"""Entities from operator text: ids, priorities, URLs, types, statuses, pairs, typos."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.conversation.planners import entities as dx

ALIASES = {
    "registry": 1,
    "orchestrator": 10,
    "chat orchestrator": 12,
    "voice": 18,
    "visibility deck": 14,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("is droplet 14 healthy?", [14]),
        ("health of #14", [14]),
        ("is drop14 up?", [14]),
        ("is drop 14 ok?", [14]),
        ("d14 status", [14]),
        ("droplet-14", [14]),
        ("droplet number 11", [11]),
        ("status of droplets 1 and 10", [1, 10]),
        ("check droplets 3, 5 and 7", [3, 5, 7]),
        ("status for d10 and d1", [10, 1]),
        ("what's the status of service 10?", [10]),
        ("how are the registry and the orchestrator?", [1, 10]),
        ("is the chat orchestrator running?", [12]),
        ("status of the visibility-deck", [14]),
        ("tasks for the Voice droplet", [18]),
    ],
)
def test_droplet_ids(text: str, expected: list[int]) -> None:
    assert dx.droplet_ids(text, ALIASES) == expected


def test_alias_used_as_a_source_is_not_a_droplet_reference() -> None:
    assert dx.droplet_ids("list the droplets in the registry", ALIASES) == []
    assert dx.droplet_ids("what the registry knows about droplet 14", ALIASES) == [1, 14]


def test_registered_is_not_the_registry() -> None:
    assert dx.droplet_ids("show me all registered droplets", ALIASES) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status of task 7", [7]),
        ("task #7", [7]),
        ("task7", [7]),
        ("task id 17 status", [17]),
        ("check task no. 12", [12]),
        ("status of tasks 3 and 4", [3, 4]),
        ("cancel job 4", [4]),
        ("last 5 tasks", []),
    ],
)
def test_task_ids(text: str, expected: list[int]) -> None:
    assert dx.task_ids(text) == expected


def test_bare_hash_number_is_left_for_the_request_to_interpret() -> None:
    ents = dx.extract("cancel #33")
    assert ents.task_ids == ()
    assert [m.value for m in ents.hashed] == [33]


@pytest.mark.parametrize(
    ("text", "loose", "expected"),
    [
        ("priority 3", False, 3),
        ("p3", False, 3),
        ("prio 2", False, 2),
        ("priority: 4", False, 4),
        ("priority two", False, 2),
        ("with priority 10", False, 10),
        ("a priority-2 task", False, 2),
        ("an urgent deploy", False, 1),
        ("critical", False, 1),
        ("high priority", False, 3),
        ("priority high", False, 3),
        ("normal priority", False, 5),
        ("medium priority", False, 5),
        ("low priority", False, 8),
        ("the lowest priority", False, 10),
        ("urgent, but priority 3", False, 3),
        ("high", False, None),
        ("high", True, 3),
        ("make it low", True, 8),
        ("droplet 5 priority 1", False, 1),
        ("priority 15", False, None),
        ("show high cpu droplets", False, None),
    ],
)
def test_priority(text: str, loose: bool, expected: int | None) -> None:
    assert dx.priority(text, loose=loose) == expected


def test_out_of_range_priority_is_reported() -> None:
    ents = dx.extract("create a build task priority 15")
    assert ents.priority is None
    assert ents.priority_out_of_range == 15


def test_stated_priority_does_not_swallow_the_droplet_id() -> None:
    ents = dx.extract("deploy droplet 5 priority 1")
    assert ents.droplet_ids == (5,)
    assert ents.priority == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "code at https://github.com/x/droplet-14, priority 3",
            ["https://github.com/x/droplet-14"],
        ),
        ("see https://github.com/x/droplet-14.", ["https://github.com/x/droplet-14"]),
        ("(https://example.com/a_(b))", ["https://example.com/a_(b)"]),
        ("at https://host:8443/api/v1?x=1&y=2#frag!", ["https://host:8443/api/v1?x=1&y=2#frag"]),
        ("two: https://a.io/x and http://b.io/y;", ["https://a.io/x", "http://b.io/y"]),
        ("no links here: 10:30", []),
    ],
)
def test_urls_are_kept_whole(text: str, expected: list[str]) -> None:
    assert dx.urls(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("create a verification task", "verify"),
        ("verify droplet 14", "verify"),
        ("a build job", "build"),
        ("new deployment for droplet 2", "deploy"),
        ("redeploy droplet 11", "deploy"),
        ("start monitoring droplet 7", "monitor"),
        ("provisioning task", "provision"),
        ("a custom task", "custom"),
        ("show droplets", None),
    ],
)
def test_task_type(text: str, expected: str | None) -> None:
    assert dx.task_type(text) == expected


@pytest.mark.parametrize(
    ("text", "task", "droplet"),
    [
        ("which tasks are running", "in_progress", None),
        ("show pending tasks", "pending", None),
        ("tasks that are done", "completed", None),
        ("failed build tasks", "failed", None),
        ("show cancelled tasks", "cancelled", None),
        ("list droplets that are offline", None, "down"),
        ("which droplets are up", None, "active"),
        ("unhealthy droplets", None, "error"),
        ("the healthy droplets", None, "healthy"),
        ("tasks assigned to droplet 14", None, None),
        ("list all tasks with status assigned", "assigned", None),
    ],
)
def test_statuses(text: str, task: str | None, droplet: str | None) -> None:
    assert dx.task_state(text) == task
    assert dx.droplet_state(text) == droplet


def test_key_values_keep_times_and_urls_intact() -> None:
    text = (
        "create a task, title: Nightly build, window: 10:30-11:00, "
        "code_url: https://github.com/x/y.git, note=check at 09:15"
    )
    assert dx.key_values(text) == [
        ("title", "Nightly build"),
        ("window", "10:30-11:00"),
        ("code_url", "https://github.com/x/y.git"),
        ("note", "check at 09:15"),
    ]


def test_times_are_not_pairs_or_ids() -> None:
    ents = dx.extract("message droplet 7: deploy finished at 10:30")
    assert ents.pairs == ()
    assert ents.droplet_ids == (7,)
    assert ents.bare_numbers == ()


def test_free_text_values_do_not_name_targets() -> None:
    ents = dx.extract("title: Audit droplet 9")
    assert ents.pair("title") == "Audit droplet 9"
    assert ents.droplet_ids == ()


def test_quoted_titles_not_apostrophes() -> None:
    assert dx.quoted('create a task titled "Rotate keys" for droplet 1\'s owner') == ["Rotate keys"]
    assert dx.quoted("send 'hello there' to d3") == ["hello there"]
    assert dx.quoted("I'd like droplet 14's tasks") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("last 5 alerts", 5),
        ("show the 10 latest alerts", 10),
        ("top 3 pending tasks", 3),
        ("10 most recent tasks", 10),
        ("limit: 20", 20),
        ("pause routing for 5 minutes", None),
        ("show droplet 5", None),
    ],
)
def test_limit(text: str, expected: int | None) -> None:
    assert dx.extract(text).limit == expected


@pytest.mark.parametrize(
    ("typed", "fixed"),
    [
        ("dropelt", "droplet"),
        ("stauts", "status"),
        ("tsak", "task"),
        ("priorty", "priority"),
        ("cancle", "cancel"),
        ("hlth", "health"),
        ("verfication", "verification"),
        ("alrets", "alerts"),
        ("lsit", "list"),
        ("sytem", "system"),
    ],
)
def test_common_typos_are_corrected(typed: str, fixed: str) -> None:
    assert dx.correct_word(typed) == fixed


@pytest.mark.parametrize(
    "word", ["about", "complete", "hello", "last", "built", "tests", "position"]
)
def test_real_words_are_left_alone(word: str) -> None:
    assert dx.correct_word(word) is None


def test_fix_typos_keeps_case_urls_and_quotes() -> None:
    fixed = dx.fix_typos("Creat a tsak for https://github.com/x/tsak 'dropelt' Please")
    assert fixed.text == "create a task for https://github.com/x/tsak 'dropelt' Please"
    assert ("tsak", "task") in fixed.corrections


def test_alias_words_join_the_vocabulary() -> None:
    assert dx.fix_typos("is vioce up", extra_words=["voice"]).text == "is voice up"


def test_edit_distance_counts_a_transposition_once() -> None:
    assert dx.edit_distance("tsak", "task") == 1
    assert dx.edit_distance("kitten", "sitting", limit=5) == 3
    assert dx.edit_distance("a", "abcdef", limit=3) == 3


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_extract_never_raises_on_any_text(text: str) -> None:
    ents = dx.extract(text, aliases=ALIASES)
    assert all(m.value >= 1 for m in (*ents.droplets, *ents.tasks, *ents.bare_numbers))
    assert ents.priority is None or 1 <= ents.priority <= 10
    dx.fix_typos(text, extra_words=["voice"])
    dx.key_values(text)
    dx.urls(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "droplet",
                "14",
                "#",
                "task",
                "priority",
                ":",
                "https://x.io/a",
                "and",
                ",",
                "'",
                '"',
                "10:30",
                "p3",
                "d7",
                "drop",
                "title",
                "=",
                " ",
                "urgent",
                "registry",
                "-",
            ]
        ),
        max_size=30,
    )
)
def test_extract_never_raises_on_entity_soup(parts: list[str]) -> None:
    text = " ".join(parts)
    ents = dx.extract(text, aliases=ALIASES)
    for url in ents.urls:
        assert url in text
