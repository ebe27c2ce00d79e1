"""Rate limits: the Retry-After arithmetic, budgets per key, and Redis shared across instances.

`limits` reads the wall clock itself (`time.time()` inside its storages) and takes no clock, so
nothing here freezes or advances time, and nothing sleeps. Instead:
- the Retry-After arithmetic is a pure function of the window information limits reports
  (counts and durations), tested on hand-made values;
- budgets and key separation are tested through properties that hold wherever the wall clock's
  minute boundary falls. In memory the windows are whole wall-clock minutes; crossing one edge
  turns the current window into the previous one, whose weight starts just below 1, so the
  floor limits applies lets exactly one more hit through. A test that runs for less than a
  minute crosses at most one edge, hence: of budget + 2 quick hits at least one is refused, and
  the first `budget` hits of a fresh key are always all allowed;
- in Redis a key's windows start at its own first hit (TTLs in a Lua script), so a test that
  takes less than a minute sees exact results.
"""

from __future__ import annotations

import uuid

import pytest

from app.channels.rate_limit import (
    WINDOW_S,
    Decision,
    RateLimiter,
    WindowInfo,
    build_rate_limiter,
    retry_after_s,
    storage_uri,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _hits(limiter: RateLimiter, key: str, count: int) -> list[Decision]:
    return [await limiter.hit(key) for _ in range(count)]


# ---- Retry-After from the window information ---------------------------------------------


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        # Only the current window counts: wait until it turns (its counter lives one more
        # window after that, hence the + 60).
        (WindowInfo(0, 0.0, 5, 60 + 37.2), 38),
        # The previous window weighs 10 hits and loses one every 6 s; 2.5 s to the next step.
        (WindowInfo(10, 50.5, 0, 60 + 50.5), 3),
        # Whichever comes first: the previous share's next step (every 20 s, the next in 4 s)
        # or the window's turn (in 24 s)...
        (WindowInfo(3, 24.0, 2, 60 + 24.0), 5),
        # ...here a step every 30 s, the next in 20 s, before the turn in 50 s.
        (WindowInfo(2, 50.0, 4, 60 + 50.0), 21),
        # At the very instant of a step the count is still at the budget: one second more.
        (WindowInfo(6, 30.0, 0, 60 + 30.0), 1),
        # Never below 1 s, never above a window.
        (WindowInfo(0, 0.0, 0, 0.0), 1),
        (WindowInfo(0, 0.0, 1, 119.999), WINDOW_S),
    ],
)
def test_retry_after_is_when_the_weighted_count_next_drops(info: WindowInfo, expected: int) -> None:
    assert retry_after_s(info) == expected


def test_retry_after_follows_the_window_length() -> None:
    assert retry_after_s(WindowInfo(0, 0.0, 1, 10 + 3.5), window_s=10) == 4
    assert retry_after_s(WindowInfo(2, 9.0, 0, 10 + 9.0), window_s=10) == 5


def test_storage_uri_names_limits_redis_schemes() -> None:
    assert storage_uri("redis://h:6379/0") == "async+redis://h:6379/0"
    assert storage_uri("rediss://:pw@h:6380/1") == "async+rediss://:pw@h:6380/1"
    assert storage_uri("unix:///run/redis.sock?db=0") == "async+redis+unix:///run/redis.sock?db=0"
    with pytest.raises(ValueError, match="not a Redis URL"):
        storage_uri("memory://")


# ---- budgets per key, in memory ----------------------------------------------------------


async def test_memory_budget_binds_and_keys_are_independent() -> None:
    limiter = build_rate_limiter(per_minute=5, redis_url=None)
    assert limiter.backend == "memory"
    first = await _hits(limiter, "turn:user:alice", 5)
    assert all(d.allowed for d in first)
    over = await _hits(limiter, "turn:user:alice", 2)
    refused = [d for d in over if not d.allowed]
    assert refused, "7 hits within a minute never all pass a budget of 5"
    assert all(1 <= d.retry_after_s <= WINDOW_S for d in refused)
    # Another identity (or another bucket) has its own budget, however alice spent hers.
    assert all(d.allowed for d in await _hits(limiter, "turn:user:bob", 5))
    assert all(d.allowed for d in await _hits(limiter, "mesh:user:alice", 5))
    await limiter.aclose()


# ---- shared in Redis ---------------------------------------------------------------------


async def test_redis_budget_is_shared_between_instances() -> None:
    prefix = f"test-rl-{uuid.uuid4().hex[:8]}"
    first = build_rate_limiter(per_minute=4, redis_url=REDIS_URL, prefix=prefix)
    second = build_rate_limiter(per_minute=4, redis_url=REDIS_URL, prefix=prefix)
    assert first.backend == second.backend == "redis"
    try:
        allowed = [(await limiter.hit("id:alice")).allowed for limiter in (first, second) * 2]
        assert allowed == [True] * 4
        blocked = [await first.hit("id:alice"), await second.hit("id:alice")]
        assert [d.allowed for d in blocked] == [False, False]
        # The window started with alice's first hit, moments ago: the next hit fits when it
        # turns, about a minute from now.
        assert all(50 <= d.retry_after_s <= WINDOW_S for d in blocked)
        assert (await second.hit("id:bob")).allowed
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_down_falls_back_to_local_limits() -> None:
    limiter = build_rate_limiter(per_minute=2, redis_url="redis://127.0.0.1:1/0")
    try:
        decisions = await _hits(limiter, "k", 4)
        assert decisions[0].allowed and decisions[1].allowed
        assert not all(d.allowed for d in decisions[2:])
    finally:
        await limiter.aclose()


# ---- through the gate --------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["rest", "ws"])
def test_chat_turns_are_rate_limited(make_settings: object, channel: str) -> None:
    """The first three turns always pass a budget of 3; of the next two at least one is
    refused (see the module docstring for why not exactly both)."""
    from starlette.testclient import TestClient

    from app.factory import create_app

    settings = make_settings(chat_rate_limit_per_minute=3)  # type: ignore[operator]
    with TestClient(create_app(settings), client=("127.0.0.1", 1)) as client:
        if channel == "rest":
            answers = [client.post("/api/chat", json={"message": "hello"}) for _ in range(5)]
            assert [a.status_code for a in answers[:3]] == [200, 200, 200]
            limited = [a for a in answers[3:] if a.status_code == 429]
            assert limited
            assert 1 <= int(limited[0].headers["retry-after"]) <= WINDOW_S
            assert limited[0].json()["error"]["code"] == "RATE_LIMITED"
        else:
            with client.websocket_connect("/ws") as ws:
                ws.receive_json()
                frames = []
                for _ in range(5):
                    ws.send_json({"type": "message", "content": "hello"})
                    while True:
                        frame = ws.receive_json()
                        if frame["type"] in ("message", "error"):
                            frames.append(frame)
                            break
                assert [f["type"] for f in frames[:3]] == ["message"] * 3
                errors = [f for f in frames[3:] if f["type"] == "error"]
                assert errors and errors[0]["code"] == "RATE_LIMITED"
                assert 1 <= errors[0]["retry_after_s"] <= WINDOW_S
