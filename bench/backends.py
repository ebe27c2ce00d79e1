"""Scenario `pg`: the read mix and the write pair on SQLite and on PostgreSQL, interleaved.

Two droplet 12 instances run side by side on the service core, one on SQLite (its data
directory) and one with `DATABASE_URL=postgresql+asyncpg://.../bench_<pid>` (a database created
for this run and dropped after it, see bench.pg). Each round runs, per concurrency, the mix and
the write pair on one backend and then on the other (the order alternates by round), so noise
hits both alike. Reported per cell: droplet 12's own CPU per turn (its process only), and
PostgreSQL's CPU per turn separately (the backends serving `bench_<pid>`, summed from /proc;
background writer, WAL writer and checkpointer are not included). The backends are pinned to
the load core(s) before each window (those forked during a window's warm-up run where the
kernel puts them until the next one), so PostgreSQL does not take the service's core.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from bench.pg import fresh_database

if TYPE_CHECKING:
    from bench.run import Bench


def _cell(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds of one (backend, workload, clients) cell."""

    def med(key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return round(statistics.median(values), 3) if values else None

    return {
        "rounds": len(rows),
        "turns_per_s": med("turns_per_s"),
        "cpu_ms_per_turn": med("cpu_ms_per_turn"),
        "postgres_cpu_ms_per_turn": med("postgres_cpu_ms_per_turn"),
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        "other_on_core": med("other_on_core"),
        "failed": sum(int(r.get("failed") or 0) for r in rows),
        "backends_pinned": [r.get("backends_pinned") for r in rows],
        "per_round_cpu_ms_per_turn": [r.get("cpu_ms_per_turn") for r in rows],
    }


def _per_turn(system: dict[str, Any], key: str, window_s: float, turns: int) -> float | None:
    value = system.get(key)
    if value is None or not turns:
        return None
    return round(float(value) * window_s * 1000 / turns, 3)


def _mix_row(res: dict[str, Any]) -> dict[str, Any]:
    from bench.run import _pool

    pooled = _pool([res], "mix")
    system = res.get("system", {})
    return {
        "turns_per_s": pooled["per_s"],
        "cpu_ms_per_turn": pooled["server_cpu_ms_per_request"],
        "postgres_cpu_ms_per_turn": _per_turn(
            system, "postgres_cpu", res["window_s"], pooled["count"]
        ),
        "p50_ms": pooled["p50_ms"],
        "p99_ms": pooled["p99_ms"],
        "other_on_core": pooled["server_core_other"],
        "failed": pooled["unexpected"] + sum(pooled["errors"].values()),
    }


def _write_row(row: dict[str, Any]) -> dict[str, Any]:
    turns = int(row["turn"]["count"] or 0)
    return {
        "turns_per_s": row["turns_per_s"],
        "cpu_ms_per_turn": row["server_cpu_ms_per_turn"],
        "postgres_cpu_ms_per_turn": _per_turn(
            row["system"], "postgres_cpu", row["window_s"], turns
        ),
        "p50_ms": row["turn"]["p50_ms"],
        "p99_ms": row["turn"]["p99_ms"],
        "other_on_core": row["system"].get("server_cores", {}).get("other"),
        "failed": row["failed"],
    }


def scenario_pg(bench: Bench) -> dict[str, Any]:
    from bench.run import read_mix

    plan = bench.plan
    mix = read_mix()
    with fresh_database() as db:
        sqlite = bench.droplet12("droplet12-sqlite", data_dir=bench.workdir / "pg-sqlite")
        pg = bench.droplet12(
            "droplet12-pg",
            data_dir=bench.workdir / "pg-pg",
            extra={"DATABASE_URL": db.service_url},
        )
        try:
            startup = bench.ready(sqlite, pg)
            bench.smoke(sqlite)
            bench.smoke(pg)
            extra = {"watch_groups": {"postgres": db.backend_needle}}
            rows: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
            for r in range(plan.pg_rounds):
                order = [("sqlite", sqlite), ("pg", pg)]
                for clients in plan.pg_clients:
                    for backend, service in order if r % 2 == 0 else order[::-1]:
                        pinned = db.pin_backends(bench.layout.load) if bench.layout.pinned else 0
                        res = bench.http(
                            service,
                            clients=clients,
                            steps=mix,
                            prefix=f"pg-{backend}-mix-r{r}-c{clients}",
                            extra=extra,
                        )
                        row = {**_mix_row(res), "backends_pinned": pinned}
                        rows.setdefault((backend, "mix", clients), []).append(row)
                        pinned = db.pin_backends(bench.layout.load) if bench.layout.pinned else 0
                        pair = bench.write_pair(
                            service,
                            clients=clients,
                            prefix=f"pg-{backend}-write-r{r}-c{clients}",
                            extra=extra,
                        )
                        row = {**_write_row(pair), "backends_pinned": pinned}
                        rows.setdefault((backend, "write", clients), []).append(row)
        finally:
            bench.stop(sqlite, pg)
    out: dict[str, Any] = {
        "postgres": {"server_version": db.server_version, "database_url": db.service_url},
        "startup_s": startup,
        "rounds": plan.pg_rounds,
        "mix_texts": len(mix),
        "cpu_note": "droplet 12's own process only; PostgreSQL's backends separately",
        "sqlite": {},
        "pg": {},
        "pg_over_sqlite_cpu": {},
    }
    for (backend, workload, clients), cell_rows in rows.items():
        out[backend].setdefault(workload, {})[f"c{clients}"] = _cell(cell_rows)
    for workload in ("mix", "write"):
        for clients in plan.pg_clients:
            key = f"c{clients}"
            lite = out["sqlite"][workload][key]["cpu_ms_per_turn"]
            post = out["pg"][workload][key]["cpu_ms_per_turn"]
            ratio = round(post / lite, 3) if lite and post else None
            out["pg_over_sqlite_cpu"].setdefault(workload, {})[key] = ratio
    return out
