"""The offline planner: phrasings, several requests, references, slots, honesty, validity."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.conversation.understanding.entities import Entities, Found
from app.conversation.understanding.planner import OfflinePlanner
from app.domain.plan import (
    HistoryTurn,
    PendingCall,
    Plan,
    PlanContext,
    Planner,
    ToolCall,
)
from app.tools.registry import default_tools

TOOLS = default_tools()
PLANNER = OfflinePlanner(TOOLS)
LLM_CONFIDENCE_THRESHOLD = 0.6
"""The hybrid planner's default threshold: below it a configured model is asked."""


def plan_message(text: str, context: PlanContext) -> Plan:
    return PLANNER.plan_now(text, context)


def validation_errors(call: ToolCall) -> list[str]:
    return TOOLS.problems(call)


ALIASES = {
    "registry": 1,
    "orchestrator": 10,
    "chat orchestrator": 12,
    "voice": 18,
    "visibility deck": 14,
}


def plan(text: str, **context: Any) -> Plan:
    context.setdefault("aliases", ALIASES)
    return plan_message(text, PlanContext(**context))


def calls(p: Plan) -> list[tuple[str, dict[str, Any]]]:
    return [(c.tool, c.args) for c in p.calls]


def history(*texts: str) -> list[HistoryTurn]:
    return [
        HistoryTurn(role="user" if i % 2 == 0 else "assistant", text=t) for i, t in enumerate(texts)
    ]


async def test_is_a_planner_named_rules() -> None:
    planner: Planner = OfflinePlanner(TOOLS)
    result = await planner.plan("list droplets", PlanContext())
    assert planner.name == "rules"
    assert result.planner == "rules"
    assert calls(result) == [("list_droplets", {})]


async def test_plans_asked_for_together_are_each_the_plan_of_their_own_message() -> None:
    # Plans asked for in one loop iteration are made back to back (app.utils.stage): each
    # caller still gets the plan of its own text and context, not a neighbour's.
    planner = OfflinePlanner(TOOLS)
    asked = [
        ("list droplets", PlanContext(aliases=ALIASES)),
        ("cancel it", PlanContext(aliases=ALIASES, last_task_id=7)),
        ("is the visibility deck healthy?", PlanContext(aliases=ALIASES)),
        ("cancel it", PlanContext(aliases=ALIASES, last_task_id=9)),
        ("hello", PlanContext()),
    ]
    together = await asyncio.gather(*(planner.plan(text, ctx) for text, ctx in asked))
    assert together == [planner.plan_now(text, ctx) for text, ctx in asked]
    assert calls(together[1]) == [("cancel_task", {"task_id": 7})]
    assert calls(together[3]) == [("cancel_task", {"task_id": 9})]
    assert calls(together[2]) == [("droplet_status", {"droplet_id": 14})]


# ---- the examples every client relies on ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("show me all registered items", [("list_droplets", {})]),
        ("show me all registered droplets", [("list_droplets", {})]),
        ("Get the latest system alerts", [("system_alerts", {})]),
        ("any alerts?", [("system_alerts", {})]),
        ("is droplet 14 healthy?", [("droplet_status", {"droplet_id": 14})]),
        ("help", [("help", {})]),
        ("what can you do?", [("help", {})]),
    ],
)
def test_documented_examples(text: str, expected: list[tuple[str, dict[str, Any]]]) -> None:
    result = plan(text)
    assert result.kind == "tools"
    assert calls(result) == expected
    assert result.confidence >= LLM_CONFIDENCE_THRESHOLD


def test_create_verification_task_with_code_url_and_priority() -> None:
    result = plan(
        "create a verification task for droplet 14, code at "
        "https://github.com/fullpotential-ai/droplet-14, priority 3"
    )
    assert result.kind == "tools"
    assert calls(result) == [
        (
            "create_task",
            {
                "task_type": "verify",
                "priority": 3,
                "payload": {
                    "target_droplet_id": 14,
                    "code_url": "https://github.com/fullpotential-ai/droplet-14",
                },
            },
        )
    ]


def test_priority_defaults_to_normal_when_not_said() -> None:
    (call,) = plan("create a build task for droplet 3").calls
    assert call.args["priority"] == 5


def test_greeting_is_a_short_friendly_answer() -> None:
    result = plan("hello")
    assert result.kind == "answer"
    assert result.intent == "smalltalk"
    assert result.answer and result.answer.startswith("Hello")


@pytest.mark.parametrize(
    "text",
    [
        "what's the weather in Paris",
        "tell me a joke",
        "what's the status of my pizza order?",
        "set an alarm for 7am",
        "asdfghjkl",
    ],
)
def test_out_of_scope_gets_an_honest_answer_with_low_confidence(text: str) -> None:
    result = plan(text)
    assert result.kind == "answer"
    assert result.calls == []
    assert result.confidence < LLM_CONFIDENCE_THRESHOLD
    assert result.answer and "droplet" in result.answer


# ---- phrasing, typos, several requests ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "is droplet 14 healthy?",
        "how is droplet 14 doing",
        "droplet 14 status",
        "could you check on droplet 14 for me please",
        "is dropelt 14 healthy",
        "stauts of droplet 14",
        "d14?",
        "what's the health of the visibility deck?",
    ],
)
def test_paraphrases_of_one_request(text: str) -> None:
    assert calls(plan(text)) == [("droplet_status", {"droplet_id": 14})]


