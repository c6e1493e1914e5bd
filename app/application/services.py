from __future__ import annotations

from dataclasses import dataclass

from app.application.commands.expiry import ExpirePointsUseCase
from app.application.commands.grants import ActivateGrantUseCase, CancelGrantUseCase, GrantPointsUseCase
from app.application.commands.uses import CancelUseUseCase, ClawbackPointsUseCase, UsePointsUseCase
from app.application.queries.balances import GetAccount, GetBalance, GetExpiringPoints
from app.application.queries.history import GetHistory, GetStats, SearchEntries


@dataclass(frozen=True)
class PointServices:
    """Every use case, as the entry points (GraphQL, CLI, tests) reach them."""

    grant: GrantPointsUseCase
    activate: ActivateGrantUseCase
    use: UsePointsUseCase
    cancel_use: CancelUseUseCase
    cancel_grant: CancelGrantUseCase
    clawback: ClawbackPointsUseCase
    expire: ExpirePointsUseCase
    balance: GetBalance
    expiring: GetExpiringPoints
    history: GetHistory
    search: SearchEntries
    stats: GetStats
    account: GetAccount
