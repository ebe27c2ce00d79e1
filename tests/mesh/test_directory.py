from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from app.mesh.directory import DropletDirectory, status_matches
from app.mesh.orchestrator import OrchestratorClient, OrchestratorCredentials
from app.mesh.registry import RegistryClient
from sandbox.testing import MeshHandle, start_mesh
from tests.mesh.support import FAST_RETRY, Clock, Peers, no_wait, peers_for


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshHandle]:
    handle = start_mesh(key_dir=tmp_path_factory.mktemp("keys"))
    yield handle
    handle.stop()


@pytest.fixture
async def peers(mesh: MeshHandle) -> AsyncIterator[Peers]:
    made = peers_for(mesh, timeout=1.0)
    yield made
    await made.aclose()


@pytest.fixture
async def offline() -> AsyncIterator[DropletDirectory]:
    """A directory whose peers are both unreachable (nothing listens on port 9)."""
    registry = RegistryClient(
        base_url="http://127.0.0.1:9",
        api_key="k",
        timeout=0.5,
        retry_policy=FAST_RETRY,
        sleep=no_wait,
    )
    orchestrator = OrchestratorClient(
        base_url="http://127.0.0.1:9",
        credentials=OrchestratorCredentials(token="opaque"),
        timeout=0.5,
        retry_policy=FAST_RETRY,
        sleep=no_wait,
    )
    yield DropletDirectory(registry=registry, orchestrator=orchestrator, ttl=0)
    for closable in (registry, orchestrator):
        await closable.aclose()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the registry", 1),
        ("is the voice droplet up?", 18),
        ("droplet #14", 14),
        ("drop14", 14),
        ("show the visibility deck", 14),
        ("Droplet 16 status", 16),
        ("d18", 18),
        ("12", 12),
        ("how is the chat orchestrator?", 12),
        ("ping the orchestrator", 10),
        ("the Dashboard droplet", 2),
        ("onboarding", 16),
        ("droplet-99", 99),
        ("what is the weather", None),
        ("priority 3", None),
    ],
)
def test_resolve_names_and_numbers_without_any_peer(
    offline: DropletDirectory, text: str, expected: int | None
) -> None:
    assert offline.resolve(text) == expected


def test_aliases_cover_the_catalogue(offline: DropletDirectory) -> None:
    aliases = offline.aliases()
    assert aliases["registry"] == 1 and aliases["voice"] == 18
    assert aliases["visibility deck"] == 14 and aliases["chat orchestrator"] == 12
    assert all(alias == alias.lower() for alias in aliases)


@pytest.mark.parametrize(
    ("status", "wanted", "matches"),
    [
        ("healthy", "active", True),
        ("active", "healthy", True),
        ("down", "inactive", True),
        ("active", "inactive", False),
        ("error", "error", True),
        ("unknown", "active", False),
    ],
)
def test_status_words_of_both_peers_match(status: str, wanted: str, matches: bool) -> None:
    assert status_matches(status, wanted) is matches


async def test_listing_merges_both_peers(peers: Peers) -> None:
    directory = DropletDirectory(registry=peers.registry, orchestrator=peers.orchestrator)
    listing = await directory.list()
    assert listing.failures == []
    by_id = {d.id: d for d in listing.droplets}
    deck = by_id[14]
    assert deck.name == "Visibility Deck"
    assert deck.sources == ["registry", "orchestrator"]
    assert deck.role == "visibility_deck"  # from the Registry
    assert "monitoring" in deck.capabilities  # from the Orchestrator
    assert deck.cpu is not None and deck.steward == "Haythem"
    active = await directory.list(status="healthy")
    assert {d.id for d in active.droplets} <= {d.id for d in listing.droplets}
    assert all(d.status == "active" for d in active.droplets)


async def test_a_dead_orchestrator_leaves_what_the_registry_knows(
    mesh: MeshHandle, peers: Peers
) -> None:
    directory = DropletDirectory(registry=peers.registry, orchestrator=peers.orchestrator, ttl=0)
    await asyncio.to_thread(mesh.stop_orchestrator)
    try:
        listing = await directory.list()
        droplet, failures = await directory.get(18)
    finally:
        await asyncio.to_thread(mesh.start_orchestrator)
    assert [(f.peer, f.message) for f in listing.failures] == [
        ("orchestrator", "the Orchestrator is unreachable")
    ]
    assert {1, 2, 10, 14, 16, 18} <= {d.id for d in listing.droplets}
    assert all(d.sources == ["registry"] for d in listing.droplets)
    assert droplet is not None and droplet.status == "healthy"
    assert droplet.name == "Voice"  # the catalogue's name beats the Registry's "voice"
    assert failures == listing.failures


async def test_with_no_peer_the_catalogue_still_answers(offline: DropletDirectory) -> None:
    listing = await offline.list()
    assert {f.peer for f in listing.failures} == {"registry", "orchestrator"}
    assert [d.id for d in listing.droplets] == [1, 2, 10, 12, 14, 16, 18]
    assert all(d.status == "unknown" and d.sources == ["catalogue"] for d in listing.droplets)
    droplet, failures = await offline.get(99)
    assert droplet is None and len(failures) == 2


async def test_listings_are_cached_briefly(mesh: MeshHandle, peers: Peers) -> None:
    clock = Clock()
    directory = DropletDirectory(
        registry=peers.registry, orchestrator=peers.orchestrator, ttl=5, clock=clock
    )
    first = await directory.list()
    await asyncio.to_thread(mesh.stop_registry)
    try:
        clock.now += 4.9
        assert (await directory.list()).fetched_at == first.fetched_at
        clock.now += 0.1
        assert [f.peer for f in (await directory.list()).failures] == ["registry"]
    finally:
        await asyncio.to_thread(mesh.start_registry)


async def _register(peers: Peers, droplet_id: int, name: str) -> None:
    await peers.registry.register(
        droplet_id=droplet_id,
        name=name,
        fqdn=f"drop{droplet_id}.local",
        ip="127.0.0.1",
        role="test",
        env="test",
        version="1",
        cost_hour=0.0,
    )


async def test_live_names_become_aliases(peers: Peers) -> None:
    await _register(peers, 33, "Billing Bot")
    directory = DropletDirectory(registry=peers.registry, orchestrator=peers.orchestrator)
    assert directory.resolve("ask the billing bot") is None
    await directory.list()
    assert directory.resolve("ask the billing bot") == 33


async def test_a_renamed_droplet_is_known_by_its_new_name_only(peers: Peers) -> None:
    directory = DropletDirectory(registry=peers.registry, orchestrator=peers.orchestrator, ttl=0)
    await _register(peers, 34, "Ledger One")
    await directory.list()
    assert directory.resolve("ask ledger one") == 34
    await _register(peers, 34, "Ledger Two")
    await directory.list()
    assert directory.resolve("ask ledger two") == 34
    assert directory.resolve("ask ledger one") is None


def test_changing_the_aliases_returned_changes_nothing(offline: DropletDirectory) -> None:
    offline.aliases()["payroll"] = 77
    assert "payroll" not in offline.aliases()
    assert offline.resolve("the payroll") is None
