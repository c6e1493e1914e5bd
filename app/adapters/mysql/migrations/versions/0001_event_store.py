"""The event store: events, their outbox (Debezium's outbox shape), idempotency keys, snapshots, expiry schedule.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLE: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_nopad_bin"}
TIME = mysql.DATETIME(fsp=6)


def upgrade() -> None:
    op.create_table(
        "point_events",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("occurred_at", TIME, nullable=False),
        sa.Column(
            "payload", mysql.LONGTEXT, nullable=False, comment="the event's data (app.domain.codec.dumps) as JSON"
        ),
        sa.UniqueConstraint("user_id", "version", name="uq_point_events_stream"),
        **TABLE,
    )
    op.create_table(
        "point_event_outbox",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True, comment="the event id (Debezium EventRouter: id)"),
        sa.Column("aggregatetype", sa.String(64), nullable=False),
        sa.Column("aggregateid", sa.String(128), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("occurred_at", TIME, nullable=False),
        sa.Column(
            "payload", mysql.LONGTEXT, nullable=False, comment="the wire message (app.adapters.wire.encode_message)"
        ),
        **TABLE,
    )
    op.create_table(
        "point_idempotency",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("result", mysql.LONGTEXT, nullable=False),
        **TABLE,
    )
    op.create_table(
        "point_snapshots",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", mysql.LONGTEXT, nullable=False, comment="app.domain.account.AccountState as JSON"),
        **TABLE,
    )
    op.create_table(
        "point_lot_expiries",
        sa.Column("grant_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        **TABLE,
    )
    op.create_index("ix_point_lot_expiries_expires_at", "point_lot_expiries", ["expires_at"])


def downgrade() -> None:
    for table in ("point_lot_expiries", "point_snapshots", "point_idempotency", "point_event_outbox", "point_events"):
        op.drop_table(table)
