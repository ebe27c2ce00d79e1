"""Adapter for the Registry (droplet 1): registration, heartbeats, the droplet list.

Wire facts absorbed here (see contracts/mesh.md section 1): ids are strings like "droplet-12",
`last_seen` is epoch seconds, omitted registration fields are overwritten with null (so every
field is always sent), and the token/key routes exist only on the deployed variant.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx2
import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from app.domain.mesh import Droplet
from app.mesh.catalogue import known_name
from app.mesh.keys import PublishedKey
from app.mesh.peer_http import PeerResponse, exchange
from app.mesh.peers import PeerNotFound, PeerRejected, PeerUnavailable
from app.mesh.resilience import PEER_RETRY, CircuitBreaker, Clock, send
from app.mesh.tokens import IssuedToken, claimed_times
from app.utils.http_transport import SharedTls, outbound_client
from app.utils.retry import RetryPolicy, Sleep
from app.utils.time import parse_timestamp

log = structlog.get_logger(__name__)

PEER = "registry"
LABEL = "Registry"
# The deployed registry's tokens live about a day; used when a token states no expiry.
_DEFAULT_TOKEN_LIFETIME_S = 24 * 3600.0


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | int | None = None
    name: str | None = None
    fqdn: str | None = None
    ip: str | None = None
    role: str | None = None
    env: str | None = None
    version: str | None = None
    cost_hour: float | None = None
    cpu: float | None = None
    mem: float | None = None
    disk: float | None = None
    last_seen: float | str | None = None
    status: str | None = None


_ID = re.compile(r"^\s*(?:droplet[-_ ]?|drop|d)?#?(\d+)\s*$", re.IGNORECASE)
_FQDN_ID = re.compile(r"^drop(?:let)?-?(\d+)(?:\.|$)", re.IGNORECASE)


def droplet_id_from_wire(value: str | int | None, fqdn: str | None = None) -> int | None:
    """ "droplet-12" -> 12; a row registered by fqdn only ("drop14.local") -> 14."""
    if isinstance(value, int):
        return value
    if value:
        match = _ID.match(value)
        if match:
            return int(match.group(1))
    for candidate in (value, fqdn):
        if candidate:
            match = _FQDN_ID.match(candidate)
            if match:
                return int(match.group(1))
    return None


def wire_id(droplet_id: int) -> str:
    return f"droplet-{droplet_id}"


class RegistryClient:
    """One shared `httpx2.AsyncClient` and one circuit breaker for every call to the Registry."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float = 5.0,
        client: httpx2.AsyncClient | None = None,
        tls: ssl.SSLContext | SharedTls | None = None,
        retry_policy: RetryPolicy | None = None,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._owns_client = client is None
        self._client = client or outbound_client(
            timeout=timeout, verify=tls if tls is not None else True
        )
        self._retry_policy = retry_policy or PEER_RETRY
        self._sleep = sleep
        self.breaker = CircuitBreaker(
            peer=PEER,
            label=LABEL,
            failure_threshold=failure_threshold,
            reset_timeout=reset_timeout,
            clock=clock,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # -- plumbing ---------------------------------------------------------------------------

    def _headers(self, trace_id: str | None, *, authed: bool = True) -> dict[str, str]:
        headers = {"X-Trace-Id": trace_id or str(uuid.uuid4()), "X-Source": "droplet-12"}
        if authed:
            headers["X-Registry-Key"] = self._api_key
        return headers

    async def _call(
        self,
        method: str,
        path: str,
        *,
        trace_id: str | None,
        json_body: Any = None,
        params: Mapping[str, str | int] | None = None,
        idempotent: bool,
        authed: bool = True,
    ) -> PeerResponse:
        headers = self._headers(trace_id, authed=authed)

        async def attempt() -> PeerResponse:
            return await self.breaker.call(
                lambda: exchange(
                    self._client,
                    method,
                    self._base_url + path,
                    peer=PEER,
                    label=LABEL,
                    headers=headers,
                    params=params,
                    json_body=json_body,
                )
            )

        response = await send(
            attempt, idempotent=idempotent, policy=self._retry_policy, sleep=self._sleep
        )
        if response.status_code == 401:
            raise PeerRejected(PEER, "the Registry rejected our registry key", status_code=401)
        return response

    @staticmethod
    def _rejected(response: PeerResponse, what: str) -> PeerRejected:
        return PeerRejected(
            PEER, f"the Registry refused to {what}", status_code=response.status_code
        )

    # -- calls -------------------------------------------------------------------------------

    async def register(
        self,
        *,
        droplet_id: int,
        name: str,
        fqdn: str,
        ip: str,
        role: str,
        env: str,
        version: str,
        cost_hour: float,
        trace_id: str | None = None,
    ) -> None:
        body = {
            "id": wire_id(droplet_id),
            "name": name,
            "fqdn": fqdn,
            "ip": ip,
            "role": role,
            "env": env,
            "version": version,
            "cost_hour": cost_hour,
        }
        response = await self._call(
            "POST", "/registry/register", trace_id=trace_id, json_body=body, idempotent=False
        )
        if response.status_code not in (200, 201):
            raise self._rejected(response, f"register droplet {droplet_id}")

    async def heartbeat(
        self,
        *,
        droplet_id: int,
        cpu: float,
        mem: float,
        disk: float,
        trace_id: str | None = None,
    ) -> None:
        body = {"id": wire_id(droplet_id), "cpu": _pct(cpu), "mem": _pct(mem), "disk": _pct(disk)}
        response = await self._call(
            "POST", "/registry/heartbeat", trace_id=trace_id, json_body=body, idempotent=True
        )
        if response.status_code == 404:
            raise PeerNotFound(
                PEER, f"droplet {droplet_id} is not registered with the Registry", status_code=404
            )
        if response.status_code != 200:
            raise self._rejected(response, "accept our heartbeat")

    async def list_droplets(self, *, trace_id: str | None = None) -> list[Droplet]:
        response = await self._call("GET", "/registry/droplets", trace_id=trace_id, idempotent=True)
        if response.status_code != 200:
            raise self._rejected(response, "list droplets")
        body = response.body
        if not isinstance(body, list):
            raise _unexpected()
        return _droplets(body)

    async def health(self, *, trace_id: str | None = None) -> bool:
        """True when the Registry answers `{"status":"ok"}`; never raises, bypasses the breaker
        so it can tell when a peer is back."""
        try:
            response = await exchange(
                self._client,
                "GET",
                self._base_url + "/health",
                peer=PEER,
                label=LABEL,
                headers=self._headers(trace_id, authed=False),
            )
        except PeerUnavailable:
            return False
        return (
            response.status_code == 200
            and isinstance(response.body, dict)
            and response.body.get("status") == "ok"
        )

    async def issue_token(self, droplet_id: int, *, trace_id: str | None = None) -> IssuedToken:
        """Deployed variant only: `POST /auth/token?droplet_id=` -> an RS256 JWT."""
        response = await self._call(
            "POST",
            "/auth/token",
            trace_id=trace_id,
            params={"droplet_id": droplet_id},
            idempotent=False,
        )
        if response.status_code == 404:
            raise PeerNotFound(PEER, "the Registry does not issue tokens", status_code=404)
        body = response.body
        if response.status_code not in (200, 201) or not isinstance(body, dict):
            raise self._rejected(response, "issue a token")
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise _unexpected()
        issued_at, expires_at = claimed_times(token)
        return IssuedToken(token, issued_at, expires_at or _expiry_from(body))

    async def fetch_public_key(
        self, *, url: str | None = None, trace_id: str | None = None
    ) -> PublishedKey:
        """The key that verifies inbound JWTs, as published at `url` (by default the deployed
        Registry's `/.well-known/jwks.json`): `{"public_key": "<PEM>"}`, a bare PEM, or a real
        JWKS (its first key). Outside the breaker and never retried: the key's refresher keeps
        its own schedule, and the URL may be served by something other than the Registry."""
        response = await exchange(
            self._client,
            "GET",
            url or self._base_url + "/.well-known/jwks.json",
            peer=PEER,
            label=LABEL,
            headers=self._headers(trace_id, authed=False),
            accept_text=True,
        )
        if response.status_code == 404:
            raise PeerNotFound(PEER, "the Registry does not publish a public key", status_code=404)
        if response.status_code != 200:
            raise self._rejected(response, "publish its public key")
        key = _published_key(response.body)
        if key is None:
            raise _unexpected()
        return key


def _unexpected() -> PeerUnavailable:
    return PeerUnavailable(PEER, "the Registry answered in an unexpected format")


def _pct(value: float) -> float:
    return round(min(100.0, max(0.0, float(value))), 1)


def _droplets(rows: list[Any]) -> list[Droplet]:
    droplets: list[Droplet] = []
    for raw in rows:
        try:
            row = _Row.model_validate(raw)
        except ValidationError:
            log.warning("registry_row_unreadable")
            continue
        droplet_id = droplet_id_from_wire(row.id, row.fqdn)
        if droplet_id is None:
            log.debug("registry_row_without_numeric_id")
            continue
        droplets.append(
            Droplet(
                id=droplet_id,
                name=row.name or known_name(droplet_id) or f"droplet {droplet_id}",
                status=row.status or "unknown",
                role=row.role,
                version=row.version,
                last_seen=parse_timestamp(row.last_seen),
                cpu=row.cpu,
                mem=row.mem,
                disk=row.disk,
                sources=["registry"],
            )
        )
    return droplets


def _expiry_from(body: dict[str, Any]) -> float:
    """When a token that states no `exp` expires, from the answer around it."""
    stated = body.get("expires_at")
    parsed = parse_timestamp(stated) if isinstance(stated, int | float | str) else None
    if parsed is not None:
        return parsed.timestamp()
    expires_in = body.get("expires_in")
    if isinstance(expires_in, int | float) and expires_in > 0:
        return time.time() + float(expires_in)
    return time.time() + _DEFAULT_TOKEN_LIFETIME_S


def _published_key(body: Any) -> PublishedKey | None:
    """A bare PEM, the deployed registry's `{"public_key": "<PEM>"}`, or a JWKS; None when the
    answer holds no public key we could verify with (it never replaces a working key)."""
    if isinstance(body, str):
        return _valid(body, None)
    if not isinstance(body, dict):
        return None
    pem = body.get("public_key")
    kid = body.get("kid")
    if isinstance(pem, str):
        return _valid(pem, kid if isinstance(kid, str) else None)
    keys = body.get("keys")
    # Tolerate a real JWKS should the deployment ever serve one.
    if isinstance(keys, list) and keys and isinstance(keys[0], dict):
        jwk_kid = keys[0].get("kid")
        try:
            return _valid(_jwk_to_pem(keys[0]), jwk_kid if isinstance(jwk_kid, str) else None)
        except PeerUnavailable:
            return None
    return None


def _valid(pem: str, kid: str | None) -> PublishedKey | None:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    text = pem.strip()
    if not text.startswith("-----BEGIN"):
        return None
    try:
        key = load_pem_public_key(text.encode())
    except (ValueError, TypeError):
        return None
    # Inbound tokens are RS256 only, so only an RSA key can verify them.
    return PublishedKey(pem=text.encode(), kid=kid) if isinstance(key, RSAPublicKey) else None


def _jwk_to_pem(jwk: dict[str, Any]) -> str:
    import jwt  # imported on first use (see app.channels.jwt)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    try:
        key = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise _unexpected() from exc
    if not isinstance(key, RSAPublicKey):
        raise _unexpected()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
