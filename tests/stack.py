"""Where the tests find the stack's servers: the environment that ``scripts/stack.sh up`` writes to ``.stack/env``
(``scripts/test.sh`` exports it), else the stack's defaults. A test that needs a server fails when it is not
there; none is skipped."""

from __future__ import annotations

import asyncio
import os

import aiomysql
from sqlalchemy.engine import make_url

from app.adapters.mysql.migrate import migrate
from app.settings import STACK_DATABASE_URL

MYSQL_URL = os.environ.get("POINTS_DATABASE_URL", "") or STACK_DATABASE_URL
if not MYSQL_URL.startswith("mysql"):
    MYSQL_URL = STACK_DATABASE_URL
KAFKA_BOOTSTRAP = os.environ.get("POINTS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
KAFKA_TOPIC = os.environ.get("POINTS_KAFKA_TOPIC", "points.events")
CONNECT_URL = os.environ.get("POINTS_CONNECT_URL", "http://127.0.0.1:8083")

TABLES = ("point_events", "point_event_outbox", "point_idempotency", "point_snapshots", "point_lot_expiries")
_migrated = False


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
