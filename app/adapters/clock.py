from __future__ import annotations

import uuid
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SettableClock:
    """A clock that runs with real time from a moment that can be set (the test clock, like Stripe's)."""

    def __init__(self, at: datetime | None = None) -> None:
        self._offset = (at - datetime.now(UTC)) if at else None

    def now(self) -> datetime:
        real = datetime.now(UTC)
        return real + self._offset if self._offset is not None else real

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("the clock needs a timezone-aware time")
        self._offset = at - datetime.now(UTC)


class FixedClock:
    """Stands still unless moved; for unit tests."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at


class UuidIds:
    def new_id(self) -> str:
        return uuid.uuid4().hex
