"""The tables of the issue-17 scenarios (`pg`, `stall`) and the issue's targets."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from bench.fmt import num, pct


def tables(console: Console, scen: dict[str, Any]) -> None:
    if scen.get("pg"):
        _pg(console, scen["pg"])
    if scen.get("stall"):
        _stall(console, scen["stall"])


def _pg(console: Console, pg: dict[str, Any]) -> None:
    t = Table(
        title=f"SQLite vs PostgreSQL {pg['postgres']['server_version'].split()[0]} "
        f"(median of {pg['rounds']} interleaved rounds); CPU ms/turn is droplet 12's own, "
        "PostgreSQL's backends are counted apart"
    )
    for col in (
        "workload",
        "clients",
        "database",
        "turns/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/turn",
        "PG backends ms/turn",
        "PG / SQLite CPU",
        "other on its core",
        "failed",
    ):
        t.add_column(col, justify="left" if col in ("workload", "database") else "right")
    for workload, label in (("mix", "read mix"), ("write", "write pair")):
        for key in pg["sqlite"].get(workload, {}):
            for backend, name in (("sqlite", "SQLite"), ("pg", "PostgreSQL")):
                cell = pg[backend][workload][key]
                ratio = pg["pg_over_sqlite_cpu"][workload][key] if backend == "pg" else None
                t.add_row(
                    label,
                    key[1:],
                    name,
                    num(cell["turns_per_s"]),
                    num(cell["p50_ms"], 2),
                    num(cell["p99_ms"], 2),
                    num(cell["cpu_ms_per_turn"], 2),
                    num(cell["postgres_cpu_ms_per_turn"], 2),
                    num(ratio, 2),
                    pct(cell["other_on_core"]),
                    str(cell["failed"]),
                )
    console.print(t)


def _stall(console: Console, stall: dict[str, Any]) -> None:
    t = Table(
        title="Event-loop stalls: gaps of a 1 ms ticker in droplet 12's loop (bench.stall_probe) "
        "under the read mix; 'loop CPU max': the most CPU the loop thread used within one gap"
    )
    for col in (
        "load",
        "turns/s",
        "turn p99 ms",
        "CPU ms/turn (probe on)",
        "gap p50",
        "gap p99",
        "gap max",
        "gaps > 10 ms",
        "loop CPU max",
        "own gap max",
        "5 largest gaps ms",
    ):
        t.add_column(col, justify="left" if col == "load" else "right")
    rows = [("idle (1 s)", stall.get("idle", {}), None)]
    for key, row in stall.items():
        if key[1:2].isdigit():
            load = f"{row['clients']} clients"
            load += f" open @{row['rate_per_s']}/s" if row.get("rate_per_s") else " closed loop"
            rows.append((load, row["stall"], row))
    for load, gaps, row in rows:
        t.add_row(
            load,
            num(row["turns_per_s"]) if row else "-",
            num(row["p99_ms"], 2) if row else "-",
            num(row["cpu_ms_per_turn_with_probe"], 2) if row else "-",
            num(gaps.get("gap_p50_ms"), 2),
            num(gaps.get("gap_p99_ms"), 2),
            num(gaps.get("gap_max_ms"), 2),
            num(gaps.get("gaps_over_10ms")),
            num(gaps.get("busy", {}).get("gap_max_ms"), 2),
            num(gaps.get("own_gap_max_ms"), 2),
            ", ".join(f"{g:g}" for g in gaps.get("largest_ms", [])),
        )
    console.print(t)


def targets(console: Console, checks: list[dict[str, Any]]) -> None:
    if not checks:
        return
    t = Table(title="Targets (issue 17)")
    for col in ("scenario", "target", "measured", "holds", "note"):
        t.add_column(col)
    for check in checks:
        holds = {True: "[green]yes[/green]", False: "[red]NO[/red]", None: "?"}[check["holds"]]
        t.add_row(
            check["scenario"], check["target"], num(check["measured"], 2), holds, check["note"]
        )
    console.print(t)
