"""The load generator: its own process, pinned to its own core, raw HTTP/1.1 and WebSocket.

    python -m bench.loadgen < job.json > result.json

One job as JSON on stdin, one result as JSON on stdout (`bench.run` starts it once per
scenario). The protocols are written against asyncio directly (uvloop when installed) rather
than httpx2 or websockets: a client must spend far less CPU per request than the server it loads,
and each result says how busy this process was (`client_cpu_util`), so a saturated client is
visible instead of silently capping the numbers.

Jobs:
- `http`: `clients` closed-loop clients, one keep-alive connection each, each cycling through
  `steps` (POST bodies where `@SESSION@` becomes the client's own session id) for `warmup_s`
  then `duration_s`; latencies of the requests completed inside the measured window. With
  `rate_per_s` the clients run open loop at that total rate instead (latency from the time each
  request was due).
- `ws`: hold `connections` WebSocket connections to `/ws`, read the server's RSS before and
  after, publish events through `POST /message` and time their arrival on every connection,
  and time chat turns (over the WebSocket and over REST) with and without the crowd.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, cast

from bench import sysinfo

# ---------------------------------------------------------------------------------------------
# Process set-up


def prepare_process(cpu: int | None) -> dict[str, Any]:
    """Pin this process to `cpu` (when the machine has it) and raise the open-file limit."""
    info: dict[str, Any] = {}
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            if cpu in os.sched_getaffinity(0):
                os.sched_setaffinity(0, {cpu})
        except OSError as exc:
            info["pin_error"] = str(exc)
        info["cpus"] = sorted(os.sched_getaffinity(0))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    info["nofile"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return info


def new_event_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.new_event_loop(), "asyncio"
    return uvloop.new_event_loop(), "uvloop"


def _watched(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Processes whose CPU use is sampled with the window: the job's, plus this one."""
    watched: dict[str, dict[str, Any]] = dict(job.get("watch", {}))
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    watched["loadgen"] = {"pid": os.getpid(), "cores": cores}
    return watched


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_rss_kib(pid: int) -> dict[str, Any]:
    """VmRSS, RssAnon and VmHWM of a process, in KiB (from /proc/<pid>/status)."""
    return sysinfo.process_status(pid)


# ---------------------------------------------------------------------------------------------
# Statistics


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-fraction * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def summarise(latencies_s: list[float], window_s: float | None = None) -> dict[str, Any]:
    values = sorted(latencies_s)
    ms = [v * 1000 for v in values]

    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    out: dict[str, Any] = {
        "count": len(ms),
        "p50_ms": r(percentile(ms, 0.50)),
        "p90_ms": r(percentile(ms, 0.90)),
        "p99_ms": r(percentile(ms, 0.99)),
        "max_ms": r(ms[-1] if ms else None),
        "mean_ms": r(sum(ms) / len(ms) if ms else None),
    }
    if window_s:
        out["per_s"] = round(len(ms) / window_s, 2)
    return out


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 client


class HttpError(Exception):
    pass


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        # status, body start, content length, chunked
        self._head: tuple[int, int, int | None, bool] | None = None
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError("connection closed by the server"))

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._waiter is None or self._waiter.done():
            return
        if self._head is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self._head = _parse_head(bytes(self._buf[:end]), end + 4)
        status, start, length, chunked = self._head
        if length is not None:
            if len(self._buf) < start + length:
                return
            body = bytes(self._buf[start : start + length])
            del self._buf[: start + length]
        elif chunked:
            found = _dechunk(self._buf, start)
            if found is None:
                return
            body, consumed = found
            del self._buf[:consumed]
        else:  # no length: not produced by uvicorn for these endpoints
            self._waiter.set_exception(HttpError("response without Content-Length"))
            return
        self._head = None
        self._waiter.set_result((status, body))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.closed or self.transport is None:
            raise HttpError("connection is closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self._waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _parse_head(head: bytes, body_start: int) -> tuple[int, int, int | None, bool]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise HttpError(f"bad status line {lines[0][:80]!r}")
    length: int | None = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return int(parts[1]), body_start, length, chunked


def _dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    body = bytearray()
    pos = start
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            if len(buf) < pos + 2:
                return None
            return bytes(body), pos + 2
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos : pos + size]
        pos += size + 2


