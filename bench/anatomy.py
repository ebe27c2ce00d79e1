"""Where a turn's time goes: droplet 12's own parts, timed in-process, and what-if variants.

    python -m bench.anatomy [--turns N] [--output PATH]

Builds the service's components exactly as `app.factory` does (`wiring.build` + `wiring.start`,
SQLite in a temporary directory, the sandbox mesh in threads), then runs turns one at a time
through `ConversationService.handle` with a timer around each part: the session store's calls,
the session lock, the planner, the tool executor, the renderer, the event publish. Wall time
and the event-loop thread's own CPU time (`time.thread_time`) are both kept: SQLite runs in
aiosqlite's worker threads, so its cost shows as wall time, not loop CPU.

What-if variants re-run the same turns with one change applied at runtime (never in the app's
files), so a proposal in docs/performance.md comes with a measured gain. None is open now: the
last one (`quiet_logs`, events below the level dropped before the other processors) is how the
app logs since the sixteenth session (app/utils/logging.py).
The `planners` part times each model planner's `plan` alone against its fake (no delay); the
LLM part times one Gemini planning call against the fake (no delay): the whole `plan`, its
request (`post_json`: body posted, answer parsed), and the same body's bytes posted with a bare
httpx2 client, the floor any request path pays (what the SDK it replaced cost: docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "bench" / "results" / "anatomy.json"
TEXT = "show me all droplets"
LLM_TEXT = "give me the lay of the land across the mesh"


class Timers:
    """Per-part wall and loop-thread CPU samples; only the outermost timed call counts."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        self.depth = 0
        self.recording = False

    @contextlib.contextmanager
    def part(self, name: str, *, nested: bool = False) -> Iterator[None]:
        """Time the block; `nested` parts are timed inside others (and not summed with them)."""
        if not self.recording or (self.depth and not nested):
            yield
            return
        self.depth += 0 if nested else 1
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.depth -= 0 if nested else 1
            self.wall.setdefault(name, []).append(time.perf_counter() - wall)
            self.cpu.setdefault(name, []).append(time.thread_time() - cpu)

    def wrap_async(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr, None)
        if original is None:
            return

        @functools.wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            with self.part(name):
                return await original(*args, **kwargs)

        setattr(owner, attr, timed)

    def wrap_sync(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr, None)
        if original is None:
            return

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.part(name):
                return original(*args, **kwargs)

        setattr(owner, attr, timed)

    def wrap_lock(self, store: Any) -> None:
        original = store.lock

        @contextlib.asynccontextmanager
        async def timed(*args: Any, **kwargs: Any) -> AsyncIterator[None]:
            manager = original(*args, **kwargs)
            with self.part("session lock: acquire"):
                await manager.__aenter__()
            try:
                yield
            except BaseException as exc:
                with self.part("session lock: release"):
                    await manager.__aexit__(type(exc), exc, exc.__traceback__)
                raise
            else:
                with self.part("session lock: release"):
                    await manager.__aexit__(None, None, None)

        store.lock = timed

    def summary(self, turns: int) -> dict[str, dict[str, float]]:
        out = {}
        for name, values in self.wall.items():
            out[name] = {
                "wall_ms_per_turn": round(sum(values) / turns * 1000, 3),
                "loop_cpu_ms_per_turn": round(sum(self.cpu[name]) / turns * 1000, 3),
                "calls_per_turn": round(len(values) / turns, 2),
            }
        return out


def _settings(data_dir: Path, mesh: Any, **extra: Any) -> Any:
    from app.config import Settings

    values: dict[str, Any] = {
        "registry_url": mesh.registry_url,
        "orchestrator_url": mesh.orchestrator_url,
        "droplet_secret": mesh.registry_key,
        "orchestrator_private_key_file": mesh.private_key_path,
        "registry_public_key_file": mesh.public_key_path,
        "data_dir": data_dir,
        "database_url": None,
        "event_bus_url": None,
        "environment": "development",
        "log_level": "WARNING",
        "log_format": "json",
        "planner": "rules",
        "chat_rate_limit_per_minute": 0,
        "droplet_url": "http://127.0.0.1:9",
    }
    values.update(extra)
    return Settings(_env_file=None, **values)


@contextlib.contextmanager
def _patched(variant: set[str]) -> Iterator[None]:
    """Apply the what-if changes of `variant` for the duration of the block."""
    undo: list[Callable[[], None]] = []
    try:
        yield
    finally:
        for step in reversed(undo):
            step()


