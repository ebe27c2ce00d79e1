"""Where the public key for inbound JWTs comes from: a mounted file, optionally a URL."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import structlog

log = structlog.get_logger(__name__)


def _pem_from_response(body: bytes) -> bytes | None:
    """Accept a bare PEM or the deployed registry's `{"public_key": "<PEM>"}`."""
    text = body.decode("utf-8", errors="replace").strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict) and isinstance(data.get("public_key"), str):
        pem = data["public_key"].strip()
        return pem.encode() if pem.startswith("-----BEGIN") else None
    return None


class PublicKeySource:
    """Holds the current verification key. The file wins; the URL is a fallback and refresher."""

    def __init__(self, *, key_file: Path, key_url: str | None = None) -> None:
        self._key_file = key_file
        self._key_url = key_url
        self._pem: bytes | None = None
        self.origin: str = "none"

    @property
    def pem(self) -> bytes | None:
        return self._pem

    def load_file(self) -> bool:
        try:
            pem = self._key_file.read_bytes()
        except OSError:
            return False
        if b"-----BEGIN" not in pem:
            log.warning("public_key_file_invalid", path=str(self._key_file))
            return False
        self._pem = pem
        self.origin = f"file:{self._key_file}"
        return True

    async def refresh_from_url(self, client: httpx.AsyncClient) -> bool:
        if not self._key_url:
            return False
        try:
            response = await client.get(self._key_url, timeout=5.0)
        except httpx.HTTPError as exc:
            log.warning("public_key_fetch_failed", url=self._key_url, error=type(exc).__name__)
            return False
        pem = _pem_from_response(response.content) if response.status_code == 200 else None
        if pem is None:
            log.warning("public_key_fetch_failed", url=self._key_url, status=response.status_code)
            return False
        if self.origin.startswith("file:"):
            return True
        self._pem = pem
        self.origin = f"url:{self._key_url}"
        return True
