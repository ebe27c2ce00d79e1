"""The droplets this mesh is known to contain, so names resolve even when no peer answers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KnownDroplet:
    id: int
    name: str
    aliases: tuple[str, ...] = ()


KNOWN_DROPLETS: tuple[KnownDroplet, ...] = (
    KnownDroplet(1, "Registry", ("registry", "droplet registry")),
    KnownDroplet(2, "Dashboard", ("dashboard",)),
    KnownDroplet(10, "Orchestrator", ("orchestrator", "task orchestrator")),
    KnownDroplet(12, "Chat Orchestrator", ("chat orchestrator", "chat-orchestrator")),
    KnownDroplet(14, "Visibility Deck", ("visibility deck", "visibility", "deck")),
    KnownDroplet(16, "Onboarding", ("onboarding",)),
    KnownDroplet(18, "Voice", ("voice",)),
)


def known_name(droplet_id: int) -> str | None:
    for known in KNOWN_DROPLETS:
        if known.id == droplet_id:
            return known.name
    return None


def display_name(droplet_id: int, name: str | None = None) -> str:
    """ "Visibility Deck (droplet 14)", or "droplet 14" when nothing better is known."""
    name = name or known_name(droplet_id)
    return f"{name} (droplet {droplet_id})" if name else f"droplet {droplet_id}"


def catalogue_aliases() -> dict[str, int]:
    """Lower-case names and nicknames of the known droplets, to their ids."""
    return {
        alias.lower(): known.id
        for known in KNOWN_DROPLETS
        for alias in (known.name, *known.aliases)
    }
