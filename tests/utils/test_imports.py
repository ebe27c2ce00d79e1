"""Importing off the event loop: the module's code runs on a worker thread while the loop goes
on, a module already imported costs no hop, and one still being imported is not taken as
imported."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from app.utils.imports import import_off_loop, imported

# A module whose import waits for the test: it says it started, records its thread, and goes on
# only once released (or fails after 10 s).
SLOW = """
import threading
import {gate} as gate

gate.started.set()
gate.threads.append(threading.get_ident())
if not gate.release.wait(timeout=10):
    raise TimeoutError("never released: the import held the event loop")
"""

GATE = """
import threading

started = threading.Event()
release = threading.Event()
threads = []
"""


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, ModuleType]]:
    """A slow module and the gate it waits on, both new to this interpreter (names unique to
    the test), removed from `sys.modules` afterwards."""
    suffix = tmp_path.name.replace("-", "_")
    slow, gate_name = f"slow_{suffix}", f"gate_{suffix}"
    (tmp_path / f"{gate_name}.py").write_text(GATE)
    (tmp_path / f"{slow}.py").write_text(SLOW.format(gate=gate_name))
    monkeypatch.syspath_prepend(str(tmp_path))
    gate = __import__(gate_name)
    yield slow, gate
    for name in (slow, gate_name):
        sys.modules.pop(name, None)


async def test_the_module_runs_on_a_worker_thread_while_the_loop_goes_on(
    modules: tuple[str, ModuleType],
) -> None:
    slow, gate = modules
    importing = asyncio.create_task(import_off_loop(slow))
    # The loop runs on while the module's code waits: were it imported on the loop, the module
    # would wait for ever (here: raise after 10 s) and this would never be reached.
    assert await asyncio.to_thread(gate.started.wait, 10)
    assert not importing.done()
    gate.release.set()
    await importing
    assert imported(slow)
    assert gate.threads and gate.threads[0] != threading.get_ident()


async def test_a_module_imported_already_costs_no_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_thread(*args: object) -> None:
        raise AssertionError("a worker thread for a module imported already")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    await import_off_loop("json")
    assert imported("json")
    assert not imported("not_a_module_of_this_interpreter")


def test_a_module_another_thread_is_importing_is_not_imported_yet(
    modules: tuple[str, ModuleType],
) -> None:
    slow, gate = modules
    other = threading.Thread(target=__import__, args=(slow,))
    other.start()
    try:
        assert gate.started.wait(10)
        assert slow in sys.modules  # there, but not done
        assert not imported(slow)
    finally:
        gate.release.set()
        other.join(10)
    assert imported(slow)
