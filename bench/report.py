"""The table `make bench` prints (rich), from the same dict that goes to latest.json."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import report_issue17
from bench.fmt import num as _f
from bench.fmt import pct as _pct

_err = Console(stderr=True, highlight=False)


def progress(message: str) -> None:
    _err.print(f"[dim]bench:[/dim] {message}")


def table(results: dict[str, Any], output: Path) -> None:
    console = Console(file=sys.stdout, width=120, highlight=False)
    machine = results["machine"]
    console.rule(f"[bold]Chat Orchestrator benchmark ({results['mode']})")
    console.print(
        f"machine: {machine['cpu_model']} x{machine['cpus']}, {machine['memory_gib']} GiB, "
        f"{machine['os']}, kernel {machine['kernel']}, Python {machine['python']}"
    )
    console.print(
        f"pinning: {machine['layout_text']}; load average "
        f"{machine['loadavg_start']} -> {machine.get('loadavg_end')}"
    )
    v = results["versions"]
    console.print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    git = results["git"]
    console.print(
        f"git: {git['commit']} ({git['dirty_files']} files modified); "
        f"run took {results.get('duration_s')} s"
    )
    scen = results["scenarios"]

    http = scen.get("http")
    if http:
        t = Table(
            title='Baseline vs chat read turn ("show me all droplets") and a varied read mix '
            f"({http.get('mix_texts', 0)} texts from the corpus), own session per client; "
            f"{http['rounds']} interleaved rounds"
        )
        for col in (
            "endpoint",
            "clients",
            "req/s",
            "p50 ms",
            "p99 ms",
            "ratio",
            "server CPU",
            "CPU ms/req",
            "other on its core",
            "client CPU",
            "bad",
        ):
            t.add_column(col, justify="right" if col not in ("endpoint",) else "left")
        for which, label in (
            ("baseline", "baseline POST /echo"),
            ("read", "POST /api/chat"),
            ("mix", "POST /api/chat, mix"),
            ("oneshot", "POST /api/chat, no session id"),
        ):
            for key, row in http.get(which, {}).items():
                # Every step has an expected answer: a non-200 is counted in `unexpected`.
                bad = row["unexpected"] + sum(row["errors"].values())
                clients = key[1:].split("_")[0]
                if "open" in key:
                    clients += f" open @{row.get('rate_per_s')}/s"
                if "paced" in key:
                    clients += f" paced @{row.get('rate_per_s')}/s"
                t.add_row(
                    label,
                    clients,
                    _f(row["per_s"]),
                    _f(row["p50_ms"], 2),
                    _f(row["p99_ms"], 2),
                    _f(row.get("ratio_to_baseline"), 2),
                    _pct(row["server_cpu"]),
                    _f(row.get("server_cpu_ms_per_request"), 2),
                    _pct(row["server_core_other"]),
                    _pct(row["client_cpu"]),
                    str(bad),
                )
        console.print(t)

    write = scen.get("write")
    if write:
        t = Table(
            title='Write pair: create-task proposal + "yes" (own session per client); CPU is '
            "droplet 12's own (the sandbox Orchestrator it calls runs in the harness)"
        )
        for col in (
            "clients",
            "turns/s",
            "pairs/s",
            "turn p50",
            "turn p99",
            "propose p50",
            "confirm p50",
            "confirm p99",
            "server CPU",
            "CPU ms/turn",
            "bad",
        ):
            t.add_column(col, justify="right")
        for key, row in write.items():
            if not isinstance(row, dict):
                continue
            clients = key[1:].split("_")[0]
            if row.get("rate_per_s"):
                clients += f" open @{row['rate_per_s']}/s"
            t.add_row(
                clients,
                _f(row["turns_per_s"]),
                _f(row["pairs_per_s"]),
                _f(row["turn"]["p50_ms"], 2),
                _f(row["turn"]["p99_ms"], 2),
                _f(row["propose"]["p50_ms"], 2),
                _f(row["confirm"]["p50_ms"], 2),
                _f(row["confirm"]["p99_ms"], 2),
                _pct(row["system"].get("server_cpu")),
                _f(row.get("server_cpu_ms_per_turn"), 2),
                str(row["failed"]),
            )
        console.print(t)

    ws = scen.get("ws")
    if ws:
        t = Table(
            title=f"WebSocket capacity ({ws.get('welcomed')} of "
            f"{ws.get('connections_wanted')} connections held)"
        )
        t.add_column("measure")
        t.add_column("value", justify="right")
        before = ws.get("server_rss_before_kib", {})
        after = ws.get("server_rss_after_kib", {})
        rows = [
            ("connect all", _f(ws.get("connect_all_s"), 1, " s")),
            (
                "server RSS before / after",
                f"{_f(before.get('VmRSS'))} / {_f(after.get('VmRSS'))} KiB",
            ),
            ("server memory per connection", _f(ws.get("server_kib_per_connection"), 1, " KiB")),
            (
                "event reaches all (median / worst)",
                f"{_f(ws.get('event_reach_all_ms_median'))} / "
                f"{_f(ws.get('event_reach_all_ms_max'))} ms",
            ),
            (
                "turn round trip over WS, alone / crowd (p50)",
                f"{_f(ws['turn_ws_alone'].get('p50_ms'), 2)} / "
                f"{_f(ws['turn_ws_crowd'].get('p50_ms'), 2)} ms",
            ),
            (
                "turn round trip over REST, alone / crowd (p50)",
                f"{_f(ws['turn_rest_alone'].get('p50_ms'), 2)} / "
                f"{_f(ws['turn_rest_crowd'].get('p50_ms'), 2)} ms",
            ),
        ]
        for row in rows:
            t.add_row(*row)
        console.print(t)

    llm = scen.get("llm")
    if llm:
        t = Table(title="LLM path: fake Gemini with a fixed delay (PLANNER=gemini), closed loop")
        for col in (
            "model delay",
            "clients",
            "turns/s",
            "p50 ms",
            "p99 ms",
            "own overhead p50",
            "overhead p99",
            "vs model RTT p50",
            "CPU ms/turn",
            "model calls/turn",
            "failed",
        ):
            t.add_column(col, justify="right")
        for row in llm.get("runs", {}).values():
            t.add_row(
                f"{row['delay_ms']:g} ms",
                str(row["clients"]),
                _f(row["per_s"]),
                _f(row["p50_ms"], 2),
                _f(row["p99_ms"], 2),
                _f(row.get("overhead_p50_ms"), 2),
                _f(row.get("overhead_p99_ms"), 2),
                _f(row.get("overhead_vs_direct_p50_ms"), 2),
                _f(row.get("server_cpu_ms_per_request"), 2),
                _f(row["model_calls_per_turn"], 3),
                str(row["failed"]),
            )
        console.print(t)
        direct = {k: v for k, v in llm.items() if k.startswith("direct_model_call_")}
        console.print(
            "  the fake's own round trip from a plain client (p50): "
            + ", ".join(
                f"{k.removeprefix('direct_model_call_')} delay {_f(v.get('p50_ms'), 2)} ms"
                for k, v in direct.items()
            )
        )

    report_issue17.tables(console, scen)

    growth = scen.get("growth")
    if growth:
        t = Table(title="Cost growth: read turn at 1 client vs stored sessions")
        for col in (
            "stored sessions",
            "new session p50",
            "p99",
            "vs smallest",
            "1,000-turn session p50",
            "p99",
            "vs smallest",
        ):
            t.add_column(col, justify="right")
        for size, entry in growth["sizes"].items():
            new, hist = entry["new"], entry["history"]
            t.add_row(
                f"{int(size):,}",
                _f(new["p50_ms"], 2),
                _f(new["p99_ms"], 2),
                _f(new.get("p50_vs_smallest_new"), 2),
                _f(hist["p50_ms"], 2),
                _f(hist["p99_ms"], 2),
                _f(hist.get("p50_vs_smallest_new"), 2),
            )
        console.print(t)

    anatomy = scen.get("anatomy")
    if anatomy:
        _anatomy(console, anatomy)

    t = Table(title="Targets (issue 10)")
    for col in ("target", "wanted", "measured", "holds", "note"):
        t.add_column(col)
    for target in results["targets"]:
        holds = {True: "[green]yes[/green]", False: "[red]NO[/red]", None: "?"}[target["holds"]]
        t.add_row(
            target["name"],
            target["target"],
            _f(target["measured"], 2),
            holds,
            target.get("note", ""),
        )
    console.print(t)

    report_issue17.targets(console, results.get("targets_issue17", []))

    for name, error in results.get("errors", {}).items():
        console.print(f"[red]{name} failed:[/red] {error}")
    console.print("command lines:")
    for name, command in results.get("commands", {}).items():
        console.print(f"  {name}: {command}", soft_wrap=True)
    console.print(f"results: {output}")
    console.print(
        "[dim]numbers from a shared machine are noisy: see 'other on its core' "
        "(CPU other processes took on the service's core)[/dim]"
    )


def _anatomy(console: Console, anatomy: dict[str, Any]) -> None:
    rules = anatomy["rules"]
    base = rules[0]
    t = Table(
        title="Anatomy of a read turn, in-process (ConversationService.handle, 1 at a time; "
        f"median of {base['rounds']} rounds)"
    )
    t.add_column("part")
    t.add_column("calls", justify="right")
    t.add_column("wall ms", justify="right")
    t.add_column("loop CPU ms", justify="right")
    for name, part in sorted(base["parts"].items(), key=lambda kv: -kv[1]["wall_ms_per_turn"]):
        t.add_row(
            name,
            _f(part["calls_per_turn"], 1),
            _f(part["wall_ms_per_turn"], 3),
            _f(part["loop_cpu_ms_per_turn"], 3),
        )
    t.add_row(
        "[bold]handle, total",
        "1",
        _f(base["handle_wall_ms_mean"], 3),
        _f(base["handle_loop_cpu_ms_mean"], 3),
    )
    console.print(t)
    t = Table(title="What-if variants (applied at runtime, not in the app's files)")
    for col in ("variant", "handle wall ms", "process CPU ms", "planner ms", "store reads ms"):
        t.add_column(col, justify="right" if col != "variant" else "left")
    for run in rules:
        parts = run["parts"]
        reads = sum(
            parts.get(k, {}).get("wall_ms_per_turn", 0.0)
            for k in ("store.turn_state", "store.get", "store.get_or_create", "store.history")
        )
        t.add_row(
            " + ".join(run["variant"]),
            _f(run["handle_wall_ms_mean"], 2),
            _f(run["handle_process_cpu_ms_mean"], 2),
            _f(parts.get("planner.plan", {}).get("wall_ms_per_turn"), 2),
            _f(reads, 2),
        )
    console.print(t)
    db = anatomy.get("db", {})
    if db:
        t = Table(title="One store operation, three ways (process CPU ms per call)")
        t.add_column("operation")
        ways = list(next(iter(db.values())).keys())
        for way in ways:
            t.add_column(way, justify="right")
        for op, by_way in db.items():
            t.add_row(op, *[_f(by_way.get(w, {}).get("process_cpu_ms"), 3) for w in ways])
        console.print(t)
    llm = anatomy.get("llm", {})
    if llm:
        handle = llm.get("handle (fake Gemini in this process, no delay)", {})
        sdk = llm.get("sdk_generate_content") or {}
        plan = llm.get("planner_plan") or {}
        bare = llm.get("bare_httpx_post") or {}
        console.print(
            "LLM turn in-process (no model delay), event-loop CPU per turn: handle "
            f"{_f(handle.get('loop_cpu_ms_per_turn'), 2)} ms, planner.plan "
            f"{_f(plan.get('loop_cpu_ms_per_turn'), 2)} ms, of which the SDK's generate_content "
            f"{_f(sdk.get('loop_cpu_ms_per_turn'), 2)} ms; the same "
            f"{llm.get('request_body_bytes')}-byte request posted with bare httpx2: "
            f"{_f(bare.get('loop_cpu_ms_per_call'), 2)} ms"
        )
