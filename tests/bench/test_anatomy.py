"""`python -m bench.anatomy` (part of `make bench`) still runs against the app as it is: it
times the app's parts by wrapping them, and a part renamed or moved breaks it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_anatomy_runs_and_times_every_part(tmp_path: Path) -> None:
    output = tmp_path / "anatomy.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.anatomy",
            "--turns",
            "3",
            "--rounds",
            "1",
            "--llm-calls",
            "2",
            "--db-ops",
            "3",
            "--planner-calls",
            "3",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(output.read_text())
    parts = result["rules"][0]["parts"]
    assert {"planner.plan", "store.record_turn", "executor.execute"} <= set(parts)
    assert result["llm"]["model_request_post_json"]["calls_per_turn"] == 1.0
    assert result["planners"]["gemini"]["loop_cpu_ms_mean"] > 0
