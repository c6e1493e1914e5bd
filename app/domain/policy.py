"""Limits of the ledger (rule 8). They live here as data, set from configuration, never as literals in rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class ClawbackPolicy(StrEnum):
    """What a refund takes back when the points its order earned were already spent (rule 13)."""

    ORDER_GRANT_THEN_BALANCE = "ORDER_GRANT_THEN_BALANCE"
    """Take from the order's own grant first, then from the other active lots in spend order; never below 0."""

    ORDER_GRANT_ONLY = "ORDER_GRANT_ONLY"
    """Take only what is left of the order's own grant; the spent part is forgiven and reported as shortfall."""


@dataclass(frozen=True)
class PointPolicy:
    min_grant: int = 1
    max_grant: int = 100_000
    max_balance: int = 10_000_000
    default_expiry: timedelta = timedelta(days=365)
    min_expiry: timedelta = timedelta(days=1)
    max_expiry_exclusive: timedelta = timedelta(days=5 * 365)
    clawback: ClawbackPolicy = ClawbackPolicy.ORDER_GRANT_THEN_BALANCE
    max_text: int = 500
    """Characters of a free-text input (a reason) at most; it is kept in every event and history entry."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_grant <= self.max_grant:
            raise ValueError("policy needs 1 <= min_grant <= max_grant")
        if self.max_balance < self.max_grant:
            raise ValueError("policy needs max_balance >= max_grant")
        if not self.min_expiry <= self.default_expiry < self.max_expiry_exclusive:
            raise ValueError("policy needs min_expiry <= default_expiry < max_expiry_exclusive")
