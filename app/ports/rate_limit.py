"""Rate limits: requests counted per caller in fixed windows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    count: int
    """Requests of the subject in the current window, this one included."""
    retry_after: float
    """Seconds until the current window ends (and the count starts again)."""


class RateLimiter(Protocol):
    """Counts requests per subject in fixed windows.

    ``hit`` counts one request of ``subject`` and says whether it is within ``limit`` requests per ``window``
    seconds. A subject's window opens with its first request and lasts ``window`` seconds; the next request after
    that opens a new one. Counting is atomic per subject, across every process that shares the limiter: of N
    concurrent requests exactly ``limit`` are allowed in one window. Refused requests count too (a caller that keeps
    sending stays refused until its window ends). Nothing is kept for a subject after its window has ended.

    Raises :class:`app.ports.errors.UnavailableError` when the server behind the limiter cannot be reached; the
    caller decides whether to let the request through (the GraphQL edge does, with a log line).
    """

    async def hit(self, subject: str, limit: int, window: float) -> RateDecision: ...
