"""Where the tests find the stack's servers: the environment that ``scripts/stack.sh up`` writes to ``.stack/env``
(``scripts/test.sh`` exports it), else the stack's defaults. A test that needs a server fails when it is not
there; none is skipped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomysql
import httpx
import orjson
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer
from sqlalchemy.engine import make_url

from app.adapters.mysql.migrate import migrate
from app.settings import STACK_DATABASE_URL, Settings

MYSQL_URL = os.environ.get("POINTS_DATABASE_URL", "") or STACK_DATABASE_URL
if not MYSQL_URL.startswith("mysql"):
    MYSQL_URL = STACK_DATABASE_URL
KAFKA_BOOTSTRAP = os.environ.get("POINTS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
KAFKA_TOPIC = os.environ.get("POINTS_KAFKA_TOPIC", "points.events")
CONNECT_URL = os.environ.get("POINTS_CONNECT_URL", "http://127.0.0.1:8083")
REDIS_URL = os.environ.get("POINTS_REDIS_URL", "redis://127.0.0.1:6379/0")
OPENSEARCH_URL = os.environ.get("POINTS_OPENSEARCH_URL", "http://127.0.0.1:9200")
DLQ_TOPIC = os.environ.get("POINTS_KAFKA_DLQ_TOPIC", "points.events.dlq")

TABLES = ("point_events", "point_event_outbox", "point_idempotency", "point_snapshots", "point_lot_expiries")
_migrated = False


async def redis_client() -> redis.Redis:
    """A client of the stack's Redis; a missing server fails the test (``scripts/test.sh`` starts one)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as error:
        await client.aclose()
        raise AssertionError(f"Redis is not reachable at {REDIS_URL} ({error!r}); scripts/test.sh starts it") from None
    return client


async def mysql_connection() -> aiomysql.Connection:
    url = make_url(MYSQL_URL)
    return await aiomysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "",
        password=url.password or "",
        db=url.database or "",
        autocommit=True,
        connect_timeout=5,
    )


async def mysql_rows(sql: str, *args: object) -> list[tuple[object, ...]]:
    connection = await mysql_connection()
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(sql, args or None)
            return list(await cursor.fetchall())
    finally:
        connection.close()


async def fresh_mysql() -> None:
    """The schema migrated (once per run) and every table emptied, so that a test starts from no accounts."""
    global _migrated
    if not _migrated:
        await asyncio.to_thread(migrate, MYSQL_URL)
        _migrated = True
    connection = await mysql_connection()
    try:
        async with connection.cursor() as cursor:
            for table in TABLES:
                await cursor.execute(f"TRUNCATE TABLE {table}")
    finally:
        connection.close()


async def mysql_outbox_rows() -> list[tuple[object, ...]]:
    return await mysql_rows("SELECT id FROM point_event_outbox")


ROOT = Path(__file__).resolve().parents[1]
SECRET = "stack-secret-that-is-long-enough-for-hs256"


async def stack(action: str, server: str) -> None:
    """``scripts/stack.sh ACTION SERVER``: stop, start or kill (SIGKILL) one server of the running stack; the event
    loop goes on meanwhile (a load keeps running, and its keep-alive connections do not sit idle)."""
    process = await asyncio.create_subprocess_exec(
        *("bash", str(ROOT / "scripts" / "stack.sh"), action, server),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode == 0, f"stack.sh {action} {server} failed:\n{out.decode()}\n{err.decode()}"


def new_ledger() -> str:
    """A ledger name of its own (the outbox rows' aggregatetype), so that a test reads only its own events."""
    return f"test-{uuid.uuid4().hex[:12]}"


@dataclass
class Message:
    key: str
    headers: dict[str, bytes]
    value: dict[str, Any]
    partition: int
    offset: int


class TopicReader:
    """Reads the events topic from its end as it was when :meth:`start` ran: what Debezium publishes from then on,
    of one ledger."""

    def __init__(self, ledger: str) -> None:
        self.ledger = ledger.encode()
        self.messages: list[Message] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> TopicReader:
        consumer = await assigned_consumer()
        partitions = sorted(consumer.assignment())
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)  # resolve the end now, before the test writes
        self._consumer = consumer
        return self

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def read(self, count: int, seconds: float = 60.0) -> list[Message]:
        """Until messages of ``count`` different events of the ledger arrived (a redelivery counts once), and
        whatever came with them; fails after ``seconds``."""
        assert self._consumer is not None
        deadline = time.monotonic() + seconds
        while len({m.headers.get("id") for m in self.messages}) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} messages, not {count} events, after {seconds}s"
            batches = await self._consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                for record in records:
                    headers = dict(record.headers)
                    if headers.get("aggregatetype", b"").strip(b'"') != self.ledger:
                        continue
                    self.messages.append(
                        Message(
                            record.key.decode() if record.key else "",
                            headers,
                            orjson.loads(record.value),
                            tp.partition,
                            record.offset,
                        )
                    )
        return self.messages