def test_a_droplet_renamed_between_turns_is_found_by_its_new_name() -> None:
    # The planner keeps the index of the last alias table it saw; a new table replaces it.
    planner = OfflinePlanner(TOOLS)
    before = PlanContext(aliases={**ALIASES, "night watch": 21})
    after = PlanContext(aliases={**ALIASES, "night watch": 22, "day shift": 21})
    assert calls(planner.plan_now("is night watch healthy?", before)) == [
        ("droplet_status", {"droplet_id": 21})
    ]
    assert calls(planner.plan_now("is night watch healthy?", after)) == [
        ("droplet_status", {"droplet_id": 22})
    ]
    assert calls(planner.plan_now("is day shift healthy?", after)) == [
        ("droplet_status", {"droplet_id": 21})
    ]
    assert calls(planner.plan_now("is day shift healthy?", before)) != [
        ("droplet_status", {"droplet_id": 21})
    ]


def test_typos_lower_the_confidence() -> None:
    clean = plan("show system status")
    typo = plan("shwo sytem stauts")
    assert calls(clean) == calls(typo) == [("system_status", {})]
    assert typo.confidence < clean.confidence


def test_status_of_two_droplets_is_two_calls() -> None:
    assert calls(plan("status of droplets 1 and 10")) == [
        ("droplet_status", {"droplet_id": 1}),
        ("droplet_status", {"droplet_id": 10}),
    ]


def test_two_requests_in_one_message() -> None:
    result = plan("list tasks and show alerts")
    assert result.intent == "multi"
    assert calls(result) == [("list_tasks", {}), ("system_alerts", {})]


def test_a_later_request_can_refer_to_an_earlier_one() -> None:
    assert calls(plan("check droplet 14 and list its tasks")) == [
        ("droplet_status", {"droplet_id": 14}),
        ("list_tasks", {"assigned_droplet_id": 14}),
    ]


def test_filters_for_lists() -> None:
    assert calls(plan("which droplets are down?")) == [("list_droplets", {"status": "down"})]
    assert calls(plan("pending tasks for droplet 7")) == [
        ("list_tasks", {"status": "pending", "assigned_droplet_id": 7})
    ]
    assert calls(plan("last 5 alerts")) == [("system_alerts", {"limit": 5})]


# ---- conversation references -------------------------------------------------------------------


def test_what_about_repeats_the_previous_request() -> None:
    ctx = history("is droplet 10 healthy?", "Orchestrator (droplet 10) is active.")
    assert calls(plan("what about droplet 14?", history=ctx)) == [
        ("droplet_status", {"droplet_id": 14})
    ]
    ctx = history("tasks assigned to droplet 14", "2 tasks")
    assert calls(plan("and for droplet 3?", history=ctx)) == [
        ("list_tasks", {"assigned_droplet_id": 3})
    ]


def test_cancel_it_uses_the_last_task() -> None:
    assert calls(plan("cancel it", last_task_id=42)) == [("cancel_task", {"task_id": 42})]


def test_cancel_it_without_a_known_task_asks_which() -> None:
    result = plan("cancel it")
    assert result.kind == "ask"
    assert result.missing == ["task_id"]
    assert calls(result) == [("cancel_task", {})]


def test_it_means_the_droplet_or_the_task_by_the_words_used() -> None:
    both = {"last_task_id": 7, "last_droplet_id": 14}
    assert calls(plan("is it healthy?", **both)) == [("droplet_status", {"droplet_id": 14})]
    assert calls(plan("is it done yet?", **both)) == [("task_status", {"task_id": 7})]


def test_bare_cancel_without_anything_pending_is_not_a_cancel_call() -> None:
    result = plan("cancel")
    assert result.kind == "answer"
    assert result.calls == []


# ---- missing slots and pending calls -----------------------------------------------------------


def test_create_without_a_type_asks_for_it() -> None:
    result = plan("create a task for droplet 14, priority 2")
    assert result.kind == "ask"
    assert result.missing == ["task_type"]
    assert calls(result) == [("create_task", {"priority": 2, "payload": {"target_droplet_id": 14}})]


def test_create_without_a_target_asks_for_it() -> None:
    result = plan("create a deploy task, priority 2")
    assert result.kind == "ask"
    assert result.missing == ["payload.target_droplet_id"]
    assert calls(result) == [("create_task", {"task_type": "deploy", "priority": 2})]


def _pending(tool: str, args: dict[str, Any], missing: list[str] | None = None) -> PendingCall:
    return PendingCall(call=ToolCall(tool=tool, args=args), missing=missing or [])


def test_slot_answer_completes_the_pending_call() -> None:
    pending = _pending(
        "create_task", {"priority": 5, "payload": {"target_droplet_id": 14}}, ["task_type"]
    )
    result = plan("verify", pending=pending)
    assert result.kind == "tools"
    assert calls(result) == [
        (
            "create_task",
            {
                "priority": 5,
                "payload": {"target_droplet_id": 14},
                "task_type": "verify",
            },
        )
    ]


def test_other_details_keep_asking_for_what_is_still_missing() -> None:
    pending = _pending(
        "create_task", {"priority": 5, "payload": {"target_droplet_id": 14}}, ["task_type"]
    )
    result = plan("priority 2", pending=pending)
    assert result.kind == "ask"
    assert result.missing == ["task_type"]
    assert result.calls[0].args["priority"] == 2


WAITING = _pending(
    "create_task",
    {
        "task_type": "verify",
        "title": "Verify droplet 14",
        "priority": 3,
        "payload": {"target_droplet_id": 14},
    },
)


