"""Short ways to drive the use cases of a test ledger: every command gets a fresh idempotency key."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from app.application.commands.expiry import ExpirePoints
from app.application.commands.grants import ActivateGrant, CancelGrant, GrantPoints
from app.application.commands.results import (
    Activated,
    ClawedBack,
    ExpiryReport,
    GrantCancelResult,
    Granted,
    UseCancelResult,
    Used,
)
from app.application.commands.uses import CancelUse, ClawbackPoints, UsePoints
from app.application.queries.balances import AccountDetail, Balance, LotDetail
from app.domain.events import Source
from tests.ledger import Ledger

_keys = itertools.count(1)


def key() -> str:
    return f"key-{next(_keys)}"


class Driver:
    """One user's commands on a ledger, as the order system or an admin would send them."""

    def __init__(self, ledger: Ledger, user_id: str = "u1") -> None:
        self.ledger = ledger
        self.user_id = user_id
        self.s = ledger.services

    def now(self) -> datetime:
        return self.ledger.clock.now()

    async def grant(
        self,
        amount: int,
        source: Source = Source.PROMOTION,
        *,
        order_id: str | None = None,
        expires_in: timedelta | None = None,
        expires_at: datetime | None = None,
        pending_for: timedelta | None = None,
    ) -> Granted:
        if source is Source.ORDER and order_id is None:
            order_id = key()
        if expires_in is not None:
            expires_at = self.now() + expires_in
        pending_until = self.now() + pending_for if pending_for is not None else None
        return await self.s.grant.execute(
            GrantPoints(
                self.user_id,
                key(),
                amount,
                source,
                order_id=order_id,
                expires_at=expires_at,
                pending_until=pending_until,
            )
        )

    async def activate(self, grant_id: str) -> Activated:
        return await self.s.activate.execute(ActivateGrant(self.user_id, key(), grant_id))

    async def use(self, amount: int, order_id: str | None = None) -> Used:
        return await self.s.use.execute(UsePoints(self.user_id, key(), amount, order_id=order_id))

    async def cancel_use(self, use_id: str, amount: int | None = None) -> UseCancelResult:
        return await self.s.cancel_use.execute(CancelUse(self.user_id, key(), use_id, amount=amount))

    async def cancel_grant(self, grant_id: str) -> GrantCancelResult:
        return await self.s.cancel_grant.execute(CancelGrant(self.user_id, key(), grant_id))

    async def clawback(self, order_id: str, amount: int) -> ClawedBack:
        return await self.s.clawback.execute(ClawbackPoints(self.user_id, key(), order_id, amount))

    async def expire(self, chunk_size: int = 500) -> ExpiryReport:
        return await self.s.expire.execute(ExpirePoints(chunk_size=chunk_size))

    async def detail(self) -> AccountDetail:
        """The write model's picture of the account (lots, uses) as of now."""
        return await self.s.account.execute(self.user_id)

    async def lot(self, grant_id: str) -> LotDetail:
        return next(lot for lot in (await self.detail()).lots if lot.grant_id == grant_id)

    async def balance(self) -> Balance:
        """The balance view's answer, after projecting everything appended so far."""
        await self.ledger.project()
        return await self.s.balance.execute(self.user_id)

    async def available(self) -> int:
        """The write model's balance as of now, which no read model can lag behind."""
        return (await self.detail()).available
