"""Errors that any adapter behind a port may raise, whatever its technology."""

from __future__ import annotations


class UnavailableError(Exception):
    """A server behind a port is down, unreachable or timed out. Nothing was changed, or the change is resolved
    through its idempotency key: the caller may retry."""

    retryable = True

    def __init__(self, what: str, detail: str = "") -> None:
        self.what = what
        super().__init__(f"{what} is unavailable{': ' + detail if detail else ''}; retry later")


class StoreUnavailableError(UnavailableError):
    """The event store (the write model) cannot be reached."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("the event store", detail)


class ReadModelUnavailableError(UnavailableError):
    """A read model (Redis view, search index) cannot be reached."""
