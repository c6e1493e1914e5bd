"""The RateLimiter contract, written once and run against the in-memory adapter (the embedded default) and the Redis
one (the stack's; ``scripts/test.sh`` starts Redis, and the Redis cases fail when it is not there, at
``POINTS_REDIS_URL``, default redis://127.0.0.1:6379/0)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from app.adapters.inmemory.rate_limiter import InMemoryRateLimiter
from app.adapters.redis.rate_limiter import KEY_PREFIX, RedisRateLimiter
from app.ports.errors import UnavailableError
from app.ports.rate_limit import RateLimiter
from tests.servers import REDIS_URL, redis_client


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield InMemoryRateLimiter()
        return
    client = await redis_client()
    try:
        yield RedisRateLimiter(client)
    finally:
        await client.aclose()


def subject() -> str:
    return f"test-{uuid.uuid4().hex}"


async def test_requests_within_the_limit_are_allowed_and_the_next_is_refused(limiter: RateLimiter) -> None:
    who = subject()
    decisions = [await limiter.hit(who, 3, 10.0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.count for d in decisions] == [1, 2, 3, 4]
    assert 0 < decisions[-1].retry_after <= 10.0


async def test_subjects_are_counted_apart(limiter: RateLimiter) -> None:
    first, second = subject(), subject()
    assert (await limiter.hit(first, 1, 10.0)).allowed
    assert not (await limiter.hit(first, 1, 10.0)).allowed
    assert (await limiter.hit(second, 1, 10.0)).allowed


async def test_a_new_window_starts_when_the_last_one_ends(limiter: RateLimiter) -> None:
    who = subject()
    assert (await limiter.hit(who, 1, 0.05)).allowed
    refused = await limiter.hit(who, 1, 0.05)
    assert not refused.allowed and refused.retry_after <= 0.05
    await asyncio.sleep(0.08)
    again = await limiter.hit(who, 1, 0.05)
    assert (again.allowed, again.count) == (True, 1)


async def test_concurrent_requests_are_counted_exactly(limiter: RateLimiter) -> None:
    who = subject()
    decisions = await asyncio.gather(*(limiter.hit(who, 10, 10.0) for _ in range(50)))
    assert sum(d.allowed for d in decisions) == 10
    assert sorted(d.count for d in decisions) == list(range(1, 51))


async def test_redis_keys_are_namespaced_and_expire_with_their_window() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        who = subject()
        await RedisRateLimiter(client).hit(who, 5, 2.0)
        ttl = await client.pttl(KEY_PREFIX + who)
        assert KEY_PREFIX == "points:rl:"
        assert 0 < ttl <= 2000
    finally:
        await client.aclose()


async def test_a_redis_limiter_whose_server_is_down_raises_the_ports_unavailable_error() -> None:
    limiter = RedisRateLimiter.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        with pytest.raises(UnavailableError) as raised:
            await limiter.hit(subject(), 5, 1.0)
        assert raised.value.retryable
    finally:
        await limiter.aclose()


async def test_the_in_memory_limiter_forgets_windows_that_ended() -> None:
    now = [0.0]
    limiter = InMemoryRateLimiter(clock=lambda: now[0], sweep_above=10)
    for n in range(10):
        await limiter.hit(f"client-{n}", 5, 1.0)
    now[0] = 5.0
    await limiter.hit("late", 5, 1.0)
    assert len(limiter) == 1
