"""The tools' cues compiled into tables, and the scoring of one request against them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.conversation.understanding.cues import MIN_SCORE, PHRASE_WORD, WEIGHTS, CueIndex, Score
from app.conversation.understanding.entities import AliasIndex, Entities, extract
from app.conversation.understanding.text import tokenize
from app.tools.base import Channel, Cues, Outcome, Slot, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.registry import default_tools

TOOLS = default_tools()
INDEX = CueIndex(TOOLS)
ALIASES = {"registry": 1, "orchestrator": 10, "voice": 18, "visibility deck": 14}


def score(text: str, index: CueIndex = INDEX) -> list[Score]:
    parsed = tokenize(text, index.vocabulary)
    ents = extract(parsed, parsed.tokens, AliasIndex.of(ALIASES))
    available = frozenset(ents.kinds())
    if ents.has("number"):
        available |= {"droplet", "task"}
    return index.score(parsed.words, ents, available=available, spoken=parsed.spoken)


def best(text: str) -> str:
    scores = score(text)
    assert scores and scores[0].total >= MIN_SCORE, scores[:2]
    return scores[0].tool


# ---- the real tools ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tool"),
    [
        ("list droplets", "list_droplets"),
        ("show me all registered droplets", "list_droplets"),
        ("which droplets are down", "list_droplets"),
        ("is droplet 14 healthy?", "droplet_status"),
        ("droplet 14?", "droplet_status"),
        ("what can droplet 16 do?", "droplet_capabilities"),
        ("list failed tasks", "list_tasks"),
        ("status of task 7", "task_status"),
        ("what happened to task 12", "task_status"),
        ("system status", "system_status"),
        ("how is everything?", "system_status"),
        ("any alerts?", "system_alerts"),
        ("create a build task for droplet 3", "create_task"),
        ("cancel task 7", "cancel_task"),
        ("delete task 10", "cancel_task"),
        ("kill job 4", "cancel_task"),
        ("tell droplet 18 the deploy is done", "send_message"),
        ("help", "help"),
        ("what can you do", "help"),
        ("stop watching task 7", "unwatch"),
    ],
)
def test_simple_requests_pick_the_expected_tool(text: str, tool: str) -> None:
    assert best(text) == tool


def test_a_phrase_counts_with_its_fillers() -> None:
    # "can you" is a filler elsewhere, but "what can you do" names help as said.
    (top, *_) = score("what can you do")
    assert top.tool == "help"
    assert top.named
    assert "phrase:what can you do" in top.evidence


def test_the_longest_cue_owns_its_words() -> None:
    scores = {s.tool: s for s in score("stop watching task 7")}
    assert "verb:stop" not in scores["cancel_task"].evidence
    assert scores["unwatch"].total > scores["cancel_task"].total


def test_a_tool_that_needs_an_id_is_no_candidate_without_one() -> None:
    assert "droplet_status" not in {s.tool for s in score("how healthy is it")}
    assert "task_status" not in {s.tool for s in score("what is the status")}


def test_words_against_a_tool_lower_its_score() -> None:
    one = {s.tool: s.total for s in score("cancel task 7")}
    many = {s.tool: s.total for s in score("cancel all tasks 7")}
    assert many["cancel_task"] < one["cancel_task"]


def test_a_messaging_verb_said_to_me_is_not_a_message() -> None:
    scores = {s.tool: s for s in score("tell me when droplet 16 is back")}
    assert "verb:tell" not in scores["send_message"].evidence


def test_scores_are_sorted_best_first() -> None:
    totals = [s.total for s in score("create a build task for droplet 3")]
    assert totals == sorted(totals, reverse=True)


def test_the_vocabulary_holds_every_cue_word() -> None:
    for word in ("cancel", "droplets", "alerts", "capabilities", "watching", "help"):
        assert word in INDEX.vocabulary
    assert "pizza" not in INDEX.vocabulary


@pytest.mark.parametrize(
    ("words", "at", "expected"),
    [
        ("cancel task 7", 0, True),
        ("kick off a build", 0, True),
        ("please cancel task 7", 1, True),
        ("task 7 please", 0, False),
        ("the alerts", 0, False),
    ],
)
def test_starts_with_verb(words: str, at: int, expected: bool) -> None:
    assert INDEX.starts_with_verb(words.split(), at) is expected


# ---- the arithmetic, on tools made for it --------------------------------------------------------


class ZapArgs(ToolArgs):
    widget_id: int | None = None


class Zap(Tool[ZapArgs]):
    name = "zap"
    description = "Zaps widgets."
    Args = ZapArgs
    slots = {"widget_id": Slot("number")}
    cues = Cues(
        verbs=("zap",),
        nouns=("widgets",),
        phrases=("zap them all",),
        context=("now",),
        against=("gently",),
    )

    async def run(self, args: ZapArgs, ctx: RunContext, out: Outcome) -> None:
        return None

    def render(self, out: Outcome, channel: Channel) -> str:
        return "zapped"


class Poke(Zap):
    name = "poke"
    cues = Cues(verbs=("poke",), needs=("task",))


class Buzz(Zap):
    name = "buzz"
    cues = Cues(verbs=("buzz",))


TOY = CueIndex([Zap(), Poke(), Buzz()])


def toy(text: str, available: frozenset[str] = frozenset()) -> dict[str, Score]:
    words = text.split()
    return {s.tool: s for s in TOY.score(words, Entities(), available=available)}


def test_a_leading_verb_earns_the_bonus() -> None:
    lead = toy("zap widgets")["zap"]
    middle = toy("widgets zap widgets")["zap"]
    assert lead.total == WEIGHTS["verb"] + WEIGHTS["lead"] + WEIGHTS["noun"]
    assert middle.total == WEIGHTS["verb"] / 2 + WEIGHTS["noun"]
    assert lead.total - middle.total == pytest.approx(WEIGHTS["verb"] / 2 + WEIGHTS["lead"])


def test_a_verb_said_last_or_after_a_separator_is_a_command() -> None:
    command = WEIGHTS["verb"] + WEIGHTS["lead"] + WEIGHTS["noun"]
    assert toy("widgets zap")["zap"].total == command  # "task 88 cancel"
    assert toy("widgets , zap widgets")["zap"].total == command + WEIGHTS["noun"] - WEIGHTS["noun"]
    assert toy("widgets -> zap them")["zap"].total == command


def test_a_question_is_not_commanded_by_its_last_word() -> None:
    assert toy("what widgets zap")["zap"].total == WEIGHTS["verb"] / 2 + WEIGHTS["noun"]


def test_a_gerund_in_the_middle_is_a_noun_not_a_command() -> None:
    assert "verb:zap" not in toy("any widgets besides zapping today")["zap"].evidence
    assert "verb:zap" in toy("start zapping widgets")["zap"].evidence


def test_connecting_words_do_not_take_the_lead() -> None:
    assert toy("and then zap widgets")["zap"].total == toy("zap widgets")["zap"].total


def test_phrases_are_worth_more_with_every_word() -> None:
    scores = toy("please zap them all")["zap"]
    assert scores.named and scores.phrases == 1
    assert scores.verbs == 0  # the phrase owns "zap"
    # The phrase starts with the tool's own verb, as a command: it earns the lead bonus too.
    assert scores.total == WEIGHTS["phrase"] + PHRASE_WORD * 2 + WEIGHTS["lead"]


def test_context_supports_and_against_subtracts() -> None:
    base = toy("zap widgets")["zap"].total
    assert toy("zap widgets now")["zap"].total == base + WEIGHTS["context"]
    assert toy("zap widgets gently")["zap"].total == base + WEIGHTS["against"]


def test_a_noun_alone_supports_without_naming() -> None:
    only = toy("widgets")["zap"]
    assert only.total == WEIGHTS["noun"] == MIN_SCORE
    assert not only.named


def test_needs_decides_candidacy() -> None:
    assert "poke" not in toy("poke it")
    with_task = toy("poke it", frozenset({"task"}))
    assert with_task["poke"].total > 0


def test_stems_match_inflected_words() -> None:
    assert toy("zapping widgets")["zap"].verbs == 1


def test_ties_keep_the_registry_order() -> None:
    forward = TOY.score(["nothing"], Entities(), available=frozenset())
    assert [(s.tool, s.total) for s in forward] == [("zap", 0.0), ("buzz", 0.0)]
    backward = CueIndex([Buzz(), Zap()]).score(["nothing"], Entities(), available=frozenset())
    assert [s.tool for s in backward] == ["buzz", "zap"]


_PLAN_SOME = """
import json, sys
from app.conversation.understanding.planner import OfflinePlanner
from app.domain.plan import PlanContext
from app.tools.registry import default_tools
planner = OfflinePlanner(default_tools())
texts = json.loads(sys.argv[1])
print(json.dumps([planner.plan_now(t, PlanContext()).model_dump(mode="json") for t in texts]))
"""


def test_plans_do_not_depend_on_the_hash_seed() -> None:
    """Equal-length cues were ordered by set iteration, so a confidence (and in principle a
    plan) could differ between two starts of the same service. Two seeds that differed before."""
    texts = ["everything running smoothly?", "okay so I need uh a deploy on droplet 16"]
    outputs = []
    for seed in ("0", "1"):
        done = subprocess.run(
            [sys.executable, "-c", _PLAN_SOME, json.dumps(texts)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=Path(__file__).resolve().parents[3],
        )
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]


def test_cues_are_ordered_longest_first_then_alphabetically() -> None:
    index = CueIndex(default_tools())
    for table in index.tables:
        for group in (table.verbs, table.nouns, table.phrases, table.context, table.against):
            assert list(group) == sorted(group, key=lambda p: (-len(p), p))
