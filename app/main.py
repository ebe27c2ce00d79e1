"""The entry point: `python -m app.main` and `uvicorn app.main:app` serve droplet 12.

`app` is built once, when this module is imported, from the environment (and `.env`); a
configuration problem is one clear line and exit code 2. Tests and tools build their own apps
with `app.factory.create_app(settings)` and never import this module, so they read no
environment by accident.
"""

from __future__ import annotations

import gc

# Everything imported and built below lives as long as the process: the cyclic collector
# walking it again and again while it is built is wasted start-up time (~0.1 s). It is switched
# back on, with all of it frozen out of its walk and its young generation sized for a server,
# once the app exists (app.ops.gc_freeze).
gc.disable()

import contextlib  # noqa: E402
import sys  # noqa: E402

# Optional imports that libraries make while the app is built and the server never uses:
# structlog imports rich (installed for the CLI) for its console renderer's tracebacks, which the
# service formats itself (format_exc_info); FastAPI imports pydantic.v1 only to refuse v1
# models, of which there are none. Together ~60 ms of the start. Unimportable while the app is
# built (both handle the ImportError), importable again afterwards for anyone who needs them.
_NOT_WHILE_BUILDING = tuple(name for name in ("rich", "pydantic.v1") if name not in sys.modules)
for _name in _NOT_WHILE_BUILDING:
    sys.modules[_name] = None  # type: ignore[assignment]

import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from app.config import ConfigError, Settings  # noqa: E402
from app.factory import create_app, server_config  # noqa: E402
from app.ops.gc_freeze import tune_collector  # noqa: E402


def _build_or_exit() -> FastAPI:
    """Build the app, turning a configuration problem into one clear line and exit code 2."""
    try:
        return create_app()
    except ConfigError as exc:
        sys.stderr.write(f"configuration error: {exc.variable} {exc.reason}\n")
        raise SystemExit(2) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = str(first["loc"][0]).upper() if first.get("loc") else "settings"
        sys.stderr.write(f"configuration error: {variable} {first['msg']}\n")
        raise SystemExit(2) from None


try:
    app = _build_or_exit()
finally:
    for _name in _NOT_WHILE_BUILDING:
        if _name in sys.modules and sys.modules[_name] is None:
            del sys.modules[_name]
    gc.freeze()
    tune_collector()
    gc.enable()


def main() -> None:
    settings: Settings = app.state.components.settings
    server = uvicorn.Server(server_config(app, settings))
    # uvicorn re-raises the Ctrl-C it shut down for; a clean stop is not an error (as uvicorn.run).
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(3)


if __name__ == "__main__":
    main()
