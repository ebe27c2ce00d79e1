"""Start-up time: `python -m app.main` to the first `/health` answer, with the peers down.

    .venv/bin/python -m bench.startup [--runs 7] [--no-compile]

The Registry and the Orchestrator URLs point at closed loopback ports, so nothing the
service does at start waits for a peer (issue 17's condition). The first run creates and
migrates a fresh SQLite database; the others start on it as every restart does. `/health` is
polled every 2 ms. Prints JSON: every run's seconds and the median of the warm ones; exits 1
if that median is above `--limit` (1.0 s).

The app's bytecode is compiled first, as the image does (`compileall` in the Dockerfile):
with PYTHONDONTWRITEBYTECODE set and no `__pycache__`, every start would compile ~120 modules
again (~0.15 s). `--no-compile` measures that case (it leaves existing bytecode alone).

Also printed: the CPU time (user + system) the service had used when it first answered, from
/proc. On a shared machine the wall clock moves with whatever else runs; the CPU time does not.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procs import PYTHON, ROOT, free_port, http_call, service_env

POLL_S = 0.002
TIMEOUT_S = 30.0


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError, http.client.HTTPException):
        return http_call(port, "GET", "/health", timeout=0.5)[0] < 500
    return False


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_start(data_dir: Path) -> tuple[float, float]:
    """Seconds from the process start to the first `/health` answer, and its CPU by then."""
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
        return time.monotonic() - started, _cpu_s(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--limit", type=float, default=1.0)
    parser.add_argument(
        "--no-compile", action="store_true", help="do not compile the app's bytecode first"
    )
    args = parser.parse_args(argv)
    if not args.no_compile:
        for package in ("app", "alembic"):
            compileall.compile_dir(ROOT / package, quiet=1)
    with tempfile.TemporaryDirectory(prefix="d12-startup-") as tmp:
        measured = [one_start(Path(tmp)) for _ in range(max(2, args.runs))]
    runs = [round(wall, 3) for wall, _ in measured]
    cpu = [round(used, 2) for _, used in measured]
    warm = statistics.median(runs[1:])
    result = {
        "first_s": runs[0],
        "warm_median_s": warm,
        "runs_s": runs,
        "warm_cpu_median_s": statistics.median(cpu[1:]),
        "cpu_s": cpu,
        "bytecode_compiled": not args.no_compile,
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0 if warm <= args.limit else 1


if __name__ == "__main__":
    raise SystemExit(main())