@pytest.mark.parametrize(
    ("reply", "changes"),
    [
        ("make it priority 2", {"priority": 2}),
        ("actually make it urgent", {"priority": 1}),
        ("for droplet 16 instead", {"payload": {"target_droplet_id": 16}, "title": None}),
        ("title: Audit droplet 14", {"title": "Audit droplet 14"}),
        ("make it a build task", {"task_type": "build", "title": None}),
    ],
)
def test_edits_to_a_call_awaiting_confirmation(reply: str, changes: dict[str, Any]) -> None:
    """A title made from the old type and target goes with them (the tool makes a new one)."""
    result = plan(reply, pending=WAITING)
    assert result.kind == "tools"
    expected = {k: v for k, v in {**WAITING.call.args, **changes}.items() if v is not None}
    assert calls(result) == [("create_task", expected)]


def test_a_user_chosen_title_survives_a_retarget() -> None:
    pending = _pending(
        "create_task",
        {
            "task_type": "verify",
            "title": "Audit",
            "priority": 3,
            "payload": {"target_droplet_id": 14},
        },
    )
    (call,) = plan("for droplet 16 instead", pending=pending).calls
    assert call.args["title"] == "Audit"


def test_a_new_request_while_a_call_is_pending_is_planned_as_such() -> None:
    assert calls(plan("show alerts", pending=WAITING)) == [("system_alerts", {})]
    assert calls(plan("is droplet 3 healthy?", pending=WAITING)) == [
        ("droplet_status", {"droplet_id": 3})
    ]


def test_message_slot_takes_the_reply_as_typed() -> None:
    pending = _pending("send_message", {"target_droplet_id": 18}, ["message"])
    result = plan("Deploy finished, all green", pending=pending)
    assert calls(result) == [
        ("send_message", {"target_droplet_id": 18, "message": "Deploy finished, all green"})
    ]


def test_task_id_slot_accepts_a_bare_number() -> None:
    pending = _pending("cancel_task", {}, ["task_id"])
    assert calls(plan("7", pending=pending)) == [("cancel_task", {"task_id": 7})]


def test_send_message_parts() -> None:
    assert calls(plan("tell droplet 5 to restart")) == [
        ("send_message", {"target_droplet_id": 5, "message": "restart"})
    ]
    assert calls(plan("message droplet 7: deploy finished at 10:30")) == [
        ("send_message", {"target_droplet_id": 7, "message": "deploy finished at 10:30"})
    ]
    result = plan("send a message to droplet 18")
    assert result.kind == "ask"
    assert result.missing == ["message"]


# ---- every plan is valid -----------------------------------------------------------------------


def _only_missing_required(call: ToolCall) -> bool:
    return TOOLS.problems(call, partial=True) == []


def _assert_valid(result: Plan) -> None:
    assert 0.0 <= result.confidence <= 1.0
    if result.kind == "tools":
        assert result.calls
        for call in result.calls:
            assert validation_errors(call) == [], (call, validation_errors(call))
    elif result.kind == "ask":
        assert len(result.calls) == 1 and result.missing
        assert _only_missing_required(result.calls[0])
    else:
        assert result.answer


CONTEXTS = st.builds(
    PlanContext,
    last_task_id=st.none() | st.integers(1, 10_000),
    last_droplet_id=st.none() | st.integers(1, 100),
    pending=st.none()
    | st.sampled_from(
        [
            WAITING,
            _pending("create_task", {"priority": 5, "payload": {}}, ["task_type"]),
            _pending("send_message", {"target_droplet_id": 18}, ["message"]),
            _pending("cancel_task", {}, ["task_id"]),
        ]
    ),
    history=st.lists(
        st.builds(
            HistoryTurn, role=st.sampled_from(["user", "assistant"]), text=st.text(max_size=80)
        ),
        max_size=3,
    ),
    aliases=st.just(ALIASES),
)
WORDS = st.sampled_from(
    [
        "create",
        "cancel",
        "task",
        "droplet",
        "14",
        "#7",
        "priority",
        "p0",
        "p11",
        "0",
        "title:",
        "send",
        "tell",
        "to",
        "it",
        "and",
        "status",
        "alerts",
        "verify",
        "https://x.io/y",
        "'q'",
        '"',
        ":",
        ",",
        "registry",
        "list",
        "limit",
        "999",
        "1000",
        "last",
        "for",
        "instead",
        "make",
        "message",
        "voice",
        "new",
        "spec",
        "capability",
        "x" * 300,
        "??",
        "\n",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400), CONTEXTS)
def test_any_text_gives_a_valid_plan(text: str, context: PlanContext) -> None:
    _assert_valid(plan_message(text, context))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(WORDS, max_size=25).map(" ".join), CONTEXTS)
def test_command_like_text_gives_a_valid_plan(text: str, context: PlanContext) -> None:
    _assert_valid(plan_message(text, context))


# ---- statements, follow-ups, messages, compound requests -----------------------------------------


def test_a_stated_fact_explains_the_command_and_is_not_a_request() -> None:
    assert calls(plan("task forty-four failed, retry it")) == [("retry_tasks", {"task_ids": [44]})]
    assert calls(plan("cancel 101 and 102, both tasks are stale")) == [
        ("cancel_tasks", {"task_ids": [101, 102]})
    ]


def test_a_narrowing_follow_up_keeps_the_previous_arguments() -> None:
    p = plan(
        "only the failed ones",
        history=history("show tasks for droplet 14", "Droplet 14 has 6 tasks."),
    )
    assert calls(p) == [("list_tasks", {"assigned_droplet_id": 14, "status": "failed"})]


def test_do_the_same_skips_the_yes_that_confirmed_the_last_request() -> None:
    p = plan(
        "now do the same for task 31",
        history=history("cancel task 30", "Cancel task 30?", "yes", "Task 30 cancelled."),
    )
    assert calls(p) == [("cancel_task", {"task_id": 31})]


