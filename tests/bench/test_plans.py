"""`python -m bench.plans`: the plan file a planner change is checked against."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.plans import corpus, first_difference, main, plans
from tests.eval.run_eval import offline_planner


def test_every_case_of_every_split_is_planned_once_in_order() -> None:
    cases = corpus()
    assert len(cases) > 3000
    assert len({c.id for c in cases}) == len(cases)
    lines = plans(offline_planner(), cases[:3])
    assert len(lines) == 3 and all(line.startswith("{") for line in lines)


def test_the_first_differing_plan_is_named() -> None:
    cases = corpus()[:3]
    lines = plans(offline_planner(), cases)
    assert first_difference(cases, lines, lines) is None
    changed = [lines[0], lines[1].replace('"kind":', '"kind": '), lines[2]]
    difference = first_difference(cases, lines, changed)
    assert difference is not None and difference.startswith(f"[{cases[1].id}]")
    assert first_difference(cases, lines, lines[:2]) == "3 plans here, 2 in the file"


def test_a_check_against_its_own_output_passes_and_against_another_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = tmp_path / "plans.jsonl"
    with pytest.raises(SystemExit) as done:
        main(["--output", str(written), "--rounds", "0"])
    assert done.value.code == 0
    with pytest.raises(SystemExit) as same:
        main(["--check", str(written), "--rounds", "0"])
    assert same.value.code == 0
    assert "are the same" in capsys.readouterr().out
    lines = written.read_text().splitlines()
    written.write_text("\n".join([*lines[:-1], lines[-1].replace("rules", "other")]) + "\n")
    with pytest.raises(SystemExit) as other:
        main(["--check", str(written), "--rounds", "0"])
    assert other.value.code == 1
    assert "plans differ" in capsys.readouterr().err
