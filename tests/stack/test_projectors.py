"""The read side on its real servers: projector processes feeding Redis and OpenSearch from the events topic, killed,
doubled, starved of their read models and fed a poison message; after each, ``python -m app reconcile`` finds no
difference between the read models and the event store (so no event was lost or applied twice)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaProducer

from app.adapters.opensearch.history_index import OpenSearchHistoryIndex
from tests.e2e.client import Api, key, token
from tests.servers import (
    DLQ_TOPIC,
    KAFKA_BOOTSTRAP,
    KAFKA_TOPIC,
    OPENSEARCH_URL,
    REDIS_URL,
    SECRET,
    api_processes,
    assigned_consumer,
    fresh_ledger,
    ledger_names,
    projector_processes,
    spawn,
    stack,
    stack_environment,
)

SERVICE = token("shop", "service", secret=SECRET)
ADMIN = token("ops", "admin", secret=SECRET)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[str]:
    name = await fresh_ledger()
    yield name
    index = OpenSearchHistoryIndex.open(OPENSEARCH_URL, alias=ledger_names(name)["history_alias"])
    try:
        await index.drop()
    finally:
        await index.close()


async def cli(ledger: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    log = tmp_path / f"cli-{'-'.join(args)}.log"
    process = await spawn(log, stack_environment(ledger), *args)
    code = await asyncio.wait_for(process.wait(), 300)
    return code, log.read_text()


async def reconciled(ledger: str, tmp_path: Path, seconds: float = 60.0) -> str:
    """Runs ``python -m app reconcile`` until it finds no difference (the projectors catch up meanwhile); fails
    with its last report after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        code, printed = await cli(ledger, tmp_path, "reconcile")
        if code == 0:
            assert "0 differences" in printed
            return printed
        assert asyncio.get_running_loop().time() < deadline, printed[-3000:]
        await asyncio.sleep(1)


class Commands:
    """A stream of commands over HTTP (grants, and uses of what was granted) on a handful of accounts."""

    def __init__(self, http: httpx.AsyncClient, ledger: str, users: int = 10) -> None:
        self.api = Api(http)
        self.users = [f"{ledger}-u{n}" for n in range(users)]
        self.sent = 0
        self.answers: list[str] = []
        self.stopping = asyncio.Event()

    async def one(self) -> dict[str, Any]:
        user = self.users[self.sent % len(self.users)]
        self.sent += 1
        if self.sent % 3:
            command = {"userId": user, "idempotencyKey": key(), "amount": 10, "source": "PROMOTION"}
            result = await self.api.call("grantPoints", SERVICE, input=command)
        else:
            result = await self.api.call(
                "usePoints", SERVICE, input={"userId": user, "idempotencyKey": key(), "amount": 7}
            )
        self.answers.append(result["__typename"])
        return result

    async def run(self) -> None:
        while not self.stopping.is_set():
            await self.one()
            await asyncio.sleep(0.002)

    async def for_a_while(self, seconds: float) -> None:
        sent = self.sent
        await asyncio.sleep(seconds)
        assert self.sent > sent, "the commands stalled"


@pytest.fixture
async def commands(ledger: str, tmp_path: Path) -> AsyncIterator[Commands]:
    async with api_processes(1, ledger, tmp_path) as (http,):
        running = Commands(http, ledger)
        task = asyncio.create_task(running.run())
        try:
            yield running
        finally:
            running.stopping.set()
            await task
    assert set(running.answers) <= {"Granted", "PointsUsed", "InsufficientPointsError"}, set(running.answers)


async def test_a_projector_killed_mid_stream_and_started_again_misses_nothing_and_applies_nothing_twice(
    ledger: str, commands: Commands, tmp_path: Path
) -> None:
    async with projector_processes(1, ledger, tmp_path) as (first,):
        await commands.for_a_while(2)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        await commands.for_a_while(2)
    async with projector_processes(1, ledger, tmp_path):
        await commands.for_a_while(2)
        commands.stopping.set()
        await reconciled(ledger, tmp_path)


async def test_when_one_of_two_projectors_dies_the_other_takes_over_its_partitions(
    ledger: str, commands: Commands, tmp_path: Path
) -> None:
    async with projector_processes(2, ledger, tmp_path) as (first, second):
        await commands.for_a_while(3)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        await commands.for_a_while(3)
        commands.stopping.set()
        await reconciled(ledger, tmp_path)
        assert second.returncode is None