def test_a_filler_while_a_question_is_open_asks_it_again() -> None:
    pending = PendingCall(
        call=ToolCall(tool="create_task", args={"task_type": "verify", "priority": 5}),
        missing=["payload.target_droplet_id"],
    )
    p = plan("hmm", pending=pending)
    assert p.kind == "ask"
    assert p.missing == ["payload.target_droplet_id"]


def test_the_recipient_is_named_before_the_message_not_inside_it() -> None:
    p = plan("send the registry a note that droplet 40 is being decommissioned")
    assert calls(p) == [
        ("send_message", {"target_droplet_id": 1, "message": "droplet 40 is being decommissioned"})
    ]


def test_a_message_s_own_words_name_no_tool() -> None:
    p = plan("tell droplet 8 that watch on task 3 can be stopped")
    assert calls(p) == [
        ("send_message", {"target_droplet_id": 8, "message": "watch on task 3 can be stopped"})
    ]


def test_the_same_droplet_is_the_last_one() -> None:
    p = plan("tell the same droplet that the docs are live", last_droplet_id=16)
    assert calls(p) == [("send_message", {"target_droplet_id": 16, "message": "the docs are live"})]


def test_an_unnamed_droplet_with_nothing_known_is_asked_for() -> None:
    p = plan("is the droplet healthy?")
    assert p.kind == "ask" and p.calls[0].tool == "droplet_status"
    assert p.missing == ["droplet_id"]


def test_a_colon_starts_a_message_only_after_a_messaging_word() -> None:
    assert calls(plan("status: droplet 12")) == [("droplet_status", {"droplet_id": 12})]
    assert calls(plan("msg droplet 5: deploy is done")) == [
        ("send_message", {"target_droplet_id": 5, "message": "deploy is done"})
    ]


def test_a_message_then_a_command_on_it() -> None:
    p = plan("tell droplet 18 the mic is fixed and then watch it for changes")
    assert calls(p) == [
        ("send_message", {"target_droplet_id": 18, "message": "the mic is fixed"}),
        ("watch", {"droplet_id": 18, "event": "change"}),
    ]


def test_the_same_tool_twice_with_its_own_filters() -> None:
    p = plan("give me failed deploys and failed builds")
    assert calls(p) == [
        ("list_tasks", {"status": "failed", "task_type": "deploy"}),
        ("list_tasks", {"status": "failed", "task_type": "build"}),
    ]


def test_a_question_then_a_pronoun_that_refers_to_it() -> None:
    p = plan("is droplet 5 healthy? if you can, also list its capabilities")
    assert calls(p) == [
        ("droplet_status", {"droplet_id": 5}),
        ("droplet_capabilities", {"droplet_id": 5}),
    ]


def test_a_verb_said_last_is_the_command() -> None:
    assert calls(plan("task 88, cancel")) == [("cancel_task", {"task_id": 88})]
    assert calls(plan("failed deploys -> retry")) == [
        ("retry_tasks", {"status": "failed", "task_type": "deploy"})
    ]


def test_a_required_capability_said_before_the_word_capability() -> None:
    p = plan("create a custom task for droplet 33 that requires the gpu capability")
    assert p.calls[0].args["required_capability"] == "gpu"


# ---- phrasings of the kinds operators and speech-to-text produce -------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hey bot cancel task uh twenty no wait twenty one", [("cancel_task", {"task_id": 21})]),
        (
            "um deploy droplet thirty three no sorry thirty four",
            [
                (
                    "create_task",
                    {"task_type": "deploy", "payload": {"target_droplet_id": 34}, "priority": 5},
                )
            ],
        ),
        ("uh check droplet uh fourteen", [("droplet_status", {"droplet_id": 14})]),
        ("i want to uh i want to check droplet five", [("droplet_status", {"droplet_id": 5})]),
        ("show me the show me the failed tasks", [("list_tasks", {"status": "failed"})]),
        ("could you please tell me what i'm watching", [("list_watches", {})]),
        (
            "could you tell me what droplet 14 is working on",
            [("list_tasks", {"assigned_droplet_id": 14})],
        ),
        ("um so how's the system doing?", [("system_status", {})]),
    ],
)
def test_voice_fillers_false_starts_and_self_corrections(
    text: str, expected: list[tuple[str, dict[str, Any]]]
) -> None:
    result = plan(text)
    assert result.kind == "tools"
    assert calls(result) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cancel task 11, retry task 12 and show me task 13",
            [
                ("cancel_task", {"task_id": 11}),
                ("retry_tasks", {"task_ids": [12]}),
                ("task_status", {"task_id": 13}),
            ],
        ),
        (
            "check droplet 5 then cancel task 9 then show me the alerts",
            [
                ("droplet_status", {"droplet_id": 5}),
                ("cancel_task", {"task_id": 9}),
                ("system_alerts", {}),
            ],
        ),
        (
            "list droplets, show alerts and check the registry",
            [("list_droplets", {}), ("system_alerts", {}), ("droplet_status", {"droplet_id": 1})],
        ),
        (
            "tell droplet 7 that the build passed and droplet 20 that the tests failed",
            [
                ("send_message", {"target_droplet_id": 7, "message": "the build passed"}),
                ("send_message", {"target_droplet_id": 20, "message": "the tests failed"}),
            ],
        ),
        (
            "message droplet 3 saying hi and the registry saying bye, then check droplet 5",
            [
                ("send_message", {"target_droplet_id": 3, "message": "hi"}),
                ("send_message", {"target_droplet_id": 1, "message": "bye"}),
                ("droplet_status", {"droplet_id": 5}),
            ],
        ),
        (
            "tell droplet 5 that droplet 7 is down and droplet 9 is slow",
            [
                (
                    "send_message",
                    {"target_droplet_id": 5, "message": "droplet 7 is down and droplet 9 is slow"},
                )
            ],
        ),
    ],
)
def test_compound_requests_of_three_parts_and_several_messages(
    text: str, expected: list[tuple[str, dict[str, Any]]]
) -> None:
    result = plan(text)
    assert result.kind == "tools"
    assert calls(result) == expected


