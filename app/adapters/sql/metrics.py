"""The event stores' metrics, one set for every SQL store (Prometheus refuses a metric defined twice)."""

from __future__ import annotations

from prometheus_client import Histogram

COMMIT_SECONDS = Histogram(
    "points_store_commit_seconds",
    "How long one write transaction took, from its first statement to its COMMIT: mostly the log's fsync "
    "(SQLite's WAL with synchronous=FULL, InnoDB's redo log and the binlog), which every append in it waits for.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CHECKPOINT_SECONDS = Histogram(
    "points_store_checkpoint_seconds",
    "How long a WAL checkpoint took, by the thread that ran it: the checkpointer's, which no command waits for, or "
    "the writer's short one between two batches, which holds up the appends that arrive meanwhile.",
    ["thread"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BATCH_APPENDS = Histogram(
    "points_store_batch_appends",
    "Appends (commands) written together in one transaction: by group commit on SQLite, one each on MariaDB.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