async def test_a_flushed_balance_view_is_rebuilt_from_the_event_store(
    ledger: str, commands: Commands, tmp_path: Path
) -> None:
    async with projector_processes(1, ledger, tmp_path):
        await commands.for_a_while(2)
        commands.stopping.set()
        await reconciled(ledger, tmp_path)
        client = redis.Redis.from_url(REDIS_URL)
        try:
            doomed = [k async for k in client.scan_iter(match=f"{ledger}:*", count=1000)]
            assert doomed
            await client.delete(*doomed)  # this ledger's whole balance view
        finally:
            await client.aclose()
        code, printed = await cli(ledger, tmp_path, "reconcile")
        assert code == 1 and "balance" in printed

        code, printed = await cli(ledger, tmp_path, "rebuild", "--projection", "balance")
        assert code == 0, printed
        await reconciled(ledger, tmp_path)


async def test_opensearch_stopped_under_load_leaves_balances_and_recent_history_and_catches_up(
    ledger: str, commands: Commands, tmp_path: Path
) -> None:
    api = commands.api
    async with projector_processes(1, ledger, tmp_path):
        await commands.for_a_while(2)
        await projecting(api, commands.users[0])
        await stack("stop", "opensearch")
        try:
            await commands.for_a_while(2)
            user = commands.users[0]
            balance = await api.call("balance", ADMIN, userId=user)
            assert balance["__typename"] == "Balance"
            recent = await api.call("history", ADMIN, userId=user, first=5)
            assert recent["__typename"] == "EntryConnection"
            search = await api.call("searchEntries", ADMIN, filter={"userId": user}, first=5)
            assert search["__typename"] == "ServiceUnavailableError", search
        finally:
            await stack("start", "opensearch")
        await commands.for_a_while(2)
        commands.stopping.set()
        await reconciled(ledger, tmp_path, seconds=120)


async def projecting(api: Api, user: str, seconds: float = 60.0) -> None:
    """Until the projector has started and the balance view holds something of ``user``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while (await api.call("balance", ADMIN, userId=user))["version"] == 0:
        assert asyncio.get_running_loop().time() < deadline, "the projector did not start"
        await asyncio.sleep(0.1)


async def test_a_poison_message_goes_to_the_dead_letter_topic_and_the_projector_goes_on(
    ledger: str, commands: Commands, tmp_path: Path
) -> None:
    dead_letters = await assigned_consumer(topic=DLQ_TOPIC)
    await dead_letters.seek_to_end(*dead_letters.assignment())
    for tp in dead_letters.assignment():
        await dead_letters.position(tp)
    async with projector_processes(1, ledger, tmp_path):
        await commands.for_a_while(1)
        producer = AIOKafkaProducer(bootstrap_servers=KAFKA_BOOTSTRAP)
        await producer.start()
        try:
            await producer.send_and_wait(
                KAFKA_TOPIC, b"{not json", key=commands.users[0].encode(), headers=[("aggregatetype", ledger.encode())]
            )
        finally:
            await producer.stop()
        await commands.for_a_while(2)
        commands.stopping.set()
        await reconciled(ledger, tmp_path)
    try:
        poisoned = await read_one(dead_letters, ledger)
    finally:
        await dead_letters.stop()
    assert poisoned.value == b"{not json"
    headers = dict(poisoned.headers)
    assert b"JSONDecodeError" in headers["reason"] or b"Error" in headers["reason"]


async def read_one(consumer: Any, ledger: str, seconds: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            for record in records:
                if dict(record.headers).get("aggregatetype") == ledger.encode():
                    return record
    raise AssertionError("nothing reached the dead-letter topic")


async def test_a_balance_asked_right_after_each_of_a_thousand_commands_is_never_stale_on_the_stack(
    ledger: str, tmp_path: Path
) -> None:
    query = (
        "query($u: String!, $v: Int) { balance(userId: $u, atLeastVersion: $v) "
        "{ __typename ... on Balance { available version source } } }"
    )
    sources: dict[str, int] = {}
    async with api_processes(1, ledger, tmp_path) as (http,), projector_processes(1, ledger, tmp_path):
        commands = Commands(http, ledger)
        for _ in range(1_000):
            changed = await commands.one()
            if changed["__typename"] == "InsufficientPointsError":
                continue
            user = commands.users[(commands.sent - 1) % len(commands.users)]
            read = await commands.api.post(query, {"u": user, "v": changed["version"]}, ADMIN)
            balance = read["data"]["balance"]
            assert balance["version"] >= changed["version"], (changed, balance)
            assert balance["available"] == changed["balance"], (changed, balance)
            sources[balance["source"]] = sources.get(balance["source"], 0) + 1
    print("read-your-writes answered by", sources)
    assert sum(sources.values()) >= 600
    assert sources.get("READ_MODEL", 0) > 0, "the projector keeps up at least some of the time"