@pytest.mark.parametrize(
    "text",
    [
        "what args did u use",
        "what parameters did you pass",
        "how did you come up with that",
        "how come you did that",
        "what was your reasoning",
        "break down what you just did",
        "what did you base that on",
        "why did you pick that tool",
    ],
)
def test_why_and_explain_phrasings(text: str) -> None:
    result = plan(text, history=history("list failed tasks", "3 failed tasks: 31, 35, 40."))
    assert calls(result) == [("explain_last", {})]


def test_how_come_about_a_droplet_is_not_an_explanation() -> None:
    assert calls(plan("how come droplet 5 is down")) == [("droplet_status", {"droplet_id": 5})]


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("top 3 alerts", {"limit": 3}),
        ("the last two alerts", {"limit": 2}),
        ("list pending tasks, limit 25", {"status": "pending", "limit": 25}),
        (
            "list cancelled deploys, max 5",
            {"status": "cancelled", "task_type": "deploy", "limit": 5},
        ),
        ("show me tasks of type provision", {"task_type": "provision"}),
        (
            "completed verifies for droplet 33",
            {"status": "completed", "task_type": "verify", "assigned_droplet_id": 33},
        ),
        (
            "list the top three failed builds on the visibility deck",
            {"status": "failed", "task_type": "build", "assigned_droplet_id": 14, "limit": 3},
        ),
        ("task list please", {}),
    ],
)
def test_limits_and_filters_in_other_words(text: str, args: dict[str, Any]) -> None:
    result = plan(text)
    assert result.kind == "tools"
    assert len(result.calls) == 1
    call = result.calls[0]
    tool = "system_alerts" if "alerts" in text else "list_tasks"
    assert (call.tool, call.args) == (tool, args)


def test_ping_without_a_text_checks_the_droplet_and_with_one_sends_it() -> None:
    assert calls(plan("ping droplet 5")) == [("droplet_status", {"droplet_id": 5})]
    assert calls(plan("ping droplet 5 that the db is back")) == [
        ("send_message", {"target_droplet_id": 5, "message": "the db is back"})
    ]


@pytest.mark.parametrize("reply", ["the hotfix is deployed", "queue is drained, go ahead"])
def test_a_statement_while_a_message_is_awaited_is_the_message(reply: str) -> None:
    pending = _pending("send_message", {"target_droplet_id": 14}, ["message"])
    assert calls(plan(reply, pending=pending)) == [
        ("send_message", {"target_droplet_id": 14, "message": reply})
    ]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("scratch that, how's the system doing?", [("system_status", {})]),
        ("never mind, list the droplets", [("list_droplets", {})]),
        ("forget it, show me the alerts", [("system_alerts", {})]),
    ],
)
def test_dropping_a_waiting_question_for_another_request(
    reply: str, expected: list[tuple[str, dict[str, Any]]]
) -> None:
    pending = _pending("cancel_task", {}, ["task_id"])
    assert calls(plan(reply, pending=pending)) == expected


def test_a_request_after_a_dismissal_keeps_its_urls_and_quotes() -> None:
    pending = _pending("cancel_task", {}, ["task_id"])
    reply = 'never mind, build droplet 5 from https://github.com/acme/app titled "night run"'
    assert calls(plan(reply, pending=pending)) == [
        (
            "create_task",
            {
                "task_type": "build",
                "payload": {"target_droplet_id": 5, "code_url": "https://github.com/acme/app"},
                "priority": 5,
                "title": "night run",
            },
        )
    ]


def test_a_correction_with_no_still_answers_the_question() -> None:
    pending = _pending("cancel_task", {}, ["task_id"])
    assert calls(plan("no, task 15", pending=pending)) == [("cancel_task", {"task_id": 15})]


@pytest.mark.parametrize(
    ("follow_up", "expected"),
    [
        ("and for droplet 16?", {"status": "failed", "assigned_droplet_id": 16}),
        ("what about droplet 9?", {"status": "failed", "assigned_droplet_id": 9}),
        ("same for pending", {"status": "pending", "assigned_droplet_id": 7}),
    ],
)
def test_a_follow_up_changes_only_what_it_says(follow_up: str, expected: dict[str, Any]) -> None:
    turns = history("show failed tasks for droplet 7", "Droplet 7 has 2 failed tasks: 31 and 35.")
    assert calls(plan(follow_up, history=turns)) == [("list_tasks", expected)]


def test_a_task_named_by_its_noun_with_a_priority_is_created() -> None:
    assert calls(plan("priority two verification of droplet eighteen")) == [
        (
            "create_task",
            {"task_type": "verify", "payload": {"target_droplet_id": 18}, "priority": 2},
        )
    ]


# ---- terse chat-ops: bulk by state, narrowing a proposal, denied numbers ------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cancel pending for the registry", {"status": "pending", "droplet_id": 1}),
        ("drop 14's pending", {"status": "pending", "droplet_id": 14}),
        ("abort pending on droplet 3", {"status": "pending", "droplet_id": 3}),
    ],
)
def test_a_state_without_a_task_in_sight_cancels_in_bulk(
    text: str, expected: dict[str, Any]
) -> None:
    assert calls(plan(text)) == [("cancel_tasks", expected)]


