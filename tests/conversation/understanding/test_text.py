"""From what was typed or heard to tokens: contractions, numbers, fillers, repeats, typos,
URLs and quotes, each token keeping where it came from."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import OSA
from rapidfuzz.process import extractOne

from app.conversation.understanding.text import (
    WORD,
    Text,
    Token,
    Vocabulary,
    _expand,
    _expand_word,
    tokenize,
)

VOCABULARY = frozenset({"cancel", "task", "tasks", "show", "droplets", "alerts", "status"})


def words(text: str, vocabulary: frozenset[str] = frozenset()) -> list[str]:
    return tokenize(text, vocabulary).words


def originals(parsed: Text) -> list[str]:
    return [parsed.original[t.start : t.end] for t in parsed.tokens]


# ---- contractions and shapes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what's up", ["what", "is", "up"]),
        ("how's droplet 14", ["how", "is", "droplet", "14"]),
        ("I'm new", ["i", "am", "new"]),
        ("don't cancel it", ["do", "not", "cancel", "it"]),
        ("it isn't done", ["it", "is", "not", "done"]),
        ("what\u2019s the status", ["what", "is", "the", "status"]),
        ("the registry's tasks", ["the", "registry", "'s", "tasks"]),
        ("gimme alerts", ["give", "me", "alerts"]),
    ],
)
def test_contractions_are_expanded(text: str, expected: list[str]) -> None:
    assert words(text) == expected


def test_an_expanded_contraction_points_at_the_word_it_came_from() -> None:
    parsed = tokenize("what's up")
    assert originals(parsed) == ["what's", "what's", "up"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("d14 status", ["droplet", "14", "status"]),
        ("droplet-14", ["droplet", "14"]),
        ("task7", ["task", "7"]),
        ("job-12", ["task", "12"]),
        ("p2", ["priority", "2"]),
        ("prio3", ["priority", "3"]),
        ("#14", ["#", "14"]),
    ],
)
def test_short_forms_are_spelled_out(text: str, expected: list[str]) -> None:
    parsed = tokenize(text)
    assert parsed.words == expected
    (number,) = [t for t in parsed.tokens if t.num is not None]
    assert number.text == str(number.num)
    assert number.text in parsed.original[number.start : number.end]


# ---- numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "number"),
    [
        ("status of droplet forty two", ["status", "of", "droplet", "42"], 42),
        ("task twenty-three", ["task", "23"], 23),
        ("task one hundred and five", ["task", "105"], 105),
        ("cancel task one oh five", ["cancel", "task", "105"], 105),
        ("droplet one", ["droplet", "1"], 1),
        ("priority one", ["priority", "1"], 1),
    ],
)
def test_number_words_become_digits(text: str, expected: list[str], number: int) -> None:
    parsed = tokenize(text)
    assert parsed.words == expected
    last = parsed.tokens[-1]
    assert (last.num, last.spelled, last.ordinal) == (number, True, False)


def test_a_spelled_number_covers_all_its_words() -> None:
    parsed = tokenize("task one hundred and five now")
    assert originals(parsed) == ["task", "one hundred and five", "now"]


def test_an_ordinal_keeps_its_word() -> None:
    parsed = tokenize("show the first five tasks")
    assert parsed.words == ["show", "the", "first", "5", "tasks"]
    first = parsed.tokens[2]
    assert (first.num, first.ordinal) == (1, True)


@pytest.mark.parametrize(
    "text",
    ["cancel that one", "create a monitoring one", "one for droplet 4", "the other one too"],
)
def test_one_as_a_pronoun_stays_a_word(text: str) -> None:
    parsed = tokenize(text)
    ones = [t for t in parsed.tokens if t.text == "one"]
    assert len(ones) == 1
    assert ones[0].num is None


def test_digits_are_numbers_too() -> None:
    token = tokenize("task 7").tokens[1]
    assert (token.num, token.spelled, token.is_num) == (7, False, True)
    assert not tokenize("task").tokens[0].is_num


# ---- fillers and repeats -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "fillers"),
    [
        ("uh um list droplets", ["list", "droplets"], 2),
        ("can you please list the droplets", ["list", "the", "droplets"], 1),
        ("list the droplets please", ["list", "the", "droplets"], 1),
        ("could you show alerts for me thanks", ["show", "alerts"], 3),
        ("hey so, um, what is up", [",", ",", "what", "is", "up"], 3),
        ("okay so list droplets", ["list", "droplets"], 1),
        ("would you mind listing tasks", ["listing", "tasks"], 1),
    ],
)
def test_fillers_are_dropped_and_counted(text: str, expected: list[str], fillers: int) -> None:
    parsed = tokenize(text)
    assert parsed.words == expected
    assert parsed.fillers == fillers


def test_spoken_words_keep_their_fillers() -> None:
    parsed = tokenize("what can you do")
    assert parsed.words == ["what", "do"]
    assert parsed.spoken == ["what", "can", "you", "do"]


def test_some_fillers_are_words_after_the_start() -> None:
    # "so" and "well" open a sentence as fillers; later they mean something.
    assert words("so list droplets") == ["list", "droplets"]
    assert words("list droplets, so what") == ["list", "droplets", ",", "so", "what"]
    assert words("is it doing well") == ["is", "it", "doing", "well"]


def test_repeated_words_are_collapsed() -> None:
    parsed = tokenize("show the the the droplets")
    assert parsed.words == ["show", "the", "droplets"]
    assert originals(parsed) == ["show", "the", "droplets"]


def test_repeated_numbers_are_kept() -> None:
    assert words("tasks 7 7") == ["tasks", "7", "7"]


# ---- typos ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "fixed"),
    [("cancle", "cancel"), ("shwo", "show"), ("dropltes", "droplets"), ("statsu", "status")],
)
def test_typos_are_corrected_towards_the_vocabulary(typed: str, fixed: str) -> None:
    parsed = tokenize(f"{typed} task 7", VOCABULARY)
    assert parsed.tokens[0].text == fixed
    assert parsed.tokens[0].fixed
    assert parsed.typos == 1
    assert parsed.original[parsed.tokens[0].start : parsed.tokens[0].end] == typed


@pytest.mark.parametrize(
    "word",
    [
        "xylophone",  # nothing close
        "bcancel",  # not the same first letter
        "cancelling",  # an inflection of a known word
        "tsk",  # too short to correct safely
        "these",  # a function word, known in its own right
    ],
)
def test_words_are_never_corrected_away_from_what_they_are(word: str) -> None:
    parsed = tokenize(f"{word} droplets", VOCABULARY)
    assert parsed.tokens[0].text == word
    assert not parsed.tokens[0].fixed
    assert parsed.typos == 0


def test_a_long_typo_of_the_longest_word_is_corrected() -> None:
    # Two edits (a doubled first and last letter) are allowed in a word of eight letters,
    # which makes it longer than any word of the vocabulary.
    assert Vocabulary({"status", "task"}).correction("sstatuss") == "status"


def test_without_a_vocabulary_nothing_is_corrected() -> None:
    parsed = tokenize("cancle task 7")
    assert parsed.words[0] == "cancle"
    assert parsed.typos == 0


@settings(max_examples=300, deadline=None)
@given(
    st.frozensets(st.text(alphabet="abc", min_size=1, max_size=10), max_size=40),
    st.text(alphabet="abc", min_size=4, max_size=12),
)
# A word two edits longer than the longest choice (found by this test in CI).
@example(frozenset({"aaaaaa"}), "aaaaaaaa")
def test_a_correction_is_the_nearest_of_all_choices(vocabulary: frozenset[str], word: str) -> None:
    """Vocabulary.correction searches by length and first letter; the answer is the same as
    searching every choice (a small alphabet makes many ties)."""
    limit = 1 if len(word) <= 7 else 2
    best = extractOne(word, sorted(vocabulary), scorer=OSA.distance, score_cutoff=limit)
    expected = best[0] if best is not None and best[0][0] == word[0] else None
    assert Vocabulary(vocabulary).correction(word) == expected


# ---- urls and quotes -----------------------------------------------------------------------------


def test_urls_are_kept_whole_as_placeholders() -> None:
    parsed = tokenize("code at https://github.com/x/droplet-14, priority 3")
    assert parsed.urls == ["https://github.com/x/droplet-14"]
    assert parsed.words == ["code", "at", "\x00url0", ",", "priority", "3"]
    url = parsed.tokens[2]
    assert parsed.original[url.start : url.end] == "\x00url0"
    assert originals(parsed)[0] == "code"


def test_trailing_punctuation_is_not_part_of_a_url() -> None:
    parsed = tokenize("see https://a.io/x. and (http://b.io/y)")
    assert parsed.urls == ["https://a.io/x", "http://b.io/y"]


@pytest.mark.parametrize(
    ("text", "quote"),
    [
        ('tell droplet 18 "deploy is done" now', "deploy is done"),
        ("say 'hello world' to droplet 3", "hello world"),
        ("tell droplet 18 “Deploy Is Done”", "Deploy Is Done"),
    ],
)
def test_quotes_are_kept_whole_with_their_case(text: str, quote: str) -> None:
    parsed = tokenize(text)
    assert parsed.quotes == [quote]
    assert "\x00quote0" in parsed.words
    (token,) = [t for t in parsed.tokens if t.text == "\x00quote0"]
    assert parsed.original[token.start : token.end] == "\x00quote0"


def test_an_apostrophe_in_a_word_is_not_a_quote() -> None:
    parsed = tokenize("it's droplet 14's task")
    assert parsed.quotes == []


def test_cut_gives_back_the_original_text_of_a_span() -> None:
    parsed = tokenize("Tell droplet 18: The Deploy is DONE")
    colon = parsed.words.index(":")
    assert parsed.cut(colon + 1, len(parsed.tokens) - 1) == "The Deploy is DONE"
    assert parsed.cut(0, 2) == "Tell droplet 18"
    assert parsed.cut(3, 1) == ""
    assert parsed.cut(99, 100) == ""


def test_joined_is_the_normalised_message() -> None:
    assert tokenize("Uh, WHAT'S the status of D14?").joined() == (
        ", what is the status of droplet 14 ?"
    )


# ---- offsets always point into the text ----------------------------------------------------------


@given(st.text(max_size=80))
def test_offsets_are_always_inside_the_text(text: str) -> None:
    parsed = tokenize(text, VOCABULARY)
    for token in parsed.tokens:
        assert isinstance(token, Token)
        assert 0 <= token.start <= token.end <= len(parsed.original)
        assert token.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("verify droplet for teen", ["verify", "droplet", "14"]),
        ("cancel task ate", ["cancel", "task", "8"]),
        ("build it at priority won", ["build", "it", "at", "priority", "1"]),
        ("show the last couple of alerts", ["show", "the", "last", "2", "alerts"]),
        ("a dozen alerts", ["12", "alerts"]),
        ("half a dozen tasks", ["6", "tasks"]),
        ("re run task 9", ["rerun", "task", "9"]),
    ],
)
def test_what_a_transcriber_makes_of_numbers(text: str, expected: list[str]) -> None:
    assert words(text) == expected


@pytest.mark.parametrize(
    "text",
    ["create a task for droplet 3", "change the priority to high", "assign task to droplet 5"],
)
def test_a_homophone_followed_by_more_words_stays_a_word(text: str) -> None:
    assert words(text) == text.split()


def test_chat_shorthand_is_spelled_out() -> None:
    assert words("r u there") == ["are", "you", "there"]
    assert words("any droplets down rn") == ["any", "droplets", "down"]  # "right now": filler


def test_an_arrow_is_one_token() -> None:
    assert words("failed deploys -> retry") == ["failed", "deploys", "->", "retry"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cancel task twenty no wait twenty one", ["cancel", "task", "21"]),
        ("deploy droplet thirty three no sorry thirty four", ["deploy", "droplet", "34"]),
        ("check droplet 5, no, droplet 6", ["check", "droplet", "6"]),
        ("priority 3 i mean 2", ["priority", "2"]),
        ("task 8 actually 9", ["task", "9"]),
    ],
)
def test_a_number_corrected_as_it_is_said_keeps_only_the_correction(
    text: str, expected: list[str]
) -> None:
    assert tokenize(text).words == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("task thirty status no wait thirty one", ["task", "31", "status"]),
        ("show 5 failed tasks sorry 10", ["show", "10", "failed", "tasks"]),
    ],
)
def test_a_number_corrected_a_few_words_later_is_replaced_where_it_stood(
    text: str, expected: list[str]
) -> None:
    assert tokenize(text).words == expected


@pytest.mark.parametrize("text", ["cancel tasks 4, 7 and 9", "cancel task 5 or 6", "tasks 4 not 5"])
def test_numbers_without_a_correction_word_are_all_kept(text: str) -> None:
    numbers = [t.num for t in tokenize(text).tokens if t.num is not None]
    assert len(numbers) >= 2


@given(st.text(alphabet=" \t\nab'-1:#,.?=>+&\x00urlq\u00e9\u0663\u00b2", max_size=40))
def test_words_taken_without_the_regex_are_its_matches(text: str) -> None:
    """Chunks of plain letters skip the regex; the tokens are those of its matches."""
    lowered = text.lower()
    expected: list[Token] = []
    for match in WORD.finditer(lowered):
        _expand_word(match.group(), match.start(), match.end(), expected)
    assert _expand(lowered) == expected


# ---- terse chat-ops shorthand and homophones in more places ------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lmk when it is done", ["let", "me", "know", "when", "it", "is", "done"]),
        ("nvm", ["never", "mind"]),
        ("t 105 stat", ["task", "105", "status"]),
        ("d 9 caps", ["droplet", "9", "capabilities"]),
        ("droplets w/ errors", ["droplets", "with", "errors"]),
        ("rerun fails", ["rerun", "failed"]),
        ("deploy on boarding", ["deploy", "onboarding"]),
        # Near-misses: a lone letter without a number, "on" before another word.
        ("t is fine", ["t", "is", "fine"]),
        ("turn on backups", ["turn", "on", "backups"]),
    ],
)
def test_chat_shorthand_is_expanded(text: str, expected: list[str]) -> None:
    assert words(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the last ate alerts", ["the", "last", "8", "alerts"]),
        ("top for tasks", ["top", "4", "tasks"]),
        ("task for hundred", ["task", "400"]),
        ("task sixty ate status", ["task", "68", "status"]),
        ("cancel tasks for and ate", ["cancel", "tasks", "4", "and", "8"]),
        ("tell me when task to finishes", ["tell", "me", "when", "task", "2", "finishes"]),
        # Near-misses: the same words as words.
        ("the last one to fail", ["the", "last", "one", "to", "fail"]),
        ("a task for droplet 3", ["a", "task", "for", "droplet", "3"]),
        ("the last alerts for the registry", ["the", "last", "alerts", "for", "the", "registry"]),
        ("tasks to cancel", ["tasks", "to", "cancel"]),
        ("droplet 5 and to droplet 6", ["droplet", "5", "and", "to", "droplet", "6"]),
    ],
)
def test_homophones_read_as_numbers_where_a_number_stands(text: str, expected: list[str]) -> None:
    assert words(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wait, not 12, 21", ["wait", ",", "21"]),
        ("not droplet 5, droplet 6", ["droplet", "6"]),
        # Near-misses: a negated command, a list after "not".
        ("do not cancel 5, cancel 6", ["do", "not", "cancel", "5", ",", "cancel", "6"]),
        ("not 5, 6 and 7", ["not", "5", ",", "6", "and", "7"]),
    ],
)
def test_a_denied_number_gives_way_to_the_one_meant(text: str, expected: list[str]) -> None:
    assert tokenize(text).spoken == expected


def test_a_marked_piece_gets_its_urls_and_quotes_back() -> None:
    parsed = tokenize('then deploy https://x.io/a and say "all good" after https://x.io/b')
    tail = parsed.original[parsed.tokens[1].start :]
    assert "\x00" in tail
    assert parsed.unmarked(tail) == 'deploy https://x.io/a and say "all good" after https://x.io/b'
