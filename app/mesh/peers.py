"""Errors every peer adapter raises, so callers never see httpx2 or a peer's error body."""

from __future__ import annotations


class PeerError(Exception):
    """A peer call failed. `message` is safe to show a user: no SQL, no upstream body."""

    def __init__(self, peer: str, message: str, *, status_code: int | None = None) -> None:
        super().__init__(f"{peer}: {message}")
        self.peer = peer
        self.message = message
        self.status_code = status_code


class PeerUnavailable(PeerError):
    """The peer could not be reached: connection refused, timeout, circuit open, 5xx.

    `reached`: False only when the request never left this process (no connection could be
    had, the circuit is open), so the peer cannot have acted on it; a timeout, a 5xx or a
    connection lost after sending may have come after the peer did what was asked."""

    def __init__(
        self, peer: str, message: str, *, status_code: int | None = None, reached: bool = True
    ) -> None:
        super().__init__(peer, message, status_code=status_code)
        self.reached = reached


class PeerRejected(PeerError):
    """The peer answered and said no (4xx other than 404): validation, auth, illegal transition."""


class PeerNotFound(PeerError):
    """The peer says the thing asked for does not exist."""
