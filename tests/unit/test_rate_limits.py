"""The edge's rate-limit policy: who is counted under which subject and limit, and what happens when the limiter's
server is down."""

from __future__ import annotations

import logging

import pytest

from app.adapters.inmemory.rate_limiter import InMemoryRateLimiter
from app.application.authorization import Actor, Role
from app.graphql.limits import RateLimits, RoleLimits
from app.ports.errors import UnavailableError
from app.ports.rate_limit import RateDecision


def actor(subject: str, *roles: Role) -> Actor:
    return Actor(subject, frozenset(roles))


def test_a_caller_gets_the_most_generous_limit_of_its_roles() -> None:
    limits = RoleLimits(anonymous=1, user=5, service=50, admin=0)
    assert limits.of(None) == 1
    assert limits.of(actor("x")) == 1, "a token without a known role counts as anonymous"
    assert limits.of(actor("alice", Role.USER)) == 5
    assert limits.of(actor("shop", Role.USER, Role.SERVICE)) == 50
    assert limits.of(actor("ops", Role.SERVICE, Role.ADMIN)) == 0, "0: no limit"


async def test_callers_are_counted_by_token_subject_or_else_by_address() -> None:
    limits = RateLimits(InMemoryRateLimiter(), RoleLimits(window=60, anonymous=1, user=1))
    assert await limits.retry_after(None, "10.0.0.1") is None
    assert await limits.retry_after(None, "10.0.0.1") is not None
    assert await limits.retry_after(None, "10.0.0.2") is None
    assert await limits.retry_after(actor("10.0.0.1", Role.USER), "10.0.0.1") is None, "subjects and addresses apart"
    assert await limits.retry_after(actor("10.0.0.1", Role.USER), "10.0.0.3") is not None


class Down:
    calls = 0

    async def hit(self, subject: str, limit: int, window: float) -> RateDecision:
        self.calls += 1
        raise UnavailableError("the rate limiter's Redis", "ConnectionError")


async def test_a_limiter_whose_server_is_down_lets_requests_through_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = Down()
    limits = RateLimits(down, RoleLimits(anonymous=1))
    with caplog.at_level(logging.WARNING):
        for _ in range(100):
            assert await limits.retry_after(None, "10.0.0.1") is None
    assert down.calls == 1, "not asked again for a while: a limiter that times out must not slow every request"
    assert len([r for r in caplog.records if "rate limits are off" in r.getMessage()]) == 1
