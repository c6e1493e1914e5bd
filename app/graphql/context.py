"""What every resolver gets: the use cases, the caller, and the test clock when it is enabled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from strawberry.types import Info

from app.application.authorization import Action, Actor, authorize
from app.application.errors import ForbiddenError
from app.application.services import PointServices
from app.domain.events import Source

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response


class TestClock(Protocol):
    """The service's clock when the test clock is enabled (the container's SettableClock)."""

    def now(self) -> datetime: ...

    def set(self, at: datetime) -> None: ...


class RateLimited(Exception):
    """The caller is over its rate limit: every field of the request answers RateLimitedError."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"rate limited for {retry_after:.3f} s")


@dataclass
class LedgerContext:
    services: PointServices
    actor: Actor | None
    refusal: str | None
    """Why there is no actor (no token, expired, bad signature); None when there is one."""
    test_clock: TestClock | None
    """The service's clock when POINTS_TEST_CLOCK is on; None otherwise."""
    request: Request | None = None
    response: Response | None = None
    retry_after: float | None = None
    """Seconds until the caller's rate-limit window ends when it is over its limit; None when it is not."""
    introspection: bool = True
    """Whether the schema may be introspected (POINTS_INTROSPECTION)."""

    def authorize(self, action: Action, user_id: str | None = None, source: Source | None = None) -> None:
        """The rate limit and the role matrix, checked before any use case runs; raises RateLimited or
        ForbiddenError and so changes nothing."""
        if self.retry_after is not None:
            raise RateLimited(self.retry_after)
        if self.actor is None and self.refusal:
            raise ForbiddenError(self.refusal)
        authorize(self.actor, action, user_id, source)


LedgerInfo = Info[LedgerContext, None]
