"""`make eval ARGS="--planner gemini|openai|hybrid"` works here, against the local fakes."""

from __future__ import annotations

import pytest

from tests.eval.run_eval import main


@pytest.mark.parametrize("planner", ["gemini", "openai", "hybrid"])
def test_llm_planners_run_the_corpus_through_the_fakes(
    planner: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("GEMINI_API_KEY", "LLM_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["--planner", planner, "--split", "train", "--misses", "0"]) == 0
    out = capsys.readouterr().out
    assert "against fake" in out
    accuracy = float(out.split("== train: ")[1].split("= ")[1].split("%")[0]) / 100
    assert accuracy >= 0.8, out
    calls = float(out.split("LLM calls per turn: ")[1].split()[0])
    if planner == "hybrid":
        assert calls < 0.2  # the rules answer what they are sure of
    else:
        assert 1.0 <= calls <= 1.1  # one round trip per turn, rare corrections
