"""The operations wiring: what /capabilities lists and the probes behind /health."""

from __future__ import annotations

from datetime import timedelta

from app.channels.events import EventBus
from app.config import Settings
from app.conversation.planners.llm_common import ModelProbe, Summarizer
from app.domain.plan import Planner
from app.mesh.lifecycle import Lifecycle
from app.ops.health import CachedProbe, HealthMonitor, Probe, ProbeResult
from app.ops.metrics import Metrics
from app.ops.udc_info import Vitals
from app.store.sessions import SessionStore
from app.utils.time import utcnow
from app.wiring.mesh import CAPABILITIES, MeshParts


def features(
    settings: Settings, summarizer: Summarizer | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every feature, the ones every deployment has). The others depend on configuration and
    are shown only to a verified caller."""
    always = ("udc", "jwt_verification", *CAPABILITIES, "websocket", "audit_log")
    configured = []
    if settings.effective_chat_auth == "jwt":
        configured.append("chat_authentication")
    if summarizer is not None:
        configured.append("llm_summaries")
    return (*always, *configured), always


def build_health(
    *,
    store: SessionStore,
    vitals: Vitals,
    metrics: Metrics,
    mesh: MeshParts,
    lifecycle: Lifecycle | None,
    bus: EventBus,
    planner: Planner,
) -> HealthMonitor:
    health = HealthMonitor()

    async def store_probe() -> ProbeResult:
        ok = await store.ping()
        if ok:
            since = utcnow() - timedelta(minutes=15)
            vitals.recent_sessions = await store.count_active(since=since)
            metrics.sessions.set(vitals.recent_sessions)
        return ok, None if ok else "session store not answering"

    health.add_probe("session_store", store_probe, critical=True)

    for peer in ("registry", "orchestrator"):
        if lifecycle is None:
            health.add_probe(peer, None, critical=False)
            continue
        known = lifecycle.status().get(peer)
        if known is None or not known.configured:
            # A configuration state, said once here rather than retried and logged forever.
            health.add_probe(peer, None, critical=False, detail=_to_configure(peer))
            continue

        async def peer_probe(name: str = peer, running: Lifecycle = lifecycle) -> ProbeResult:
            status = running.status().get(name)
            if status is None:
                return False, "not configured"
            if status.reachable:
                return True, None if status.registered else "reachable, registering"
            client = mesh.registry if name == "registry" else mesh.orchestrator
            assert client is not None
            # Before the lifecycle's first contact, ask the peer directly (cheap /health).
            ok = await client.health()
            return ok, None if ok else (status.last_error or "unreachable")

        health.add_probe(peer, peer_probe, critical=False)

    async def bus_probe() -> ProbeResult:
        return await bus.ping()

    health.add_probe(f"event_bus ({bus.backend})", bus_probe, critical=False)
    health.add_probe(f"planner ({planner.name})", planner_probe(planner), critical=False)
    return health


PLANNER_PROBE_TTL_S = 5.0


def planner_probe(planner: Planner) -> Probe:
    """The configured model, looked up (cached a few seconds: /health itself never waits on it);
    the offline rules need nothing and are always ok."""
    model = getattr(planner, "llm", planner)
    if isinstance(model, ModelProbe):
        return CachedProbe(model.probe, ttl_s=PLANNER_PROBE_TTL_S)
    return _always_ok


def _to_configure(peer: str) -> str:
    if peer == "registry":
        return "not configured: set DROPLET_SECRET (or REGISTRY_API_KEY)"
    return "not configured: set ORCHESTRATOR_TOKEN, ORCHESTRATOR_PRIVATE_KEY_FILE or DROPLET_SECRET"


async def _always_ok() -> ProbeResult:
    return True, None
