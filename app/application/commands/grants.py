from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.application.commands.results import (
    AccountAfter,
    Activated,
    GrantCancelResult,
    Granted,
    optional_id,
    optional_text,
    require_id,
)
from app.application.commands.runner import AccountCommands
from app.domain.account import Account
from app.domain.events import Source


@dataclass(frozen=True)
class GrantPoints:
    user_id: str
    idempotency_key: str
    amount: int
    source: Source
    order_id: str | None = None
    expires_at: datetime | None = None
    pending_until: datetime | None = None
    reason: str | None = None


class GrantPointsUseCase:
    """Grants a new lot (rules 1, 7, 8, 9, 12).

    Amount within the policy's per-grant bounds; expiry within the allowed range (default when omitted), counted
    from activation for a pending grant; the holding cap applies; an ORDER grant names its order and an order
    earns only once; the idempotency key returns the first result to a retry.
    """

    def __init__(self, commands: AccountCommands) -> None:
        self._commands = commands

    async def execute(self, request: GrantPoints) -> Granted:
        require_id("userId", request.user_id)
        require_id("idempotencyKey", request.idempotency_key)
        optional_id("orderId", request.order_id)
        optional_text("reason", request.reason, self._commands.policy.max_text)
        policy = self._commands.policy
        grant_id = self._commands.ids.new_id()

        def decide(account: Account, now: datetime) -> Granted:
            event = account.grant(
                grant_id=grant_id,
                amount=request.amount,
                source=request.source,
                now=now,
                policy=policy,
                expires_at=request.expires_at,
                pending_until=request.pending_until,
                order_id=request.order_id,
                reason=request.reason,
            )
            return Granted(
                grant_id=event.grant_id,
                amount=event.amount,
                status=account.lot(event.grant_id).status_at(now).value,
                expires_at=event.expires_at,
                pending_until=event.pending_until,
                account=AccountAfter.of(account, now),
            )

        return await self._commands.run(request.user_id, request.idempotency_key, request, Granted, decide)


@dataclass(frozen=True)
class ActivateGrant:
    user_id: str
    idempotency_key: str
    grant_id: str


class ActivateGrantUseCase:
    """Makes a pending grant spendable now; its expiry counts from now (rule 12)."""

    def __init__(self, commands: AccountCommands) -> None:
        self._commands = commands

    async def execute(self, request: ActivateGrant) -> Activated:
        require_id("userId", request.user_id)
        require_id("idempotencyKey", request.idempotency_key)
        require_id("grantId", request.grant_id)

        def decide(account: Account, now: datetime) -> Activated:
            event = account.activate(grant_id=request.grant_id, now=now)
            return Activated(event.grant_id, event.expires_at, AccountAfter.of(account, now))

        return await self._commands.run(request.user_id, request.idempotency_key, request, Activated, decide)


@dataclass(frozen=True)
class CancelGrant:
    user_id: str
    idempotency_key: str
    grant_id: str
    reason: str | None = None


class CancelGrantUseCase:
    """Takes a grant back while it is fully unused and still live (rule 4)."""

    def __init__(self, commands: AccountCommands) -> None:
        self._commands = commands

    async def execute(self, request: CancelGrant) -> GrantCancelResult:
        require_id("userId", request.user_id)
        require_id("idempotencyKey", request.idempotency_key)
        require_id("grantId", request.grant_id)
        optional_text("reason", request.reason, self._commands.policy.max_text)

        def decide(account: Account, now: datetime) -> GrantCancelResult:
            event = account.cancel_grant(grant_id=request.grant_id, now=now, reason=request.reason)
            return GrantCancelResult(event.grant_id, event.amount, AccountAfter.of(account, now))

        return await self._commands.run(request.user_id, request.idempotency_key, request, GrantCancelResult, decide)
