from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.application.commands.results import (
    AccountAfter,
    ClawedBack,
    UseCancelResult,
    Used,
    optional_id,
    optional_text,
    require_id,
)
from app.application.commands.runner import AccountCommands
from app.domain.account import Account


@dataclass(frozen=True)
class UsePoints:
    user_id: str
    idempotency_key: str
    amount: int
    order_id: str | None = None
    reason: str | None = None


class UsePointsUseCase:
    """Spends points (rules 2, 3, 10, 12): only active lots, manual first, then soonest expiry, then oldest;
    every allocation recorded; never more than the balance as of now."""

    def __init__(self, commands: AccountCommands) -> None:
        self._commands = commands

    async def execute(self, request: UsePoints) -> Used:
        require_id("userId", request.user_id)
        require_id("idempotencyKey", request.idempotency_key)
        optional_id("orderId", request.order_id)
        optional_text("reason", request.reason, self._commands.policy.max_text)
        use_id = self._commands.ids.new_id()

        def decide(account: Account, now: datetime) -> Used:
            event = account.use(
                use_id=use_id, amount=request.amount, now=now, order_id=request.order_id, reason=request.reason
            )
            return Used(event.use_id, event.amount, event.allocations, AccountAfter.of(account, now))

        return await self._commands.run(request.user_id, request.idempotency_key, request, Used, decide)


@dataclass(frozen=True)
class CancelUse:
    user_id: str
    idempotency_key: str
    use_id: str
    amount: int | None = None
    """None cancels everything of the use not cancelled yet."""
    reason: str | None = None


class CancelUseUseCase:
    """Cancels a use in full or in part, repeatably (rules 5, 6, 7): never more than was used in total; points go
    back to the lots in the order they were taken; points of a lot that has expired come back as a new REISSUE
    lot with the default expiry and the old lot's manual flag; the holding cap does not apply."""

    def __init__(self, commands: AccountCommands) -> None:
        self._commands = commands

    async def execute(self, request: CancelUse) -> UseCancelResult:
        require_id("userId", request.user_id)
        require_id("idempotencyKey", request.idempotency_key)
        require_id("useId", request.use_id)
        optional_text("reason", request.reason, self._commands.policy.max_text)
        commands = self._commands
        cancel_id = commands.ids.new_id()

        def decide(account: Account, now: datetime) -> UseCancelResult:
            event = account.cancel_use(
                cancel_id=cancel_id,
                use_id=request.use_id,
                amount=request.amount,
                now=now,
                policy=commands.policy,
                new_grant_id=commands.ids.new_id,
                reason=request.reason,
            )
            return UseCancelResult(
                cancel_id=event.cancel_id,
                use_id=event.use_id,
                amount=event.amount,
                restored=event.restored,
                reissued=event.reissued,
                account=AccountAfter.of(account, now),
            )

        return await commands.run(request.user_id, request.idempotency_key, request, UseCancelResult, decide)


@dataclass(frozen=True)
class ClawbackPoints:
    user_id: str
    idempotency_key: str
    order_id: str
    amount: int
    reason: str | None = None


class ClawbackPointsUseCase:
    """Takes back points an order earned when it is refunded (rule 13), under the configured ClawbackPolicy:
    from the order's own grant first, then (policy permitting) from other active lots in spend order; never below
    zero; what could not be taken is reported as shortfall. An order never loses more than it earned."""

    def __init__(self, commands: AccountCommands) -> None:
        self._commands = commands

    async def execute(self, request: ClawbackPoints) -> ClawedBack:
        require_id("userId", request.user_id)
        require_id("idempotencyKey", request.idempotency_key)
        require_id("orderId", request.order_id)
        optional_text("reason", request.reason, self._commands.policy.max_text)
        commands = self._commands
        clawback_id = commands.ids.new_id()

        def decide(account: Account, now: datetime) -> ClawedBack:
            event = account.clawback(
                clawback_id=clawback_id,
                order_id=request.order_id,
                amount=request.amount,
                now=now,
                policy=commands.policy,
                reason=request.reason,
            )
            return ClawedBack(
                clawback_id=event.clawback_id,
                order_id=event.order_id,
                requested=event.requested,
                taken=event.taken,
                shortfall=event.shortfall,
                account=AccountAfter.of(account, now),
            )

        return await commands.run(request.user_id, request.idempotency_key, request, ClawedBack, decide)
