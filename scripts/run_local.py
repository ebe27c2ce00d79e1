"""`make run`: a sandbox mesh on :8001/:8010 and droplet 12 on :8012, wired together.

Everything a newcomer needs with no secrets and no external mesh. Values already set in the
environment or `.env` win over these defaults.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sandbox.testing import start_mesh

log = logging.getLogger("run_local")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data_dir = Path(os.environ.get("DATA_DIR", "data"))
    key_dir = data_dir / "sandbox"
    mesh = start_mesh(
        key_dir=key_dir,
        registry_port=int(os.environ.get("SANDBOX_REGISTRY_PORT", "8001")),
        orchestrator_port=int(os.environ.get("SANDBOX_ORCHESTRATOR_PORT", "8010")),
        router_interval=float(os.environ.get("SANDBOX_ROUTER_INTERVAL", "10")),
        seed=True,
    )
    port = os.environ.get("PORT", "8012")
    defaults = {
        "REGISTRY_URL": mesh.registry_url,
        "ORCHESTRATOR_URL": mesh.orchestrator_url,
        "DROPLET_SECRET": mesh.registry_key,
        "ORCHESTRATOR_PRIVATE_KEY_FILE": str(mesh.private_key_path),
        # The sandbox signs every mesh token with one key pair, so it also verifies ours.
        "REGISTRY_PUBLIC_KEY_FILE": str(mesh.public_key_path),
        "DROPLET_URL": f"http://127.0.0.1:{port}",
        "ENVIRONMENT": "development",
        "DATA_DIR": str(data_dir),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    log.info("sandbox registry:     %s (X-Registry-Key: %s)", mesh.registry_url, mesh.registry_key)
    log.info("sandbox orchestrator: %s", mesh.orchestrator_url)
    log.info("a token for the JWT-protected endpoints: .venv/bin/python -m scripts.dev_token")
    log.info("chat page: http://localhost:%s/   health: http://localhost:%s/health", port, port)
    from app.main import main as serve

    try:
        serve()
    finally:
        mesh.stop()


if __name__ == "__main__":
    main()
