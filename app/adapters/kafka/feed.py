"""The stack profile's delivery for the API process: the events topic, read whole, into this process's read models.

Debezium publishes each outbox row to the events topic keyed by user id, so one account's events keep their order
within a partition. Every API process reads every partition from the beginning (assigned by hand: no consumer group,
no committed offsets), keeps the messages of its own ledger (their ``aggregatetype``), decodes each
(:mod:`app.adapters.wire`) and hands the event to the projector. Delivery is at least once (Debezium re-sends after a
restart): the projector skips a version it has applied, and a gap in an account's versions is healed from the event
store. A message that cannot be decoded is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from app.adapters.kafka.projector import is_ours
from app.adapters.wire import decode_message
from app.application.projection import Projector, project_healing
from app.ports.event_store import EventStore

log = logging.getLogger(__name__)

CONSUMED = Counter("points_feed_events_total", "Events read from the events topic, by outcome.", ["outcome"])


class KafkaEventFeed:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        projector: Projector,
        store: EventStore,
        aggregate_type: str = "point_account",
        retry_seconds: float = 1.0,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._ledger = aggregate_type.encode()
        self._projector = projector
        self._store = store
        self._retry_seconds = retry_seconds
        self.positions: dict[int, int] = {}
        """Per partition, the offset of the next message to read: how far this process's read models are."""

    async def prepare(self) -> None:
        """Nothing to rebuild: the topic is read from its beginning."""

    async def run(self, stop: asyncio.Event) -> None:
        """Reads until ``stop`` is set; when Kafka cannot be reached, tries again every ``retry_seconds`` and goes
        on from the offsets it had."""
        while not stop.is_set():
            consumer = AIOKafkaConsumer(
                self._topic,
                bootstrap_servers=self._bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=5,
                max_poll_records=1000,
            )
            try:
                await consumer.start()
                await self._assign(consumer, stop)
                await self._consume(consumer, stop)
            except KafkaError as error:
                log.warning("events topic unavailable (%s); retrying in %.1f s", error, self._retry_seconds)
                await _wait(stop, self._retry_seconds)
            finally:
                await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        """Without a group, a subscription is every partition of the topic, once the metadata is there; a partition
        read before goes on from where this process was, the others from their beginning."""
        while not consumer.assignment() and not stop.is_set():
            await _wait(stop, 0.05)
        for tp in consumer.assignment():
            if tp.partition in self.positions:
                consumer.seek(tp, self.positions[tp.partition])

    async def _consume(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            for tp, messages in batches.items():
                for message in messages:
                    if is_ours(message.headers, self._ledger):
                        await self._handle(message.value)
                    self.positions[tp.partition] = message.offset + 1

    async def _handle(self, value: bytes | None) -> None:
        try:
            recorded = decode_message(value or b"")
        except (ValueError, KeyError, TypeError):
            CONSUMED.labels("malformed").inc()
            log.error("skipped a malformed message on the events topic: %.200r", value)
            return
        healed = await project_healing(self._projector, self._store, recorded)
        CONSUMED.labels("healed" if healed else "applied").inc()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