@pytest.mark.parametrize(
    "text", ["cancel the pending task 7", "cancel pending task 7", "cancel the pending task"]
)
def test_a_single_task_named_with_its_state_stays_single(text: str) -> None:
    p = plan(text)
    assert p.calls[0].tool == "cancel_task"


@pytest.mark.parametrize(
    ("pending", "reply", "expected"),
    [
        (("cancel_tasks", {"status": "pending", "droplet_id": 14}), "only the builds",
         ("cancel_tasks", {"status": "pending", "droplet_id": 14, "task_type": "build"})),
        (("retry_tasks", {"status": "failed"}), "just the deploys",
         ("retry_tasks", {"status": "failed", "task_type": "deploy"})),
        (("cancel_task", {"task_id": 12}), "wait, not 12, 21", ("cancel_task", {"task_id": 21})),
    ],
)  # fmt: skip
def test_a_reply_narrows_or_corrects_the_waiting_proposal(
    pending: tuple[str, dict[str, Any]], reply: str, expected: tuple[str, dict[str, Any]]
) -> None:
    p = plan(reply, pending=_pending(pending[0], pending[1], []))
    assert calls(p) == [expected]


def test_a_new_request_starting_with_just_is_still_a_new_request() -> None:
    p = plan("just show me the alerts", pending=_pending("retry_tasks", {"status": "failed"}, []))
    assert calls(p) == [("system_alerts", {})]


def test_a_negated_command_is_not_a_denied_number() -> None:
    assert calls(plan("don't cancel 5, cancel 6")) == [("cancel_task", {"task_id": 6})]


@pytest.mark.parametrize(
    ("earlier", "reply", "expected"),
    [
        ("is droplet 14 healthy", "and 7?", ("droplet_status", {"droplet_id": 7})),
        ("cancel task 9", "now 10", ("cancel_task", {"task_id": 10})),
        ("last 5 alerts", "make it 10", ("system_alerts", {"limit": 10})),
        ("status of task 4", "make that 6", ("task_status", {"task_id": 6})),
    ],
)
def test_a_bare_number_after_a_request_replaces_its_number(
    earlier: str, reply: str, expected: tuple[str, dict[str, Any]]
) -> None:
    assert calls(plan(reply, history=history(earlier, "Done."))) == [expected]


def test_make_it_a_number_without_an_earlier_request_is_not_a_follow_up() -> None:
    assert plan("make it 10").intent != "system_alerts"


def test_two_numbers_are_not_one_replacement() -> None:
    assert plan("and 7 and 8?", history=history("last 5 alerts", "Here.")).kind == "answer"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what can droplets 16 and 18 do",
         [("droplet_capabilities", {"droplet_id": 16}),
          ("droplet_capabilities", {"droplet_id": 18})]),
        ("cancelled tasks, show 7", [("list_tasks", {"status": "cancelled", "limit": 7})]),
        ("show me just one task", [("list_tasks", {"limit": 1})]),
        ("just one alert", [("system_alerts", {"limit": 1})]),
        # Near-misses: a number after "show" that names a droplet, not a count.
        ("show droplet 7", [("droplet_status", {"droplet_id": 7})]),
    ],
)  # fmt: skip
def test_terse_limits_and_plural_capabilities(
    text: str, expected: list[tuple[str, dict[str, Any]]]
) -> None:
    assert calls(plan(text)) == expected


def test_a_state_named_first_is_the_topic_of_the_command_after_it() -> None:
    assert calls(plan("the failed ones, retry them")) == [("retry_tasks", {"status": "failed"})]


def test_a_listing_before_a_separate_command_stays_a_listing() -> None:
    assert calls(plan("failed tasks, and retry task 4")) == [
        ("list_tasks", {"status": "failed"}),
        ("retry_tasks", {"task_ids": [4]}),
    ]


# ---- forms found by the blind batches (each a pattern, not a sentence) ----------------------


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("fyi droplet 3: db restarts at noon", 3, "db restarts at noon"),
        ("fyi to the visibility deck, charts are stale", 14, "charts are stale"),
        ("pass this on to droplet 16: new hires start monday", 16, "new hires start monday"),
        ("drop the voice droplet a line saying the mic is fixed", 18, "the mic is fixed"),
        ("shoot droplet 9 a quick note, deploy is green", 9, "deploy is green"),
    ],
)
def test_messaging_idioms_carry_their_text(text: str, target: int, message: str) -> None:
    assert calls(plan(text)) == [
        ("send_message", {"target_droplet_id": target, "message": message})
    ]


def test_give_me_a_heads_up_is_a_watch_not_a_message() -> None:
    assert calls(plan("give me a heads up when task 5 finishes")) == [
        ("watch", {"task_id": 5, "event": "done"})
    ]
    assert calls(plan("heads up if the registry goes down")) == [
        ("watch", {"droplet_id": 1, "event": "down"})
    ]


def test_two_commands_joined_by_and_share_their_object_and_priority() -> None:
    assert calls(plan("build and deploy droplet 7 priority 2")) == [
        ("create_task", {"task_type": t, "payload": {"target_droplet_id": 7}, "priority": 2})
        for t in ("build", "deploy")
    ]


def test_a_priority_said_of_both_tasks_applies_to_both() -> None:
    text = "a build for droplet 20 and a verify for droplet 33, both high prio"
    assert [c.args["priority"] for c in plan(text).calls] == [3, 3]


