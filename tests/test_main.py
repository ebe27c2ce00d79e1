"""The entry point: `app.main:app` is built once, at import, from the environment; the factory
module reads nothing until it is called."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.config import Settings

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
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in {f.upper() for f in Settings.model_fields}
    }
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
