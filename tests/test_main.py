"""The entry point: `app.main:app` is built once, at import, from the environment; the factory
module reads nothing until it is called."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import environment_without_settings, free_port, wait_up

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
