"""The write model's tables, in SQLAlchemy Core, one layout for SQLite now and MySQL/MariaDB later.

``point_events`` and ``point_event_outbox`` take their order from an autoincrement ``position`` primary key: SQLite
can only autoincrement its rowid, and InnoDB clusters on the primary key, so both like an ever-growing one. The
event id is a unique key beside it. ``AUTOINCREMENT`` keeps SQLite from handing out a position again once the
outbox rows above it were acknowledged (deleted). Times are stored as naive UTC (``DATETIME(6)`` in MySQL, ISO
text in SQLite).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData()

Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""SQLite autoincrements only an ``INTEGER PRIMARY KEY`` (the rowid)."""
Time = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Json = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
Id = sa.String(64)
UserId = sa.String(128)

AGGREGATE_TYPE = "point_account"

MYSQL_TABLE: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_nopad_bin",
}
"""Ids compare byte for byte on MariaDB/MySQL as they do in SQLite: with the default ``utf8mb4_general_ci``,
``alice`` and ``Alice`` would be one account, and ``a`` and ``a `` too (PAD SPACE)."""

point_events = sa.Table(
    "point_events",
    metadata,
    sa.Column("position", Position, primary_key=True, autoincrement=True),
    sa.Column("event_id", Id, nullable=False, unique=True),
    sa.Column("user_id", UserId, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("occurred_at", Time, nullable=False),
    sa.Column("payload", Json, nullable=False, comment="the event's data (app.domain.codec.dumps) as JSON"),
    sa.UniqueConstraint("user_id", "version", name="uq_point_events_stream"),
    sqlite_autoincrement=True,
    **MYSQL_TABLE,
)

point_event_outbox = sa.Table(
    "point_event_outbox",
    metadata,
    sa.Column("position", Position, primary_key=True, autoincrement=True),
    sa.Column("id", Id, nullable=False, unique=True, comment="the event id (Debezium EventRouter: id)"),
    sa.Column("aggregatetype", sa.String(64), nullable=False),
    sa.Column("aggregateid", UserId, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("occurred_at", Time, nullable=False),
    sa.Column("payload", Json, nullable=False, comment="the wire message (app.adapters.wire.encode_message)"),
    sqlite_autoincrement=True,
    **MYSQL_TABLE,
)

point_idempotency = sa.Table(
    "point_idempotency",
    metadata,
    sa.Column("user_id", UserId, primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("result", Json, nullable=False),
    **MYSQL_TABLE,
)

point_snapshots = sa.Table(
    "point_snapshots",
    metadata,
    sa.Column("user_id", UserId, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("state", Json, nullable=False, comment="app.domain.account.AccountState as JSON"),
    **MYSQL_TABLE,
)

point_lot_expiries = sa.Table(
    "point_lot_expiries",
    metadata,
    sa.Column("grant_id", Id, primary_key=True),
    sa.Column("user_id", UserId, nullable=False),
    sa.Column("expires_at", Time, nullable=False, index=True),
    **MYSQL_TABLE,
)
