"""`make bench` / `python -m bench.run [--quick] [--only NAMES] [--output PATH]`.

Starts the sandbox mesh in this process and droplet 12 (`python -m app.main`) and the baseline
app (`python -m bench.baseline`) as separate processes pinned to one core; the load generator
(`python -m bench.loadgen`) runs pinned to the other core, together with this process (the mesh
and the fake Gemini). Then it measures the scenarios of issues 10 and 17 and writes
`bench/results/latest.json` plus a table on stdout. See docs/performance.md for the method.

Scenarios (`--only` takes a comma-separated subset): `http` (baseline vs chat read turn, the
read mix and the read turn without a session id at 1 and 64 clients, interleaved rounds, plus
open loop at half capacity), `write` (create-task + "yes", plus open loop at half capacity),
`ws` (WebSocket capacity), `llm` (fake Gemini at 300 ms and 0 ms, 1 and 64 clients), `pg`
(read mix and write pair on SQLite and on PostgreSQL, bench.backends), `stall` (largest gap of a
1 ms ticker in the service's loop under the read mix, bench.stall), `growth` (10 / 1,000 /
100,000 stored sessions and a 1,000-turn history), `anatomy` (`python -m bench.anatomy`: a
turn's parts timed in-process).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import issue17, report
from bench.backends import scenario_pg
from bench.loadgen import summarise
from bench.procs import (
    PYTHON,
    ROOT,
    BenchError,
    Layout,
    LoadGenerator,
    Service,
    cpu_layout,
    free_port,
    http_call,
    pin_self,
    raise_fd_limit,
    service_env,
)
from bench.stall import scenario_stall

RESULTS = ROOT / "bench" / "results" / "latest.json"
SCENARIOS = ("http", "write", "ws", "llm", "pg", "stall", "growth", "anatomy")

READ_TEXT = "show me all droplets"
WRITE_TEXT = "create a verification task for droplet 14, priority 3"
LLM_TEXT = "give me the lay of the land across the mesh"
HISTORY_SESSION = "bench-history-0"  # the load generator names client 0 of prefix "bench-history"

READ_OK = '{"tool":"list_droplets","status":"ok"}'
SPLITS = ROOT / "tests" / "eval" / "splits"
READ_TOOLS = frozenset(
    {"list_droplets", "droplet_status", "droplet_capabilities", "list_tasks", "system_status",
     "system_alerts", "help"}
)  # fmt: skip
SEEDED_DROPLETS = frozenset({1, 2, 10, 12, 14, 16, 18})
MIX_SIZE = 60


def read_mix(size: int = MIX_SIZE) -> list[dict[str, Any]]:
    """Distinct read requests from the evaluation corpus (train split): no conversation needed,
    only read tools, only droplets the sandbox knows. Spread evenly over the corpus so every
    category is in; each client starts at a different one (no two clients in step)."""
    cases = []
    for line in (SPLITS / "train.jsonl").read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        expect = case["expect"]
        calls = expect.get("calls", [])
        if case.get("context") or expect["kind"] != "tools" or not calls:
            continue
        if any(c["tool"] not in READ_TOOLS for c in calls):
            continue
        ids = {v for c in calls for k, v in c["args"].items() if k.endswith("droplet_id")}
        if ids <= SEEDED_DROPLETS:
            cases.append(case["text"])
    texts = list(dict.fromkeys(cases))
    step = max(1, len(texts) // size)
    chosen = texts[::step][:size]
    return [
        {
            "tag": "mix",
            "path": "/api/chat",
            "body": json.dumps({"message": text, "session_id": "@SESSION@"}),
            "expect": '"status":"ok"',
        }
        for text in chosen
    ]


BASELINE_STEP = {
    "tag": "echo",
    "path": "/echo",
    "body": json.dumps({"message": READ_TEXT, "session_id": "@SESSION@"}),
    "expect": '"length":20',
}
# The LLM run's pace at 1 client with a 300 ms model (one turn every ~0.3 s).
PACED_PER_S = 3.3
READ_STEP = {
    "tag": "read",
    "path": "/api/chat",
    "body": json.dumps({"message": READ_TEXT, "session_id": "@SESSION@"}),
    "expect": READ_OK,
}
# A caller that sends no session id (a one-shot request from another service, the `ask` CLI):
# every turn makes a new session, whose row is written before the turn runs.
ONE_SHOT_STEP = {
    "tag": "oneshot",
    "path": "/api/chat",
    "body": json.dumps({"message": READ_TEXT}),
    "expect": READ_OK,
}
WRITE_STEPS = [
    {
        "tag": "propose",
        "path": "/api/chat",
        "body": json.dumps({"message": WRITE_TEXT, "session_id": "@SESSION@"}),
        "expect": '"status":"awaiting_confirmation"',
    },
    {
        "tag": "confirm",
        "path": "/api/chat",
        "body": json.dumps({"message": "yes", "session_id": "@SESSION@"}),
        "expect": '{"tool":"create_task","status":"ok"}',
    },
]

LLM_STEP = {
    "tag": "turn",
    "path": "/api/chat",
    "body": json.dumps({"message": LLM_TEXT, "session_id": "@SESSION@"}),
    "expect": ['"planner":"gemini"', '{"tool":"list_droplets","status":"ok"}'],
}
WRITE_CPU_NOTE = (
    "droplet 12's own CPU (/proc/<pid>/stat) per turn; the sandbox Orchestrator that answers "
    "the confirm's POST /tasks runs in the harness process on the load core, so its time is "
    "not included"
)

TARGETS = {
    "read64_ratio": 0.33,
    "read64_p99_ms": 25.0,
    "growth_flat": 1.20,
    "ws_kib_per_connection": 60.0,
    "ws_event_all_ms": 1000.0,
    "llm_overhead_p50_ms": 3.0,
    "llm_calls_per_turn": 1.0,
}


@dataclass(frozen=True)
class Plan:
    name: str
    rounds: int
    warmup_s: float
    duration_s: float
    clients: tuple[int, ...]
    write_clients: tuple[int, ...]
    ws_connections: int
    ws_events: int
    ws_turns: int
    llm_runs: tuple[tuple[float, int], ...]
    """(fake Gemini delay in seconds, clients) per LLM measurement, closed loop."""
    llm_duration_s: float
    pg_clients: tuple[int, ...]
    pg_rounds: int
    stall_clients: tuple[int, ...]
    growth_sizes: tuple[int, ...]
    growth_history_turns: int
    growth_rounds: int
    growth_duration_s: float
    anatomy_turns: int
    anatomy_rounds: int
    anatomy_llm_calls: int
    anatomy_db_ops: int


FULL = Plan(
    name="full",
    rounds=3,
    warmup_s=1.0,
    duration_s=3.0,
    clients=(1, 64),
    write_clients=(1, 64),
    ws_connections=5000,
    ws_events=5,
    ws_turns=30,
    llm_runs=((0.3, 1), (0.0, 1), (0.3, 64), (0.0, 64)),
    llm_duration_s=5.0,
    pg_clients=(1, 64),
    pg_rounds=2,
    stall_clients=(1, 64),
    growth_sizes=(10, 1_000, 100_000),
    growth_history_turns=1000,
    growth_rounds=2,
    growth_duration_s=3.0,
    anatomy_turns=150,
    anatomy_rounds=3,
    anatomy_llm_calls=40,
    anatomy_db_ops=300,
)
QUICK = Plan(
    name="quick",
    rounds=1,
    warmup_s=0.5,
    duration_s=1.5,
    clients=(1, 64),
    write_clients=(1, 16),
    ws_connections=500,
    ws_events=2,
    ws_turns=5,
    llm_runs=((0.3, 1), (0.0, 16)),
    llm_duration_s=1.5,
    pg_clients=(16,),
    pg_rounds=1,
    stall_clients=(64,),
    growth_sizes=(10, 1_000, 10_000),
    growth_history_turns=200,
    growth_rounds=1,
    growth_duration_s=1.5,
    anatomy_turns=40,
    anatomy_rounds=1,
    anatomy_llm_calls=10,
    anatomy_db_ops=50,
)


def _settings_names() -> set[str]:
    from app.config import Settings

    return {name.upper() for name in Settings.model_fields}


LOG_LEVEL = "WARNING"
"""Droplet 12's level in every scenario: a turn's two INFO lines (the shipped default) are not
part of what the targets measure; `bench.instructions --log-level INFO` counts them."""


def droplet12_env(
    mesh: Any, *, data_dir: Path, port: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Droplet 12's settings against the sandbox `mesh` (shown in the report as they are)."""
    return {
        "REGISTRY_URL": mesh.registry_url,
        "ORCHESTRATOR_URL": mesh.orchestrator_url,
        "DROPLET_SECRET": mesh.registry_key,
        "ORCHESTRATOR_PRIVATE_KEY_FILE": str(mesh.private_key_path),
        "REGISTRY_PUBLIC_KEY_FILE": str(mesh.public_key_path),
        "DATA_DIR": str(data_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DROPLET_URL": f"http://127.0.0.1:{port}",
        "LOG_LEVEL": LOG_LEVEL,
        "LOG_FORMAT": "json",
        "ENVIRONMENT": "development",
        "PLANNER": "rules",
        # On, so its cost is measured, but far above what the load generator sends.
        "CHAT_RATE_LIMIT_PER_MINUTE": "1000000000",
        # The load generator's 5,000 sockets, and the one-shot turns' sessions, all come from
        # one identity.
        "MAX_WS_PER_IDENTITY": "100000",
        "MAX_SESSIONS_PER_IDENTITY": "100000000",
        **(extra or {}),
    }


class Bench:
    def __init__(self, plan: Plan, layout: Layout, workdir: Path) -> None:
        self.plan = plan
        self.layout = layout
        self.workdir = workdir
        self.loadgen = LoadGenerator(layout)
        self.services: list[Service] = []
        self.commands: dict[str, str] = {"load generator": self.loadgen.command}
        self.mesh: Any = None
        self.mesh_counters: dict[str, Any] = {}
        self.answer_text: str | None = None
        """A real answer to READ_TEXT (from the first smoke turn), for seeding histories."""
        self._drop = _settings_names()

    # ---- infrastructure --------------------------------------------------------------------

    def start_mesh(self) -> None:
        from sandbox.testing import start_mesh

        self.mesh = start_mesh(key_dir=self.workdir / "keys", router_interval=3600.0, seed=True)
        # Count the requests each peer serves.
        for peer in ("registry", "orchestrator"):
            self.mesh_counters[peer] = self.mesh.count_requests(peer)

    def mesh_requests(self) -> int:
        return sum(c.count for c in self.mesh_counters.values())

    def droplet12(
        self,
        name: str,
        *,
        data_dir: Path,
        extra: dict[str, str] | None = None,
        module: str = "app.main",
    ) -> Service:
        """Droplet 12 as `python -m <module>`: `app.main`, or `bench.stall_probe` (which runs
        app.main itself, with a ticker in its loop)."""
        port = free_port()
        shown = droplet12_env(self.mesh, data_dir=data_dir, port=port, extra=extra)
        service = Service(
            name=name,
            argv=[PYTHON, "-m", module],
            env=service_env(shown, drop=self._drop),
            cwd=data_dir,
            port=port,
            cpus=self.layout.server if self.layout.pinned else [],
            log_path=self.workdir / f"{name}.log",
            shown_env=shown,
        )
        return self._start(service)

    def baseline(self) -> Service:
        port = free_port()
        shown = {"HOST": "127.0.0.1", "PORT": str(port)}
        service = Service(
            name="baseline",
            argv=[PYTHON, "-m", "bench.baseline"],
            env=service_env(shown, drop=set()),
            cwd=ROOT,
            port=port,
            cpus=self.layout.server if self.layout.pinned else [],
            log_path=self.workdir / "baseline.log",
            shown_env=shown,
        )
        return self._start(service)

    def _start(self, service: Service) -> Service:
        service.start()
        self.services.append(service)
        self.commands.setdefault(service.name.split("-")[0], service.command_line())
        return service

    def ready(self, *services: Service) -> dict[str, float]:
        return {s.name: round(s.wait_ready(), 2) for s in services}

    def smoke(self, service: Service) -> None:
        """One real read turn before measuring: the mesh path must work."""
        status, body = http_call(
            service.port,
            "POST",
            "/api/chat",
            {"message": READ_TEXT, "session_id": "smoke"},
            timeout=30,
        )
        actions = body.get("actions") if isinstance(body, dict) else None
        if isinstance(body, dict) and isinstance(body.get("response"), str):
            self.answer_text = self.answer_text or body["response"]
        if status != 200 or actions != [{"tool": "list_droplets", "status": "ok"}]:
            raise BenchError(
                f"{service.name}: smoke turn failed ({status}): {str(body)[:300]}\n"
                f"{service.log_tail()}"
            )

    def stop(self, *services: Service) -> None:
        for service in services:
            service.stop()

    def watch(self, service: Service) -> dict[str, Any]:
        watched: dict[str, Any] = {
            "server": {"pid": service.pid, "cores": service.cpus or []},
        }
        harness_cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        watched["harness"] = {"pid": os.getpid(), "cores": harness_cores}
        return watched

    def http(
        self,
        service: Service,
        *,
        clients: int,
        steps: list[dict[str, Any]],
        prefix: str,
        duration: float | None = None,
        warmup: float | None = None,
        raw: bool = True,
        rate: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One load-generator window on `service`; `extra` adds job keys (`watch_groups`:
        processes counted by command line, `stall_probe_pid`: whom to signal at its edges)."""
        duration = self.plan.duration_s if duration is None else duration
        warmup = self.plan.warmup_s if warmup is None else warmup
        job = {
            "kind": "http",
            "host": "127.0.0.1",
            "port": service.port,
            "clients": clients,
            "warmup_s": warmup,
            "duration_s": duration,
            "max_requests": 500_000,
            "steps": steps,
            # Several texts of one kind (the read mix): clients spread over them.
            "stagger": len(steps) > 1 and len({s["tag"] for s in steps}) == 1,
            "session_prefix": prefix,
            "raw": raw,
            "rate_per_s": rate,
            "watch": self.watch(service),
            **(extra or {}),
        }
        return self.loadgen.run(job, timeout=duration + warmup + 120)

    # ---- scenarios -------------------------------------------------------------------------

    def scenario_http(self, baseline: Service, d12: Service) -> dict[str, Any]:
        """Baseline and read turn at each concurrency, interleaved so noise hits both alike."""
        # "read": one text every turn; "mix": distinct texts from the corpus (issue 17);
        # "oneshot": the read turn without a session id, so a new session every turn.
        series = {"read": [READ_STEP], "mix": read_mix(), "oneshot": [ONE_SHOT_STEP]}
        runs: dict[str, dict[int, list[dict[str, Any]]]] = {n: {} for n in ("baseline", *series)}
        for r in range(self.plan.rounds):
            for clients in self.plan.clients:
                order = ["baseline", *series]
                order = order if r % 2 == 0 else order[::-1]
                for which in order:
                    if which == "baseline":
                        res = self.http(
                            baseline,
                            clients=clients,
                            steps=[BASELINE_STEP],
                            prefix=f"base-r{r}-c{clients}",
                        )
                    else:
                        before = self.mesh_requests()
                        res = self.http(
                            d12,
                            clients=clients,
                            steps=series[which],
                            prefix=f"{which}-r{r}-c{clients}",
                        )
                        turns = res["tags"][which]["completed_incl_warmup"]
                        res["mesh_requests_per_turn"] = round(
                            (self.mesh_requests() - before) / max(1, turns), 4
                        )
                    runs[which].setdefault(clients, []).append(res)
        out: dict[str, Any] = {
            "rounds": self.plan.rounds,
            "mix_texts": len(series["mix"]),
            **{name: {} for name in ("baseline", *series)},
        }
        for which, tag in (("baseline", "echo"), *((name, name) for name in series)):
            for clients, results in runs[which].items():
                out[which][f"c{clients}"] = _pool(results, tag)
        for which in series:
            for clients in self.plan.clients:
                base = runs["baseline"][clients]
                mine = runs[which][clients]
                paired = [
                    r["tags"][which]["per_s"] / b["tags"]["echo"]["per_s"]
                    for b, r in zip(base, mine, strict=True)
                    if b["tags"]["echo"].get("per_s")
                ]
                row = out[which][f"c{clients}"]
                row["ratio_to_baseline"] = round(statistics.median(paired), 3) if paired else None
                row["ratio_per_round"] = [round(p, 3) for p in paired]
                row["mesh_requests_per_turn"] = statistics.median(
                    r["mesh_requests_per_turn"] for r in mine
                )
            # The same 64 clients, open loop at half the measured capacity: the latency a user
            # sees when the service is busy but not saturated.
            top = max(self.plan.clients)
            capacity = out[which][f"c{top}"]["per_s"]
            if capacity:
                rate = round(capacity * 0.5, 1)
                res = self.http(
                    d12,
                    clients=top,
                    steps=series[which],
                    prefix=f"{which}-open-c{top}",
                    duration=self.plan.duration_s * 2,
                    rate=rate,
                )
                pooled = _pool([res], which)
                pooled["rate_per_s"] = rate
                out[which][f"c{top}_open_half"] = pooled
        # A few requests a second, as the LLM run with a 300 ms model sends them: each request
        # finds the machine idle. What that costs the trivial POST is the machine's own price
        # for waking up, the scale for the LLM path's 1-client overhead and CPU.
        for which, service, step, tag in (
            ("baseline", baseline, BASELINE_STEP, "echo"),
            ("read", d12, READ_STEP, "read"),
        ):
            res = self.http(
                service,
                clients=1,
                steps=[step],
                prefix=f"{which}-paced",
                duration=self.plan.llm_duration_s * 2,
                rate=PACED_PER_S,
            )
            pooled = _pool([res], tag)
            pooled["rate_per_s"] = PACED_PER_S
            out[which]["c1_paced"] = pooled
        return out

    def write_pair(
        self,
        service: Service,
        *,
        clients: int,
        prefix: str,
        rate: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The write pair (propose, then "yes") per client session: one window, summarised.

        `server_cpu_ms_per_turn` is droplet 12's own CPU (/proc/<pid>/stat of its process) per
        turn: the pair's peer, the sandbox Orchestrator answering `POST /tasks`, runs in the
        harness process on the load core, so none of its time is in it.
        """
        before = self.mesh_requests()
        duration = self.plan.duration_s * (2 if rate else 1)
        res = self.http(
            service,
            clients=clients,
            steps=WRITE_STEPS,
            prefix=prefix,
            rate=rate,
            duration=duration,
            extra=extra,
        )
        turns = sum(t["completed_incl_warmup"] for t in res["tags"].values())
        pooled = {tag: _pool([res], tag) for tag in res["tags"]}
        window = res["window_s"]
        total = sum(t["count"] for t in res["tags"].values())
        server_cpu = res["system"].get("server_cpu")
        both = summarise(
            [v / 1000 for t in res["tags"].values() for v in t.get("raw_ms", [])], window
        )
        return {
            "clients": clients,
            "rate_per_s": rate,
            "window_s": window,
            "turns_per_s": round(total / window, 2) if window else None,
            "server_cpu_ms_per_turn": round(server_cpu * window * 1000 / total, 3)
            if server_cpu is not None and total
            else None,
            "pairs_per_s": round(res["tags"]["confirm"]["count"] / window, 2) if window else None,
            "turn": {k: both[k] for k in ("count", "p50_ms", "p90_ms", "p99_ms", "max_ms")},
            "propose": pooled["propose"],
            "confirm": pooled["confirm"],
            "failed": sum(p["unexpected"] for p in pooled.values()) + sum(res["errors"].values()),
            "mesh_requests_per_turn": round((self.mesh_requests() - before) / max(1, turns), 4),
            "system": res["system"],
            "client_cpu_util": res["client_cpu_util"],
            "errors": res["errors"],
        }

    def scenario_write(self, d12: Service) -> dict[str, Any]:
        out: dict[str, Any] = {"cpu_note": WRITE_CPU_NOTE}
        for clients in self.plan.write_clients:
            out[f"c{clients}"] = self.write_pair(d12, clients=clients, prefix=f"write-c{clients}")
        # Open loop at half the measured capacity, as for the read turn (latency when busy).
        top = max(self.plan.write_clients)
        capacity = out[f"c{top}"]["turns_per_s"]
        if capacity:
            rate = round(capacity * 0.5, 1)
            out[f"c{top}_open_half"] = self.write_pair(
                d12, clients=top, prefix=f"write-open-c{top}", rate=rate
            )
        return out

    def scenario_ws(self, d12: Service) -> dict[str, Any]:
        plan = self.plan
        job = {
            "kind": "ws",
            "host": "127.0.0.1",
            "port": d12.port,
            "server_pid": d12.pid,
            "connections": plan.ws_connections,
            "connect_concurrency": 100,
            "events": plan.ws_events,
            "turns": plan.ws_turns,
            "turn_text": READ_TEXT,
            "settle_s": 2.0,
            "timeout_s": 30.0,
            "run_id": str(int(time.time())),
        }
        result = self.loadgen.run(job, timeout=600)
        result["server_status_after"] = d12.status()
        return result

    def scenario_llm(self) -> dict[str, Any]:
        """`PLANNER=gemini` against the fake Gemini (in this process, on the load core) at each
        (delay, clients) of the plan, closed loop. A turn counts as failed unless it is a 200
        naming the gemini planner and an ok `list_droplets` action."""
        from tests.fakes.gemini import FakeGemini, function_call

        plan = self.plan
        fake = FakeGemini(default=function_call("list_droplets", {}), delay_s=0.0)
        fake.start()
        d12: Service | None = None
        try:
            d12 = self.droplet12(
                "droplet12-llm",
                data_dir=self.workdir / "d12-llm",
                extra={
                    "PLANNER": "gemini",
                    "GEMINI_API_KEY": "bench-fake-key",
                    "GEMINI_BASE_URL": fake.base_url,
                },
            )
            out: dict[str, Any] = {"startup_s": self.ready(d12)[d12.name], "runs": {}}
            self.smoke(d12)
            direct: dict[float, float | None] = {}
            for delay, clients in plan.llm_runs:
                fake.delay_s = delay
                if delay not in direct:
                    model = self._direct_model_call(fake.base_url)
                    out[f"direct_model_call_{delay * 1000:g}ms"] = model
                    direct[delay] = model["p50_ms"]
                before = len(fake.requests)
                res = self.http(
                    d12,
                    clients=clients,
                    steps=[LLM_STEP],
                    prefix=f"llm-d{delay * 1000:g}-c{clients}",
                    duration=plan.llm_duration_s,
                    warmup=1.0,
                )
                turns = res["tags"]["turn"]["completed_incl_warmup"]
                calls = len(fake.requests) - before
                pooled = _pool([res], "turn")
                pooled["delay_ms"] = delay * 1000
                pooled["clients"] = clients
                pooled["model_calls"] = calls
                pooled["turns_incl_warmup"] = turns
                pooled["model_calls_per_turn"] = round(calls / max(1, turns), 3)
                # Any answer that is not a 200 with the expected action, and any turn that got
                # no answer at all (timeout, reset), is a failed turn.
                pooled["failed"] = pooled["unexpected"] + sum(pooled["errors"].values())
                # The fake answers from this process: a busy harness would cap the 0 ms runs.
                pooled["harness_cpu"] = res["system"].get("harness_cpu")
                for key in ("p50_ms", "p90_ms", "p99_ms"):
                    if pooled.get(key) is not None:
                        pooled[f"overhead_{key}"] = round(pooled[key] - delay * 1000, 3)
                        if direct[delay] is not None:
                            own = pooled[key] - (direct[delay] or 0.0)
                            pooled[f"overhead_vs_direct_{key}"] = round(own, 3)
                pooled["sample"] = res["samples"].get("turn", "")[:400]
                out["runs"][f"d{delay * 1000:g}_c{clients}"] = pooled
            out["log"] = d12.log_counts()
            return out
        finally:
            if d12 is not None:
                d12.stop()
            fake.stop()

    def _direct_model_call(self, base_url: str) -> dict[str, Any]:
        """The fake's own round trip as a plain client sees it (fake + loopback)."""
        fake_port = int(base_url.rsplit(":", 1)[1])
        body = {"contents": [{"role": "user", "parts": [{"text": LLM_TEXT}]}]}
        direct = self.loadgen.run(
            {
                "kind": "http",
                "host": "127.0.0.1",
                "port": fake_port,
                "clients": 1,
                "warmup_s": 0.3,
                "duration_s": 1.5,
                "steps": [
                    {
                        "tag": "model",
                        "path": "/v1beta/models/gemini-2.5-flash:generateContent",
                        "body": json.dumps(body),
                        "expect": "functionCall",
                    }
                ],
                "raw": True,
            },
            timeout=120,
        )
        return _pool([direct], "model")

    def scenario_growth(self) -> dict[str, Any]:
        from bench.seed import seed_database

        plan = self.plan
        seeded: dict[int, dict[str, Any]] = {}
        services: dict[int, Service] = {}
        try:
            if self.answer_text is None:  # --only growth: ask a throwaway instance once
                probe = self.droplet12("droplet12-probe", data_dir=self.workdir / "probe")
                self.ready(probe)
                self.smoke(probe)
                probe.stop()
            for size in plan.growth_sizes:
                data_dir = self.workdir / f"growth-{size}"
                seeded[size] = seed_database(
                    data_dir / "chat.db",
                    sessions=size - 1,
                    history_session=HISTORY_SESSION,
                    history_turns=plan.growth_history_turns,
                    answer=self.answer_text or READ_TEXT,
                )
            for size in plan.growth_sizes:
                services[size] = self.droplet12(
                    f"droplet12-growth{size}", data_dir=self.workdir / f"growth-{size}"
                )
            startup = self.ready(*services.values())
            for service in services.values():
                self.smoke(service)
            runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
            sizes = list(plan.growth_sizes)
            for r in range(plan.growth_rounds):
                for size in sizes if r % 2 == 0 else list(reversed(sizes)):
                    for kind, prefix in (
                        ("new", f"growth-new-r{r}"),
                        ("history", "bench-history"),
                    ):
                        res = self.http(
                            services[size],
                            clients=1,
                            steps=[READ_STEP],
                            prefix=prefix,
                            duration=plan.growth_duration_s,
                            warmup=0.5,
                        )
                        runs.setdefault((size, kind), []).append(res)
            out: dict[str, Any] = {"seeded": seeded, "startup_s": startup, "sizes": {}}
            reference = _pool(runs[(sizes[0], "new")], "read")["p50_ms"]
            worst = 0.0
            for size in sizes:
                entry: dict[str, Any] = {}
                for kind in ("new", "history"):
                    pooled = _pool(runs[(size, kind)], "read")
                    if reference and pooled.get("p50_ms") is not None:
                        pooled["p50_vs_smallest_new"] = round(pooled["p50_ms"] / reference, 3)
                        worst = max(worst, pooled["p50_vs_smallest_new"])
                    entry[kind] = pooled
                out["sizes"][str(size)] = entry
            out["worst_p50_ratio"] = round(worst, 3) if worst else None
            return out
        finally:
            self.stop(*services.values())


def scenario_anatomy(plan: Plan, layout: Layout, workdir: Path) -> dict[str, Any]:
    """`python -m bench.anatomy` in its own process, pinned where the service runs."""
    from bench.procs import affinity

    output = workdir / "anatomy.json"
    argv = [
        PYTHON,
        "-m",
        "bench.anatomy",
        "--output",
        str(output),
        "--turns",
        str(plan.anatomy_turns),
        "--rounds",
        str(plan.anatomy_rounds),
        "--llm-calls",
        str(plan.anatomy_llm_calls),
        "--db-ops",
        str(plan.anatomy_db_ops),
    ]
    with affinity(layout.server if layout.pinned else []):
        done = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
        )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise BenchError(f"anatomy failed ({done.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(output.read_text())
    result["command"] = " ".join(argv[:2] + argv[2:3] + argv[5:])
    return result


def _pool(results: list[dict[str, Any]], tag: str) -> dict[str, Any]:
    """One summary over several runs of the same job: pooled latencies, median throughput."""
    raw: list[float] = []
    rates: list[float] = []
    statuses: dict[str, int] = {}
    unexpected = 0
    systems = []
    client_cpu = []
    errors: dict[str, int] = {}
    cpu_per_request: list[float] = []
    for res in results:
        stats = res["tags"][tag]
        server_cpu = res.get("system", {}).get("server_cpu")
        if server_cpu is not None and stats.get("count"):
            cpu_per_request.append(server_cpu * res["window_s"] * 1000 / stats["count"])
        raw.extend(v / 1000 for v in stats.get("raw_ms", []))
        if stats.get("per_s") is not None:
            rates.append(stats["per_s"])
        for code, n in stats.get("status", {}).items():
            statuses[code] = statuses.get(code, 0) + n
        unexpected += stats.get("unexpected", 0)
        systems.append(res.get("system", {}))
        client_cpu.append(res.get("client_cpu_util"))
        for name, n in res.get("errors", {}).items():
            errors[name] = errors.get(name, 0) + n
    out = summarise(raw)
    out.pop("per_s", None)
    out["per_s"] = round(statistics.median(rates), 2) if rates else None
    out["per_s_runs"] = rates
    out["status"] = statuses
    out["unexpected"] = unexpected
    out["errors"] = errors
    out["server_cpu"] = _median_of(systems, "server_cpu")
    out["server_cpu_ms_per_request"] = _median(cpu_per_request)
    out["client_cpu"] = _median([c for c in client_cpu if c is not None])
    out["server_core_other"] = _median_core(systems, "other")
    out["server_core_steal"] = _median_core(systems, "steal")
    return out


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _median_of(systems: list[dict[str, Any]], key: str) -> float | None:
    return _median([s[key] for s in systems if s.get(key) is not None])


def _median_core(systems: list[dict[str, Any]], key: str) -> float | None:
    """On the server's own core(s): `other` (foreign processes) or `steal` (the hypervisor)."""
    return _median([s["server_cores"][key] for s in systems if "server_cores" in s])


# ---------------------------------------------------------------------------------------------


def machine_info(layout: Layout) -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_release(),
        "python": platform.python_version(),
        "layout": asdict(layout),
        "layout_text": layout.describe(),
        "loadavg_start": _loadavg(),
        "workdir_filesystem": _filesystem(Path(tempfile.gettempdir())),
    }


def _filesystem(path: Path) -> str:
    """The mount (device and type) holding `path`: where SQLite's fsyncs go."""
    best, found = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, kind = line.split()[:3]
            if str(path.resolve()).startswith(mount) and len(mount) > len(best):
                best, found = mount, f"{kind} on {mount} ({device})"
    except OSError:
        pass
    return found


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def _loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def versions() -> dict[str, str]:
    out = {}
    for name in (
        "chat-orchestrator",
        "fastapi",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "websockets",
        "pydantic",
        "pydantic-core",
        "sqlalchemy",
        "aiosqlite",
        "structlog",
        "httpx2",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    status = git("status", "--porcelain")
    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "dirty_files": len(status.splitlines()) if status else 0,
    }


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 10 with the measured value and whether it holds."""
    out: list[dict[str, Any]] = []
    scen = results["scenarios"]

    def add(name: str, target: str, measured: Any, holds: bool | None, note: str = "") -> None:
        out.append(
            {"name": name, "target": target, "measured": measured, "holds": holds, "note": note}
        )

    http = scen.get("http", {})
    read64 = http.get("read", {}).get("c64") if isinstance(http, dict) else None
    if read64:
        ratio = read64.get("ratio_to_baseline")
        add(
            "read turn throughput at 64 clients",
            f">= {TARGETS['read64_ratio']} x baseline",
            ratio,
            None if ratio is None else ratio >= TARGETS["read64_ratio"],
        )
        open_half = http["read"].get("c64_open_half")
        if open_half and open_half.get("p99_ms") is not None:
            add(
                "(reading) p99 at 64 clients, open loop at 50% capacity",
                f"<= {TARGETS['read64_p99_ms']:g} ms",
                open_half["p99_ms"],
                open_half["p99_ms"] <= TARGETS["read64_p99_ms"],
                f"{open_half['rate_per_s']} turns/s offered; the closed-loop target below "
                "needs >= 2,560 turns/s by Little's law",
            )
        p99 = read64.get("p99_ms")
        add(
            "read turn p99 at 64 clients",
            f"<= {TARGETS['read64_p99_ms']:g} ms",
            p99,
            None if p99 is None else p99 <= TARGETS["read64_p99_ms"],
        )
    growth = scen.get("growth", {})
    if isinstance(growth, dict) and growth.get("worst_p50_ratio") is not None:
        worst = growth["worst_p50_ratio"]
        sizes = ", ".join(growth.get("sizes", {}).keys())
        add(
            "latency flat with stored sessions / history",
            f"p50 within {round((TARGETS['growth_flat'] - 1) * 100)}% of the smallest",
            worst,
            worst <= TARGETS["growth_flat"],
            f"sizes {sizes} + a 1,000-turn session",
        )
    ws = scen.get("ws", {})
    if isinstance(ws, dict) and "server_kib_per_connection" in ws:
        note = f"{ws.get('welcomed')} connections held"
        per = ws["server_kib_per_connection"]
        add(
            "server memory per WebSocket",
            f"<= {TARGETS['ws_kib_per_connection']:g} KiB",
            per,
            per <= TARGETS["ws_kib_per_connection"],
            note,
        )
        worst_event = ws.get("event_reach_all_ms_max")
        add(
            "one event reaches every WebSocket",
            f"<= {TARGETS['ws_event_all_ms']:g} ms",
            worst_event,
            None if worst_event is None else worst_event <= TARGETS["ws_event_all_ms"],
            note + ("" if worst_event is not None else "; some connections missed an event"),
        )
    llm = scen.get("llm", {})
    one = llm.get("runs", {}).get("d300_c1") if isinstance(llm, dict) else None
    if one:
        overhead = one.get("overhead_p50_ms")
        add(
            "LLM path own overhead p50",
            f"<= {TARGETS['llm_overhead_p50_ms']:g} ms",
            overhead,
            None if overhead is None else overhead <= TARGETS["llm_overhead_p50_ms"],
            f"1 client, turn p50 minus the 300 ms model delay; vs the model's own round "
            f"trip: {one.get('overhead_vs_direct_p50_ms')} ms; CPU droplet 12 spent per "
            f"turn: {one.get('server_cpu_ms_per_request')} ms",
        )
        calls = one.get("model_calls_per_turn")
        add(
            "model calls per read turn",
            "exactly 1",
            calls,
            None if calls is None else abs(calls - TARGETS["llm_calls_per_turn"]) < 1e-9,
        )
    return out


@contextmanager
def _workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        yield path
    finally:
        if keep:
            sys.stderr.write(f"kept {path}\n")
        else:
            shutil.rmtree(path, ignore_errors=True)


def _quiet_logging() -> None:
    import structlog

    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def run(plan: Plan, only: set[str], output: Path, keep: bool) -> int:
    _quiet_logging()
    layout = cpu_layout()
    nofile = raise_fd_limit()
    if layout.pinned:
        pin_self(layout.load)  # mesh and fake threads started from here inherit it
    started = time.monotonic()
    results: dict[str, Any] = {
        "schema": 1,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": plan.name,
        "argv": sys.argv,
        "plan": asdict(plan),
        "machine": machine_info(layout),
        "versions": versions(),
        "git": git_info(),
        "nofile": nofile,
        "scenarios": {},
        "errors": {},
    }
    failed = False
    with _workdir(keep) as workdir:
        bench = Bench(plan, layout, workdir)

        def attempt(name: str, fn: Callable[[], Any]) -> None:
            nonlocal failed
            if name not in only:
                return
            report.progress(f"{name} ...")
            began = time.monotonic()
            try:
                results["scenarios"][name] = fn()
            except Exception as exc:
                failed = True
                results["errors"][name] = f"{type(exc).__name__}: {exc}"
                report.progress(f"{name} FAILED: {exc}")
                traceback.print_exc(file=sys.stderr)
            else:
                report.progress(f"{name} done in {time.monotonic() - began:.0f}s")
            results.setdefault("durations_s", {})[name] = round(time.monotonic() - began, 1)

        try:
            bench.start_mesh()
            if only & {"http", "write", "ws"}:
                baseline = bench.baseline()
                d12 = bench.droplet12("droplet12", data_dir=workdir / "d12")
                results["startup_s"] = bench.ready(baseline, d12)
                bench.smoke(d12)
                results["pinning"] = {
                    s.name: s.status().get("Cpus_allowed_list") for s in (baseline, d12)
                }
                attempt("http", lambda: bench.scenario_http(baseline, d12))
                attempt("write", lambda: bench.scenario_write(d12))
                bench.stop(baseline)
                attempt("ws", lambda: bench.scenario_ws(d12))
                results["droplet12_log"] = d12.log_counts()
                bench.stop(d12)
            attempt("llm", bench.scenario_llm)
            attempt("pg", lambda: scenario_pg(bench))
            attempt("stall", lambda: scenario_stall(bench))
            attempt("growth", bench.scenario_growth)
            attempt("anatomy", lambda: scenario_anatomy(plan, layout, workdir))
        except Exception as exc:
            failed = True
            results["errors"]["harness"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        finally:
            bench.stop(*bench.services)
            if bench.mesh is not None:
                bench.mesh.stop()
        results["commands"] = bench.commands
    results["machine"]["loadavg_end"] = _loadavg()
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["targets"] = evaluate(results)
    issue17.add_ratios(results)
    results["targets_issue17"] = issue17.evaluate(results)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(output)
    report.table(results, output)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run, ~1 min)")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if not os.path.isdir("/proc"):
        parser.error("needs Linux (/proc) for CPU and memory accounting")
    raise SystemExit(run(QUICK if args.quick else FULL, only, args.output, args.keep))


if __name__ == "__main__":
    main()
