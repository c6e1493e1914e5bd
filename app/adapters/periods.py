"""Calendar buckets (UTC) for statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.ports.read_models import Interval


def bucket_start(at: datetime, interval: Interval) -> datetime:
    at = at.astimezone(UTC)
    if interval is Interval.DAY:
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_bucket(start: datetime, interval: Interval) -> datetime:
    if interval is Interval.DAY:
        return start + timedelta(days=1)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def bucket_bounds(start: datetime, end: datetime, interval: Interval) -> list[tuple[datetime, datetime]]:
    """Calendar buckets covering [start, end), the first and last clipped to the range."""
    bounds: list[tuple[datetime, datetime]] = []
    lo = start
    while lo < end:
        hi = min(next_bucket(bucket_start(lo, interval), interval), end)
        bounds.append((lo, hi))
        lo = hi
    return bounds
