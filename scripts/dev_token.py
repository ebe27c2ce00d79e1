"""Print a development token for the JWT-protected endpoints of a `make run` droplet 12.

curl -H "Authorization: Bearer $(.venv/bin/python -m scripts.dev_token)" localhost:8012/state

By default the token names a person (`sub`, here "operator") with read, write and admin, as a
chat user's token does; `--droplet N` makes droplet N's instead (`droplet_id`, as the
Orchestrator mints them). Signed with the sandbox's key, which `make run` gives droplet 12 as
its verification key.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jwt

from sandbox.keys import load_private_key, mint_token


def dev_token(
    private_key_pem: bytes,
    *,
    sub: str,
    permissions: Sequence[str],
    ttl: float,
    droplet: int | None = None,
) -> str:
    """A person's token (`sub`), or with `droplet` that droplet's (`droplet_id`)."""
    if droplet is not None:
        return mint_token(private_key_pem, droplet_id=droplet, permissions=permissions, ttl=ttl)
    # No droplet_id: droplet 12 takes a token with one for a droplet's, and refuses a claim
    # that does not name a droplet (SECURITY.md, "Identity").
    now = int(time.time())
    claims = {"sub": sub, "permissions": list(permissions), "iat": now, "exp": now + int(ttl)}
    return jwt.encode(claims, load_private_key(private_key_pem), algorithm="RS256")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--key", type=Path, default=Path("data/sandbox/orchestrator_private_key.pem")
    )
    parser.add_argument(
        "--sub", default="operator", help="the person the token names (not with --droplet)"
    )
    parser.add_argument(
        "--droplet", type=int, default=None, help="a droplet's token instead (its id)"
    )
    parser.add_argument("--permissions", default="read,write,admin")
    parser.add_argument("--ttl", type=float, default=3600)
    args = parser.parse_args(argv)
    if not args.key.exists():
        parser.error(f"{args.key} not found: start the sandbox first (make run)")
    token = dev_token(
        args.key.read_bytes(),
        sub=args.sub,
        permissions=[p for p in args.permissions.split(",") if p],
        ttl=args.ttl,
        droplet=args.droplet,
    )
    sys.stdout.write(token + "\n")


if __name__ == "__main__":
    main()
