"""The health monitor: the first round is waited for only briefly, so a peer that does not
answer never holds back start-up; its check is `unknown` until its probe returns."""

from __future__ import annotations

import asyncio

from app.ops.health import HealthMonitor, ProbeResult


async def test_start_waits_for_a_quick_first_round() -> None:
    async def store() -> ProbeResult:
        return True, None

    monitor = HealthMonitor(start_wait_s=5.0)
    monitor.add_probe("session_store", store, critical=True)
    await monitor.start()
    try:
        assert [(c.name, c.state) for c in monitor.checks()] == [("session_store", "ok")]
    finally:
        await monitor.stop()


async def test_a_peer_that_does_not_answer_does_not_hold_back_the_start() -> None:
    answer = asyncio.Event()

    async def store() -> ProbeResult:
        return True, None

    async def silent_peer() -> ProbeResult:
        await answer.wait()  # accepts the connection, never answers (until told to)
        return False, "refused"

    monitor = HealthMonitor(start_wait_s=0.0, probe_timeout=60.0)
    monitor.add_probe("session_store", store, critical=True)
    monitor.add_probe("registry", silent_peer, critical=False)
    await monitor.start()  # returns at once although the registry's probe is pending
    try:
        assert {c.name: c.state for c in monitor.checks()}["registry"] == "unknown"
        assert monitor.status() == ("active", [])
        answer.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert {c.name: c.state for c in monitor.checks()} == {
            "session_store": "ok",
            "registry": "failing",
        }
    finally:
        await monitor.stop()
