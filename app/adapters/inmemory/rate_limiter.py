"""Fixed-window rate limits in this process's memory: the embedded default (one process)."""

from __future__ import annotations

import time
from collections.abc import Callable

from app.ports.rate_limit import RateDecision


class InMemoryRateLimiter:
    """Windows in a dict; ended ones are swept out once the dict holds ``sweep_above`` subjects, at most once a
    second, so that clients that come once (any number of addresses) cannot grow it for good."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sweep_above: int = 10_000) -> None:
        self._clock = clock
        self._sweep_above = sweep_above
        self._windows: dict[str, tuple[int, float]] = {}
        """subject -> (requests, when the window ends)"""
        self._swept = 0.0

    async def hit(self, subject: str, limit: int, window: float) -> RateDecision:
        now = self._clock()
        count, ends = self._windows.get(subject, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + window
            if len(self._windows) >= self._sweep_above and now - self._swept >= 1.0:
                self._sweep(now)
        count += 1
        self._windows[subject] = (count, ends)
        return RateDecision(allowed=count <= limit, count=count, retry_after=ends - now)

    def _sweep(self, now: float) -> None:
        self._swept = now
        self._windows = {subject: held for subject, held in self._windows.items() if held[1] > now}

    def __len__(self) -> int:
        return len(self._windows)
