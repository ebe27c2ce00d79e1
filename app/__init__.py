"""Chat Orchestrator, droplet 12 of the mesh."""

__version__ = "1.0.0"
