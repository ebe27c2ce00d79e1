"""Verifying inbound RS256 tokens (from other droplets and chat users) into a Caller."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from app.domain.identity import Caller, Identity
from app.mesh.tokens import DEFERRED_IMPORTS
from app.utils.imports import import_off_loop

# jwt (and cryptography behind it, ~40 ms) is imported in the functions that read a token:
# a start-up never needs it before its first /health answer (issue 17).
if TYPE_CHECKING:
    from jwt.types import Options

ALGORITHMS = ("RS256",)
LEEWAY_S = 30


class TokenInvalid(Exception):
    """The token cannot be accepted; the message is safe to return to the caller.
    `bad_signature`: its signature did not verify, perhaps under a key we do not have yet."""

    def __init__(self, message: str, *, bad_signature: bool = False) -> None:
        super().__init__(message)
        self.bad_signature = bad_signature


async def loaded() -> None:
    """PyJWT imported, on a worker thread if it is not yet. app.ops.deferred_imports imports
    it once the service has started; a token that comes before (its key configured as a file,
    in the first moment after start) would otherwise hold the loop for the import (~60 ms)."""
    await import_off_loop(*DEFERRED_IMPORTS)


def key_id(token: str) -> str | None:
    """The `kid` a token's header names, unverified (only to decide whether to look for a
    newer key); None when it names none or cannot be read."""
    import jwt

    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def _permissions(claims: dict[str, Any]) -> frozenset[str]:
    raw = claims.get("permissions", claims.get("scope", []))
    if isinstance(raw, str):
        raw = raw.replace(",", " ").split()
    if not isinstance(raw, list):
        return frozenset()
    return frozenset(str(p) for p in raw if isinstance(p, str))


def _droplet_number(value: object) -> str | None:
    """ "18", 18 and "droplet-18" name droplet 18; anything else is not a droplet id."""
    if isinstance(value, bool):
        return None
    text = str(value).strip()
    if text.lower().startswith("droplet-"):
        text = text[len("droplet-") :]
    return text if text.isdigit() and len(text) <= 9 and int(text) > 0 else None


def identity_of(claims: dict[str, Any]) -> Identity:
    """A droplet when the token says so (`droplet_id`, `service_id`, or `role: droplet` with a
    droplet `sub`); otherwise a user named by `sub`. The kinds never share a namespace."""
    for key in ("droplet_id", "service_id"):
        value = claims.get(key)
        if value is not None:
            number = _droplet_number(value)
            if number is None:
                raise TokenInvalid(f"token claim {key!r} is not a droplet id")
            return Identity("droplet", number)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 200:
        raise TokenInvalid("token has no identity claim (droplet_id, service_id or sub)")
    if claims.get("role") == "droplet":
        number = _droplet_number(subject)
        if number is None:
            raise TokenInvalid("a droplet token's 'sub' must be a droplet id")
        return Identity("droplet", number)
    return Identity("user", subject.strip())


def verify_token(
    token: str,
    *,
    public_key_pem: bytes,
    issuer: str | None = None,
    audience: str | None = None,
    max_lifetime_s: float | None = None,
    now: float | None = None,
) -> Caller:
    """Verify an RS256 token and return its caller.

    Only RS256 is accepted, so neither `alg: none` nor an HS256 token "signed" with the public
    key as a shared secret can pass. `exp` is required and must be a number (a numeric string
    is refused); a token living longer than `max_lifetime_s` is refused; `iss`/`aud` are
    checked when configured.
    """
    import jwt

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
            leeway=LEEWAY_S,
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenInvalid("token expired") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise TokenInvalid(f"token is missing the {exc.claim!r} claim") from exc
    except (jwt.InvalidIssuerError, jwt.InvalidAudienceError) as exc:
        raise TokenInvalid("token issuer or audience not accepted") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenInvalid("token signature or claims invalid", bad_signature=True) from exc
    except jwt.PyJWTError as exc:
        raise TokenInvalid("token signature or claims invalid") from exc
    expires = claims["exp"]
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise TokenInvalid("token 'exp' must be a number")
    issued = claims.get("iat")
    if issued is not None and (not isinstance(issued, int | float) or isinstance(issued, bool)):
        raise TokenInvalid("token 'iat' must be a number")
    if max_lifetime_s is not None:
        start = issued if issued is not None else (now if now is not None else time.time())
        if float(expires) - float(start) > max_lifetime_s + LEEWAY_S:
            raise TokenInvalid(f"token lifetime exceeds the maximum of {int(max_lifetime_s)} s")
    return Caller(
        identity=identity_of(claims),
        permissions=_permissions(claims),
        expires_at=float(expires),
    )
