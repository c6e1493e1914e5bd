"""The only place that builds infrastructure. One adapter set per profile, chosen with ``override()``.

Nothing is built at import time: entry points create a container with :func:`build_container`, then
``await container.init_resources()`` in their lifespan and ``await container.shutdown_resources()`` at the end.
"""

from __future__ import annotations

from typing import TypeVar

from dependency_injector import containers, providers

from app.adapters.clock import SettableClock, SystemClock, UuidIds
from app.adapters.inmemory.event_store import InMemoryEventStore
from app.adapters.inmemory.rate_limiter import InMemoryRateLimiter
from app.adapters.inmemory.read_models import InMemoryBalanceView, InMemoryHistoryIndex
from app.application.commands.expiry import ExpirePointsUseCase
from app.application.commands.grants import ActivateGrantUseCase, CancelGrantUseCase, GrantPointsUseCase
from app.application.commands.runner import AccountCommands
from app.application.commands.uses import CancelUseUseCase, ClawbackPointsUseCase, UsePointsUseCase
from app.application.projection import EmbeddedDelivery, OutboxRelay, Projector
from app.application.queries.balances import GetAccount, GetBalance, GetExpiringPoints
from app.application.queries.history import GetHistory, GetStats, SearchEntries
from app.application.services import PointServices
from app.settings import Settings

T = TypeVar("T")


def _same(store: T) -> T:
    return store


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(UuidIds)
    policy = providers.Callable(lambda settings: settings.policy, settings)

    event_store = providers.Singleton(InMemoryEventStore)
    outbox = providers.Callable(_same, event_store)
    """The embedded stores are their own outbox; the stack has none (Debezium reads the binlog)."""
    balance_view = providers.Singleton(InMemoryBalanceView)
    history_index = providers.Singleton(InMemoryHistoryIndex)
    read_wait = providers.Callable(lambda settings: settings.read_wait_ms / 1000, settings)
    """How long a read-your-writes query waits for a read model before it asks the write model (seconds)."""
    rate_limiter = providers.Singleton(InMemoryRateLimiter)
    """The API's rate limits: in this process here; in Redis with POINTS_RATE_LIMIT_BACKEND=redis."""

    commands = providers.Singleton(
        AccountCommands,
        store=event_store,
        clock=clock,
        ids=ids,
        policy=policy,
        snapshot_every=providers.Callable(lambda settings: settings.snapshot_every, settings),
        cache_size=providers.Callable(lambda settings: settings.account_cache, settings),
    )
    services = providers.Singleton(
        PointServices,
        grant=providers.Singleton(GrantPointsUseCase, commands),
        activate=providers.Singleton(ActivateGrantUseCase, commands),
        use=providers.Singleton(UsePointsUseCase, commands),
        cancel_use=providers.Singleton(CancelUseUseCase, commands),
        cancel_grant=providers.Singleton(CancelGrantUseCase, commands),
        clawback=providers.Singleton(ClawbackPointsUseCase, commands),
        expire=providers.Singleton(ExpirePointsUseCase, commands),
        balance=providers.Singleton(GetBalance, balance_view, clock, event_store, read_wait),
        expiring=providers.Singleton(GetExpiringPoints, balance_view, clock, event_store, read_wait),
        history=providers.Singleton(GetHistory, history_index, balance_view, event_store, read_wait),
        search=providers.Singleton(SearchEntries, history_index),
        stats=providers.Singleton(GetStats, history_index),
        account=providers.Singleton(GetAccount, event_store, clock),
    )
    projector = providers.Singleton(Projector, balance_view, history_index)
    relay = providers.Singleton(OutboxRelay, outbox, projector)
    delivery = providers.Singleton(EmbeddedDelivery, event_store, projector, relay)
    """How events reach the read models: the outbox relay here, the events topic on the stack."""


def build_container(settings: Settings) -> Container:
    container = Container(settings=settings)
    if settings.test_clock:
        container.clock.override(providers.Singleton(SettableClock))
    if settings.rate_limit_backend == "redis":
        from app.adapters.redis.rate_limiter import redis_rate_limiter

        container.rate_limiter.override(providers.Resource(redis_rate_limiter, settings.redis_url))
    elif settings.rate_limit_backend != "memory":
        raise ValueError(f"unknown rate limit backend {settings.rate_limit_backend!r}: use memory or redis")
    if settings.profile == "memory":
        return container
    if settings.profile == "embedded":
        from app.adapters.sqlite.embedded import override_embedded

        override_embedded(container, settings)
        return container
    if settings.profile == "stack":
        from app.adapters.stack import override_stack

        override_stack(container, settings)
        return container
    raise ValueError(f"unknown profile {settings.profile!r}: use memory, embedded or stack")
