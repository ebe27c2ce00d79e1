"""Which public key verifies inbound JWTs now: a mounted file, else the one the Registry publishes.

How the Registry publishes it (a bare PEM, `{"public_key": "<PEM>"}`, a JWKS) is the Registry
adapter's business; this module only decides which key is current and when to look again:
every `refresh_interval`, and when a token's signature fails under a key id we have not seen
verify (a rotation, or a key that could not be fetched at boot). Looking again on demand is
rate-limited (`min_gap`) and happens in the background, so no request ever waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from app.mesh.peers import PeerError
from app.utils.retry import Sleep

log = structlog.get_logger(__name__)

_KNOWN_KIDS = 16
"""Key ids remembered as verified with the current key (a few issuers, a few rotations)."""


@dataclass(frozen=True, slots=True)
class PublishedKey:
    pem: bytes
    kid: str | None = None
    """The key id the publisher gave it, when it gave one."""


KeyFetch = Callable[[], Awaitable[PublishedKey]]
"""Gets the published key; raises `PeerError` when it cannot."""


class PublicKeySource:
    """Holds the current verification key. A file-configured key wins and is never replaced;
    otherwise the published key is fetched at start, then kept fresh."""

    def __init__(
        self,
        *,
        key_file: Path,
        fetch: KeyFetch | None = None,
        refresh_interval: float = 300.0,
        min_gap: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        start_wait_s: float = 0.5,
    ) -> None:
        self._key_file = key_file
        self._start_wait_s = start_wait_s
        self._fetch = fetch
        self._interval = refresh_interval
        self._min_gap = min_gap
        self._clock = clock
        self._sleep = sleep
        self._pem: bytes | None = None
        self._from_file = False
        self._known_kids: dict[str, None] = {}
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task[bool] | None = None
        self._loop: asyncio.Task[None] | None = None

    @property
    def pem(self) -> bytes | None:
        return self._pem

    @property
    def refreshable(self) -> bool:
        """True when the key comes (or is to come) from a publisher rather than a file."""
        return self._fetch is not None and not self._from_file

    def load_file(self) -> bool:
        try:
            pem = self._key_file.read_bytes()
        except OSError:
            return False
        if b"-----BEGIN" not in pem:
            log.warning("public_key_file_invalid", path=str(self._key_file))
            return False
        self._pem = pem
        self._from_file = True
        return True

    # -- keeping it fresh -------------------------------------------------------------------

    async def start(self) -> None:
        """Fetch the published key once, then keep it fresh.

        Start-up waits for that first fetch at most `start_wait_s`: a publisher that accepts
        connections but does not answer would otherwise hold back the service (and its first
        `/health`) for the whole peer timeout (issue 17). The fetch goes on in the background;
        until it lands, tokens signed by the publisher are refused as without a key."""
        if not self.refreshable or self._loop is not None:
            return
        first = self._pending = asyncio.create_task(self.refresh(), name="public-key-first")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(first), self._start_wait_s)
        self._loop = asyncio.create_task(self._keep_fresh(), name="public-key-refresh")

    async def stop(self) -> None:
        for task in (self._loop, self._pending):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._loop = self._pending = None

    async def refresh(self) -> bool:
        """Fetch the published key now; one fetch at a time. False when it could not."""
        if not self.refreshable:
            return self._pem is not None
        assert self._fetch is not None
        async with self._lock:
            self._last_attempt = self._clock()
            try:
                key = await self._fetch()
            except PeerError as exc:
                log.warning("public_key_fetch_failed", reason=exc.message)
                return False
            if key.pem != self._pem:
                log.info("public_key_loaded", replaced=self._pem is not None, kid=key.kid)
                self._pem = key.pem
                # Ids that verified with the old key say nothing about the new one.
                self._known_kids = {}
            if key.kid is not None:
                self._remember(key.kid)
            return True

    def request_refresh(self) -> None:
        """Look for a new key soon, in the background: at most once per `min_gap`, never
        twice at a time, so a flood of bad tokens costs the publisher one request per gap."""
        if not self.refreshable or (self._pending is not None and not self._pending.done()):
            return
        if self._last_attempt is not None and self._clock() - self._last_attempt < self._min_gap:
            return
        try:
            self._pending = asyncio.get_running_loop().create_task(
                self.refresh(), name="public-key-refresh-now"
            )
        except RuntimeError:
            return  # no event loop (a synchronous caller): the periodic refresh will do

    async def _keep_fresh(self) -> None:
        while True:
            # Without a key every JWT endpoint answers 401, so try again much sooner.
            await self._sleep(self._interval if self._pem is not None else self._min_gap)
            await self.refresh()

    # -- what verification tells us ---------------------------------------------------------

    def verified(self, kid: str | None) -> None:
        """A token signed under `kid` verified with the current key."""
        if kid is not None:
            self._remember(kid)

    def signature_failed(self, kid: str | None) -> None:
        """A token's signature did not verify with the current key. Under a key id known to
        belong to this key it is a forgery; otherwise the signer may have a newer key."""
        if kid is None or kid not in self._known_kids:
            self.request_refresh()

    def _remember(self, kid: str) -> None:
        self._known_kids.pop(kid, None)
        self._known_kids[kid] = None
        while len(self._known_kids) > _KNOWN_KIDS:
            del self._known_kids[next(iter(self._known_kids))]
