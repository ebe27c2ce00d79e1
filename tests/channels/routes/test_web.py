"""The chat page's files as served: strict CSP, nothing inline, every asset local."""

from __future__ import annotations

import re
from typing import Any

from app.channels.routes.web import WEB_DIR

ASSETS = ["app.js", "socket.js", "view.js", "markdown.js", "theme.js", "style.css", "favicon.svg"]


def test_page_is_served_with_a_strict_policy(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert 'http-equiv="Content-Security-Policy"' in response.text


def test_assets_are_served_with_the_right_types(client: Any) -> None:
    for name in ASSETS:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["cache-control"] == "no-cache"
    assert "javascript" in client.get("/static/app.js").headers["content-type"]
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/missing.js").status_code == 404


def test_nothing_inline_and_nothing_remote() -> None:
    html = (WEB_DIR / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts), "no inline scripts"
    assert not re.search(r"\son[a-z]+\s*=", html), "no inline event handlers"
    assert not re.search(r"\sstyle\s*=", html), "no inline styles"
    assert "<style" not in html
    for path in [WEB_DIR / "index.html", *(WEB_DIR / "static").iterdir()]:
        text = path.read_text()
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), f"remote asset in {path}"
        assert "url(http" not in text, path


def test_scripts_never_assign_html() -> None:
    # Server text reaches the page only as text nodes; see app/web/static/markdown.js.
    for path in (WEB_DIR / "static").glob("*.js"):
        code = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in code, f"{sink} in {path.name}"