def build_request(method: str, host: str, port: int, path: str, body: bytes | None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench-loadgen\r\n"
    if body is None:
        return (head + "\r\n").encode()
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


# ---------------------------------------------------------------------------------------------
# The http job


class _Step:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.tag: str = spec["tag"]
        self.path: str = spec["path"]
        self.template: str = spec["body"]
        # One substring, or a list of substrings that must all be in the answer.
        expect = spec.get("expect") or []
        self.expect: tuple[bytes, ...] = tuple(
            e.encode() for e in ([expect] if isinstance(expect, str) else expect)
        )

    def unexpected(self, status: int, body: bytes) -> bool:
        return bool(self.expect) and (status != 200 or any(e not in body for e in self.expect))

    def raw(self, host: str, port: int, session: str) -> bytes:
        body = self.template.replace("@SESSION@", session).encode()
        return build_request("POST", host, port, self.path, body)


async def run_http(job: dict[str, Any]) -> dict[str, Any]:
    host, port = job["host"], int(job["port"])
    clients = int(job["clients"])
    warmup, duration = float(job["warmup_s"]), float(job["duration_s"])
    max_requests = int(job.get("max_requests", 1_000_000))
    timeout = float(job.get("timeout_s", 30.0))
    steps = [_Step(s) for s in job["steps"]]
    prefix = job.get("session_prefix", "bench")
    rate = float(job.get("rate_per_s") or 0.0)

    latencies: dict[str, list[float]] = {s.tag: [] for s in steps}
    completed: dict[str, int] = {s.tag: 0 for s in steps}
    statuses: dict[str, dict[str, int]] = {s.tag: {} for s in steps}
    unexpected: dict[str, int] = {s.tag: 0 for s in steps}
    samples: dict[str, str] = {}
    errors: dict[str, int] = {}
    sent = 0
    last_done = 0.0

    begin = time.perf_counter()
    measure_from = begin + warmup
    measure_to = measure_from + duration
    cpu_marks: dict[str, float] = {}
    watched = _watched(job)
    groups: dict[str, str] = dict(job.get("watch_groups", {}))
    snaps: dict[str, sysinfo.Snapshot] = {}
    # The stall probe in the service (bench.stall_probe) opens its window on SIGUSR1 and
    # writes it out on SIGUSR2: sent here so its window is exactly this one.
    probe_pid = job.get("stall_probe_pid")

    def mark(edge: str, signum: signal.Signals) -> None:
        cpu_marks[edge] = cpu_seconds()
        snaps[edge] = sysinfo.snapshot({n: w["pid"] for n, w in watched.items()}, groups)
        if probe_pid:
            os.kill(int(probe_pid), signum)

    async def mark_cpu() -> None:
        # uvloop's timers tick in milliseconds: good enough for CPU accounting, not for latency.
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        mark("from", signal.SIGUSR1)
        await asyncio.sleep(max(0.0, measure_to - time.perf_counter()))
        mark("to", signal.SIGUSR2)

    async def client(index: int) -> None:
        nonlocal sent, last_done
        session = f"{prefix}-{index}"
        raws = [s.raw(host, port, session) for s in steps]
        conn: HttpConnection | None = None
        # A mix of distinct texts: each client starts at its own place in it.
        turn = index if job.get("stagger") else 0
        # Open loop: this client's requests are due every `interval` seconds (staggered), and
        # latency counts from when a request was due, so a server that falls behind is charged
        # for the queueing it causes (no coordinated omission).
        interval = clients / rate if rate else 0.0
        due = begin + interval * index / clients
        while time.perf_counter() < measure_to and sent < max_requests:
            step_index = turn % len(steps)
            step = steps[step_index]
            turn += 1
            if interval:
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                if conn is None or conn.closed:
                    conn = await HttpConnection.open(host, port)
                sent += 1
                started = due if interval else time.perf_counter()
                due += interval
                status, body = await asyncio.wait_for(conn.request(raws[step_index]), timeout)
                done = time.perf_counter()
            except (TimeoutError, HttpError, OSError) as exc:
                name = type(exc).__name__
                errors[name] = errors.get(name, 0) + 1
                if conn is not None:
                    conn.close()
                conn = None
                await asyncio.sleep(0.05)
                continue
            completed[step.tag] += 1
            if step.tag not in samples:
                samples[step.tag] = body[:600].decode("utf-8", "replace")
            if measure_from <= done <= measure_to:
                latencies[step.tag].append(done - started)
                key = str(status)
                statuses[step.tag][key] = statuses[step.tag].get(key, 0) + 1
                if step.unexpected(status, body):
                    unexpected[step.tag] += 1
                last_done = max(last_done, done)
        if conn is not None:
            conn.close()

    cpu_task = asyncio.create_task(mark_cpu())
    await asyncio.gather(*(client(i) for i in range(clients)))
    if "to" not in cpu_marks:  # stopped early by max_requests
        cpu_marks.setdefault("from", cpu_seconds())
        cpu_marks["to"] = cpu_seconds()
    cpu_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cpu_task
    window = duration
    if sent >= max_requests and last_done:
        window = max(0.001, min(duration, last_done - measure_from))
    tags = {}
    everything: list[float] = []
    for step in steps:
        stats = summarise(latencies[step.tag], window)
        stats["status"] = statuses[step.tag]
        stats["unexpected"] = unexpected[step.tag]
        stats["completed_incl_warmup"] = completed[step.tag]
        if job.get("raw"):
            stats["raw_ms"] = [round(v * 1000, 3) for v in latencies[step.tag]]
        tags[step.tag] = stats
        everything.extend(latencies[step.tag])
    client_cpu = cpu_marks["to"] - cpu_marks.get("from", cpu_marks["to"])
    system: dict[str, Any] = {}
    if "from" in snaps and "to" in snaps:
        system = sysinfo.usage_between(
            snaps["from"], snaps["to"], duration, {n: w["cores"] for n, w in watched.items()}
        )
    return {
        "clients": clients,
        "rate_per_s": rate or None,
        "window_s": round(window, 3),
        "warmup_s": warmup,
        "requests_sent": sent,
        "stopped_by_max_requests": sent >= max_requests,
        "total": summarise(everything, window),
        "tags": tags,
        "errors": errors,
        "client_cpu_s": round(client_cpu, 3),
        "client_cpu_util": round(client_cpu / window, 3) if window else None,
        "samples": samples,
        "system": system,
    }


# ---------------------------------------------------------------------------------------------
# WebSocket client (RFC 6455, text frames only, no extensions)


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def _client_frame(opcode: int, payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + _mask(payload, key)


TextHandler = Callable[["WsConnection", bytes, float], None]


class WsConnection(asyncio.Protocol):
    def __init__(self, host: str, port: int, path: str, on_text: TextHandler) -> None:
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\nUser-Agent: bench-loadgen\r\n\r\n"
        ).encode()
        self._on_text = on_text
        self._buf = bytearray()
        self._upgraded = False
        self._fragments: bytearray | None = None
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.welcomed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the handshake finished"))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self._buf += data
        if not self._upgraded:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status_line = bytes(self._buf[: self._buf.find(b"\r\n")])
            if b" 101 " not in status_line + b" ":
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(status_line.decode("latin-1")))
                if self.transport is not None:
                    self.transport.close()
                return
            del self._buf[: end + 4]
            self._upgraded = True
            if not self.ready.done():
                self.ready.set_result(None)
        self._frames(now)

    def _frames(self, now: float) -> None:
        buf = self._buf
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            length = b1 & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                pos = 10
            if b1 & 0x80:
                pos += 4  # servers never mask; skip a key if one came anyway
            if len(buf) < pos + length:
                return
            payload = bytes(buf[pos : pos + length])
            del buf[: pos + length]
            opcode, fin = b0 & 0x0F, b0 & 0x80
            if opcode == 0x9:  # ping
                self._send(0xA, payload)
            elif opcode == 0x8:  # close: answer and let the server drop the TCP connection
                self._send(0x8, payload[:2])
                self.closed = True
            elif opcode == 0x1 and fin:
                self._on_text(self, payload, now)
            elif opcode == 0x1:
                self._fragments = bytearray(payload)
            elif opcode == 0x0 and self._fragments is not None:
                self._fragments += payload
                if fin:
                    text, self._fragments = bytes(self._fragments), None
                    self._on_text(self, text, now)

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_client_frame(opcode, payload))

    def send_text(self, text: str) -> None:
        self._send(0x1, text.encode())

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.close()


