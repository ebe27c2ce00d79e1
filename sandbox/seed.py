"""The droplets both sandbox peers know about when started with `seed=True`.

The same catalogue feeds the Registry (as rows `droplet-<n>`) and the Orchestrator (as registered
droplets with integer ids). Seeded droplets heartbeat by themselves inside the sandbox, except
`STALE_DROPLET_ID`, which stops after its first heartbeat so that it goes `inactive` on the
Orchestrator (after `inactive_after`) and `down` on the Registry (after `stale_after`).
Seeded droplets have no endpoint on the Orchestrator (the empty string), so its router never hands
them work and `/send` to them fails the way it does for an unreachable droplet.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedDroplet:
    droplet_id: int
    name: str
    steward: str
    capabilities: tuple[str, ...]
    role: str
    version: str
    cost_hour: float

    @property
    def registry_id(self) -> str:
        return f"droplet-{self.droplet_id}"

    @property
    def fqdn(self) -> str:
        return f"drop{self.droplet_id}.fullpotential.ai"


ORCHESTRATOR_ID = 10
ORCHESTRATOR_CAPABILITIES = (
    "task_routing",
    "droplet_discovery",
    "health_monitoring",
    "workflow_management",
)

SEED_DROPLETS: tuple[SeedDroplet, ...] = (
    SeedDroplet(
        1,
        "Registry",
        "Liban",
        ("registry", "droplet_discovery", "authentication"),
        "registry",
        "2.0.0",
        0.007,
    ),
    SeedDroplet(
        2,
        "Dashboard",
        "James",
        ("dashboard", "visualization", "reporting"),
        "dashboard",
        "1.3.0",
        0.007,
    ),
    SeedDroplet(
        ORCHESTRATOR_ID,
        "Orchestrator",
        "Tnsae",
        ORCHESTRATOR_CAPABILITIES,
        "orchestrator",
        "2.0.0",
        0.014,
    ),
    SeedDroplet(
        14,
        "Visibility Deck",
        "Haythem",
        ("monitoring", "alerts", "snapshots"),
        "visibility_deck",
        "1.1.0",
        0.007,
    ),
    SeedDroplet(
        16,
        "Onboarding",
        "Sandbox",
        ("onboarding", "user_setup", "documentation"),
        "onboarding",
        "0.9.0",
        0.007,
    ),
    SeedDroplet(
        18,
        "Voice",
        "Sandbox",
        ("voice", "speech_to_text", "text_to_speech"),
        "voice",
        "1.0.0",
        0.014,
    ),
)

STALE_DROPLET_ID = 16
