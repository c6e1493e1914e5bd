from __future__ import annotations

import asyncio
import hashlib
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from typing import Any, TypeVar

from app.application.errors import BusyError, IdempotencyConflictError
from app.domain import codec
from app.domain.account import Account
from app.domain.errors import DomainError
from app.domain.events import RecordedEvent
from app.domain.policy import PointPolicy
from app.domain.snapshot import decode_state, encode_state
from app.ports.clock import Clock, IdGenerator
from app.ports.event_store import Commit, ConcurrencyError, EventStore, IdempotencyRecord

R = TypeVar("R")


class KeyedLocks:
    """One asyncio lock per account, alive only while someone holds or waits for it.

    It serialises the commands of one process on one account so that they rarely meet in the store's optimistic
    check; across processes the version check alone does the serialising.
    """

    def __init__(self) -> None:
        self._locks: dict[str, _Held] = {}

    def hold(self, key: str) -> _Held:
        held = self._locks.get(key)
        if held is None:
            held = self._locks[key] = _Held(self._locks, key)
        return held


class _Held:
    """One account's lock and how many hold or wait for it (an ``async with`` of its own: the generator-based
    context manager cost as much as the lock)."""

    __slots__ = ("_key", "_lock", "_locks", "_users")

    def __init__(self, locks: dict[str, _Held], key: str) -> None:
        self._locks = locks
        self._key = key
        self._lock = asyncio.Lock()
        self._users = 0

    async def __aenter__(self) -> None:
        self._users += 1
        try:
            await self._lock.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()
        self._leave()

    def _leave(self) -> None:
        self._users -= 1
        if self._users == 0:
            del self._locks[self._key]


class AccountCache:
    """Committed accounts kept between commands, least recently used dropped first.

    An account is taken out while a command works on it and put back only as committed (unchanged, or with its
    new events appended), so a failed or refused command never leaves a half-decided account behind.

    A small account is kept as its snapshot bytes (:mod:`app.domain.snapshot`): one object, which the garbage
    collector never has to walk, in a fraction of the memory, for some microseconds of encoding and decoding per
    command. Thousands of accounts kept as objects made every full collection a pause of 100 ms and more. An
    account with more than ``compact_up_to`` lots and decoded uses stays as objects, so that a long account is not
    encoded again on every command.
    """

    def __init__(self, capacity: int, compact_up_to: int = 64) -> None:
        self._capacity = capacity
        self._compact_up_to = compact_up_to
        self._accounts: OrderedDict[str, Account | bytes] = OrderedDict()

    def take(self, user_id: str) -> Account | None:
        held = self._accounts.pop(user_id, None)
        return Account(decode_state(held)) if isinstance(held, bytes) else held

    def put(self, user_id: str, account: Account) -> None:
        if self._capacity <= 0:
            return
        state = account.state
        small = len(state.lots) + len(state.uses.split()[1]) <= self._compact_up_to
        self._accounts[user_id] = encode_state(state) if small else account
        self._accounts.move_to_end(user_id)
        while len(self._accounts) > self._capacity:
            self._accounts.popitem(last=False)


_ASKED: dict[type, tuple[bytes, tuple[str, ...]]] = {}


def _asked(request_type: type) -> tuple[bytes, tuple[str, ...]]:
    """A command type's name and the fields that say what it asks (``dataclasses.fields`` is slow to ask anew)."""
    asked = _ASKED.get(request_type)
    if asked is None:
        names = tuple(f.name for f in fields(request_type) if f.name != "idempotency_key")
        asked = _ASKED[request_type] = (request_type.__name__.encode() + b":", names)
    return asked


def fingerprint(request: Any) -> str:
    """What a command asks, without its idempotency key: equal for a retry, different for another command."""
    prefix, names = _asked(type(request))
    return hashlib.sha256(prefix + codec.dumps({name: getattr(request, name) for name in names})).hexdigest()


class AccountCommands:
    """Runs one command against one account: idempotency, load, decide, append, retry on conflict (rule 10)."""

    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        ids: IdGenerator,
        policy: PointPolicy,
        snapshot_every: int = 200,
        max_attempts: int = 30,
        cache_size: int = 10_000,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ids = ids
        self.policy = policy
        self.snapshot_every = snapshot_every
        self.max_attempts = max_attempts
        self._locks = KeyedLocks()
        self._cache = AccountCache(cache_size)

    async def load(self, user_id: str) -> Account:
        stream = await self.store.load(user_id)
        return Account.rebuild(user_id, (r.event for r in stream.events), stream.snapshot)

    async def _checkout(self, user_id: str, catch_up: bool) -> Account:
        """The account: the cached copy (brought up to date with the events after it when ``catch_up``: another
        process may have written), else loaded from the snapshot and the events after it."""
        account = self._cache.take(user_id)
        if account is None:
            return await self.load(user_id)
        if catch_up:
            account.catch_up(r.event for r in await self.store.events_after(user_id, account.version))
        return account

    async def run(
        self,
        user_id: str,
        idempotency_key: str | None,
        request: Any,
        result_type: type[R],
        decide: Callable[[Account, datetime], R],
    ) -> R:
        """Decide on a fresh copy of the account and append what it recorded; a retry of a key returns the
        first result (rule 9). Domain errors propagate and nothing is written.

        The first attempt is optimistic: it reads nothing when the account is cached, and trusts the append to
        refuse a stale account or a key taken before (both raise :class:`ConcurrencyError`). Whatever the
        optimistic attempt cannot vouch for (a conflict, a refusal, nothing to write) is decided again carefully:
        the key looked up first and the account brought up to date.
        """
        command_print = fingerprint(request) if idempotency_key else ""
        async with self._locks.hold(user_id):
            for attempt in range(self.max_attempts):
                careful = attempt > 0
                if careful and idempotency_key:
                    record = await self.store.idempotency_record(user_id, idempotency_key)
                    if record is not None:
                        if record.fingerprint != command_print:
                            raise IdempotencyConflictError(idempotency_key)
                        return codec.load(result_type, codec.loads(record.result))
                account = await self._checkout(user_id, catch_up=careful)
                try:
                    result = decide(account, self.clock.now())
                except DomainError:
                    if careful:
                        raise
                    continue  # perhaps a stale account, or a retry of a key whose first answer stands
                finally:
                    if not account.new_events():  # refused or nothing to do: the account is as committed
                        self._cache.put(user_id, account)
                new = account.new_events()
                if not new:
                    if careful:
                        return result
                    continue
                commit = Commit(
                    user_id=user_id,
                    expected_version=account.committed_version,
                    events=[
                        RecordedEvent(self.ids.new_id(), user_id, account.committed_version + i + 1, event)
                        for i, event in enumerate(new)
                    ],
                    idempotency=(
                        IdempotencyRecord(idempotency_key, command_print, codec.dumps(result))
                        if idempotency_key
                        else None
                    ),
                    snapshot=account.state if self._snapshot_due(account) else None,
                )
                try:
                    await self.store.append(commit)
                except ConcurrencyError:
                    if careful:  # another writer got there first: let it finish before trying again
                        await asyncio.sleep(random.uniform(0, 0.002 * attempt))
                    continue
                account.mark_committed()
                self._cache.put(user_id, account)
                return result
        raise BusyError(user_id, self.max_attempts)

    def _snapshot_due(self, account: Account) -> bool:
        return account.version // self.snapshot_every > account.committed_version // self.snapshot_every
