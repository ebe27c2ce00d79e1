"""Processes under test: pinned start-up, readiness, stop, and the load generator's jobs."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import sysinfo

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SHOWN_SECRETS = ("DROPLET_SECRET", "GEMINI_API_KEY")


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Layout:
    """Which cores the service gets and which the load (load generator, mesh, fakes) gets."""

    pinned: bool
    server: list[int]
    load: list[int]

    def describe(self) -> str:
        if not self.pinned:
            return f"not pinned (cpus {self.server}): numbers include load-generator contention"
        return f"service on cpu {self.server}, load generator + sandbox mesh + fakes on {self.load}"


def cpu_layout() -> Layout:
    if not hasattr(os, "sched_getaffinity"):
        return Layout(pinned=False, server=[], load=[])
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return Layout(pinned=False, server=cpus, load=cpus)
    return Layout(pinned=True, server=[cpus[0]], load=cpus[1:])


def pin_self(cpus: list[int]) -> None:
    """Pin the calling thread (threads it starts later inherit the mask)."""
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cpus))


@contextlib.contextmanager
def affinity(cpus: list[int]) -> Iterator[None]:
    """Run the block with this thread pinned to `cpus`: a child forked inside inherits them."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; children (the services) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_call(
    port: int, method: str, path: str, body: Any = None, timeout: float = 10.0
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode("utf-8", "replace")


@dataclass
class Service:
    """One server process (droplet 12 or the baseline), pinned to the service core."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    cpus: list[int]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    shown_env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise BenchError(f"{self.name} is not running")
        return self.popen.pid

    def command_line(self) -> str:
        env = " ".join(
            f"{k}={'<sandbox>' if k in SHOWN_SECRETS else v}" for k, v in self.shown_env.items()
        )
        cpus = ",".join(str(c) for c in self.cpus)
        pin = f"taskset -c {cpus} " if self.cpus else ""
        return f"cd {self.cwd} && {env} {pin}{' '.join(self.argv)}"

    def start(self) -> None:
        self.cwd.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        try:
            with affinity(self.cpus):
                self.popen = subprocess.Popen(
                    self.argv,
                    env=self.env,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        finally:
            log.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, path: str = "/health", timeout: float = 90.0) -> float:
        """Seconds until the first HTTP answer on `path`."""
        started = time.monotonic()
        while True:
            if self.popen is None or self.popen.poll() is not None:
                raise BenchError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                http_call(self.port, "GET", path, timeout=2.0)
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise BenchError(
                    f"{self.name} not answering after {timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def status(self) -> dict[str, Any]:
        return sysinfo.process_status(self.pid) if self.popen is not None else {}

    def log_counts(self) -> dict[str, int]:
        """Warning and error lines the service logged (LOG_FORMAT=json)."""
        counts: dict[str, int] = {}
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return counts
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                key = f"{record.get('level', '?')}:{record.get('event', '?')}"
                counts[key] = counts.get(key, 0) + 1
        return counts

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.popen is None or self.popen.poll() is not None:
            return None if self.popen is None else self.popen.returncode
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(5)


def service_env(overrides: Mapping[str, str], *, drop: set[str]) -> dict[str, str]:
    """The harness environment minus the variables in `drop` (any case), plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in drop}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(overrides)
    return env


class LoadGenerator:
    """Runs `python -m bench.loadgen` once per job, pinned to the first load core."""

    def __init__(self, layout: Layout) -> None:
        self._cpu = layout.load[0] if layout.pinned else None
        self.command = f"{PYTHON} -m bench.loadgen < job.json"
        self.cpus = layout.load[:1] if layout.pinned else []

    def run(self, job: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        payload = json.dumps({**job, "cpu": self._cpu})
        try:
            done = subprocess.run(
                [PYTHON, "-m", "bench.loadgen"],
                input=payload,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=ROOT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"load generator timed out after {timeout:.0f}s") from exc
        if done.returncode != 0 or not done.stdout.strip():
            tail = "\n".join(done.stderr.splitlines()[-15:])
            raise BenchError(f"load generator failed ({done.returncode}):\n{tail}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result