@functools.cache
def _statements() -> dict[str, Any]:
    """The store's two hot reads, built once with bound parameters (what `prebuilt_sql` tries)."""
    from sqlalchemy import Integer, bindparam, select

    from app.store import sessions as memory
    from app.store.tables import MessageRow, SessionRow

    return {
        "get": memory._session_query().where(SessionRow.id == bindparam("sid")),
        "history": select(
            MessageRow.seq,
            MessageRow.role,
            MessageRow.text,
            MessageRow.trace_id,
            MessageRow.created_at,
            MessageRow.meta,
        )
        .where(MessageRow.session_id == bindparam("sid"))
        .order_by(MessageRow.seq.desc())
        .limit(bindparam("lim", type_=Integer)),
    }


async def _turns(conversation: Any, n: int, session: str, text: str) -> None:
    from app.conversation.service import Turn
    from app.domain.identity import Caller, Identity, session_key

    caller = Caller(Identity("anonymous", "developer"), frozenset({"read", "write"}))
    for i in range(n):
        await conversation.handle(
            Turn(
                text=text,
                trace_id=f"{session}-{i}",
                caller=caller,
                session_key=session_key(caller.identity, session),
                source="chat",
                channel="rest",
            )
        )


async def measure_rules(
    mesh: Any, workdir: Path, variant: set[str], turns: int, warmup: int
) -> dict[str, Any]:
    from app.factory import _configure_logging
    from app.wiring import components as wiring

    with _patched(variant):
        settings = _settings(workdir / ("rules-" + "-".join(sorted(variant)) or "base"), mesh)
        _configure_logging(settings)
        runtime = wiring.build(settings)
        await wiring.start(runtime)
        try:
            conversation = runtime.conversation
            timers = Timers()
            store = conversation._store
            for attr, name in (
                ("turn_state", "store.turn_state"),
                ("get_or_create", "store.get_or_create"),
                ("get", "store.get"),
                ("history", "store.history"),
                ("record_turn", "store.record_turn"),
            ):
                timers.wrap_async(store, attr, name)
            timers.wrap_lock(store)
            timers.wrap_async(conversation._planner, "plan", "planner.plan")
            timers.wrap_async(conversation._executor, "execute", "executor.execute")
            timers.wrap_sync(conversation, "_aliases", "directory.aliases")
            timers.wrap_async(conversation, "_publish", "event publish")
            session = f"anatomy-{time.monotonic_ns()}"
            await _turns(conversation, warmup, session, TEXT)
            timers.recording = True
            wall, cpu, proc = time.perf_counter(), time.thread_time(), time.process_time()
            per_turn: list[float] = []
            for _ in range(turns):
                started = time.perf_counter()
                await _turns(conversation, 1, session, TEXT)
                per_turn.append(time.perf_counter() - started)
            total_wall = time.perf_counter() - wall
            total_cpu = time.thread_time() - cpu
            total_proc = time.process_time() - proc
            timers.recording = False
            parts = timers.summary(turns)
            accounted = sum(p["wall_ms_per_turn"] for p in parts.values())
            handle_ms = total_wall / turns * 1000
            parts["(rest of handle)"] = {
                "wall_ms_per_turn": round(handle_ms - accounted, 3),
                "loop_cpu_ms_per_turn": round(
                    total_cpu / turns * 1000
                    - sum(p["loop_cpu_ms_per_turn"] for p in parts.values()),
                    3,
                ),
                "calls_per_turn": 1.0,
            }
            return {
                "variant": sorted(variant) or ["as is"],
                "turns": turns,
                "handle_wall_ms_mean": round(handle_ms, 3),
                "handle_wall_ms_p50": round(statistics.median(per_turn) * 1000, 3),
                "handle_loop_cpu_ms_mean": round(total_cpu / turns * 1000, 3),
                "handle_process_cpu_ms_mean": round(total_proc / turns * 1000, 3),
                "parts": parts,
            }
        finally:
            await wiring.stop(runtime)


