"""Which public key verifies inbound JWTs now: a mounted file, else the one the Registry publishes.

How the Registry publishes it (a bare PEM, `{"public_key": "<PEM>"}`, a JWKS) is the Registry
adapter's business; this module only holds the current key and where it came from.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from app.mesh.peers import PeerError

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PublishedKey:
    pem: bytes
    kid: str | None = None
    """The key id the publisher gave it, when it gave one."""


KeyFetch = Callable[[], Awaitable[PublishedKey]]
"""Gets the published key; raises `PeerError` when it cannot."""


class PublicKeySource:
    """Holds the current verification key. The file wins; the fetch is a fallback."""

    def __init__(self, *, key_file: Path, fetch: KeyFetch | None = None) -> None:
        self._key_file = key_file
        self._fetch = fetch
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

    async def refresh(self) -> bool:
        """Fetch the published key; a file-configured key is never replaced."""
        if self.origin.startswith("file:"):
            return True
        if self._fetch is None:
            return False
        try:
            key = await self._fetch()
        except PeerError as exc:
            log.warning("public_key_fetch_failed", reason=exc.message)
            return False
        self._pem = key.pem
        self.origin = "published"
        return True
