"""`python -m sandbox`: a local mesh (Registry + Orchestrator) for the Chat Orchestrator to talk to.

Both peers run in this one process until SIGINT or SIGTERM. Keys are written to `--key-dir`
(reused when already there), so droplet 12 can mint Orchestrator tokens from
`<key-dir>/orchestrator_private_key.pem`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from sandbox.testing import DEFAULT_REGISTRY_KEY, start_mesh

log = logging.getLogger("sandbox")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Run contract-faithful stand-ins for the mesh Registry and Orchestrator.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--registry-port", type=int, default=8001)
    parser.add_argument("--orchestrator-port", type=int, default=8010)
    parser.add_argument("--key-dir", type=Path, default=Path("data/sandbox"))
    parser.add_argument(
        "--no-quirks",
        dest="quirks",
        action="store_false",
        help="clean Orchestrator: no 500 on first registration, GET /droplets/{id} works",
    )
    parser.add_argument("--router-interval", type=float, default=10.0, help="seconds")
    parser.add_argument(
        "--inactive-after", type=float, default=90.0, help="seconds without heartbeat"
    )
    parser.add_argument("--registry-key", default=DEFAULT_REGISTRY_KEY)
    parser.add_argument(
        "--auth-secret",
        default=None,
        help="mount the Orchestrator's POST /auth/token with this secret",
    )
    parser.add_argument(
        "--deployed-registry",
        action="store_true",
        help="Registry also serves /auth/token and /.well-known/jwks.json",
    )
    parser.add_argument("--no-seed", dest="seed", action="store_false", help="start empty")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    handle = start_mesh(
        key_dir=args.key_dir,
        quirks=args.quirks,
        router_interval=args.router_interval,
        inactive_after=args.inactive_after,
        seed=args.seed,
        registry_port=args.registry_port,
        orchestrator_port=args.orchestrator_port,
        auth_secret=args.auth_secret,
        registry_key=args.registry_key,
        deployed_registry=args.deployed_registry,
        host=args.host,
    )
    log.info("Registry (droplet 1):      %s", handle.registry_url)
    log.info("Orchestrator (droplet 10): %s", handle.orchestrator_url)
    log.info("Registry key (X-Registry-Key): %s", handle.registry_key)
    log.info("Orchestrator private key (mint droplet tokens): %s", handle.private_key_path)
    log.info("Orchestrator public key: %s", handle.public_key_path)
    if handle.registry_public_key_path is not None:
        log.info("Registry public key (deployed variant): %s", handle.registry_public_key_path)
    if handle.orchestrator_secret is not None:
        log.info("Orchestrator POST /auth/token secret: %s", handle.orchestrator_secret)
    log.info(
        "quirks=%s seed=%s router_interval=%ss inactive_after=%ss; Ctrl-C to stop",
        args.quirks,
        args.seed,
        args.router_interval,
        args.inactive_after,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        handle.stop()
        log.info("sandbox mesh stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
