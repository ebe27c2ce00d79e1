"""Identities: the namespace tag every stored session key starts with."""

from __future__ import annotations

import base64
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from app.domain.identity import NAMESPACE_CHARS, Identity, IdentityKind, session_key

KINDS: tuple[IdentityKind, ...] = ("user", "droplet", "anonymous", "inbound", "system")


def _full_digest_tag(identity: Identity) -> str:
    """The tag as first defined: base32 of the whole SHA-256 digest, cut to its length."""
    digest = hashlib.sha256(str(identity).encode()).digest()
    return base64.b32encode(digest).decode()[:NAMESPACE_CHARS].lower()


@given(kind=st.sampled_from(KINDS), ident=st.text(max_size=80))
def test_namespace_is_the_tag_of_the_whole_digest(kind: IdentityKind, ident: str) -> None:
    # Stored session keys begin with it: a different tag would orphan every stored session.
    identity = Identity(kind, ident)
    assert identity.namespace == _full_digest_tag(identity)


def test_namespace_of_a_known_identity_is_stable() -> None:
    # The tag sessions stored by earlier versions carry for this identity.
    identity = Identity("anonymous", "developer")
    assert identity.namespace == "lskbi7j75nry"
    assert len(identity.namespace) == NAMESPACE_CHARS
    assert session_key(identity, "s1") == f"{identity.namespace}.s1"
