"""Contract-faithful stand-ins for the mesh Registry (droplet 1) and Orchestrator (droplet 10).

Used by `python -m sandbox` (a local mesh for the Chat Orchestrator to talk to) and by tests over
real HTTP on loopback (`sandbox.testing.start_mesh` / `mesh`). See `sandbox/README.md`.
"""

from sandbox.orchestrator import create_orchestrator_app
from sandbox.registry import create_registry_app

__all__ = ["create_orchestrator_app", "create_registry_app"]
