from __future__ import annotations

import random
import time
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
    """Time-ordered 128-bit ids in the layout of UUIDv7 (48-bit milliseconds, then random bits), as 32 hex digits.

    The random bits come from a generator seeded once from the OS: ``uuid4`` asks the OS for every id, which
    costs more than the rest of making a command's ids."""

    def __init__(self) -> None:
        self._random = random.Random(uuid.uuid4().int)

    def new_id(self) -> str:
        value = (time.time_ns() // 1_000_000) << 80 | self._random.getrandbits(80)
        value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
        value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
        return f"{value:032x}"