# ---------------------------------------------------------------------------------------------
# The ws job


class _WsState:
    def __init__(self) -> None:
        self.welcomed = 0
        self.all_welcomed = asyncio.Event()
        self.expected = 0
        self.marker: bytes | None = None
        self.arrivals: list[float] = []
        self.all_arrived = asyncio.Event()
        self.replies: dict[int, asyncio.Future[tuple[float, dict[str, Any]]]] = {}

    def on_text(self, conn: WsConnection, payload: bytes, now: float) -> None:
        if not conn.welcomed and b'"welcome"' in payload:
            conn.welcomed = True
            self.welcomed += 1
            if self.welcomed >= self.expected:
                self.all_welcomed.set()
            return
        if self.marker is not None and self.marker in payload:
            self.arrivals.append(now)
            if len(self.arrivals) >= self.expected:
                self.all_arrived.set()
            return
        waiter = self.replies.get(id(conn))
        if waiter is not None and not waiter.done() and b'"message"' in payload:
            frame = json.loads(payload)
            if frame.get("type") == "message":
                waiter.set_result((now, frame))


async def _ws_connect(host: str, port: int, state: _WsState, limit_s: float) -> WsConnection:
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: WsConnection(host, port, "/ws", state.on_text), host, port),
        limit_s,
    )
    await asyncio.wait_for(conn.ready, limit_s)
    return conn


