"""The entry point: `app.main:app` is built once, at import, from the environment; the factory
module reads nothing until it is called."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KeyPair, environment_without_settings, free_port, wait_up

ROOT = Path(__file__).resolve().parents[1]

BUILT_ONCE = """
import app.factory as factory
built = []
original = factory.create_app
factory.create_app = lambda *a, **k: built.append(1) or original(*a, **k)
import app.main
first, second = app.main.app, app.main.app
from app.main import app as third
assert first is second is third, "app.main.app must be one object"
assert built == [1], built
print("ok")
"""


def _run(code: str, env_overrides: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = environment_without_settings()
    env.update(env_overrides)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def _runs_ok(code: str, data_dir: Path) -> None:
    """`code` runs to its end in a fresh interpreter (its asserts hold) and prints "ok"."""
    result = _run(code, {"DATA_DIR": str(data_dir)}, data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_app_main_builds_the_app_once(tmp_path: Path) -> None:
    _runs_ok(BUILT_ONCE, tmp_path)
    # Built, not started: the lifespan (store, peers, background loops) runs only under a server.
    assert not list(tmp_path.iterdir())


def test_importing_the_factory_reads_no_environment(tmp_path: Path) -> None:
    # A production environment without its secret: app.main refuses it, app.factory does not care.
    bad = {"ENVIRONMENT": "production"}
    factory = _run("import app.factory; print('ok')", bad, tmp_path)
    assert factory.returncode == 0, factory.stderr
    main = _run("import app.main", bad, tmp_path)
    assert main.returncode == 2
    assert main.stderr.startswith("configuration error: DROPLET_SECRET")


LEAN_IMPORT = """
import sys
import app.main
import structlog.dev
assert "rich" not in sys.modules and "pydantic.v1" not in sys.modules, "imported while building"
assert structlog.dev.rich is None
# Imported where a token is first read or signed, or a turn first counted; never by building.
assert "jwt" not in sys.modules and "cryptography" not in sys.modules
assert "limits" not in sys.modules
assert "aiohttp" not in sys.modules  # imported by the first request to a peer or the model
import rich.console, pydantic.v1  # importable again once the app is built (the CLI uses rich)
print("ok")
"""


def test_building_the_app_skips_the_optional_imports_the_server_never_uses(
    tmp_path: Path,
) -> None:
    _runs_ok(LEAN_IMPORT, tmp_path)


COLLECTOR = """
import gc
import app.main
from app.ops.gc_freeze import YOUNG_THRESHOLD
assert gc.isenabled(), "the collector must be on once the app is built"
assert gc.get_freeze_count() > 0, "what the start-up built must be frozen"
assert gc.get_threshold()[0] == YOUNG_THRESHOLD, gc.get_threshold()
print("ok")
"""


def test_the_served_process_collects_with_the_start_up_frozen_and_a_server_sized_young_generation(
    tmp_path: Path,
) -> None:
    _runs_ok(COLLECTOR, tmp_path)


@pytest.mark.e2e
def test_the_served_process_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM (how a container runtime or systemd stops it) runs the whole shutdown: the
    lifespan's end is logged and the process ends by that signal."""
    port = free_port()
    env = environment_without_settings()
    env.update(
        PYTHONPATH=str(ROOT),
        DATA_DIR=str(tmp_path),
        PORT=str(port),
        HOST="127.0.0.1",
        LOG_FORMAT="json",
        # The peers are down: closed loopback ports.
        REGISTRY_URL=f"http://127.0.0.1:{free_port()}",
        ORCHESTRATOR_URL=f"http://127.0.0.1:{free_port()}",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.main"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_up(f"http://127.0.0.1:{port}", proc=proc), "no /health answer within 60 s"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # After its clean shutdown uvicorn raises the signal it caught again, so the parent sees
    # what ended the process (143 in a shell) rather than a plain exit.
    assert proc.returncode == -signal.SIGTERM, output
    events = [json.loads(line).get("event") for line in output.splitlines() if line.startswith("{")]
    assert "service_started" in events
    assert "service_stopped" in events


# Which thread first imported each module: the finders are asked on the importing thread, by
# import statements and importlib.import_module alike, before the module's code runs there.
_IMPORT_THREADS = """
import asyncio, sys, threading
first_import = {}
class _Recorder:
    def find_spec(self, name, path=None, target=None):
        first_import.setdefault(name, threading.get_ident())
        return None  # the usual finders find it
sys.meta_path.insert(0, _Recorder())

def assert_off_loop(*names):  # none first imported on this thread (the loop's, called there)
    on_loop = [name for name in names if first_import[name] == threading.get_ident()]
    assert not on_loop, f"imported on the event loop: {on_loop}"
"""


def _on_a_loop(main: str) -> str:
    """A script that records which thread imports what, then runs `main` (an `async def main`
    in the given code) on an event loop and prints "ok" if its asserts hold."""
    return _IMPORT_THREADS + main + '\nasyncio.run(main())\nprint("ok")\n'


FIRST_PEER_REQUEST = """
import httpx2
from app.utils.http_transport import AiohttpTransport
assert "aiohttp" not in sys.modules

async def main():
    async def serve(reader, writer):
        await reader.readuntil(b"\\r\\n\\r\\n")
        writer.write(b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with httpx2.AsyncClient(transport=AiohttpTransport()) as client:
        answer = await client.get(f"http://127.0.0.1:{port}/")
    server.close()
    assert answer.text == "ok", answer.text
    assert_off_loop("aiohttp")
"""


def test_the_first_peer_request_imports_aiohttp_off_the_event_loop(tmp_path: Path) -> None:
    # ~0.2 s of the loop's time otherwise, right after start (the registration).
    _runs_ok(_on_a_loop(FIRST_PEER_REQUEST), tmp_path)


WARMED_AFTER_START = """
import app.main
from app.ops.deferred_imports import DEFERRED
from app.utils.imports import imported

async def main():
    lifespan = app.main.app.router.lifespan_context(app.main.app)
    async with lifespan:
        for _ in range(400):
            if all(imported(name) for name in DEFERRED):
                break
            await asyncio.sleep(0.05)
    missing = [name for name in DEFERRED if not imported(name)]
    assert not missing, f"not imported after start: {missing}"
    assert_off_loop(*DEFERRED)
"""


def test_what_only_requests_need_is_imported_off_the_loop_once_started(tmp_path: Path) -> None:
    _runs_ok(_on_a_loop(WARMED_AFTER_START), tmp_path)


FIRST_RATE_LIMITED_TURN = """
from app.channels.rate_limit import RateLimiter
assert "limits" not in sys.modules

async def main():
    decision = await RateLimiter(per_minute=5).hit("user:1")
    assert decision.allowed, decision
    assert_off_loop("limits", "limits.aio.storage", "limits.aio.strategies")
"""


def test_the_first_rate_limited_turn_imports_limits_off_the_event_loop(tmp_path: Path) -> None:
    _runs_ok(_on_a_loop(FIRST_RATE_LIMITED_TURN), tmp_path)


FIRST_INCOMING_TOKEN = """
from app.channels.gate import Gate
from app.config import Settings
assert "jwt" not in sys.modules

class Keys:  # a verification key configured as a file: tokens verify from the first moment
    pem = PEM
    refreshable = False
    def verified(self, kid): pass
    def signature_failed(self, kid): pass

async def main():
    gate = Gate(
        settings=Settings(_env_file=None), public_keys=Keys(), turn_limiter=None, mesh_limiter=None
    )
    caller = await gate.api_caller(authorization="Bearer " + TOKEN, address="127.0.0.1")
    assert caller.identity.id == "alice", caller
    assert_off_loop("jwt")
"""


def test_the_first_incoming_token_imports_pyjwt_off_the_event_loop(
    tmp_path: Path, keys: KeyPair
) -> None:
    # Before app.ops.deferred_imports has run (the first moment after start), a token would
    # otherwise hold the loop for PyJWT's import (~60 ms).
    token = keys.token(sub="alice", permissions=["read"])
    values = f"PEM = {keys.public_pem!r}\nTOKEN = {token!r}\n"
    _runs_ok(_on_a_loop(values + FIRST_INCOMING_TOKEN), tmp_path)
