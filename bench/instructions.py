"""Instructions per turn of droplet 12, counted by valgrind's callgrind.

    python -m bench.instructions [--scenarios baseline,read,mix,write] [--turns N] [--tree PATH ...]
                                 [--log-level WARNING|INFO|...]

Why: on the shared VMs this runs on, the same code's CPU time per turn moved by up to 20%
between hours (docs/performance.md), more than most single changes save. An instruction count
is the same for the same code, inputs and environment, whatever else the machine does, so two
trees compare in any hour.

How: for each tree (a checkout of this repository; default: this one) and each scenario,
droplet 12 runs as `python -m app.main` under callgrind twice, each against a sandbox mesh of
its own in this process: once for a warm-up of W turns, once for the same warm-up and then N
measured turns. One client, one keep-alive connection, one session per run; PYTHONHASHSEED=0
so both start alike. The difference over N is what one turn costs, start-up excluded. The two
runs of a pair go at once, one per core, and each lives as long after its first answer as the
other (`Lifetimes`), so work droplet 12 does by the clock cancels out; the droplet listing is
fetched once (DIRECTORY_TTL_S, a setting a tree before it ignores). Only droplet 12's process
is counted: the mesh (and the Orchestrator's work for the write pair) and the client are in
this process.

The log level is `make bench`'s (WARNING) unless `--log-level` says otherwise: INFO, the
shipped default, adds each turn's two log lines (`http_request`, `chat_turn`).

Scenarios: `baseline` (`make bench`'s trivial POST: `python -m bench.baseline`, `POST /echo`
with the read turn's body, no mesh), `read` ("show me all droplets"), `mix` (the read mix of
`make bench`, each turn the next text), `write` (the create-task proposal and "yes",
alternately). The baseline is the ruler for issue 17's throughput ratio: a read turn at a third
of the trivial POST's throughput may cost at most three times its CPU, and the instructions of
each are the part of that cost the machine's hour does not change.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import ROOT, BenchError, Service, free_port, service_env
from bench.run import (
    BASELINE_STEP,
    LOG_LEVEL,
    READ_TEXT,
    WRITE_TEXT,
    _settings_names,
    droplet12_env,
    git_info,
    read_mix,
)

OUTPUT = ROOT / "bench" / "results" / "instructions.json"
SCENARIOS = ("baseline", "read", "mix", "write")
MIN_WARMUP = 20
DEFAULT_LOG_LEVEL = LOG_LEVEL
"""`make bench`'s level (bench.run.droplet12_env)."""
_TOTALS = re.compile(r"^totals:\s*(\d+)\s*$", re.M)


@dataclass(frozen=True)
class Turn:
    text: str
    expect: str
    """A string every answer must contain."""
    path: str = "/api/chat"


def turns_of(scenario: str) -> list[Turn]:
    """The turns a scenario sends, in order, again from the start when they run out."""
    if scenario == "baseline":
        step = BASELINE_STEP
        return [Turn(json.loads(step["body"])["message"], step["expect"], path=step["path"])]
    if scenario == "read":
        return [Turn(READ_TEXT, '"status":"ok"')]
    if scenario == "mix":
        return [Turn(json.loads(s["body"])["message"], '"status":"ok"') for s in read_mix()]
    if scenario == "write":
        return [
            Turn(WRITE_TEXT, '"status":"awaiting_confirmation"'),
            Turn("yes", '{"tool":"create_task","status":"ok"}'),
        ]
    raise BenchError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")


def module_of(scenario: str) -> str:
    """What runs under valgrind: the trivial POST's app for `baseline`, else droplet 12."""
    return "bench.baseline" if scenario == "baseline" else "app.main"


def warmup_of(scenario: str) -> int:
    """Turns before counting: every distinct turn once, so what a text costs the first time
    (a lazy import, a compiled pattern, a first render) is not counted as a turn's cost."""
    return max(MIN_WARMUP, len(turns_of(scenario)))


def totals(callgrind_out: str) -> int:
    """The instruction total of a callgrind output file's text."""
    found = _TOTALS.search(callgrind_out)
    if found is None:
        raise BenchError("no 'totals:' line in callgrind's output")
    return int(found.group(1))


def per_turn(*, warm_only: int, warm_and_measured: int, turns: int) -> float:
    """Instructions of one measured turn: what the longer run spent beyond the warm-up run."""
    if turns <= 0:
        raise BenchError("turns must be positive")
    return (warm_and_measured - warm_only) / turns