async def assigned_consumer(timeout: float = 30.0, topic: str = KAFKA_TOPIC) -> AIOKafkaConsumer:
    """A consumer of every partition of a topic (the events topic unless told), without a group."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA_BOOTSTRAP, group_id=None, enable_auto_commit=False)
    await consumer.start()
    deadline = time.monotonic() + timeout
    while not consumer.assignment():
        assert time.monotonic() < deadline, f"no partitions of {topic}"
        await asyncio.sleep(0.05)
    return consumer


def ledger_names(ledger: str) -> dict[str, str]:
    """Where a ledger of its own keeps its things: its name on the events topic (and its projectors' consumer
    groups), its Redis keys' prefix, its OpenSearch alias (whose pattern overlaps no other template's)."""
    return {"aggregate_type": ledger, "redis_prefix": ledger, "history_alias": f"{ledger}-history"}


def stack_settings(ledger: str, **more: Any) -> Settings:
    """The stack profile on the stack's servers, for one ledger."""
    return Settings(
        profile="stack",
        database_url=MYSQL_URL,
        kafka_bootstrap=KAFKA_BOOTSTRAP,
        kafka_topic=KAFKA_TOPIC,
        kafka_dlq_topic=DLQ_TOPIC,
        redis_url=REDIS_URL,
        opensearch_url=OPENSEARCH_URL,
        **ledger_names(ledger),
        **more,
    )


async def projections_start_now(ledger: str) -> None:
    """The ledger's projection groups start at the topic's end: a new ledger has no events before it, and reading
    every other test's messages from the beginning only to pass them over would take longer and longer."""
    for group in (f"{ledger}.balance", f"{ledger}.history"):
        consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA_BOOTSTRAP, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()
            probe = await assigned_consumer()
            partitions = sorted(probe.assignment())
            await probe.stop()
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            await consumer.commit({tp: await consumer.position(tp) for tp in partitions})
        finally:
            await consumer.stop()


async def fresh_ledger() -> str:
    """An emptied event store and a new ledger whose projection groups start at the topic's end: a test's own world
    on the shared stack."""
    await fresh_mysql()
    ledger = new_ledger()
    await projections_start_now(ledger)
    return ledger


def stack_environment(ledger: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POINTS_")}
    env.update(
        POINTS_PROFILE="stack",
        POINTS_DATABASE_URL=MYSQL_URL,
        POINTS_KAFKA_BOOTSTRAP=KAFKA_BOOTSTRAP,
        POINTS_KAFKA_TOPIC=KAFKA_TOPIC,
        POINTS_KAFKA_DLQ_TOPIC=DLQ_TOPIC,
        POINTS_REDIS_URL=REDIS_URL,
        POINTS_OPENSEARCH_URL=OPENSEARCH_URL,
        POINTS_JWT_SECRET=SECRET,
        **{f"POINTS_{name.upper()}": value for name, value in ledger_names(ledger).items()},
        **more,
    )
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def spawn(log: Path, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    """``python -m app ARGS`` in its own process, its output into ``log``."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "app", *args), cwd=ROOT, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )


async def ended(process: asyncio.subprocess.Process, signal_number: int = signal.SIGTERM) -> None:
    if process.returncode is None:
        process.send_signal(signal_number)
    try:
        await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def projector_processes(
    count: int, ledger: str, log_dir: Path
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """``count`` projector processes (``python -m app project``: both projections) of the ledger."""
    processes = [
        await spawn(log_dir / f"projector-{n}.log", stack_environment(ledger), "project") for n in range(count)
    ]
    try:
        yield processes
    finally:
        for process in processes:
            await ended(process)


@contextlib.asynccontextmanager
async def api_processes(count: int, ledger: str, log_dir: Path) -> AsyncIterator[list[httpx.AsyncClient]]:
    """``count`` API processes (``python -m app serve``) on the stack, each on its own port, all on one database."""
    processes: list[tuple[asyncio.subprocess.Process, Path]] = []
    clients: list[httpx.AsyncClient] = []
    try:
        for _ in range(count):
            port = free_port()
            log = log_dir / f"api-{port}.log"
            process = await spawn(log, stack_environment(ledger), "serve", "--port", str(port))
            processes.append((process, log))
            clients.append(httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30))
        for (process, log), client in zip(processes, clients, strict=True):
            deadline = time.monotonic() + 60
            while True:
                assert process.returncode is None, log.read_text()
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"the API did not start:\n{log.read_text()}"
                await asyncio.sleep(0.1)
        yield clients
    finally:
        for client in clients:
            await client.aclose()
        for process, _ in processes:
            await ended(process)
