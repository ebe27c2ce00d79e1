"""The targets of issue 17 (a different shape for the turn), checked against one run's results.

Each check names its scenario, the target, the measured value and whether it holds (None when
the scenario did not run far enough to tell). Used for the JSON (`targets_issue17`) and the
table; docs/performance.md "Issue 17" quotes them.
"""

from __future__ import annotations

from typing import Any

CPU_READ_MS = 0.75
RATIO_READ = 0.33
OPEN_P99_MS = 25.0
CPU_WRITE_MS = 1.5
LLM_OVERHEAD_MS = 3.0
LLM_CPU_MS = 3.0
LLM_TURNS_PER_S = 150.0
STALL_MS = 10.0
PG_OVER_SQLITE = 2.0


def _check(
    scenario: str, target: str, measured: Any, holds: bool | None, note: str = ""
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "target": target,
        "measured": measured,
        "holds": holds,
        "note": note,
    }


def _is_run(key: str) -> bool:
    """`c64`, `c64_open_half`: a measured row (other keys are notes and set-up)."""
    head = key.split("_")[0]
    return head.startswith("c") and head[1:].isdigit()


def _at_most(value: Any, limit: float) -> bool | None:
    return None if value is None else bool(value <= limit)


def _reads(http: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for which, label in (("read", 'read turn ("show me all droplets")'), ("mix", "read mix")):
        rows = http.get(which, {})
        for key in sorted(k for k in rows if "_" not in k):
            cpu = rows[key].get("server_cpu_ms_per_request")
            out.append(
                _check(
                    f"{label}, {key[1:]} clients",
                    f"CPU/turn <= {CPU_READ_MS} ms",
                    cpu,
                    _at_most(cpu, CPU_READ_MS),
                )
            )
        top = rows.get("c64", {})
        ratio = top.get("ratio_to_baseline")
        out.append(
            _check(
                f"{label}, 64 clients",
                f"throughput >= {RATIO_READ} x trivial POST",
                ratio,
                None if ratio is None else ratio >= RATIO_READ,
            )
        )
        open_half = rows.get("c64_open_half", {})
        p99 = open_half.get("p99_ms")
        out.append(
            _check(
                f"{label}, 64 clients open loop at 50% capacity",
                f"p99 <= {OPEN_P99_MS:g} ms",
                p99,
                _at_most(p99, OPEN_P99_MS),
                f"{open_half.get('rate_per_s')} turns/s offered, p50 {open_half.get('p50_ms')} ms",
            )
        )
    return out


def _writes(write: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, row in write.items():
        if not _is_run(key) or "_" in key:
            continue
        cpu = row.get("server_cpu_ms_per_turn")
        out.append(
            _check(
                f"write pair (propose + yes), {key[1:]} clients",
                f"CPU/turn <= {CPU_WRITE_MS} ms (the peer's time excluded)",
                cpu,
                _at_most(cpu, CPU_WRITE_MS),
            )
        )
    return out


def _paced(http: dict[str, Any]) -> str:
    """The trivial POST and the read turn, one request every 0.3 s (the machine idle between)."""
    parts = []
    for which, label in (("baseline", "trivial POST"), ("read", "rules read turn")):
        row = http.get(which, {}).get("c1_paced", {})
        if row:
            parts.append(
                f"{label} {row.get('server_cpu_ms_per_request')} ms CPU, p50 {row.get('p50_ms')} ms"
            )
    return "paced like it (3.3/s): " + "; ".join(parts) if parts else ""


def _llm(llm: dict[str, Any], http: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    paced = _paced(http)
    for key, row in llm.get("runs", {}).items():
        where = f"LLM path, model {row['delay_ms']:g} ms, {row['clients']} clients"
        if row["clients"] == 1:
            overhead = row.get("overhead_p50_ms")
            out.append(
                _check(
                    where,
                    f"own overhead p50 <= {LLM_OVERHEAD_MS:g} ms",
                    overhead,
                    _at_most(overhead, LLM_OVERHEAD_MS),
                    paced if row["delay_ms"] >= 100 else "",
                )
            )
        cpu = row.get("server_cpu_ms_per_request")
        note = paced if row["clients"] == 1 and row["delay_ms"] >= 100 else ""
        out.append(
            _check(where, f"CPU/turn <= {LLM_CPU_MS:g} ms", cpu, _at_most(cpu, LLM_CPU_MS), note)
        )
        calls = row.get("model_calls_per_turn")
        failed = row.get("failed")
        out.append(
            _check(
                where,
                "no failed turn, exactly one model call per turn",
                f"{failed} failed, {calls} calls/turn",
                None if calls is None else failed == 0 and abs(calls - 1.0) < 1e-9,
            )
        )
        if key == "d300_c64":
            rate = row.get("per_s")
            out.append(
                _check(
                    where,
                    f">= {LLM_TURNS_PER_S:g} turns/s",
                    rate,
                    None if rate is None else rate >= LLM_TURNS_PER_S,
                )
            )
    return out


def _stall(stall: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, row in stall.items():
        if not _is_run(key):
            continue
        probe = row["stall"]
        # Judged on the loop's own work: the most CPU time its thread spent between two ticks
        # (wall-clock gaps on a shared machine include time the core ran someone else).
        busy = probe.get("busy", {}).get("gap_max_ms")
        mode = " open loop at 50% capacity" if "open" in key else ""
        out.append(
            _check(
                f"event loop under the read mix, {row['clients']} clients{mode}",
                f"no stall > {STALL_MS:g} ms (loop CPU between two 1 ms ticks)",
                busy,
                _at_most(busy, STALL_MS),
                f"wall-clock gaps: max {probe.get('gap_max_ms')} ms, p99 "
                f"{probe.get('gap_p99_ms')} ms, {probe.get('gaps_over_10ms')} > 10 ms; largest "
                f"gap that was >= 80% loop CPU {probe.get('own_gap_max_ms')} ms",
            )
        )
    return out


def _pg(pg: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for workload, by_clients in pg.get("pg_over_sqlite_cpu", {}).items():
        label = "read mix" if workload == "mix" else "write pair"
        for key, ratio in by_clients.items():
            out.append(
                _check(
                    f"PostgreSQL vs SQLite, {label}, {key[1:]} clients",
                    f"CPU/turn within {PG_OVER_SQLITE:g}x SQLite's",
                    ratio,
                    _at_most(ratio, PG_OVER_SQLITE),
                    f"PostgreSQL {pg['pg'][workload][key]['cpu_ms_per_turn']} ms vs SQLite "
                    f"{pg['sqlite'][workload][key]['cpu_ms_per_turn']} ms; PostgreSQL's own "
                    f"backends {pg['pg'][workload][key]['postgres_cpu_ms_per_turn']} ms/turn",
                )
            )
    return out


def add_ratios(results: dict[str, Any]) -> None:
    """Throughput at 64 clients against the trivial POST at 64 clients, for the scenarios that
    are not interleaved with it (the write pair, the LLM path, both databases): the `http`
    scenario's baseline of the same run (median of its rounds). Needs `http` in the run."""
    scen = results.get("scenarios", {})
    base = scen.get("http", {}).get("baseline", {}).get("c64", {}).get("per_s")
    if not base:
        return
    rows: list[tuple[dict[str, Any], str]] = []
    rows += [(scen.get("write", {}).get("c64", {}), "turns_per_s")]
    rows += [(row, "per_s") for row in scen.get("llm", {}).get("runs", {}).values()]
    for backend in ("sqlite", "pg"):
        for cells in scen.get("pg", {}).get(backend, {}).values():
            rows.append((cells.get("c64", {}), "turns_per_s"))
    for row, key in rows:
        if row.get(key) and row.get("clients", 64) == 64:
            row["ratio_to_baseline_c64"] = round(row[key] / base, 4)


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    scen = results.get("scenarios", {})
    checks: list[dict[str, Any]] = []
    if scen.get("http"):
        checks += _reads(scen["http"])
    if scen.get("write"):
        checks += _writes(scen["write"])
    if scen.get("llm"):
        checks += _llm(scen["llm"], scen.get("http", {}))
    if scen.get("stall"):
        checks += _stall(scen["stall"])
    if scen.get("pg"):
        checks += _pg(scen["pg"])
    return checks