def python_of(tree: Path) -> str:
    """The tree's own interpreter when it has a venv (its dependencies), else this one."""
    venv = tree / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def service_environment(
    mesh: Any, *, tree: Path, data_dir: Path, port: int, log_level: str
) -> dict[str, str]:
    """Droplet 12's environment under valgrind: `make bench`'s settings, the tree's code."""
    env = service_env(droplet12_env(mesh, data_dir=data_dir, port=port), drop=_settings_names())
    env["LOG_LEVEL"] = log_level
    env["PYTHONPATH"] = str(tree)
    env["PYTHONHASHSEED"] = "0"
    # The droplet listing is fetched once, in the warm-up: fetched again every 5 s, as it is by
    # default, a listing would be counted once every few turns here (valgrind makes a turn some
    # 50 times slower) against once in thousands of turns at full speed.
    env["DIRECTORY_TTL_S"] = "86400"
    # Likewise the poll for assigned tasks: every 10 s is a poll every few turns under valgrind.
    # What is left by the clock (heartbeats, the server's tick) cancels out between the runs.
    env["TASK_POLL_INTERVAL_S"] = "3600"
    # And a peer's answer takes as many times longer to be read. The first peer request after
    # start-up imports aiohttp (app.ops.deferred_imports): some 10 s under valgrind, 14 s with
    # both cores busy, against a tool's limit of twice the peer timeout (10 s by default).
    env["PEER_TIMEOUT_S"] = "60"
    return env


class Lifetimes:
    """When each run of a pair stops: as long after its first answer as the other run.

    Idle, droplet 12 under callgrind executes some 1.5 M instructions a second by the clock
    (the server's tick, health probes, sweeps), half a read turn. Stopping both runs at the
    same moment left that work in the difference: under a CI run's load their start-ups ended
    up to some 15 s apart, and the warm-up run, answering first, counted more than the run with
    three more turns. Each run reports when it first answered and when its turns were served;
    once both have, each lives on until it has lived as long as the first to answer has by
    then. That one stops at once; the other waits as long as their start-ups differed."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = frozenset(names)
        self._spans: dict[str, tuple[float, float]] = {}
        self._failed = False
        self._changed = threading.Condition()

    def served(self, name: str, *, ready_at: float, served_at: float) -> None:
        with self._changed:
            self._spans[name] = (ready_at, served_at)
            self._changed.notify_all()

    def failed(self) -> None:
        """A run failed: the other stops without waiting for it."""
        with self._changed:
            self._failed = True
            self._changed.notify_all()

    def stop_at(self, name: str, timeout: float = 3600.0) -> float:
        """The monotonic time `name` is to stop (its served time if the other run failed)."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._failed or self._names <= self._spans.keys(), timeout
            )
            ready_at, served_at = self._spans[name]
            if self._failed or not self._names <= self._spans.keys():
                return served_at
            spans = self._spans.values()
            return ready_at + max(end for _, end in spans) - min(start for start, _ in spans)


def baseline_environment(*, tree: Path, port: int) -> dict[str, str]:
    """The trivial POST's environment under valgrind: `make bench`'s (bench.run), the tree's
    code."""
    env = service_env({"HOST": "127.0.0.1", "PORT": str(port)}, drop=set())
    env["PYTHONPATH"] = str(tree)
    env["PYTHONHASHSEED"] = "0"
    return env


def count(
    *,
    tree: Path,
    turns: Sequence[Turn],
    sent: int,
    workdir: Path,
    cpu: int,
    log_level: str = DEFAULT_LOG_LEVEL,
    lifetimes: Lifetimes | None = None,
    name: str = "",
    module: str = "app.main",
) -> int:
    """Instructions `python -m <module>` (droplet 12, or the baseline app, from `tree`)
    executes from start to stop, `sent` turns served; with `lifetimes`, it is stopped when they
    say for `name`, however soon its turns are done."""
    from sandbox.testing import start_mesh

    workdir.mkdir(parents=True)
    # The mesh first: its servers take ports of the kernel's choosing, and a port picked before
    # them may be the one the kernel hands to one of them.
    mesh: Any = None
    if module == "app.main":
        mesh = start_mesh(key_dir=workdir / "keys", router_interval=3600.0, seed=True)
    data_dir = workdir / "d12"
    data_dir.mkdir()
    port = free_port()
    if mesh is not None:
        env = service_environment(
            mesh, tree=tree, data_dir=data_dir, port=port, log_level=log_level
        )
    else:
        env = baseline_environment(tree=tree, port=port)
    out = workdir / "callgrind.out"
    # Droplet 12 stops with this thread, even when this process is killed (a test's timeout):
    # an orphan under valgrind would go on burning a core.
    guard = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []
    argv = [
        *guard,
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        python_of(tree),
        "-m",
        module,
    ]
    service = Service(
        name=module,
        argv=argv,
        env=env,
        cwd=data_dir,
        port=port,
        cpus=[cpu],
        log_path=workdir / "service.log",
    )
    try:
        service.start()
        try:
            service.wait_ready(timeout=600.0)  # valgrind makes start-up some 30-60 s
            ready_at = time.monotonic()
            _send(port, turns, sent)
            if lifetimes is not None:
                lifetimes.served(name, ready_at=ready_at, served_at=time.monotonic())
                time.sleep(max(0.0, lifetimes.stop_at(name) - time.monotonic()))
        finally:
            service.stop(timeout=120.0)  # SIGTERM, so callgrind writes its counts
    finally:
        if mesh is not None:
            mesh.stop()
    return totals(out.read_text(errors="replace"))


