"""Configuration from environment variables (POINTS_*). Read once, by the entry points."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

from app.domain.policy import ClawbackPolicy, PointPolicy


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _flag(name: str) -> bool:
    return _env(name, "false").strip().lower() in {"1", "true", "yes", "on"}


STACK_DATABASE_URL = "mysql+aiomysql://points:points@127.0.0.1:3306/points"
"""Where ``scripts/stack.sh up`` puts MariaDB."""


@dataclass(frozen=True)
class Settings:
    profile: str = "embedded"
    """memory (nothing kept), embedded (SQLite file + in-process relay) or stack (MariaDB, Debezium, Kafka)."""
    database_url: str = "sqlite:///./var/points.db"
    jwt_secret: str = "dev-secret-change-me-please-32-bytes!!"
    test_clock: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    database_pool: int = 32
    """Connections to MariaDB per process (stack profile)."""
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_topic: str = "points.events"
    """The events topic Debezium fills from the outbox (stack profile)."""
    snapshot_every: int = 200
    account_cache: int = 10_000
    """Committed accounts kept in memory between commands (0: none)."""
    policy: PointPolicy = field(default_factory=PointPolicy)

    @classmethod
    def from_env(cls) -> Settings:
        default = PointPolicy()
        policy = PointPolicy(
            min_grant=int(_env("POINTS_MIN_GRANT", str(default.min_grant))),
            max_grant=int(_env("POINTS_MAX_GRANT", str(default.max_grant))),
            max_balance=int(_env("POINTS_MAX_BALANCE", str(default.max_balance))),
            default_expiry=timedelta(days=int(_env("POINTS_DEFAULT_EXPIRY_DAYS", str(default.default_expiry.days)))),
            min_expiry=timedelta(days=int(_env("POINTS_MIN_EXPIRY_DAYS", str(default.min_expiry.days)))),
            max_expiry_exclusive=timedelta(
                days=int(_env("POINTS_MAX_EXPIRY_DAYS", str(default.max_expiry_exclusive.days)))
            ),
            clawback=ClawbackPolicy(_env("POINTS_CLAWBACK_POLICY", default.clawback.value)),
        )
        profile = _env("POINTS_PROFILE", cls.profile)
        return cls(
            profile=profile,
            database_url=_env("POINTS_DATABASE_URL", STACK_DATABASE_URL if profile == "stack" else cls.database_url),
            database_pool=int(_env("POINTS_DATABASE_POOL", str(cls.database_pool))),
            kafka_bootstrap=_env("POINTS_KAFKA_BOOTSTRAP", cls.kafka_bootstrap),
            kafka_topic=_env("POINTS_KAFKA_TOPIC", cls.kafka_topic),
            jwt_secret=_env("POINTS_JWT_SECRET", cls.jwt_secret),
            test_clock=_flag("POINTS_TEST_CLOCK"),
            host=_env("POINTS_HOST", cls.host),
            port=int(_env("POINTS_PORT", str(cls.port))),
            snapshot_every=int(_env("POINTS_SNAPSHOT_EVERY", str(cls.snapshot_every))),
            account_cache=int(_env("POINTS_ACCOUNT_CACHE", str(cls.account_cache))),
            policy=policy,
        )
