"""RSA key pairs and token minting for the sandbox mesh.

The sandbox Orchestrator trusts its own key pair (as the real one does); whoever holds the private
key can mint Orchestrator tokens, which is how droplet 12 gets one when there is no token endpoint.
The deployed-variant Registry signs its tokens with a second pair.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ORCHESTRATOR_KEY_NAME = "orchestrator"
REGISTRY_KEY_NAME = "registry"


def generate_key_pair() -> tuple[bytes, bytes]:
    """A fresh 2048-bit RSA pair as (private PEM in PKCS#8, public PEM in SubjectPublicKeyInfo)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return private_pem, public_pem_from_private(private_pem)


@lru_cache(maxsize=16)
def load_private_key(private_key_pem: bytes) -> rsa.RSAPrivateKey:
    """Parse a private PEM once: the RSA consistency check makes every load cost ~50 ms."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("an RSA private key is required for RS256")
    return key


def public_pem_from_private(private_key_pem: bytes) -> bytes:
    return (
        load_private_key(private_key_pem)
        .public_key()
        .public_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )


def key_paths(key_dir: Path, name: str = ORCHESTRATOR_KEY_NAME) -> tuple[Path, Path]:
    """Where `<name>_private_key.pem` and `<name>_public_key.pem` live in `key_dir`."""
    return key_dir / f"{name}_private_key.pem", key_dir / f"{name}_public_key.pem"


def write_key_pair(key_dir: Path, name: str = ORCHESTRATOR_KEY_NAME) -> tuple[Path, Path]:
    """Make sure `key_dir` holds a key pair called `name`; generate it only when missing.

    Keeping an existing pair means a restarted sandbox still accepts tokens minted before the
    restart (a missing public half is rebuilt from the private one). Returns (private key path,
    public key path); the private key is written mode 0600.
    """
    private_path, public_path = key_paths(key_dir, name)
    if private_path.is_file():
        if not public_path.is_file():
            public_path.write_bytes(public_pem_from_private(private_path.read_bytes()))
        return private_path, public_path
    key_dir.mkdir(parents=True, exist_ok=True)
    private_pem, public_pem = generate_key_pair()
    private_path.touch(mode=0o600)
    private_path.write_bytes(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path


def mint_token(
    private_key_pem: bytes,
    *,
    droplet_id: int | str,
    permissions: Iterable[str],
    ttl: float,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """An RS256 token as the Orchestrator reads it: `{droplet_id, permissions, iat, exp}`.

    `droplet_id` must be an int for the Orchestrator's identity checks to pass; a str is allowed
    here only so tests can show that it fails. `extra_claims` override or add claims (an `aud`
    claim makes the Orchestrator reject the token; a negative `ttl` gives an expired one).
    """
    now = int(time.time())
    claims: dict[str, Any] = {
        "droplet_id": droplet_id,
        "permissions": list(permissions),
        "iat": now,
        "exp": now + int(ttl),
    }
    if extra_claims:
        claims.update(extra_claims)
    return jwt.encode(claims, load_private_key(private_key_pem), algorithm="RS256")
