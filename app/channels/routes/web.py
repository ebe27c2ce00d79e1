"""The chat page: static files served at `/`, no build step."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

WEB_DIR = Path(__file__).resolve().parents[2] / "web"

# The page also carries this policy in a <meta> tag; the header adds what a meta tag cannot
# (frame-ancestors: no clickjacking by framing the Confirm button).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# nosniff, X-Frame-Options and Referrer-Policy come with every response (app.channels.middleware).
PAGE_HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY}


class _RevalidatedStaticFiles(StaticFiles):
    """Static files that browsers revalidate (cheap, with ETag) so an upgrade is seen at once:
    the page's modules must never mix versions."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount(app: FastAPI) -> None:
    index = WEB_DIR / "index.html"
    if not index.exists():
        return

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(index, headers=PAGE_HEADERS)

    app.mount(
        "/static",
        _RevalidatedStaticFiles(directory=WEB_DIR / "static", check_dir=False),
        name="static",
    )
