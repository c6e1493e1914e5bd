"""Rate limits per caller at the API's edge: a token's subject, or the client's address for a request without a
valid token, each limited by its role (requests per window; 0: no limit)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from app.application.authorization import Actor, Role
from app.ports.errors import UnavailableError
from app.ports.rate_limit import RateLimiter

log = logging.getLogger(__name__)

QUIET_SECONDS = 30.0
"""While the limiter is unavailable, one log line per this many seconds, and no request waits for it meanwhile."""


@dataclass(frozen=True)
class RoleLimits:
    """Requests per window for each kind of caller; 0 means no limit."""

    window: float = 1.0
    anonymous: int = 20
    user: int = 50
    service: int = 0
    admin: int = 0

    def of(self, actor: Actor | None) -> int:
        """The caller's limit: the most generous of its roles (none: unlimited); a token without a known role is
        limited as an anonymous request."""
        if actor is None or not actor.roles:
            return self.anonymous
        limits = [{Role.USER: self.user, Role.SERVICE: self.service, Role.ADMIN: self.admin}[r] for r in actor.roles]
        return 0 if 0 in limits else max(limits)


class RateLimits:
    """Fails open: when the limiter's server (Redis) is down, requests go through unlimited, with one warning per
    QUIET_SECONDS, rather than the whole API failing with it; the limits protect the service, the ledger is what
    must stay up. The limiter is not asked again for QUIET_SECONDS after a failure, so that a limiter that times
    out does not slow every request down."""

    def __init__(self, limiter: RateLimiter, limits: RoleLimits) -> None:
        self._limiter = limiter
        self._limits = limits
        self._down_until = 0.0

    async def retry_after(self, actor: Actor | None, address: str | None) -> float | None:
        """None when the request may go on; otherwise the seconds until the caller's window ends."""
        limit = self._limits.of(actor)
        if limit <= 0:
            return None
        now = time.monotonic()
        if now < self._down_until:
            return None
        subject = f"sub:{actor.subject}" if actor is not None else f"addr:{address or 'unknown'}"
        try:
            decision = await self._limiter.hit(subject, limit, self._limits.window)
        except UnavailableError as error:
            self._down_until = now + QUIET_SECONDS
            log.warning("rate limits are off for %.0f s: %s", QUIET_SECONDS, error)
            return None
        return None if decision.allowed else decision.retry_after
