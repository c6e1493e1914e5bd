"""Read-your-writes: a query given ``at_least_version`` answers from a read model that holds at least that version
of the account, waiting for it a bounded time, or else from the write model, and says which it did."""

from __future__ import annotations

from enum import StrEnum

from app.domain.account import Account
from app.domain.errors import InvalidInputError
from app.ports.event_store import EventStore
from app.ports.read_models import AccountVersions


class ReadSource(StrEnum):
    READ_MODEL = "READ_MODEL"
    WRITE_MODEL = "WRITE_MODEL"


async def caught_up(model: AccountVersions, user_id: str, at_least_version: int | None, wait: float) -> int | None:
    """The version the read model holds once it has ``at_least_version`` of the account (None asked: whatever it
    holds now); None when it did not get there within ``wait`` seconds, and the write model must answer."""
    if at_least_version is None:
        return await model.version(user_id)
    if at_least_version < 0:
        raise InvalidInputError("atLeastVersion", "atLeastVersion must not be negative")
    held = await model.wait_for_version(user_id, at_least_version, wait)
    return held if held >= at_least_version else None


async def write_model_account(store: EventStore, user_id: str) -> Account:
    """The account as the write model holds it: its latest snapshot and the events after it."""
    stream = await store.load(user_id)
    return Account.rebuild(user_id, (r.event for r in stream.events), stream.snapshot)
