"""Fixed-window rate limits in Redis, shared by every process of the stack: one atomic script per request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import redis.asyncio as redis
from redis.exceptions import RedisError

from app.ports.errors import UnavailableError
from app.ports.rate_limit import RateDecision

KEY_PREFIX = "points:rl:"

_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""
"""INCR opens the window (PEXPIRE on its first request) and counts; both in one script, so a window can never be
left without its expiry (a crash between two commands) and concurrent requests are counted exactly."""

TIMEOUT_SECONDS = 0.25
"""Connect and command timeout: a limiter whose Redis is slow must not hold requests up for long."""


class RedisRateLimiter:
    """One key per subject, ``points:rl:{subject}``, holding the window's count and expiring with the window."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._hit = client.register_script(_HIT)

    @classmethod
    def from_url(cls, url: str) -> RedisRateLimiter:
        return cls(redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS))

    async def hit(self, subject: str, limit: int, window: float) -> RateDecision:
        window_ms = max(1, int(window * 1000))
        try:
            count, ttl = await self._hit(keys=[KEY_PREFIX + subject], args=[window_ms])
        except (RedisError, OSError) as error:
            raise UnavailableError("the rate limiter's Redis", type(error).__name__) from error
        return RateDecision(allowed=int(count) <= limit, count=int(count), retry_after=int(ttl) / 1000)

    async def aclose(self) -> None:
        await self._client.aclose()


async def redis_rate_limiter(url: str) -> AsyncIterator[RedisRateLimiter]:
    """The container's resource: a limiter on its own connection pool, closed at shutdown."""
    limiter = RedisRateLimiter.from_url(url)
    try:
        yield limiter
    finally:
        await limiter.aclose()
