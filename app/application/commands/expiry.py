from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.application.commands.results import ExpiryReport
from app.application.commands.runner import AccountCommands
from app.domain.account import Account
from app.domain.errors import InvalidInputError


@dataclass(frozen=True)
class ExpirePoints:
    chunk_size: int = 500


class ExpirePointsUseCase:
    """The expiry batch (rule 11): reads due lots from the write model, never from a read model; works in chunks
    of accounts with one transaction per account; safe to re-run, since an expired lot leaves the schedule in the
    same transaction that expires it."""

    def __init__(self, commands: AccountCommands) -> None:
        self._commands = commands

    async def execute(self, request: ExpirePoints) -> ExpiryReport:
        if not 1 <= request.chunk_size <= 10_000:
            raise InvalidInputError("chunkSize", "chunk size must be within 1..10000")
        commands = self._commands
        cutoff = commands.clock.now()
        done: set[str] = set()
        lots = points = 0
        while True:
            due = [u for u in await commands.store.due_accounts(cutoff, request.chunk_size) if u not in done]
            if not due:
                break
            for user_id in due:
                done.add(user_id)

                def decide(account: Account, now: datetime) -> ExpiryReport:
                    expired = account.expire_due(now=max(now, cutoff))
                    return ExpiryReport(1, len(expired), sum(e.amount for e in expired))

                report = await commands.run(user_id, None, request, ExpiryReport, decide)
                lots += report.lots
                points += report.points
        return ExpiryReport(accounts=len(done), lots=lots, points=points)
