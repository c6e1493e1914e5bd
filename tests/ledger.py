"""A ledger on in-memory adapters with a clock that stands still: the unit tests' world."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.adapters.clock import FixedClock
from app.adapters.inmemory.event_store import InMemoryEventStore
from app.adapters.inmemory.read_models import InMemoryBalanceView, InMemoryHistoryIndex
from app.application.projection import OutboxRelay
from app.application.services import PointServices
from app.containers import Container, build_container
from app.domain.policy import PointPolicy
from app.settings import Settings

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Ledger:
    container: Container
    clock: FixedClock
    services: PointServices
    store: InMemoryEventStore
    balances: InMemoryBalanceView
    history: InMemoryHistoryIndex
    relay: OutboxRelay

    def advance(self, **delta: float) -> datetime:
        self.clock.set(self.clock.now() + timedelta(**delta))
        return self.clock.now()

    async def project(self) -> int:
        return await self.relay.drain()


def make_ledger(policy: PointPolicy | None = None, snapshot_every: int = 200) -> Ledger:
    container = build_container(
        Settings(profile="memory", policy=policy or PointPolicy(), snapshot_every=snapshot_every)
    )
    clock = FixedClock(START)
    container.clock.override(clock)
    return Ledger(
        container=container,
        clock=clock,
        services=container.services(),
        store=container.event_store(),
        balances=container.balance_view(),
        history=container.history_index(),
        relay=container.relay(),
    )
