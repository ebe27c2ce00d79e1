"""`python -m scripts.dev_token`: the README's token for a `make run` droplet 12 verifies there."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.channels.jwt import verify_token
from scripts.dev_token import dev_token, main
from tests.conftest import KeyPair


def test_the_default_token_is_a_persons_with_read_write_and_admin(keys: KeyPair) -> None:
    token = dev_token(
        keys.private_pem, sub="operator", permissions=["read", "write", "admin"], ttl=60
    )
    caller = verify_token(token, public_key_pem=keys.public_pem)
    assert (caller.identity.kind, caller.identity.id) == ("user", "operator")
    assert caller.permissions == frozenset({"read", "write", "admin"})


def test_a_droplets_token_names_the_droplet(keys: KeyPair) -> None:
    token = dev_token(keys.private_pem, sub="operator", permissions=["read"], ttl=60, droplet=7)
    caller = verify_token(token, public_key_pem=keys.public_pem)
    assert (caller.identity.kind, caller.identity.id) == ("droplet", "7")
    assert caller.permissions == frozenset({"read"})


def test_the_command_prints_a_token_signed_with_the_sandbox_key(
    tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "orchestrator_private_key.pem"
    key.write_bytes(keys.private_pem)
    main(["--key", str(key), "--sub", "dana", "--permissions", "read,write"])
    caller = verify_token(capsys.readouterr().out.strip(), public_key_pem=keys.public_pem)
    assert caller.identity.id == "dana"
    assert caller.permissions == frozenset({"read", "write"})


def test_without_the_sandbox_key_it_says_to_start_the_sandbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--key", str(tmp_path / "missing.pem")])
    assert stopped.value.code == 2
    assert "start the sandbox first (make run)" in capsys.readouterr().err
