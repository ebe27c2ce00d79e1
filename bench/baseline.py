"""The baseline: the smallest honest FastAPI JSON endpoint, served the way droplet 12 is served.

    PORT=8099 python -m bench.baseline

`POST /echo` takes a pydantic model and returns one (validation in, serialisation out), on the
same uvicorn set-up as `python -m app.main` (uvloop, httptools, one worker, no access log,
WARNING logging), so the ratio "chat turn / baseline" measures what droplet 12 adds on top of
the framework itself.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, Field


class EchoRequest(BaseModel):
    message: str = Field(min_length=1, max_length=5000)
    session_id: str | None = Field(default=None, max_length=128)


class EchoResponse(BaseModel):
    response: str
    session_id: str | None
    length: int


app = FastAPI(title="bench baseline")
app.state.runtime = {"droplet_id": 12}


@app.post("/echo")
async def echo(body: EchoRequest) -> EchoResponse:
    return EchoResponse(response=body.message, session_id=body.session_id, length=len(body.message))


# The same endpoint behind two plain `def` dependencies, the shape of droplet 12's chat route
# (RuntimeDep -> ChatPrincipal): FastAPI runs each `def` dependency in its thread pool, so this
# measures what those hops cost on this machine (`async def` dependencies run inline).
def _runtime(request: Request) -> dict[str, int]:
    runtime: dict[str, int] = request.app.state.runtime
    return runtime


def _principal(request: Request, runtime: Annotated[dict[str, int], Depends(_runtime)]) -> str:
    return "anonymous" if request.headers.get("authorization") is None else "token"


async def _async_runtime(request: Request) -> dict[str, int]:
    runtime: dict[str, int] = request.app.state.runtime
    return runtime


async def _async_principal(
    request: Request, runtime: Annotated[dict[str, int], Depends(_async_runtime)]
) -> str:
    return "anonymous" if request.headers.get("authorization") is None else "token"


@app.post("/echo-sync-deps")
async def echo_sync_deps(
    body: EchoRequest, _who: Annotated[str, Depends(_principal)]
) -> EchoResponse:
    return EchoResponse(response=body.message, session_id=body.session_id, length=len(body.message))


@app.post("/echo-async-deps")
async def echo_async_deps(
    body: EchoRequest, _who: Annotated[str, Depends(_async_principal)]
) -> EchoResponse:
    return EchoResponse(response=body.message, session_id=body.session_id, length=len(body.message))


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8099")),
        log_config=None,
        proxy_headers=True,
        ws_per_message_deflate=False,
        ws_max_size=64 * 1024,
    )


if __name__ == "__main__":
    main()