async def _ws_turns(
    conn: WsConnection, state: _WsState, text: str, session: str, count: int, limit_s: float
) -> tuple[list[float], int]:
    """`count` sequential turns over one WebSocket: time from send to the answer frame."""
    out: list[float] = []
    failures = 0
    for _ in range(count):
        waiter: asyncio.Future[tuple[float, dict[str, Any]]] = (
            asyncio.get_running_loop().create_future()
        )
        state.replies[id(conn)] = waiter
        started = time.perf_counter()
        conn.send_text(json.dumps({"type": "message", "content": text, "session_id": session}))
        try:
            arrived, _frame = await asyncio.wait_for(waiter, limit_s)
        except TimeoutError:
            failures += 1
            continue
        out.append(arrived - started)
    state.replies.pop(id(conn), None)
    return out, failures


async def _rest_turns(
    host: str, port: int, text: str, session: str, count: int, limit_s: float
) -> tuple[list[float], int]:
    conn = await HttpConnection.open(host, port)
    body = json.dumps({"message": text, "session_id": session}).encode()
    raw = build_request("POST", host, port, "/api/chat", body)
    out: list[float] = []
    failures = 0
    try:
        for _ in range(count):
            started = time.perf_counter()
            status, _ = await asyncio.wait_for(conn.request(raw), limit_s)
            if status != 200:
                failures += 1
                continue
            out.append(time.perf_counter() - started)
    finally:
        conn.close()
    return out, failures


async def _get_json(host: str, port: int, path: str) -> Any:
    conn = await HttpConnection.open(host, port)
    try:
        status, body = await asyncio.wait_for(
            conn.request(build_request("GET", host, port, path, None)), 10
        )
    finally:
        conn.close()
    return json.loads(body) if status == 200 else {"status": status}


