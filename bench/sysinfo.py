"""What the machine was doing: per-core CPU time, per-process CPU time and memory, from /proc.

Used by the load generator at the edges of each measured window, so every number comes with
how busy the server's core was and how much of that was somebody else (other processes, or the
hypervisor's steal time) -- the noise that a shared 2-core machine adds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class CoreTimes:
    busy: int
    """Ticks not idle and not waiting for I/O (steal included)."""
    steal: int
    total: int


def core_times() -> dict[int, CoreTimes]:
    """Per-core tick counters from /proc/stat ({} where /proc is missing)."""
    out: dict[int, CoreTimes] = {}
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                if not line.startswith("cpu") or line.startswith("cpu "):
                    continue
                name, *fields = line.split()
                values = [int(v) for v in fields]
                idle = values[3] + (values[4] if len(values) > 4 else 0)
                steal = values[7] if len(values) > 7 else 0
                total = sum(values[:8])
                out[int(name[3:])] = CoreTimes(busy=total - idle, steal=steal, total=total)
    except OSError:
        return {}
    return out


def process_ticks(pid: int) -> int | None:
    """utime + stime of a process (all its threads), in clock ticks; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            raw = stat.read()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def process_status(pid: int) -> dict[str, Any]:
    """VmRSS/RssAnon/VmHWM (KiB), Threads and Cpus_allowed_list of a process."""
    out: dict[str, Any] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "RssAnon", "VmHWM"):
                    out[key] = int(value.split()[0])
                elif key == "Threads":
                    out[key] = int(value)
                elif key == "Cpus_allowed_list":
                    out[key] = value.strip()
    except OSError:
        pass
    return out


def matching_pids(needle: str) -> list[int]:
    """Processes whose command line contains `needle`, e.g. the PostgreSQL backends serving one
    database (their title is `postgres: <cluster>: <user> <database> <client> <state>`)."""
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                text = cmdline.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if needle in text:
            found.append(int(entry))
    return found


def group_ticks(needle: str) -> dict[int, int]:
    """CPU ticks of every process matching `needle`, by pid (see `matching_pids`)."""
    out: dict[int, int] = {}
    for pid in matching_pids(needle):
        ticks = process_ticks(pid)
        if ticks is not None:
            out[pid] = ticks
    return out


@dataclass(frozen=True, slots=True)
class Snapshot:
    cores: dict[int, CoreTimes]
    processes: dict[str, int | None]
    groups: dict[str, dict[int, int]]
    """Per named group (a command-line needle), ticks by pid: processes come and go."""


def snapshot(pids: dict[str, int], groups: dict[str, str] | None = None) -> Snapshot:
    return Snapshot(
        cores=core_times(),
        processes={n: process_ticks(p) for n, p in pids.items()},
        groups={name: group_ticks(needle) for name, needle in (groups or {}).items()},
    )


def usage_between(
    first: Snapshot, second: Snapshot, seconds: float, cores_of: dict[str, list[int]]
) -> dict[str, Any]:
    """CPU use between two snapshots, as fractions of one core.

    `cores_of` says which cores each watched process is pinned to, so what else ran on those
    cores ("other") can be told apart from the process itself.
    """
    if seconds <= 0:
        return {}
    span = seconds * TICKS
    out: dict[str, Any] = {}
    for name, before in first.processes.items():
        after = second.processes.get(name)
        if before is not None and after is not None:
            out[f"{name}_cpu"] = round((after - before) / span, 3)
    for name, before_group in first.groups.items():
        after_group = second.groups.get(name, {})
        # A pid seen only at the end was born in the window: all its ticks are the window's.
        # One gone by the end lost its last ticks with it (backends of a pool rarely exit).
        ticks = sum(t - before_group.get(pid, 0) for pid, t in after_group.items())
        out[f"{name}_cpu"] = round(ticks / span, 3)
        out[f"{name}_processes"] = len(after_group)
    for core, a in first.cores.items():
        b = second.cores.get(core)
        if b is None:
            continue
        busy = (b.busy - a.busy) / span
        steal = (b.steal - a.steal) / span
        ours = sum(
            out.get(f"{name}_cpu", 0.0) / max(1, len(cores))
            for name, cores in cores_of.items()
            if core in cores
        )
        out[f"core{core}"] = {
            "busy": round(busy, 3),
            "steal": round(steal, 3),
            "other": round(max(0.0, busy - steal - ours), 3),
        }
    for name, cores in cores_of.items():
        entries = [out[f"core{c}"] for c in cores if f"core{c}" in out]
        if entries:
            out[f"{name}_cores"] = {
                key: round(sum(e[key] for e in entries) / len(entries), 3)
                for key in ("busy", "steal", "other")
            }
    return out
