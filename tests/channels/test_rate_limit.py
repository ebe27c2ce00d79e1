from __future__ import annotations

import uuid

import pytest

from app.channels.rate_limit import WINDOW_S, MemoryRateLimiter, RedisRateLimiter


class Clock:
    def __init__(self, now: float = 1_000_020.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_memory_limit_blocks_then_recovers() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(per_minute=5, clock=clock)
    results = [(await limiter.hit("ip:1")).allowed for _ in range(7)]
    assert results == [True] * 5 + [False] * 2
    blocked = await limiter.hit("ip:1")
    assert not blocked.allowed and 1 <= blocked.retry_after_s <= WINDOW_S
    assert (await limiter.hit("ip:2")).allowed  # other keys are independent
    clock.now += WINDOW_S * 2
    assert (await limiter.hit("ip:1")).allowed


async def test_memory_window_edge_does_not_allow_double_burst() -> None:
    clock = Clock(now=1_000_000.0 + WINDOW_S - 1)
    limiter = MemoryRateLimiter(per_minute=10, clock=clock)
    assert all([(await limiter.hit("k")).allowed for _ in range(10)])
    clock.now += 2  # just into the next window: the previous one still weighs ~97%
    assert not (await limiter.hit("k")).allowed


async def test_memory_keys_are_bounded() -> None:
    limiter = MemoryRateLimiter(per_minute=1, max_keys=3, clock=Clock())
    for i in range(10):
        await limiter.hit(f"k{i}")
    assert len(limiter._windows) == 3


async def test_redis_limit_is_shared_between_limiters() -> None:
    prefix = f"test-rl-{uuid.uuid4().hex[:8]}"
    clock = Clock()
    first = RedisRateLimiter(
        url="redis://127.0.0.1:6379/0", per_minute=4, prefix=prefix, clock=clock
    )
    second = RedisRateLimiter(
        url="redis://127.0.0.1:6379/0", per_minute=4, prefix=prefix, clock=clock
    )
    try:
        assert (await first.hit("id:alice")).allowed
        assert (await second.hit("id:alice")).allowed
        assert (await first.hit("id:alice")).allowed
        assert (await second.hit("id:alice")).allowed
        assert not (await first.hit("id:alice")).allowed
        assert not (await second.hit("id:alice")).allowed
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_down_falls_back_to_local_limits() -> None:
    limiter = RedisRateLimiter(url="redis://127.0.0.1:1/0", per_minute=2, clock=Clock())
    try:
        assert (await limiter.hit("k")).allowed
        assert (await limiter.hit("k")).allowed
        assert not (await limiter.hit("k")).allowed
    finally:
        await limiter.aclose()


@pytest.mark.parametrize("channel", ["rest", "ws"])
def test_chat_turns_are_rate_limited(make_settings: object, channel: str) -> None:
    from starlette.testclient import TestClient

    from app.main import create_app

    settings = make_settings(chat_rate_limit_per_minute=3)  # type: ignore[operator]
    with TestClient(create_app(settings), client=("127.0.0.1", 1)) as client:
        if channel == "rest":
            codes = [
                client.post("/api/chat", json={"message": "hello"}).status_code for _ in range(4)
            ]
            assert codes == [200, 200, 200, 429]
            limited = client.post("/api/chat", json={"message": "hello"})
            assert int(limited.headers["retry-after"]) >= 1
            assert limited.json()["error"]["code"] == "RATE_LIMITED"
        else:
            with client.websocket_connect("/ws") as ws:
                ws.receive_json()
                answers = []
                for _ in range(4):
                    ws.send_json({"type": "message", "content": "hello"})
                    while True:
                        frame = ws.receive_json()
                        if frame["type"] in ("message", "error"):
                            answers.append(frame["type"])
                            break
                assert answers == ["message", "message", "message", "error"]
