"""`python -m bench.instructions`: reading callgrind's totals, the per-turn arithmetic, and one
real count of droplet 12 under valgrind (so a renamed setting or a changed answer breaks it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.config import Settings
from bench.instructions import (
    DEFAULT_LOG_LEVEL,
    MIN_WARMUP,
    Lifetimes,
    baseline_environment,
    module_of,
    over_baseline,
    per_turn,
    service_environment,
    totals,
    turns_of,
    warmup_of,
)
from bench.procs import BenchError
from bench.run import BASELINE_STEP, droplet12_env

ROOT = Path(__file__).resolve().parents[2]


def test_totals_are_read_from_callgrinds_output() -> None:
    text = "version: 1\ncmd: python -m app.main\nevents: Ir\nsummary: 123\ntotals: 6270003215\n"
    assert totals(text) == 6270003215


def test_an_output_without_totals_is_an_error() -> None:
    with pytest.raises(BenchError, match="totals"):
        totals("events: Ir\nsummary: 5\n")


def test_a_turn_costs_what_the_longer_run_spent_beyond_the_warm_up() -> None:
    assert per_turn(warm_only=1_000, warm_and_measured=1_500, turns=100) == 5.0
    with pytest.raises(BenchError):
        per_turn(warm_only=1, warm_and_measured=2, turns=0)


def test_scenarios_send_what_make_bench_sends() -> None:
    assert [t.text for t in turns_of("read")] == ["show me all droplets"]
    assert len(turns_of("mix")) >= 50
    assert {t.path for s in ("read", "mix", "write") for t in turns_of(s)} == {"/api/chat"}
    write = turns_of("write")
    assert [t.text for t in write][1] == "yes"
    assert "awaiting_confirmation" in write[0].expect
    with pytest.raises(BenchError, match="unknown scenario"):
        turns_of("nope")


def test_the_baseline_is_make_benchs_trivial_post() -> None:
    [turn] = turns_of("baseline")
    step = json.loads(BASELINE_STEP["body"])
    assert (turn.path, turn.text, turn.expect) == (
        BASELINE_STEP["path"],
        step["message"],
        BASELINE_STEP["expect"],
    )
    assert module_of("baseline") == "bench.baseline"
    assert {module_of(s) for s in ("read", "mix", "write")} == {"app.main"}


def test_the_baselines_environment_holds_only_its_address_and_the_tree(tmp_path: Path) -> None:
    env = baseline_environment(tree=tmp_path / "tree", port=4242)
    assert (env["HOST"], env["PORT"], env["PYTHONPATH"]) == (
        "127.0.0.1",
        "4242",
        str(tmp_path / "tree"),
    )
    assert env["PYTHONHASHSEED"] == "0"
    assert not {"REGISTRY_URL", "DATA_DIR", "LOG_LEVEL"} & env.keys()


def test_each_scenario_is_set_against_the_trivial_post() -> None:
    rows = {
        "baseline": {"per_turn": 400_000.0},
        "read": {"per_turn": 2_800_000.0},
        "write": {"per_turn": 3_900_000.0},
    }
    assert over_baseline(rows) == {"read": 7.0, "write": 9.75}
    assert over_baseline({"read": {"per_turn": 1.0}}) == {}


def test_the_warm_up_sends_every_distinct_turn_once_before_counting() -> None:
    assert warmup_of("read") == MIN_WARMUP
    assert warmup_of("write") == MIN_WARMUP
    assert warmup_of("mix") == len(turns_of("mix")) > MIN_WARMUP


@pytest.mark.parametrize(
    ("spans", "stops"),
    [
        # The warm-up run answered 15 s before the measured one and was served 2 s later; the
        # measured run took 5 s. When both are served (at 30 s) the warm-up run has lived 20 s
        # since its first answer: it stops now, the measured run 20 s after its first answer.
        ({"warm": (10.0, 12.0), "measured": (25.0, 30.0)}, {"warm": 30.0, "measured": 45.0}),
        # The measured run answered first and was served first: no stop before both are served.
        ({"measured": (0.0, 1.0), "warm": (3.0, 7.0)}, {"measured": 7.0, "warm": 10.0}),
    ],
)
def test_each_run_lives_as_long_after_its_first_answer_as_the_other(
    spans: dict[str, tuple[float, float]], stops: dict[str, float]
) -> None:
    lifetimes = Lifetimes(("warm", "measured"))
    for name, (ready_at, served_at) in spans.items():
        lifetimes.served(name, ready_at=ready_at, served_at=served_at)
    assert {name: lifetimes.stop_at(name) for name in stops} == stops


def test_a_failed_run_releases_the_other_at_once() -> None:
    lifetimes = Lifetimes(("warm", "measured"))
    lifetimes.served("warm", ready_at=1.0, served_at=2.0)
    stops: list[float] = []
    waiter = threading.Thread(
        target=lambda: stops.append(lifetimes.stop_at("warm", timeout=600.0)), daemon=True
    )
    waiter.start()
    lifetimes.failed()
    waiter.join(timeout=10.0)
    assert stops == [2.0]


def test_a_run_left_alone_stops_when_served_after_the_timeout() -> None:
    lifetimes = Lifetimes(("warm", "measured"))
    lifetimes.served("warm", ready_at=1.0, served_at=2.0)
    assert lifetimes.stop_at("warm", timeout=0.0) == 2.0


def _mesh(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(
        registry_url="http://127.0.0.1:1",
        orchestrator_url="http://127.0.0.1:2",
        registry_key="k",
        private_key_path=tmp_path / "private.pem",
        public_key_path=tmp_path / "public.pem",
    )


def test_the_log_level_is_make_benchs_unless_asked(tmp_path: Path) -> None:
    mesh = _mesh(tmp_path)
    bench_env = droplet12_env(mesh, data_dir=tmp_path, port=1)
    assert bench_env["LOG_LEVEL"] == DEFAULT_LOG_LEVEL
    for level in (DEFAULT_LOG_LEVEL, "INFO"):
        env = service_environment(
            mesh, tree=tmp_path / "tree", data_dir=tmp_path, port=1, log_level=level
        )
        assert env["LOG_LEVEL"] == level
        assert env["PYTHONPATH"] == str(tmp_path / "tree")
        assert env["REGISTRY_URL"] == bench_env["REGISTRY_URL"]
        # Valgrind's slowness made up for: each by a setting the service reads.
        for name in ("DIRECTORY_TTL_S", "TASK_POLL_INTERVAL_S", "PEER_TIMEOUT_S"):
            assert name.lower() in Settings.model_fields
        assert float(env["PEER_TIMEOUT_S"]) >= 60


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_counts_a_real_turn_of_droplet_12_under_valgrind(tmp_path: Path) -> None:
    """Slow (2-3 min): the trivial POST's app, then droplet 12, each starts twice under
    valgrind, at once. 20 turns are some 55 M instructions, well above what is left by the
    clock when the start-ups end far apart (8 M with them 86 s apart, one core busy with other
    work)."""
    assert shutil.which("valgrind"), "valgrind is needed (Debian package valgrind)"
    output = tmp_path / "instructions.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.instructions",
            "--scenarios",
            "baseline,read",
            "--turns",
            "20",
            "--warmup",
            "2",
            "--log-level",
            "info",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(output.read_text())
    assert report["log_level"] == "INFO"
    assert "LOG_LEVEL=INFO" in done.stdout
    row = report["trees"][str(ROOT)]["read"]
    assert row["warm_and_measured"] > row["warm_only"] > 0
    # A read turn is some millions of instructions: neither nothing nor a whole start-up.
    assert 0.3e6 < row["per_turn"] < 50e6
    # The trivial POST is counted the same way, and costs less than a turn.
    base = report["trees"][str(ROOT)]["baseline"]
    assert 0 < base["per_turn"] < row["per_turn"]
    assert report["over_baseline"][str(ROOT)]["read"] > 1
