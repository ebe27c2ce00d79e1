"""Droplet knowledge: live rows from both peers merged with the static catalogue.

The Registry and the Orchestrator do not sync, so each knows a different part of the truth; a
listing asks both at once and says which of them failed, so an answer can be "the Orchestrator
is unreachable; here is what the Registry knows" rather than an error. Names keep resolving to
ids from the catalogue even when no peer answers.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal

import structlog
from pydantic import BaseModel, Field

from app.domain.mesh import Droplet
from app.mesh.catalogue import KNOWN_DROPLETS, known_name
from app.mesh.orchestrator import OrchestratorClient
from app.mesh.peers import PeerError
from app.mesh.registry import RegistryClient
from app.utils.time import utcnow

log = structlog.get_logger(__name__)

# Orchestrator and Registry words for the same health, so one filter fits both.
_STATUS_EQUIVALENTS: dict[str, frozenset[str]] = {
    "active": frozenset({"active", "healthy"}),
    "healthy": frozenset({"active", "healthy"}),
    "inactive": frozenset({"inactive", "down"}),
    "down": frozenset({"inactive", "down"}),
    "error": frozenset({"error"}),
}

_NUMBERED = re.compile(r"\b(?:droplet|drop)\s*[-#]?\s*(\d+)\b|\bd-?(\d+)\b|#\s*(\d+)\b")
_BARE_NUMBER = re.compile(r"^\s*(\d+)\s*$")
_NOT_WORD = re.compile(r"[^a-z0-9#]+")


class PeerFailure(BaseModel):
    peer: str
    message: str
    """Safe to show a user."""


class DirectoryListing(BaseModel):
    droplets: list[Droplet]
    failures: list[PeerFailure] = Field(default_factory=list)
    fetched_at: datetime


def _normalise(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def _merge(
    registry_rows: list[Droplet] | None, orchestrator_rows: list[Droplet] | None
) -> list[Droplet]:
    by_registry = {d.id: d for d in registry_rows or []}
    by_orchestrator = {d.id: d for d in orchestrator_rows or []}
    merged: list[Droplet] = []
    for droplet_id in sorted(by_registry.keys() | by_orchestrator.keys()):
        reg, orch = by_registry.get(droplet_id), by_orchestrator.get(droplet_id)
        sources: list[Literal["registry", "orchestrator", "catalogue"]] = []
        if reg:
            sources.append("registry")
        if orch:
            sources.append("orchestrator")
        seen = [d.last_seen for d in (reg, orch) if d and d.last_seen]
        merged.append(
            Droplet(
                id=droplet_id,
                name=(orch.name if orch else None)
                or known_name(droplet_id)
                or (reg.name if reg else f"droplet {droplet_id}"),
                # The Orchestrator's status drives task routing, so it wins when present.
                status=orch.status if orch else (reg.status if reg else "unknown"),
                steward=orch.steward if orch else None,
                endpoint=orch.endpoint if orch else None,
                capabilities=orch.capabilities if orch else [],
                seconds_since_heartbeat=orch.seconds_since_heartbeat if orch else None,
                role=reg.role if reg else None,
                version=reg.version if reg else None,
                cpu=reg.cpu if reg else None,
                mem=reg.mem if reg else None,
                disk=reg.disk if reg else None,
                last_seen=max(seen) if seen else None,
                sources=sources,
            )
        )
    return merged


def _catalogue_only() -> list[Droplet]:
    return [
        Droplet(id=k.id, name=k.name, status="unknown", sources=["catalogue"])
        for k in KNOWN_DROPLETS
    ]


def status_matches(droplet_status: str, wanted: str) -> bool:
    wanted = wanted.lower()
    return droplet_status.lower() in _STATUS_EQUIVALENTS.get(wanted, frozenset({wanted}))


# The directory's `list` method shadows the builtin inside the class body.
_Rows = list[Droplet]
_Failures = list[PeerFailure]


class DropletDirectory:
    """Merged, briefly cached view of the mesh; one fetch in flight at a time."""

    def __init__(
        self,
        *,
        registry: RegistryClient,
        orchestrator: OrchestratorClient,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._orchestrator = orchestrator
        self._ttl = ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._cached: DirectoryListing | None = None
        self._cached_at = 0.0
        self._live_names: dict[int, str] = {}
        self._aliases: dict[str, int] | None = None
        """Built from the catalogue and `_live_names`; None when a name has changed since."""

    def aliases(self) -> dict[str, int]:
        """Lower-case alias -> droplet id, from the catalogue and the names peers last gave.

        Every turn asks (the planner reads them); they change only when a peer gives a
        droplet a new name, so they are built again only then. A copy: callers may change it.
        """
        if self._aliases is None:
            self._aliases = self._build_aliases()
        return dict(self._aliases)

    def _build_aliases(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for known in KNOWN_DROPLETS:
            for alias in (known.name, *known.aliases):
                result.setdefault(_normalise(alias), known.id)
        for droplet_id, name in self._live_names.items():
            alias = _normalise(name)
            if alias and not alias.startswith("droplet "):
                result.setdefault(alias, droplet_id)
        return result

    def resolve(self, text: str) -> int | None:
        """ "the registry" -> 1, "voice droplet" -> 18, "droplet #14" / "drop14" -> 14."""
        lowered = text.lower()
        match = _NUMBERED.search(lowered) or _BARE_NUMBER.match(lowered)
        if match:
            return int(next(g for g in match.groups() if g))
        words = f" {_normalise(text)} "
        # Longest alias first, so "chat orchestrator" wins over "orchestrator".
        for alias, droplet_id in sorted(self.aliases().items(), key=lambda kv: -len(kv[0])):
            if alias and f" {alias} " in words:
                return droplet_id
        return None

    async def list(
        self, status: str | None = None, *, trace_id: str | None = None
    ) -> DirectoryListing:
        listing = await self._listing(trace_id)
        if status is None:
            return listing
        return listing.model_copy(
            update={"droplets": [d for d in listing.droplets if status_matches(d.status, status)]}
        )

    async def get(
        self, droplet_id: int, *, trace_id: str | None = None
    ) -> tuple[Droplet | None, _Failures]:
        listing = await self._listing(trace_id)
        found = next((d for d in listing.droplets if d.id == droplet_id), None)
        return found, listing.failures

    async def _listing(self, trace_id: str | None) -> DirectoryListing:
        if self._fresh():
            assert self._cached is not None
            return self._cached
        async with self._lock:
            if self._fresh():
                assert self._cached is not None
                return self._cached
            listing = await self._fetch(trace_id)
            self._cached, self._cached_at = listing, self._clock()
            return listing

    def _fresh(self) -> bool:
        return self._cached is not None and self._clock() - self._cached_at < self._ttl

    async def _fetch(self, trace_id: str | None) -> DirectoryListing:
        registry_result, orchestrator_result = await asyncio.gather(
            self._registry.list_droplets(trace_id=trace_id),
            self._orchestrator.list_droplets(trace_id=trace_id),
            return_exceptions=True,
        )
        failures: _Failures = []
        registry_rows: _Rows | None = None
        orchestrator_rows: _Rows | None = None
        for peer, result in (("registry", registry_result), ("orchestrator", orchestrator_result)):
            if isinstance(result, PeerError):
                failures.append(PeerFailure(peer=peer, message=result.message))
                log.info("directory_peer_failed", peer=peer, reason=result.message)
            elif isinstance(result, BaseException):
                raise result
            elif peer == "registry":
                registry_rows = result
            else:
                orchestrator_rows = result
        if registry_rows is None and orchestrator_rows is None:
            droplets = _catalogue_only()
        else:
            droplets = _merge(registry_rows, orchestrator_rows)
            for droplet in droplets:
                if self._live_names.get(droplet.id) != droplet.name:
                    self._live_names[droplet.id] = droplet.name
                    self._aliases = None
        return DirectoryListing(droplets=droplets, failures=failures, fetched_at=utcnow())
