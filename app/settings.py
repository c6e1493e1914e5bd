"""Configuration from environment variables (POINTS_*). Read once, by the entry points."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

from app.domain.policy import ClawbackPolicy, PointPolicy


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _flag(name: str, default: bool = False) -> bool:
    return _env(name, "true" if default else "false").strip().lower() in {"1", "true", "yes", "on"}


def _names(name: str) -> tuple[str, ...]:
    """A comma-separated list."""
    return tuple(part.strip() for part in _env(name, "").split(",") if part.strip())


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
    kafka_dlq_topic: str = "points.events.dlq"
    """Where the projectors put messages they cannot read, with the reason in a header (stack profile)."""
    opensearch_url: str = "http://127.0.0.1:9200"
    history_alias: str = "points-history"
    """The OpenSearch alias the history index is read and written through (over a versioned index)."""
    redis_prefix: str = "points"
    """The namespace of the balance view's Redis keys."""
    keep_recent: int = 100
    """History entries per account that the balance view keeps, for the first pages of a history."""
    aggregate_type: str = "point_account"
    """The outbox rows' ``aggregatetype`` (Debezium's outbox field, a header of each message): the ledger's name on
    the events topic. A process reads only its own ledger's events, so ledgers (or test runs) can share a topic."""
    snapshot_every: int = 200
    account_cache: int = 10_000
    """Committed accounts kept in memory between commands (0: none)."""
    max_body_bytes: int = 64 * 1024
    """The largest request body the API reads; a larger one is refused with 413 before it is read."""
    max_header_bytes: int = 16 * 1024
    """The largest request line and headers ``serve`` reads; larger ones are refused with 431."""
    graphiql: bool = True
    """GraphiQL in the browser at GET /graphql (off for production)."""
    introspection: bool = True
    """GraphQL introspection (``__schema``, ``__type``); off for production."""
    metrics: bool = True
    """GET /metrics in Prometheus text."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed by CORS; none (the default): no CORS headers at all."""
    rate_limit_backend: str = "memory"
    """memory (one process) or redis (shared by every process, at ``redis_url``)."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    rate_limit_window_ms: int = 1_000
    rate_limit_anonymous: int = 20
    """Requests per window from one client address without a valid token (0: no limit)."""
    rate_limit_user: int = 50
    """Requests per window of one token subject with the user role (0: no limit)."""
    rate_limit_service: int = 0
    rate_limit_admin: int = 0
    read_wait_ms: int = 300
    """How long a query with ``atLeastVersion`` waits for the read model before it asks the write model."""
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
            max_text=int(_env("POINTS_MAX_TEXT_LENGTH", str(default.max_text))),
        )
        profile = _env("POINTS_PROFILE", cls.profile)
        return cls(
            profile=profile,
            database_url=_env("POINTS_DATABASE_URL", STACK_DATABASE_URL if profile == "stack" else cls.database_url),
            database_pool=int(_env("POINTS_DATABASE_POOL", str(cls.database_pool))),
            kafka_bootstrap=_env("POINTS_KAFKA_BOOTSTRAP", cls.kafka_bootstrap),
            kafka_topic=_env("POINTS_KAFKA_TOPIC", cls.kafka_topic),
            kafka_dlq_topic=_env("POINTS_KAFKA_DLQ_TOPIC", cls.kafka_dlq_topic),
            opensearch_url=_env("POINTS_OPENSEARCH_URL", cls.opensearch_url),
            history_alias=_env("POINTS_HISTORY_ALIAS", cls.history_alias),
            redis_prefix=_env("POINTS_REDIS_PREFIX", cls.redis_prefix),
            keep_recent=int(_env("POINTS_KEEP_RECENT", str(cls.keep_recent))),
            aggregate_type=_env("POINTS_AGGREGATE_TYPE", cls.aggregate_type),
            jwt_secret=_env("POINTS_JWT_SECRET", cls.jwt_secret),
            test_clock=_flag("POINTS_TEST_CLOCK"),
            host=_env("POINTS_HOST", cls.host),
            port=int(_env("POINTS_PORT", str(cls.port))),
            snapshot_every=int(_env("POINTS_SNAPSHOT_EVERY", str(cls.snapshot_every))),
            account_cache=int(_env("POINTS_ACCOUNT_CACHE", str(cls.account_cache))),
            max_body_bytes=int(_env("POINTS_MAX_BODY_BYTES", str(cls.max_body_bytes))),
            max_header_bytes=int(_env("POINTS_MAX_HEADER_BYTES", str(cls.max_header_bytes))),
            graphiql=_flag("POINTS_GRAPHIQL", cls.graphiql),
            introspection=_flag("POINTS_INTROSPECTION", cls.introspection),
            metrics=_flag("POINTS_METRICS", cls.metrics),
            cors_origins=_names("POINTS_CORS_ORIGINS"),
            rate_limit_backend=_env(  # the stack's API processes share their callers' counts in Redis
                "POINTS_RATE_LIMIT_BACKEND", "redis" if profile == "stack" else cls.rate_limit_backend
            ),
            redis_url=_env("POINTS_REDIS_URL", cls.redis_url),
            rate_limit_window_ms=int(_env("POINTS_RATE_LIMIT_WINDOW_MS", str(cls.rate_limit_window_ms))),
            rate_limit_anonymous=int(_env("POINTS_RATE_LIMIT_ANONYMOUS", str(cls.rate_limit_anonymous))),
            rate_limit_user=int(_env("POINTS_RATE_LIMIT_USER", str(cls.rate_limit_user))),
            rate_limit_service=int(_env("POINTS_RATE_LIMIT_SERVICE", str(cls.rate_limit_service))),
            rate_limit_admin=int(_env("POINTS_RATE_LIMIT_ADMIN", str(cls.rate_limit_admin))),
            read_wait_ms=int(_env("POINTS_READ_WAIT_MS", str(cls.read_wait_ms))),
            policy=policy,
        )
