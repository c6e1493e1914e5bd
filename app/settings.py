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


@dataclass(frozen=True)
class Settings:
    profile: str = "embedded"
    """memory (nothing kept), embedded (SQLite file + in-process relay) or stack (later: MySQL/Kafka/Redis/OS)."""
    database_url: str = "sqlite:///./var/points.db"
    jwt_secret: str = "dev-secret-change-me-please-32-bytes!!"
    test_clock: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
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
        return cls(
            profile=_env("POINTS_PROFILE", cls.profile),
            database_url=_env("POINTS_DATABASE_URL", cls.database_url),
            jwt_secret=_env("POINTS_JWT_SECRET", cls.jwt_secret),
            test_clock=_flag("POINTS_TEST_CLOCK"),
            host=_env("POINTS_HOST", cls.host),
            port=int(_env("POINTS_PORT", str(cls.port))),
            snapshot_every=int(_env("POINTS_SNAPSHOT_EVERY", str(cls.snapshot_every))),
            account_cache=int(_env("POINTS_ACCOUNT_CACHE", str(cls.account_cache))),
            policy=policy,
        )