async def measure_llm(mesh: Any, workdir: Path, calls: int) -> dict[str, Any]:
    import httpx2

    from app.conversation.planners import llm_http
    from app.factory import _configure_logging
    from app.wiring import components as wiring
    from tests.fakes.gemini import FakeGemini, function_call

    fake = FakeGemini(default=function_call("list_droplets", {})).start()
    try:
        settings = _settings(
            workdir / "llm",
            mesh,
            planner="gemini",
            gemini_api_key="bench-fake-key",
            gemini_base_url=fake.base_url,
        )
        _configure_logging(settings)
        runtime = wiring.build(settings)
        await wiring.start(runtime)
        timers = Timers()
        # The model planners post their requests through `llm_http.post_json` (ModelClient); only
        # the Gemini planner runs here, so its calls are the ones timed.
        hook = "post_json"
        original = getattr(llm_http, hook)

        async def post_json(*args: Any, **kwargs: Any) -> Any:
            with timers.part("post_json", nested=True):
                return await original(*args, **kwargs)

        setattr(llm_http, hook, post_json)
        try:
            conversation = runtime.conversation
            timers.wrap_async(conversation._planner, "plan", "planner.plan (whole)")
            session = f"anatomy-llm-{time.monotonic_ns()}"
            await _turns(conversation, 5, session, LLM_TEXT)
            timers.recording = True
            wall, cpu, proc = time.perf_counter(), time.thread_time(), time.process_time()
            for _ in range(calls):
                await _turns(conversation, 1, session, LLM_TEXT)
            handle = {
                "wall_ms_per_turn": round((time.perf_counter() - wall) / calls * 1000, 3),
                "loop_cpu_ms_per_turn": round((time.thread_time() - cpu) / calls * 1000, 3),
                "process_cpu_ms_per_turn": round((time.process_time() - proc) / calls * 1000, 3),
            }
            timers.recording = False
            parts = timers.summary(calls)
        finally:
            setattr(llm_http, hook, original)
            await wiring.stop(runtime)
        # The floor: the recorded body's bytes, posted again with nothing built around them.
        body = fake.requests[-1].content
        url = fake.base_url + fake.requests[-1].path
        raw_wall: list[float] = []
        raw_cpu: list[float] = []
        async with httpx2.AsyncClient() as client:
            for i in range(calls + 5):
                wall, cpu = time.perf_counter(), time.thread_time()
                response = await client.post(url, content=body, headers={"x-goog-api-key": "k"})
                response.json()
                if i >= 5:
                    raw_wall.append(time.perf_counter() - wall)
                    raw_cpu.append(time.thread_time() - cpu)
        return {
            "calls": calls,
            "request_body_bytes": len(body),
            "handle (fake Gemini in this process, no delay)": handle,
            "planner_plan": parts.get("planner.plan (whole)"),
            "model_request_post_json": parts.get("post_json"),
            "bare_httpx_post": {
                "wall_ms_per_call": round(statistics.mean(raw_wall) * 1000, 3),
                "loop_cpu_ms_per_call": round(statistics.mean(raw_cpu) * 1000, 3),
            },
        }
    finally:
        fake.stop()


PLANNER_TEXT = "give me the lay of the land"


async def measure_planners(calls: int) -> dict[str, Any]:
    """Each model planner's `plan` alone against its fake (no delay), loop-thread CPU per call.

    The context is a mid-sized one (6 history turns with one long answer, 24 droplet names), so
    what is measured is the per-call building of the request around the constant parts.
    """
    from app.conversation.planners.gemini import GeminiPlanner
    from app.conversation.planners.openai_compat import OpenAICompatPlanner
    from app.domain.plan import HistoryTurn, PlanContext
    from tests.fakes import gemini as g
    from tests.fakes import openai as o

    turns = [
        HistoryTurn(role="user", text=TEXT),
        HistoryTurn(role="assistant", text="Droplets: " + "x " * 300),
    ]
    context = PlanContext(
        history=turns * 3, aliases={f"droplet-{i}": i for i in range(1, 25)}, last_droplet_id=14
    )

    async def timed(planner: Any) -> dict[str, float]:
        for _ in range(20):
            await planner.plan(PLANNER_TEXT, context)
        cpu: list[float] = []
        wall: list[float] = []
        for _ in range(calls):
            started, cpu_started = time.perf_counter(), time.thread_time()
            await planner.plan(PLANNER_TEXT, context)
            cpu.append(time.thread_time() - cpu_started)
            wall.append(time.perf_counter() - started)
        return {
            "loop_cpu_ms_mean": round(statistics.mean(cpu) * 1000, 3),
            "loop_cpu_ms_p50": round(statistics.median(cpu) * 1000, 3),
            "wall_ms_mean": round(statistics.mean(wall) * 1000, 3),
        }

    out: dict[str, Any] = {"calls": calls}
    with g.FakeGemini(default=g.function_call("list_droplets", {})) as fake_gemini:
        gemini = GeminiPlanner(api_key="bench-fake-key", base_url=fake_gemini.base_url)
        try:
            out["gemini"] = await timed(gemini)
        finally:
            await gemini.aclose()
        out["gemini"]["request_body_bytes"] = len(fake_gemini.requests[-1].content)
    with o.FakeOpenAI(default=o.tool_call("list_droplets", {})) as fake_openai:
        openai = OpenAICompatPlanner(base_url=fake_openai.base_url, model="bench", api_key="k")
        try:
            out["openai"] = await timed(openai)
        finally:
            await openai.aclose()
        out["openai"]["request_body_bytes"] = len(fake_openai.requests[-1].content)
    return out


