"""Start-up time: `python -m app.main` to the first `/health` answer, with the peers down.

    .venv/bin/python -m bench.startup [--runs 7]

The Registry and the Orchestrator URLs point at closed loopback ports, so nothing the
service does at start waits for a peer (issue 17's condition). The first run creates and
migrates a fresh SQLite database; the others start on it as every restart does. `/health` is
polled every 2 ms. Prints JSON: every run's seconds and the median of the warm ones; exits 1
if that median is above `--limit` (1.0 s).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procs import PYTHON, free_port, http_call, service_env

POLL_S = 0.002
TIMEOUT_S = 30.0


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError, http.client.HTTPException):
        return http_call(port, "GET", "/health", timeout=0.5)[0] < 500
    return False


def one_start(data_dir: Path) -> float:
    port = free_port()
    env = service_env(
        {
            "REGISTRY_URL": f"http://127.0.0.1:{free_port()}",
            "ORCHESTRATOR_URL": f"http://127.0.0.1:{free_port()}",
            "DATA_DIR": str(data_dir),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "ENVIRONMENT": "development",
            "PLANNER": "rules",
        },
        drop=set(),
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        [PYTHON, "-m", "app.main"],
        env=env,
        cwd=data_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not _answers(port):
            if proc.poll() is not None:
                raise SystemExit(f"app.main exited with {proc.returncode} during start-up")
            if time.monotonic() - started > TIMEOUT_S:
                raise SystemExit(f"no /health answer after {TIMEOUT_S:.0f} s")
            time.sleep(POLL_S)
        return time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--limit", type=float, default=1.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="d12-startup-") as tmp:
        runs = [round(one_start(Path(tmp)), 3) for _ in range(max(2, args.runs))]
    warm = statistics.median(runs[1:])
    sys.stdout.write(
        json.dumps({"first_s": runs[0], "warm_median_s": warm, "runs_s": runs}, indent=2) + "\n"
    )
    return 0 if warm <= args.limit else 1


if __name__ == "__main__":
    raise SystemExit(main())