async def run_ws(job: dict[str, Any]) -> dict[str, Any]:
    host, port, pid = job["host"], int(job["port"]), int(job["server_pid"])
    total = int(job["connections"])
    concurrency = int(job.get("connect_concurrency", 100))
    timeout = float(job.get("timeout_s", 30.0))
    turns = int(job.get("turns", 20))
    text = job.get("turn_text", "show me all droplets")
    run_id = job.get("run_id", str(os.getpid()))
    state = _WsState()
    result: dict[str, Any] = {"connections_wanted": total}

    # 1. One connection: the round trip of a turn with nobody else connected.
    state.expected = 1
    probe = await _ws_connect(host, port, state, timeout)
    await asyncio.wait_for(state.all_welcomed.wait(), timeout)
    session = f"bench-ws-{run_id}"
    await _ws_turns(probe, state, text, session, 3, timeout)  # warm-up
    alone_ws, alone_ws_fail = await _ws_turns(probe, state, text, session, turns, timeout)
    alone_rest, alone_rest_fail = await _rest_turns(
        host, port, text, f"{session}-rest", turns, timeout
    )
    result["turn_ws_alone"] = {**summarise(alone_ws), "failures": alone_ws_fail}
    result["turn_rest_alone"] = {**summarise(alone_rest), "failures": alone_rest_fail}
    await asyncio.sleep(float(job.get("settle_s", 2.0)))
    before = read_rss_kib(pid)
    result["server_rss_before_kib"] = before

    # 2. The crowd.
    state.expected = total
    state.all_welcomed.clear()
    conns: list[WsConnection] = [probe]
    failures: dict[str, int] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            try:
                conns.append(await _ws_connect(host, port, state, timeout))
            except (OSError, TimeoutError, ConnectionError) as exc:
                name = type(exc).__name__
                failures[name] = failures.get(name, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total - 1)))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.all_welcomed.wait(), timeout)
    result["connect_all_s"] = round(time.perf_counter() - started, 3)
    result["connect_failures"] = failures
    result["connected"] = sum(1 for c in conns if not c.closed)
    result["welcomed"] = state.welcomed
    await asyncio.sleep(float(job.get("settle_s", 2.0)))
    after = read_rss_kib(pid)
    result["server_rss_after_kib"] = after
    held = max(1, result["welcomed"] - 1)
    result["server_kib_per_connection"] = round((after["VmRSS"] - before["VmRSS"]) / held, 2)
    result["server_anon_kib_per_connection"] = round(
        (after.get("RssAnon", 0) - before.get("RssAnon", 0)) / held, 2
    )
    result["server_active_connections"] = (await _get_json(host, port, "/ws/connections")).get(
        "active_connections"
    )

    # 3. Events: one POST /message, every connection must see it.
    state.expected = result["welcomed"]
    events = []
    for k in range(int(job.get("events", 5))):
        marker = f"bench-event-{run_id}-{k}"
        state.marker = marker.encode()
        state.arrivals = []
        state.all_arrived.clear()
        envelope = {
            "trace_id": marker,
            "source": "droplet-10",
            "target": "12",
            "message_type": "event",
            "payload": {"event_type": "bench_event", "severity": "info", "summary": marker},
        }
        conn = await HttpConnection.open(host, port)
        raw = build_request("POST", host, port, "/message", json.dumps(envelope).encode())
        sent_at = time.perf_counter()
        status, _ = await asyncio.wait_for(conn.request(raw), timeout)
        answered = time.perf_counter() - sent_at
        conn.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.all_arrived.wait(), float(job.get("event_timeout_s", 10)))
        arrivals = sorted(a - sent_at for a in state.arrivals)
        events.append(
            {
                "status": status,
                "post_answered_ms": round(answered * 1000, 2),
                "delivered": len(arrivals),
                "first_ms": round(arrivals[0] * 1000, 2) if arrivals else None,
                "p50_ms": round((percentile(arrivals, 0.5) or 0) * 1000, 2),
                "all_ms": round(arrivals[-1] * 1000, 2) if arrivals else None,
            }
        )
        state.marker = None
        await asyncio.sleep(0.5)
    result["events"] = events
    complete: list[float] = [
        e["all_ms"]
        for e in events
        if int(e["delivered"] or 0) >= state.expected and e["all_ms"] is not None
    ]
    result["event_reach_all_ms_median"] = sorted(complete)[len(complete) // 2] if complete else None
    result["event_reach_all_ms_max"] = max(complete) if len(complete) == len(events) else None

    # 4. Turns while everybody is connected.
    crowd_ws, crowd_ws_fail = await _ws_turns(probe, state, text, session, turns, timeout)
    crowd_rest, crowd_rest_fail = await _rest_turns(
        host, port, text, f"{session}-rest", turns, timeout
    )
    result["turn_ws_crowd"] = {**summarise(crowd_ws), "failures": crowd_ws_fail}
    result["turn_rest_crowd"] = {**summarise(crowd_rest), "failures": crowd_rest_fail}

    # 5. Let go.
    for c in conns:
        c.abort()
    await asyncio.sleep(float(job.get("settle_s", 2.0)) + 1.0)
    result["server_rss_after_close_kib"] = read_rss_kib(pid)
    result["server_active_connections_after_close"] = (
        await _get_json(host, port, "/ws/connections")
    ).get("active_connections")
    return result


# ---------------------------------------------------------------------------------------------


async def _main(job: dict[str, Any]) -> dict[str, Any]:
    kind = job["kind"]
    if kind == "http":
        return await run_http(job)
    if kind == "ws":
        return await run_ws(job)
    raise SystemExit(f"unknown job kind {kind!r}")


def main() -> None:
    job = json.loads(sys.stdin.read())
    process = prepare_process(job.get("cpu"))
    loop, loop_name = new_event_loop()
    try:
        result = loop.run_until_complete(_main(job))
    finally:
        loop.close()
    result["loadgen"] = {**process, "loop": loop_name, "pid": os.getpid()}
    # The event loop may leave the pipe non-blocking: a result over the pipe's 64-128 KiB was
    # then cut short (seen: 131,072 characters of a 64-client run's latencies).
    os.set_blocking(sys.stdout.fileno(), True)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
