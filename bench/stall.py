"""Scenario `stall`: the largest gap in a 1 ms ticker inside droplet 12's loop, under the read mix.

Droplet 12 runs as `python -m bench.stall_probe` (app.main unchanged, plus the ticker; see that
module for what a gap means). The load generator signals the probe at the edges of its measured
window, so each summary covers exactly the window whose turns it reports. Measured: idle (1 s,
signalled from here), the read mix closed loop at each of the plan's `stall_clients`, and open
loop at half the capacity measured at the largest of them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.procs import BenchError, Service
from bench.stall_probe import ENV_FILE

if TYPE_CHECKING:
    from bench.run import Bench


def _collect(path: Path, timeout_s: float = 5.0) -> dict[str, Any]:
    """The probe's summary of the window that just ended (it writes on SIGUSR2)."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise BenchError(f"the stall probe wrote no {path.name}")
        time.sleep(0.02)
    summary: dict[str, Any] = json.loads(path.read_text())
    path.unlink()
    return summary


def _idle(service: Service, path: Path) -> dict[str, Any]:
    os.kill(service.pid, signal.SIGUSR1)
    time.sleep(1.0)
    os.kill(service.pid, signal.SIGUSR2)
    return _collect(path)


def scenario_stall(bench: Bench) -> dict[str, Any]:
    from bench.run import _pool, read_mix

    path = bench.workdir / "stall.json"
    service = bench.droplet12(
        "droplet12-stall",
        data_dir=bench.workdir / "d12-stall",
        extra={ENV_FILE: str(path)},
        module="bench.stall_probe",
    )
    mix = read_mix()
    try:
        out: dict[str, Any] = {
            "startup_s": bench.ready(service)[service.name],
            "method": "gap between consecutive wake-ups of `await asyncio.sleep(0.001)` in a "
            "task on the service's own event loop (bench.stall_probe), over the load "
            "generator's measured window",
        }
        bench.smoke(service)
        out["idle"] = _idle(service, path)

        def window(clients: int, rate: float | None, prefix: str) -> dict[str, Any]:
            res = bench.http(
                service,
                clients=clients,
                steps=mix,
                prefix=prefix,
                rate=rate,
                duration=bench.plan.duration_s * (2 if rate else 1),
                extra={"stall_probe_pid": service.pid},
            )
            pooled = _pool([res], "mix")
            return {
                "clients": clients,
                "rate_per_s": rate,
                "turns_per_s": pooled["per_s"],
                "p50_ms": pooled["p50_ms"],
                "p99_ms": pooled["p99_ms"],
                "cpu_ms_per_turn_with_probe": pooled["server_cpu_ms_per_request"],
                "failed": pooled["unexpected"] + sum(pooled["errors"].values()),
                "stall": _collect(path),
            }

        for clients in bench.plan.stall_clients:
            out[f"c{clients}"] = window(clients, None, f"stall-c{clients}")
        top = max(bench.plan.stall_clients)
        capacity = out[f"c{top}"]["turns_per_s"]
        if capacity:
            rate = round(capacity * 0.5, 1)
            out[f"c{top}_open_half"] = window(top, rate, f"stall-open-c{top}")
        under_load = [v["stall"]["gap_max_ms"] for k, v in out.items() if k[1:2].isdigit()]
        out["worst_gap_ms"] = max((g for g in under_load if g is not None), default=None)
        return out
    finally:
        bench.stop(service)
