"""The modules the server imports on first use, imported off the loop once it has started.

Why: start-up to `/health` does not import what only a request needs: aiohttp for the first peer
or model request, PyJWT for the first token, limits for the first rate-limited turn. Measured
after `import app.main`, those imports cost 180-270 ms, 60 ms and 40 ms of CPU, and made where
they are first needed they ran on the event loop, which answered nothing meanwhile. `warm`
imports them on a worker thread (app.utils.imports) once the service has started, so the first
request of each kind finds its module ready; the first peer request, which may come before
that (the registration, right after start), imports aiohttp off the loop itself
(app.utils.http_transport), and so does the first token for PyJWT, signed (app.mesh.tokens) or
verified (app.channels.jwt.loaded).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from app.channels import rate_limit
from app.mesh import tokens
from app.utils import http_transport
from app.utils.imports import import_off_loop

log = structlog.get_logger(__name__)

DEFERRED: tuple[str, ...] = (
    *http_transport.DEFERRED_IMPORTS,  # the peers' and models' connections
    *tokens.DEFERRED_IMPORTS,  # reading and signing tokens (app.channels.jwt too)
    *rate_limit.DEFERRED_IMPORTS,  # the counters
)
"""What the server imports only when first needed, as each module that needs it declares
(tests/test_main.py checks that building the app imports none of them)."""


async def warm(names: Iterable[str] = DEFERRED) -> None:
    """Import each of `names` off the loop, one after the other. One that fails to import is
    logged and skipped: its first use raises as it would have."""
    for name in names:
        try:
            await import_off_loop(name)
        except Exception as exc:  # whatever the module raised, the rest go on
            log.warning("deferred_import_failed", module=name, error=f"{type(exc).__name__}: {exc}")
