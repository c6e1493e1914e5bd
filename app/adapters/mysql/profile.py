"""The stack profile: the MariaDB event store as a container resource, and the events topic as the delivery."""

from __future__ import annotations

from collections.abc import AsyncIterator

from dependency_injector import containers, providers

from app.adapters.kafka.feed import KafkaEventFeed
from app.adapters.mysql.event_store import MySqlEventStore
from app.settings import Settings


class NoOutbox:
    """The stack has no in-process outbox reader: Debezium reads the outbox rows from MariaDB's binlog."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError("the stack profile has no in-process outbox: Debezium publishes it to Kafka")


async def closing(store: MySqlEventStore) -> AsyncIterator[MySqlEventStore]:
    """Closes the store's pool at ``shutdown_resources()`` (it connects lazily, so opening needs no resource)."""
    try:
        yield store
    finally:
        await store.close()


def override_stack(container: containers.Container, settings: Settings) -> None:
    """The event store becomes MariaDB's (opened by ``init_resources()``), the outbox goes, and the read models are
    fed from the events topic instead of the relay."""
    if not settings.database_url.startswith("mysql"):
        raise ValueError(
            f"the stack profile needs a mysql+aiomysql:// POINTS_DATABASE_URL, not {settings.database_url}"
        )
    container.event_store.override(
        providers.Singleton(
            MySqlEventStore.open,
            settings.database_url,
            pool_size=settings.database_pool,
            aggregate_type=settings.aggregate_type,
        )
    )
    container.event_store_lifetime = providers.Resource(closing, container.event_store)
    container.outbox.override(providers.Object(NoOutbox()))
    container.delivery.override(
        providers.Singleton(
            KafkaEventFeed,
            bootstrap=settings.kafka_bootstrap,
            topic=settings.kafka_topic,
            aggregate_type=settings.aggregate_type,
            projector=container.projector,
            store=container.event_store,
        )
    )
