"""The write side on its real servers, end to end over HTTP: API processes on MariaDB, Debezium reading the binlog,
Kafka carrying every event. Every server is the one ``scripts/stack.sh up`` started; the fault tests stop and kill
them with the same script."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.adapters.mysql.event_store import MySqlEventStore
from app.adapters.wire import decode_message, encode_message
from tests.e2e.client import Api, key, token
from tests.servers import (
    MYSQL_URL,
    SECRET,
    TopicReader,
    api_processes,
    fresh_ledger,
    mysql_rows,
    projector_processes,
    stack,
)

SERVICE = token("shop", "service", secret=SECRET)
ADMIN = token("ops", "admin", secret=SECRET)


@pytest.fixture
async def ledger() -> AsyncIterator[tuple[str, TopicReader]]:
    name = await fresh_ledger()
    reader = await TopicReader(name).start()
    try:
        yield name, reader
    finally:
        await reader.stop()


async def stored_events(user_ids: list[str]) -> dict[str, list[Any]]:
    store = MySqlEventStore.open(MYSQL_URL)
    try:
        return {user: await store.events_after(user, 0) for user in user_ids}
    finally:
        await store.close()


def by_user(messages: list[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for message in messages:
        grouped[message.key].append(message)
    return grouped


async def test_each_mutation_s_events_arrive_on_kafka_keyed_by_user_in_order_equal_to_the_write_model(
    ledger: tuple[str, TopicReader], tmp_path: Path
) -> None:
    name, reader = ledger
    users = [f"user-{n}" for n in range(6)]
    async with api_processes(1, name, tmp_path) as (http,), projector_processes(1, name, tmp_path):
        api = Api(http)
        for user in users:
            await api.grant(user, 1_000, token=ADMIN, source="MANUAL")
            await api.grant(user, 300, token=SERVICE, source="ORDER", orderId=f"order-{user}")
            used = await api.use(user, 450, token=SERVICE)
            cancel = {"userId": user, "idempotencyKey": key(), "useId": used["useId"], "amount": 50}
            await api.ok("cancelUse", SERVICE, input=cancel)  # nothing reissued: an empty list on the wire
        stored = await stored_events(users)
        total = sum(len(events) for events in stored.values())
        messages = await reader.read(total)

        assert len(messages) == total
        for user, received in by_user(messages).items():
            assert len({m.partition for m in received}) == 1, "one account, one partition"
            assert [decode_message(m.value) for m in received] == stored[user], "in version order, as stored"
            assert [m.value for m in received] == [orjson.loads(encode_message(e)) for e in stored[user]], "as written"
            assert [m.headers["id"].strip(b'"').decode() for m in received] == [e.event_id for e in stored[user]]
        assert await mysql_rows("SELECT COUNT(*) FROM point_event_outbox") == [(0,)], "the outbox never grows"

        for user in users:
            balance = await eventually_version(api, user, 4)
            assert balance["available"] == 900
            history = await api.ok("history", ADMIN, userId=user, first=10)
            assert [edge["node"]["kind"] for edge in history["edges"]] == [
                "USE_CANCELLED",
                "USED",
                "GRANTED",
                "GRANTED",
            ]


async def eventually_version(api: Api, user: str, version: int, seconds: float = 30.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        balance = await api.ok("balance", ADMIN, userId=user)
        if balance["version"] >= version:
            return balance
        assert asyncio.get_running_loop().time() < deadline, balance
        await asyncio.sleep(0.05)


async def test_two_api_processes_let_exactly_the_points_held_be_used_and_answer_one_key_once(
    ledger: tuple[str, TopicReader], tmp_path: Path
) -> None:
    name, _ = ledger
    async with api_processes(2, name, tmp_path) as clients:
        apis = [Api(client) for client in clients]
        await apis[0].grant("racer", 100, token=ADMIN, source="MANUAL")

        async def use(n: int) -> dict[str, Any]:
            return await apis[n % 2].call(
                "usePoints", SERVICE, input={"userId": "racer", "idempotencyKey": f"use-{n}", "amount": 1}
            )

        outcomes = await asyncio.gather(*(use(n) for n in range(200)))
        kinds = [o["__typename"] for o in outcomes]
        assert kinds.count("PointsUsed") == 100, [o for o in outcomes if o["__typename"] != "PointsUsed"][:3]
        assert set(kinds) == {"PointsUsed", "InsufficientPointsError"}

        once = {"userId": "once", "idempotencyKey": key(), "amount": 500, "source": "ORDER", "orderId": "o-1"}
        results = await asyncio.gather(*(apis[n % 2].call("grantPoints", SERVICE, input=once) for n in range(10)))
        assert all(result == results[0] for result in results) and results[0]["__typename"] == "Granted"

    events = await stored_events(["racer", "once"])
    assert len(events["racer"]) == 101
    assert len(events["once"]) == 1


# -- faults ------------------------------------------------------------------------------------------------


class Load:
    """Commands sent one after another (a grant of 1 point each, to rotating users), recording which were
    acknowledged and which failed, and how."""

    def __init__(self, http: httpx.AsyncClient, ledger: str, users: int = 8) -> None:
        self.api = Api(http)
        self.users = users
        self.prefix = f"{ledger}-load"
        self.acknowledged: dict[str, str] = {}  # idempotency key -> user
        self.refusals: list[str] = []
        self.failures: list[str] = []
        self.stopping = asyncio.Event()
        self.sent = 0

    async def run(self) -> None:
        while not self.stopping.is_set():
            user = f"{self.prefix}-{self.sent % self.users}"
            idempotency_key = key()
            self.sent += 1
            try:
                result = await self.api.call(
                    "grantPoints",
                    SERVICE,
                    input={"userId": user, "idempotencyKey": idempotency_key, "amount": 1, "source": "PROMOTION"},
                )
            except (httpx.HTTPError, AssertionError) as error:
                self.failures.append(repr(error))
                await asyncio.sleep(0.05)
                continue
            if result["__typename"] == "Granted":
                self.acknowledged[idempotency_key] = user
            else:
                self.refusals.append(result["__typename"])
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.005)

    def user_ids(self) -> list[str]:
        return [f"{self.prefix}-{n}" for n in range(self.users)]


async def for_a_while(load: Load, seconds: float) -> None:
    sent = load.sent
    await asyncio.sleep(seconds)
    assert load.sent > sent, "the load stalled"


async def check_every_acknowledged_event_arrived(load: Load, reader: TopicReader) -> list[Any]:
    stored = await stored_events(load.user_ids())
    keys = {
        str(row[0])
        for row in await mysql_rows("SELECT `key` FROM point_idempotency WHERE user_id LIKE %s", load.prefix + "-%")
    }
    assert set(load.acknowledged) <= keys, "every acknowledged command is stored"
    assert sum(len(e) for e in stored.values()) == len(keys), "one grant per command, none twice"
    ids = {event.event_id for events in stored.values() for event in events}
    messages = await reader.read(len(ids), seconds=120)
    received = [m.headers["id"].strip(b'"').decode() for m in messages]
    assert set(received) == ids, "every stored event arrived, and nothing else"
    for user, events in by_user(messages).items():  # redeliveries repeat an event; its order holds
        versions = [decode_message(m.value).version for m in events]
        first_seen = list(dict.fromkeys(versions))
        assert first_seen == sorted(first_seen), f"{user}: {versions}"
        assert set(versions) == {e.version for e in stored[user]}
    return messages


@contextlib.asynccontextmanager
async def under_load(ledger: str, tmp_path: Path) -> AsyncIterator[Load]:
    """One API process of the ledger and a :class:`Load` on it for as long as the block runs."""
    async with api_processes(1, ledger, tmp_path) as (http,):
        load = Load(http, ledger)
        task = asyncio.create_task(load.run())
        try:
            yield load
        finally:
            load.stopping.set()
            await task


async def test_connect_killed_while_commands_keep_coming_loses_no_event(
    ledger: tuple[str, TopicReader], tmp_path: Path
) -> None:
    name, reader = ledger
    async with under_load(name, tmp_path) as load:
        await for_a_while(load, 2)
        await stack("kill", "connect")
        await for_a_while(load, 3)
        await stack("start", "connect")
        await for_a_while(load, 2)
    assert load.acknowledged and not load.failures and not load.refusals, (load.failures, load.refusals)
    await check_every_acknowledged_event_arrived(load, reader)


async def test_kafka_stopped_commands_still_commit_and_arrive_once_it_is_back(
    ledger: tuple[str, TopicReader], tmp_path: Path
) -> None:
    name, reader = ledger
    try:
        async with under_load(name, tmp_path) as load:
            await for_a_while(load, 1)
            await stack("stop", "kafka")
            before = len(load.acknowledged)
            await for_a_while(load, 3)
            assert len(load.acknowledged) > before, "commands commit while Kafka is down"
    finally:
        await stack("start", "kafka")
        await stack("start", "connect")  # restarts the connector's task if it failed meanwhile
    assert not load.failures and not load.refusals, (load.failures, load.refusals)
    await check_every_acknowledged_event_arrived(load, reader)


async def test_mariadb_stopped_under_load_gives_typed_errors_and_loses_no_acknowledged_command(
    ledger: tuple[str, TopicReader], tmp_path: Path
) -> None:
    name, reader = ledger
    async with under_load(name, tmp_path) as load:
        await for_a_while(load, 1)
        await stack("stop", "mariadb")
        await asyncio.sleep(3)
        await stack("start", "mariadb")
        await stack("start", "connect")
        await for_a_while(load, 3)
    assert not load.failures, load.failures[:3]
    assert load.refusals and set(load.refusals) == {"ServiceUnavailableError"}, set(load.refusals)
    await check_every_acknowledged_event_arrived(load, reader)
