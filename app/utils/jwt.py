"""Verifying inbound RS256 tokens (from other droplets and chat users)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt.types import Options

ALGORITHMS = ("RS256",)


class TokenInvalid(Exception):
    """The token cannot be accepted; the message is safe to return to the caller."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, from a verified token (or anonymous when auth is off)."""

    subject: str
    permissions: frozenset[str] = field(default_factory=frozenset)
    claims: dict[str, Any] = field(default_factory=dict)
    authenticated: bool = True

    def can(self, permission: str) -> bool:
        return "admin" in self.permissions or permission in self.permissions


def _permissions(claims: dict[str, Any]) -> frozenset[str]:
    raw = claims.get("permissions", claims.get("scope", []))
    if isinstance(raw, str):
        raw = raw.replace(",", " ").split()
    if not isinstance(raw, list):
        return frozenset()
    return frozenset(str(p) for p in raw)


def _subject(claims: dict[str, Any]) -> str:
    for key in ("droplet_id", "service_id", "sub"):
        value = claims.get(key)
        if value is not None and str(value).strip():
            return str(value)
    raise TokenInvalid("token has no identity claim (droplet_id, service_id or sub)")


def verify_token(
    token: str, *, public_key_pem: bytes, issuer: str | None = None, audience: str | None = None
) -> Principal:
    """Verify an RS256 token and return its principal.

    Only RS256 is accepted, so neither `alg: none` nor an HS256 token "signed" with the public
    key as a shared secret can pass. `exp` is required; `iss`/`aud` are checked when configured.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenInvalid("malformed token") from exc
    if header.get("alg") not in ALGORITHMS:
        raise TokenInvalid("token algorithm not accepted")
    options: Options = {"require": ["exp"], "verify_aud": audience is not None}
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            public_key_pem,
            algorithms=list(ALGORITHMS),
            issuer=issuer,
            audience=audience,
            options=options,
            leeway=30,
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenInvalid("token expired") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise TokenInvalid(f"token is missing the {exc.claim!r} claim") from exc
    except (jwt.InvalidIssuerError, jwt.InvalidAudienceError) as exc:
        raise TokenInvalid("token issuer or audience not accepted") from exc
    except jwt.PyJWTError as exc:
        raise TokenInvalid("token signature or claims invalid") from exc
    return Principal(subject=_subject(claims), permissions=_permissions(claims), claims=claims)
