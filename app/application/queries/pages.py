from __future__ import annotations

from app.domain.errors import InvalidInputError

MAX_PAGE = 100


def page_size(first: int) -> int:
    """Page sizes are capped so that no query walks an unbounded history."""
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInputError("first", f"first must be within 1..{MAX_PAGE}")
    return first
