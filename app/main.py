"""The entry point: `python -m app.main` and `uvicorn app.main:app` serve droplet 12.

`app` is built once, when this module is imported, from the environment (and `.env`); a
configuration problem is one clear line and exit code 2. Tests and tools build their own apps
with `app.factory.create_app(settings)` and never import this module, so they read no
environment by accident.
"""

from __future__ import annotations

import contextlib
import sys

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from app.config import ConfigError, Settings
from app.factory import create_app, server_config


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


app = _build_or_exit()


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