VARIANTS: list[set[str]] = [set()]


def _aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds (the machine is shared: one round can be unlucky)."""

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    out: dict[str, Any] = {
        "variant": runs[0]["variant"],
        "rounds": len(runs),
        "turns_per_round": runs[0]["turns"],
    }
    for key in (
        "handle_wall_ms_mean",
        "handle_wall_ms_p50",
        "handle_loop_cpu_ms_mean",
        "handle_process_cpu_ms_mean",
    ):
        out[key] = med([r[key] for r in runs])
        out[key + "_rounds"] = [r[key] for r in runs]
    names = {name for r in runs for name in r["parts"]}
    out["parts"] = {
        name: {
            metric: med([r["parts"][name][metric] for r in runs if name in r["parts"]])
            for metric in ("wall_ms_per_turn", "loop_cpu_ms_per_turn", "calls_per_turn")
        }
        for name in sorted(names)
    }
    return out


async def measure_db(workdir: Path, n: int) -> dict[str, Any]:
    """One store operation through the app's async store vs one thread hop of plain SQL.

    Same file, same schema, same pragmas and statements; only the plumbing differs: the app
    goes through SQLAlchemy's asyncio layer and aiosqlite (several thread round trips per
    statement), the alternative runs the whole operation in one `asyncio.to_thread` call on a
    synchronous SQLAlchemy Core connection.
    """
    from sqlalchemy import create_engine, event, insert, update

    from app.domain.session import AuditEntry, utc_now
    from app.store import sessions as memory
    from app.store.sessions import SessionStore
    from app.store.tables import AuditRow, MessageRow, SessionRow

    path = workdir / "db" / "chat.db"
    store = SessionStore(database_url=f"sqlite+aiosqlite:///{path.as_posix()}")
    await store.open()
    await store.migrate()
    sid = "anatomy-db"
    await store.get_or_create(session_id=sid, source="chat", owner="user:t")
    audit = [
        AuditEntry(
            tool="list_droplets",
            outcome="ok",
            session_id=sid,
            source="rest",
            actor="anonymous",
            trace_id="t",
            planner="rules",
            duration_ms=1.0,
        )
    ]
    for i in range(12):
        await store.record_turn(
            session_id=sid,
            user_text=TEXT,
            answer_text="answer " * 80,
            trace_id=f"t{i}",
            actions=[{"tool": "list_droplets", "status": "ok"}],
            audit=audit,
        )

    engine = create_engine(f"sqlite:///{path.as_posix()}", pool_size=5)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    def sync_get() -> Any:
        with engine.connect() as conn:
            row = conn.execute(_statements()["get"], {"sid": sid}).one_or_none()
            return None if row is None else memory._session_info(row)

    def sync_history() -> Any:
        with engine.connect() as conn:
            return conn.execute(_statements()["history"], {"sid": sid, "lim": 20}).all()

    def sync_record() -> None:
        now = utc_now()
        with engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            row = conn.execute(
                update(SessionRow)
                .where(SessionRow.id == sid)
                .values(message_count=SessionRow.message_count + 2, last_activity=now)
                .returning(SessionRow.message_count, SessionRow.context)
            ).one()
            seq = int(row.message_count)
            conn.execute(
                insert(MessageRow),
                [
                    {
                        "session_id": sid,
                        "seq": seq - 1,
                        "role": "user",
                        "text": TEXT,
                        "trace_id": "t",
                        "created_at": now,
                        "meta": {},
                    },
                    {
                        "session_id": sid,
                        "seq": seq,
                        "role": "assistant",
                        "text": "answer " * 80,
                        "trace_id": "t",
                        "created_at": now,
                        "meta": {"actions": []},
                    },
                ],
            )
            conn.execute(
                insert(AuditRow),
                [
                    {
                        "at": now,
                        "actor": "anonymous",
                        "session_id": sid,
                        "source": "rest",
                        "tool": "list_droplets",
                        "args": {},
                        "outcome": "ok",
                        "detail": None,
                        "duration_ms": 1.0,
                        "trace_id": "t",
                        "planner": "rules",
                    }
                ],
            )
            conn.exec_driver_sql("COMMIT")

    async def timed(op: Callable[[], Awaitable[Any]]) -> dict[str, float]:
        for _ in range(10):
            await op()
        wall, proc = time.perf_counter(), time.process_time()
        for _ in range(n):
            await op()
        return {
            "wall_ms": round((time.perf_counter() - wall) / n * 1000, 3),
            "process_cpu_ms": round((time.process_time() - proc) / n * 1000, 3),
        }

    async def prebuilt_get() -> Any:
        async with store._read() as conn:
            return (await conn.execute(_statements()["get"], {"sid": sid})).one_or_none()

    async def prebuilt_history() -> Any:
        async with store._read() as conn:
            return (await conn.execute(_statements()["history"], {"sid": sid, "lim": 20})).all()

    async def app_record() -> None:
        await store.record_turn(
            session_id=sid,
            user_text=TEXT,
            answer_text="answer " * 80,
            trace_id="t",
            actions=[],
            audit=audit,
        )

    try:
        out = {
            "get": {
                "app (SQLAlchemy asyncio + aiosqlite)": await timed(lambda: store.get(sid)),
                "app engine, statement built once": await timed(prebuilt_get),
                "one to_thread hop, sync Core, built once": await timed(
                    lambda: asyncio.to_thread(sync_get)
                ),
            },
            "history(20)": {
                "app (SQLAlchemy asyncio + aiosqlite)": await timed(
                    lambda: store.history(sid, limit=20)
                ),
                "app engine, statement built once": await timed(prebuilt_history),
                "one to_thread hop, sync Core, built once": await timed(
                    lambda: asyncio.to_thread(sync_history)
                ),
            },
            "record_turn": {
                "app (SQLAlchemy asyncio + aiosqlite)": await timed(app_record),
                "one to_thread hop, sync Core, built once": await timed(
                    lambda: asyncio.to_thread(sync_record)
                ),
            },
        }
    finally:
        engine.dispose()
        await store.close()
    return out


async def _main(
    turns: int, rounds: int, llm_calls: int, db_ops: int, planner_calls: int
) -> dict[str, Any]:
    from sandbox.testing import start_mesh

    with tempfile.TemporaryDirectory(prefix="bench-anatomy-") as tmp:
        workdir = Path(tmp)
        mesh = start_mesh(key_dir=workdir / "keys", router_interval=3600.0, seed=True)
        try:
            runs: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(VARIANTS))}
            order = list(range(len(VARIANTS)))
            for r in range(rounds):
                for i in order[r % len(order) :] + order[: r % len(order)]:
                    run_dir = workdir / f"r{r}"
                    runs[i].append(
                        await measure_rules(mesh, run_dir, VARIANTS[i], turns, warmup=15)
                    )
            rules = [_aggregate(runs[i]) for i in range(len(VARIANTS))]
            llm = await measure_llm(mesh, workdir, llm_calls)
            planners = await measure_planners(planner_calls)
            db = await measure_db(workdir, db_ops)
        finally:
            mesh.stop()
    return {"turn_text": TEXT, "rules": rules, "llm": llm, "planners": planners, "db": db}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.anatomy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--turns", type=int, default=150, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--llm-calls", type=int, default=40)
    parser.add_argument("--db-ops", type=int, default=200)
    parser.add_argument("--planner-calls", type=int, default=200)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        import uvloop

        runner: Callable[[Coroutine[Any, Any, Any]], Any] = uvloop.run  # the service's loop
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    result = runner(_main(args.turns, args.rounds, args.llm_calls, args.db_ops, args.planner_calls))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
