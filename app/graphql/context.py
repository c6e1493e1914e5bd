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

    def authorize(self, action: Action, user_id: str | None = None, source: Source | None = None) -> None:
        """The role matrix, checked before any use case runs; raises ForbiddenError and so changes nothing."""
        if self.actor is None and self.refusal:
            raise ForbiddenError(self.refusal)
        authorize(self.actor, action, user_id, source)


LedgerInfo = Info[LedgerContext, None]
