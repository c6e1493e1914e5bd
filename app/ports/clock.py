from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """The current time, timezone-aware UTC. The domain never reads a clock; use cases ask this port."""

    def now(self) -> datetime: ...


class IdGenerator(Protocol):
    """Fresh unique ids for grants, uses, cancels and events."""

    def new_id(self) -> str: ...