def test_as_many_priorities_as_targets_go_to_them_in_order() -> None:
    text = "verify droplet 5 at priority 1, droplet 7 at priority 3"
    assert [
        (c.args["payload"]["target_droplet_id"], c.args["priority"]) for c in plan(text).calls
    ] == [
        (5, 1),
        (7, 3),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "list healthy droplets and the inactive ones",
            [("list_droplets", {"status": "healthy"}), ("list_droplets", {"status": "inactive"})],
        ),
        (
            "running tasks for droplet 14 then the failed ones for droplet 16",
            [
                ("list_tasks", {"status": "in_progress", "assigned_droplet_id": 14}),
                ("list_tasks", {"status": "failed", "assigned_droplet_id": 16}),
            ],
        ),
        (
            "registry status, voice status",
            [("droplet_status", {"droplet_id": 1}), ("droplet_status", {"droplet_id": 18})],
        ),
    ],
)
def test_the_same_question_again_with_its_own_filter_or_droplet(
    text: str, expected: list[tuple[str, dict[str, Any]]]
) -> None:
    assert calls(plan(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "for droplet 7, failed tasks, just 2 of them",
            {"status": "failed", "assigned_droplet_id": 7, "limit": 2},
        ),
        (
            "cancelled builds on droplet 40, five of them",
            {"status": "cancelled", "task_type": "build", "assigned_droplet_id": 40, "limit": 5},
        ),
    ],
)
def test_a_detail_before_a_comma_and_a_count_of_them_narrow_the_listing(
    text: str, expected: dict[str, Any]
) -> None:
    assert calls(plan(text)) == [("list_tasks", expected)]


def test_two_watched_conditions_joined_by_or_are_two_watches() -> None:
    assert calls(plan("tell me if droplet 14 goes down or droplet 16 comes back")) == [
        ("watch", {"droplet_id": 14, "event": "down"}),
        ("watch", {"droplet_id": 16, "event": "up"}),
    ]


def test_acting_on_the_tasks_just_listed_uses_the_same_filter() -> None:
    assert calls(plan("list pending builds for droplet 7 and cancel them")) == [
        ("list_tasks", {"status": "pending", "assigned_droplet_id": 7, "task_type": "build"}),
        ("cancel_tasks", {"status": "pending", "droplet_id": 7, "task_type": "build"}),
    ]


def test_a_task_named_by_its_noun_and_a_need_is_created() -> None:
    assert calls(plan("droplet 40 - rebuild required, top priority")) == [
        ("create_task", {"task_type": "build", "payload": {"target_droplet_id": 40}, "priority": 1})
    ]


@pytest.mark.parametrize(
    ("reply", "title"),
    [("and title it nightly check", "nightly check"), ("rename it to db sweep", "db sweep")],
)
def test_a_title_given_while_a_create_waits_for_yes(reply: str, title: str) -> None:
    args = {"task_type": "verify", "priority": 5, "payload": {"target_droplet_id": 14}}
    pending = _pending("create_task", args, [])
    assert calls(plan(reply, pending=pending)) == [("create_task", {**args, "title": title})]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tasks droplet=20 status=in_progress limit=5",
            ("list_tasks", {"assigned_droplet_id": 20, "status": "in_progress", "limit": 5}),
        ),
        ("watch droplet=33 event=down", ("watch", {"droplet_id": 33, "event": "down"})),
        (
            "list tasks where status is failed and type is build",
            ("list_tasks", {"status": "failed", "task_type": "build"}),
        ),
        (
            "monitor tasks on droplet 14",
            ("list_tasks", {"task_type": "monitor", "assigned_droplet_id": 14}),
        ),
        (
            "any queued verify task for the registry?",
            ("list_tasks", {"status": "pending", "task_type": "verify", "assigned_droplet_id": 1}),
        ),
        ("stop all watch pls", ("unwatch", {"all": True})),
    ],
)
def test_filters_said_as_keys_and_values_or_as_types(
    text: str, expected: tuple[str, dict[str, Any]]
) -> None:
    assert calls(plan(text)) == [expected]


@pytest.mark.parametrize(
    ("text", "context", "expected"),
    [
        ("status?", {"last_task_id": 77}, ("task_status", {"task_id": 77})),
        ("capabilities?", {"last_droplet_id": 14}, ("droplet_capabilities", {"droplet_id": 14})),
        ("retry", {"last_task_id": 58}, ("retry_tasks", {"task_ids": [58]})),
        ("help", {"last_task_id": 5}, ("help", {})),
        ("alerts?", {"last_droplet_id": 5}, ("system_alerts", {})),
        (
            "cancel all pending for the same droplet",
            {"last_droplet_id": 20},
            ("cancel_tasks", {"status": "pending", "droplet_id": 20}),
        ),
    ],
)
def test_a_word_or_two_is_about_what_the_conversation_last_named(
    text: str, context: dict[str, Any], expected: tuple[str, dict[str, Any]]
) -> None:
    assert calls(plan(text, **context)) == [expected]


