from __future__ import annotations

import base64
import json
import time

import jwt as pyjwt
import pytest

from app.channels.jwt import TokenInvalid, verify_token
from app.domain.identity import Identity
from tests.conftest import KeyPair


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_valid_token_gives_identity_and_permissions(keys: KeyPair) -> None:
    token = keys.token(droplet_id=14, permissions=["read", "write"])
    caller = verify_token(token, public_key_pem=keys.public_pem)
    assert caller.identity == Identity("droplet", "14")
    assert caller.can("write")
    assert not caller.can("admin")


def test_scope_claim_counts_as_permissions(keys: KeyPair) -> None:
    caller = verify_token(keys.token(scope="read admin"), public_key_pem=keys.public_pem)
    assert caller.identity == Identity("user", "droplet-1")
    assert caller.can("write")  # admin implies everything


def test_users_and_droplets_never_share_an_identity(keys: KeyPair) -> None:
    user = verify_token(keys.token(sub="18"), public_key_pem=keys.public_pem)
    droplet = verify_token(keys.token(droplet_id=18), public_key_pem=keys.public_pem)
    registry_issued = verify_token(
        keys.token(sub="droplet-18", role="droplet"), public_key_pem=keys.public_pem
    )
    assert str(user.identity) == "user:18"
    assert str(droplet.identity) == str(registry_issued.identity) == "droplet:18"
    assert user.identity.namespace != droplet.identity.namespace
    with pytest.raises(TokenInvalid, match="droplet id"):
        verify_token(keys.token(droplet_id="eighteen"), public_key_pem=keys.public_pem)


def test_a_numeric_string_exp_is_refused(keys: KeyPair) -> None:
    token = pyjwt.encode(
        {"sub": "x", "exp": str(int(time.time()) + 60)}, keys.private_pem, algorithm="RS256"
    )
    with pytest.raises(TokenInvalid):
        verify_token(token, public_key_pem=keys.public_pem)


def test_a_token_living_longer_than_the_maximum_is_refused(keys: KeyPair) -> None:
    forever = keys.token(ttl=10**10)  # exp in the far future, iat now
    with pytest.raises(TokenInvalid, match="lifetime"):
        verify_token(forever, public_key_pem=keys.public_pem, max_lifetime_s=86400)
    no_iat = pyjwt.encode({"sub": "x", "exp": 253402300799}, keys.private_pem, algorithm="RS256")
    with pytest.raises(TokenInvalid, match="lifetime"):
        verify_token(no_iat, public_key_pem=keys.public_pem, max_lifetime_s=86400)
    day = keys.token(ttl=86000)
    assert verify_token(day, public_key_pem=keys.public_pem, max_lifetime_s=86400).expires_at


def test_expired_token_rejected(keys: KeyPair) -> None:
    with pytest.raises(TokenInvalid, match="expired"):
        verify_token(keys.token(ttl=-120), public_key_pem=keys.public_pem)


def test_token_without_exp_rejected(keys: KeyPair) -> None:
    token = pyjwt.encode({"sub": "x"}, keys.private_pem, algorithm="RS256")
    with pytest.raises(TokenInvalid, match="exp"):
        verify_token(token, public_key_pem=keys.public_pem)


def test_alg_none_rejected(keys: KeyPair) -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': 'x', 'exp': 2**40})}."
    with pytest.raises(TokenInvalid):
        verify_token(token, public_key_pem=keys.public_pem)


def test_hs256_signed_with_the_public_key_rejected(keys: KeyPair) -> None:
    header = _b64({"alg": "HS256", "typ": "JWT"})
    body = _b64({"sub": "x", "exp": int(time.time()) + 60})
    import hashlib
    import hmac

    sig = hmac.new(keys.public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    with pytest.raises(TokenInvalid, match="algorithm"):
        verify_token(token, public_key_pem=keys.public_pem)


def test_wrong_key_rejected(keys: KeyPair, other_keys: KeyPair) -> None:
    with pytest.raises(TokenInvalid):
        verify_token(other_keys.token(), public_key_pem=keys.public_pem)


def test_tampered_payload_rejected(keys: KeyPair) -> None:
    header, _, sig = keys.token(permissions=["read"]).split(".")
    forged = _b64({"sub": "x", "permissions": ["admin"], "exp": int(time.time()) + 60})
    with pytest.raises(TokenInvalid):
        verify_token(f"{header}.{forged}.{sig}", public_key_pem=keys.public_pem)


def test_issuer_and_audience_checked_when_configured(keys: KeyPair) -> None:
    good = keys.token(iss="registry.fullpotential.ai", aud="fullpotential.droplets")
    verify_token(
        good,
        public_key_pem=keys.public_pem,
        issuer="registry.fullpotential.ai",
        audience="fullpotential.droplets",
    )
    with pytest.raises(TokenInvalid, match="issuer or audience"):
        verify_token(
            keys.token(iss="evil"),
            public_key_pem=keys.public_pem,
            issuer="registry.fullpotential.ai",
        )
    with pytest.raises(TokenInvalid, match="issuer or audience"):
        verify_token(
            keys.token(aud="other"),
            public_key_pem=keys.public_pem,
            audience="fullpotential.droplets",
        )


def test_garbage_rejected(keys: KeyPair) -> None:
    with pytest.raises(TokenInvalid, match="malformed"):
        verify_token("not-a-token", public_key_pem=keys.public_pem)
