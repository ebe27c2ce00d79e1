"""Who is calling: an identity of a kind (user, droplet, ...) and what it may do.

A droplet and a user are different kinds, so `user:18` and `droplet:18` never collide, and
every session lives in the namespace of the identity that owns it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

IdentityKind = Literal["user", "droplet", "anonymous", "inbound", "system"]
"""
- user: a person (or a service acting for one), from a verified token's `sub`;
- droplet: another droplet, from a verified token's `droplet_id` (or `role: droplet`);
- anonymous: a caller without a token while CHAT_AUTH=none (development);
- inbound: a tokenless mesh message from an allow-listed network (read-only);
- system: work the service does for itself (tasks assigned to it).
"""

Permission = Literal["read", "write", "admin"]

NAMESPACE_CHARS = 12
"""Base32 characters of the namespace tag (60 bits of SHA-256)."""
_NAMESPACE_BYTES = -(-NAMESPACE_CHARS // 8) * 5
"""Digest bytes that base32-encode to at least NAMESPACE_CHARS characters (whole 5-byte groups)."""


@dataclass(frozen=True, slots=True)
class Identity:
    kind: IdentityKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def namespace(self) -> str:
        """A short, stable tag of this identity: the prefix of every session key it owns."""
        digest = hashlib.sha256(str(self).encode()).digest()
        # Base32 writes each 5 bytes as 8 characters, so the first 16 characters are the first
        # 10 bytes': encoding only those gives the same tag in half the time (every turn asks).
        return base64.b32encode(digest[:_NAMESPACE_BYTES]).decode()[:NAMESPACE_CHARS].lower()

    @classmethod
    def parse(cls, text: str) -> Identity:
        kind, sep, ident = text.partition(":")
        if not sep or kind not in ("user", "droplet", "anonymous", "inbound", "system"):
            raise ValueError(f"not an identity: {text!r}")
        return cls(kind, ident)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified (or, where policy allows, unverified) caller and its permissions."""

    identity: Identity
    permissions: frozenset[str] = field(default_factory=frozenset)
    authenticated: bool = True
    expires_at: float | None = None
    """The token's `exp` (epoch seconds), for connections that outlive a request."""
    address: str | None = None
    """The client address (after trusted-proxy resolution), for logs and rate limits."""

    def can(self, permission: Permission) -> bool:
        return "admin" in self.permissions or permission in self.permissions

    @property
    def rate_key(self) -> str:
        """What rate limits count: the identity, or the address of an anonymous caller."""
        if self.identity.kind in ("anonymous", "inbound"):
            return f"addr:{self.address or 'unknown'}"
        return str(self.identity)


SYSTEM_TASKS = Caller(Identity("system", "tasks"), frozenset({"read"}))
"""Tasks the Orchestrator assigns to this droplet: answered read-only, in sessions only an
admin can open."""


SESSION_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
SESSION_ID_RULE = "session_id must be 1 to 128 characters of letters, digits and . _ : @ -"
"""What a client is told when it names a session with anything else."""
_SESSION_ID = re.compile(SESSION_ID_PATTERN)


def valid_session_id(value: object) -> bool:
    """Whether a client-chosen session id is acceptable (any channel)."""
    return isinstance(value, str) and _SESSION_ID.match(value) is not None


def session_key(owner: Identity, name: str) -> str:
    """The stored key of the session `name` of `owner`: namespaced, so ids cannot collide."""
    return f"{owner.namespace}.{name}"


def session_name(key: str) -> str:
    """The id a client sees for a stored session key."""
    return key.split(".", 1)[1] if "." in key else key