def test_a_droplet_answers_to_whom_before_what_a_message_says() -> None:
    pending = _pending("send_message", {}, ["target_droplet_id", "message"])
    result = plan("droplet 5", pending=pending)
    assert (result.kind, calls(result), result.missing) == (
        "ask",
        [("send_message", {"target_droplet_id": 5})],
        ["message"],
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "droplet 14 status + capabilities",
            [("droplet_status", {"droplet_id": 14}), ("droplet_capabilities", {"droplet_id": 14})],
        ),
        (
            "alert me if droplet 20 goes down and when it comes back",
            [
                ("watch", {"droplet_id": 20, "event": "down"}),
                ("watch", {"droplet_id": 20, "event": "up"}),
            ],
        ),
        (
            "failed tasks for droplet 3 and for droplet 4",
            [
                ("list_tasks", {"status": "failed", "assigned_droplet_id": 3}),
                ("list_tasks", {"status": "failed", "assigned_droplet_id": 4}),
            ],
        ),
        (
            "msg droplet 33 -> disk almost full",
            [("send_message", {"target_droplet_id": 33, "message": "disk almost full"})],
        ),
    ],
)
def test_the_second_part_borrows_what_it_leaves_out(
    text: str, expected: list[tuple[str, dict[str, Any]]]
) -> None:
    assert calls(plan(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "watch task 50 and task 51",
            [
                ("watch", {"task_id": 50, "event": "change"}),
                ("watch", {"task_id": 51, "event": "change"}),
            ],
        ),
        (
            "tell droplets 5 and 7 that the db is back",
            [
                ("send_message", {"target_droplet_id": 5, "message": "the db is back"}),
                ("send_message", {"target_droplet_id": 7, "message": "the db is back"}),
            ],
        ),
        (
            "okay so can you deploy droplet 16 and uh make it high priority",
            [
                (
                    "create_task",
                    {"task_type": "deploy", "payload": {"target_droplet_id": 16}, "priority": 3},
                )
            ],
        ),
        (
            "the failed deploys on droplet 16, retry them",
            [("retry_tasks", {"status": "failed", "droplet_id": 16, "task_type": "deploy"})],
        ),
        (
            "send droplet 5 'prep for patch' and let me know if droplet 5 goes down",
            [
                ("send_message", {"target_droplet_id": 5, "message": "prep for patch"}),
                ("watch", {"droplet_id": 5, "event": "down"}),
            ],
        ),
        (
            "tell me when droplet 7 is back and also when droplet 3 goes down",
            [
                ("watch", {"droplet_id": 7, "event": "up"}),
                ("watch", {"droplet_id": 3, "event": "down"}),
            ],
        ),
        (
            "send a message to droplet 105 that says hello from on-call",
            [("send_message", {"target_droplet_id": 105, "message": "hello from on-call"})],
        ),
        ("tasks 5, 6 and 8 all cancelled please", [("cancel_tasks", {"task_ids": [5, 6, 8]})]),
        (
            "droplet 16 needs provisioning, normal priority",
            [
                (
                    "create_task",
                    {"task_type": "provision", "payload": {"target_droplet_id": 16}, "priority": 5},
                )
            ],
        ),
        ("stop watch number two", [("unwatch", {"watch_id": 2})]),
        ("could you please tell me how everything is looking", [("system_status", {})]),
    ],
)
def test_forms_from_the_ninth_blind_batch(
    text: str, expected: list[tuple[str, dict[str, Any]]]
) -> None:
    assert calls(plan(text)) == expected


@pytest.mark.parametrize(
    "text",
    ["how are you doing today?", "can you recommend a good pizza place nearby?"],
)
def test_small_talk_and_errands_are_not_task_listings(text: str) -> None:
    assert plan(text).kind == "answer"


def test_cancelling_the_cancelled_tasks_is_refused_not_widened() -> None:
    result = plan("cancel the cancelled tasks")
    assert (result.kind, result.intent) == ("answer", "invalid")


def test_a_recipient_borrowed_from_the_next_request_leaves_the_message_to_ask_for() -> None:
    # Found by the property test above: "message" borrows droplet 14 from "create droplet 14",
    # placed after its own words; cutting the message after it indexed past the request.
    plan = plan_message("message and create droplet 14", PlanContext())
    _assert_valid(plan)
    assert plan.calls == [ToolCall(tool="send_message", args={"target_droplet_id": 14})]
    assert plan.missing == ["message"]


def test_the_previous_request_is_planned_again_only_when_the_follow_up_could_take_it() -> None:
    """ "what about droplet 16?" re-plans the last request to carry it on; "show droplets" has
    nothing a tool could take from an earlier request, so the earlier one is not planned."""
    planned: list[str] = []

    class Counting(OfflinePlanner):
        def plan_now(self, text: str, context: PlanContext) -> Plan:
            planned.append(text)
            return super().plan_now(text, context)

    planner = Counting(TOOLS)
    turns = history("show failed tasks for droplet 14", "Task 3 failed.")
    context = PlanContext(aliases=ALIASES, history=turns)

    shown = planner.plan_now("show droplets", context)
    assert [c.tool for c in shown.calls] == ["list_droplets"]
    assert planned == ["show droplets"]

    planned.clear()
    carried = planner.plan_now("what about droplet 16?", context)
    assert calls(carried) == [("list_tasks", {"assigned_droplet_id": 16, "status": "failed"})]
    assert planned == ["what about droplet 16?", "show failed tasks for droplet 14"]


_KINDS = sorted(
    {"number", "pronoun", "all", "message", "url", "quote"}.union(
        *(t.slot_kinds | t.entities | t.needs | t.excludes for t in PLANNER._index.tables)
    )
)


@given(st.sets(st.sampled_from(_KINDS)))
def test_entities_no_tool_could_take_never_fit_a_tool(kinds: set[str]) -> None:
    """The shortcut that skips planning the previous request again is only ever taken when
    that request's tool could not have been given these entities."""
    ents = Entities(found=[Found(kind, 1, n, n) for n, kind in enumerate(sorted(kinds))])
    if PLANNER._may_fit(ents):
        return
    assert not any(PLANNER._fits(tool.name, ents) for tool in TOOLS)
    assert ents.kinds() - {"pronoun"} != {"number"}  # what `_takes_number` needs
