"""Importing a module without holding the event loop.

An import runs the module's code; on the event loop's thread nothing else runs until it ends
(aiohttp's import costs 180-270 ms of CPU on the VMs this is measured on). On a worker thread
the loop goes on between the import's steps, because the GIL changes hands every switch
interval (5 ms).
"""

from __future__ import annotations

import asyncio
import importlib
import sys


def imported(name: str) -> bool:
    """Whether `name` is imported, all of it: a module another thread is still importing is in
    `sys.modules` already, with its spec marked, and importing it again waits for that thread
    (which, on the loop, would hold it)."""
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return module is not None and not getattr(spec, "_initializing", False)


async def import_off_loop(*names: str) -> None:
    """Import each of `names` not imported already, in order, on one worker thread (no hop at
    all when every one is)."""
    missing = [name for name in names if not imported(name)]
    if missing:
        await asyncio.to_thread(_import_all, missing)


def _import_all(names: list[str]) -> None:
    for name in names:
        importlib.import_module(name)
