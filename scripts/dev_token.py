"""Print a development token for the JWT-protected endpoints of a `make run` droplet 12.

curl -H "Authorization: Bearer $(.venv/bin/python -m scripts.dev_token)" localhost:8012/state
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sandbox.keys import mint_token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--key", type=Path, default=Path("data/sandbox/orchestrator_private_key.pem")
    )
    parser.add_argument("--sub", default="operator")
    parser.add_argument("--permissions", default="read,write,admin")
    parser.add_argument("--ttl", type=float, default=3600)
    args = parser.parse_args()
    if not args.key.exists():
        parser.error(f"{args.key} not found: start the sandbox first (make run)")
    token = mint_token(
        args.key.read_bytes(),
        droplet_id=args.sub,
        permissions=[p for p in args.permissions.split(",") if p],
        ttl=args.ttl,
        extra_claims={"sub": args.sub},
    )
    sys.stdout.write(token + "\n")


if __name__ == "__main__":
    main()