def _send(port: int, turns: Sequence[Turn], sent: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for n in range(sent):
            turn = turns[n % len(turns)]
            body = json.dumps({"message": turn.text, "session_id": "instructions"})
            conn.request("POST", turn.path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = response.read().decode()
            if response.status != 200 or turn.expect not in answer:
                raise BenchError(f"turn {n} ({turn.text!r}): {response.status} {answer[:300]}")
    finally:
        conn.close()


def measure(
    *,
    tree: Path,
    scenario: str,
    turns: int,
    warmup: int,
    workdir: Path,
    log_level: str = DEFAULT_LOG_LEVEL,
) -> dict[str, Any]:
    """One scenario on one tree: the warm-up run and the longer run at once, one per core."""
    sent = turns_of(scenario)
    results: dict[str, int] = {}
    errors: list[BaseException] = []

    # Both runs live equally long after their first answer (Lifetimes says why).
    lifetimes = Lifetimes(("warm", "measured"))

    def run(name: str, n: int, cpu: int) -> None:
        try:
            results[name] = count(
                tree=tree,
                turns=sent,
                sent=n,
                workdir=workdir / f"{scenario}-{name}",
                cpu=cpu,
                log_level=log_level,
                lifetimes=lifetimes,
                name=name,
                module=module_of(scenario),
            )
        except BaseException as exc:  # reported below, after both have stopped
            lifetimes.failed()  # however early it failed, the other run must not wait for it
            errors.append(exc)

    cores = sorted(os.sched_getaffinity(0))  # one core: both on it (slower, same counts)
    threads = [
        threading.Thread(target=run, args=("warm", warmup, cores[0])),
        threading.Thread(target=run, args=("measured", warmup + turns, cores[-1])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return {
        "turns": turns,
        "warmup_turns": warmup,
        "warm_only": results["warm"],
        "warm_and_measured": results["measured"],
        "per_turn": per_turn(
            warm_only=results["warm"], warm_and_measured=results["measured"], turns=turns
        ),
    }


def over_baseline(rows: dict[str, Any]) -> dict[str, float]:
    """Each scenario's instructions per turn over the trivial POST's (when both were counted)."""
    base = rows.get("baseline", {}).get("per_turn")
    if not base or base <= 0:
        return {}
    return {
        name: round(row["per_turn"] / base, 2) for name, row in rows.items() if name != "baseline"
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help=f"default: {MIN_WARMUP} turns, or every turn of the scenario once if it has more",
    )
    parser.add_argument("--tree", type=Path, action="append", help="default: this checkout")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        default=DEFAULT_LOG_LEVEL,
        help=f"droplet 12's LOG_LEVEL (default: {DEFAULT_LOG_LEVEL}, as make bench)",
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    trees = [t.resolve() for t in (args.tree or [ROOT])]
    scenarios = [s for s in args.scenarios.split(",") if s]
    for scenario in scenarios:
        turns_of(scenario)  # an unknown name fails before anything starts
    report: dict[str, Any] = {"git": git_info(), "log_level": args.log_level, "trees": {}}
    with tempfile.TemporaryDirectory(prefix="instructions-") as tmp:
        for t_index, tree in enumerate(trees):
            rows: dict[str, Any] = {}
            for scenario in scenarios:
                rows[scenario] = measure(
                    tree=tree,
                    scenario=scenario,
                    turns=args.turns,
                    warmup=args.warmup if args.warmup is not None else warmup_of(scenario),
                    workdir=Path(tmp) / str(t_index),
                    log_level=args.log_level,
                )
                sys.stdout.write(
                    f"{tree}  {scenario}: {rows[scenario]['per_turn'] / 1e6:.3f} M instructions"
                    f" per turn ({args.turns} turns, LOG_LEVEL={args.log_level})\n"
                )
                sys.stdout.flush()
            report["trees"][str(tree)] = rows
            ratios = over_baseline(rows)
            if ratios:
                report.setdefault("over_baseline", {})[str(tree)] = ratios
                shown = ", ".join(f"{name} {ratio:.1f}x" for name, ratio in ratios.items())
                sys.stdout.write(f"{tree}  over the trivial POST: {shown}\n")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(f"results: {args.output}\n")


if __name__ == "__main__":
    main()
