"""The modules only requests need are imported off the loop once the service has started."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from app.ops.deferred_imports import DEFERRED, warm


def test_every_deferred_module_is_installed() -> None:
    # A name that no longer exists would only be logged at start-up: caught here instead.
    for name in DEFERRED:
        assert importlib.util.find_spec(name) is not None, name


async def test_each_module_is_imported_and_one_missing_is_logged_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, last = (
        f"first_{tmp_path.name}".replace("-", "_"),
        f"last_{tmp_path.name}".replace("-", "_"),
    )
    for name in (first, last):
        (tmp_path / f"{name}.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with capture_logs() as logs:
            await warm((first, "no_such_module_anywhere", last))
        assert sys.modules[first].LOADED and sys.modules[last].LOADED
        assert [(e["event"], e["module"]) for e in logs] == [
            ("deferred_import_failed", "no_such_module_anywhere")
        ]
    finally:
        for name in (first, last):
            sys.modules.pop(name, None)
