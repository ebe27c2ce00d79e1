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


async def import_off_loop(name: str) -> None:
    """Import `name` on a worker thread unless it is imported already (then no hop at all)."""
    if not imported(name):
        await asyncio.to_thread(importlib.import_module, name)
