"""The stack profile: MariaDB's event store, Redis's balance view, OpenSearch's history index, and the projectors
that feed the two read models from the events topic (run by ``python -m app project``, not by the API)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from dependency_injector import containers, providers

from app.adapters.kafka.projector import KafkaProjector, TopicSettings
from app.adapters.mysql.event_store import MySqlEventStore
from app.adapters.opensearch.history_index import OpenSearchHistoryIndex
from app.adapters.redis.balance_view import RedisBalanceView
from app.application.projection import BalanceProjection, HistoryProjection
from app.domain.events import RecordedEvent
from app.ports.errors import UnavailableError
from app.ports.event_store import EventStore
from app.settings import Settings

log = logging.getLogger(__name__)


class NoOutbox:
    """The stack has no in-process outbox reader: Debezium reads the outbox rows from MariaDB's binlog."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError("the stack profile has no in-process outbox: Debezium publishes it to Kafka")


class NoDelivery:
    """The API process of the stack feeds no read model: the projector processes do."""

    async def prepare(self) -> None:
        pass

    async def run(self, stop: asyncio.Event) -> None:
        pass


async def stack_resources(
    store: MySqlEventStore, view: RedisBalanceView, index: OpenSearchHistoryIndex
) -> AsyncIterator[None]:
    """Makes the history index's template and alias when missing (when OpenSearch is down, the history projector
    makes them before its first write instead: a process starts whatever is down); closes every client at
    shutdown."""
    try:
        try:
            await index.ensure()
        except UnavailableError as error:
            log.warning("the history index could not be prepared at start (%s); the projector will", error)
        yield None
    finally:
        await store.close()
        await view.aclose()
        await index.close()


def balance_projector(settings: Settings, view: RedisBalanceView, store: EventStore) -> KafkaProjector:
    projection = BalanceProjection(view)

    async def apply(events: Sequence[RecordedEvent]) -> int:
        return await projection.project_batch(events, store)

    return KafkaProjector(topics(settings), f"{settings.aggregate_type}.balance", apply, "balance")


def history_projector(settings: Settings, index: OpenSearchHistoryIndex) -> KafkaProjector:
    projection = HistoryProjection(index)
    ensured = False

    async def apply(events: Sequence[RecordedEvent]) -> int:
        nonlocal ensured
        if not ensured:  # the template and the alias, once per process, before the first write
            await index.ensure()
            ensured = True
        return await projection.project_many(events)

    return KafkaProjector(topics(settings), f"{settings.aggregate_type}.history", apply, "history")


def topics(settings: Settings) -> TopicSettings:
    return TopicSettings(
        settings.kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, settings.aggregate_type
    )


def override_stack(container: containers.Container, settings: Settings) -> None:
    """Every port on its server; the API process runs no delivery of its own."""
    if not settings.database_url.startswith("mysql"):
        raise ValueError(f"the stack profile needs a mysql+aiomysql:// database URL, not {settings.database_url}")
    container.event_store.override(
        providers.Singleton(
            MySqlEventStore.open,
            settings.database_url,
            pool_size=settings.database_pool,
            aggregate_type=settings.aggregate_type,
        )
    )
    container.balance_view.override(
        providers.Singleton(
            RedisBalanceView.open, settings.redis_url, prefix=settings.redis_prefix, keep_recent=settings.keep_recent
        )
    )
    container.history_index.override(
        providers.Singleton(OpenSearchHistoryIndex.open, settings.opensearch_url, alias=settings.history_alias)
    )
    container.stack_resources = providers.Resource(
        stack_resources, container.event_store, container.balance_view, container.history_index
    )
    container.outbox.override(providers.Object(NoOutbox()))
    container.delivery.override(providers.Object(NoDelivery()))
    container.balance_projector = providers.Singleton(
        balance_projector, settings, container.balance_view, container.event_store
    )
    container.history_projector = providers.Singleton(history_projector, settings, container.history_index)
