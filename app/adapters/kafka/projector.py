"""A projector process's loop: one projection fed from the events topic by an aiokafka consumer group.

Each projection (the balance view in Redis, the history index in OpenSearch) has a consumer group of its own, so
that each can fail, lag and be rebuilt alone; several processes of one projection share the topic's partitions, and
when one dies the group gives its partitions to the others. A process reads a batch, applies it, and only then
commits the batch's offsets: after a crash the batch comes again, which the projections absorb (the balance view's
version guard, the history index's entry ids). A message that cannot be decoded goes to the dead-letter topic with
the reason in a header, and the projector goes on; a read model that is down stops the loop on that batch, which is
tried again until it goes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Histogram

from app.adapters.sql.tables import AGGREGATE_TYPE
from app.adapters.wire import decode_message
from app.domain.events import RecordedEvent
from app.ports.errors import UnavailableError

log = logging.getLogger(__name__)

PROJECTED = Counter(
    "points_projector_events_total",
    "Events taken from the topic, by projection and outcome.",
    ["projection", "outcome"],
)
BATCH_SECONDS = Histogram(
    "points_projector_batch_seconds",
    "How long applying one batch took, by projection.",
    ["projection"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

Apply = Callable[[Sequence[RecordedEvent]], Awaitable[int]]


@dataclass(frozen=True)
class TopicSettings:
    bootstrap: str
    topic: str
    dead_letters: str
    ledger: str
    """The ``aggregatetype`` of this ledger's messages; others on the topic are passed over."""


def is_ours(headers: Sequence[tuple[str, bytes]], ledger: bytes) -> bool:
    """Whether a message is of the ledger: its ``aggregatetype`` header (as Debezium's EventRouter writes it, plain or
    as a JSON string); a message without one is the default ledger's."""
    for name, value in headers:
        if name == "aggregatetype":
            return value == ledger or value == b'"' + ledger + b'"'
    return ledger == AGGREGATE_TYPE.encode()


class KafkaProjector:
    """Runs one projection (``apply``) for one consumer group (``group``) until stopped."""

    def __init__(
        self,
        settings: TopicSettings,
        group: str,
        apply: Apply,
        name: str,
        max_batch: int = 1000,
        retry_seconds: float = 0.5,
    ) -> None:
        self._settings = settings
        self._group = group
        self._apply = apply
        self._name = name
        self._ledger = settings.ledger.encode()
        self._max_batch = max_batch
        self._retry_seconds = retry_seconds

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            consumer = AIOKafkaConsumer(
                self._settings.topic,
                bootstrap_servers=self._settings.bootstrap,
                group_id=self._group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=self._max_batch,
                fetch_max_wait_ms=5,
                session_timeout_ms=6_000,
                heartbeat_interval_ms=1_000,
            )
            producer = AIOKafkaProducer(bootstrap_servers=self._settings.bootstrap, acks="all")
            try:
                await consumer.start()
                await producer.start()
                log.info("%s projector joined group %s", self._name, self._group)
                await self._consume(consumer, producer, stop)
            except KafkaError as error:
                log.warning("%s projector: Kafka unavailable (%s); retrying", self._name, error)
                await _wait(stop, self._retry_seconds)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                with contextlib.suppress(Exception):
                    await producer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=self._max_batch)
            records = [record for partition in batches.values() for record in partition]
            if not records:
                continue
            events = [event for record in records if (event := await self._decode(record, producer)) is not None]
            if await self._apply_until_done(events, stop):
                await consumer.commit()

    async def _decode(self, record: ConsumerRecord[bytes, bytes], producer: AIOKafkaProducer) -> RecordedEvent | None:
        if not is_ours(record.headers, self._ledger):
            PROJECTED.labels(self._name, "other-ledger").inc()
            return None
        try:
            return decode_message(record.value or b"")
        except (ValueError, KeyError, TypeError) as error:
            reason = f"{type(error).__name__}: {error}"[:500]
            log.error("%s projector: message %s/%d unreadable (%s); sent to %s", self._name, record.partition,
                      record.offset, reason, self._settings.dead_letters)  # fmt: skip
            headers = [
                *record.headers,
                ("reason", reason.encode()),
                ("topic", record.topic.encode()),
                ("partition", str(record.partition).encode()),
                ("offset", str(record.offset).encode()),
                ("projection", self._name.encode()),
            ]
            await producer.send_and_wait(self._settings.dead_letters, record.value, key=record.key, headers=headers)
            PROJECTED.labels(self._name, "dead-letter").inc()
            return None

    async def _apply_until_done(self, events: Sequence[RecordedEvent], stop: asyncio.Event) -> bool:
        """Apply the batch; while the read model is down, try again. False when stopped first (the offsets then
        stay uncommitted, and the batch comes again to whoever takes the partitions)."""
        while not stop.is_set():
            try:
                with BATCH_SECONDS.labels(self._name).time():
                    applied = await self._apply(events)
                PROJECTED.labels(self._name, "applied").inc(applied)
                return True
            except UnavailableError as error:
                log.warning("%s projector: %s; the batch is tried again", self._name, error)
                await _wait(stop, self._retry_seconds)
        return False


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
