"""The balance view in Redis: each account's lots, last applied version and newest history entries, shared by every
API and projector process of the stack.

Keys (one account's keys share one hash tag, so that on Redis Cluster they live in one slot and one script may touch
them all)::

    <prefix>:{<tag>}:meta     hash   v -> last applied version, n -> history entries ever recorded
    <prefix>:{<tag>}:lots     hash   grant id -> the lot, a JSON array (below)
    <prefix>:{<tag>}:recent   list   the newest ``keep_recent`` entries, newest first, each a JSON array

``<tag>`` is the user id with ``%``, ``{`` and ``}`` percent-escaped (``%25``, ``%7B``, ``%7D``), so that no user id
can end the tag early or collide with another; the empty id, whose tag would be empty (Redis would then hash the
whole key), is ``%``, which no escaped id can be.

Values are compact JSON arrays by position, times as ISO 8601 with their offset, trailing nulls left out:

- lot: ``[source, amount, remaining, granted_at, expires_at, status, manual, pending_until, order_id,
  reissued_from]``;
- entry: ``[entry_id, version, kind, amount, delta, occurred_at, [grant_id, amount, ...], user_id, source,
  order_id, grant_id, use_id, reason]``, ``user_id`` null when it is the account's own.

Writes go through one Lua script per event (:data:`_APPLY`), which checks the stored version and writes the lots, the
entry and the version together, so a redelivered event changes nothing and no reader sees half an event; a rebuild
writes each account whole with another (:data:`_REPLACE`). Scripts check before their first write, so one refused
for memory (OOM) has written nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.domain.account import LotStatus
from app.domain.events import Allocation
from app.ports.errors import ReadModelUnavailableError
from app.ports.read_models import AccountView, EntryKind, HistoryEntry, LotView, ProjectionGapError, RecentEntries

_EACH = """
local function each(command, key, first, last)
  for i = first, last, 1000 do
    redis.call(command, key, unpack(ARGV, i, math.min(i + 999, last)))
  end
end
"""
"""``command key ARGV[first..last]`` in calls of at most 1,000 arguments (Lua's unpack has a limit of some 8,000).
Lots go in by pairs, so ``last - first + 1`` is even for HSET."""

_APPLY = (
    _EACH
    + """
local version = tonumber(ARGV[1])
local stored = tonumber(redis.call('HGET', KEYS[1], 'v')) or 0
if stored >= version then return 0 end
if stored ~= version - 1 then return -1 - stored end
each('HSET', KEYS[2], 4, #ARGV)
if ARGV[3] ~= '' then
  local keep = tonumber(ARGV[2])
  if keep > 0 then
    redis.call('LPUSH', KEYS[3], ARGV[3])
    redis.call('LTRIM', KEYS[3], 0, keep - 1)
  end
  redis.call('HINCRBY', KEYS[1], 'n', 1)
end
redis.call('HSET', KEYS[1], 'v', version)
return 1
"""
)
"""One event. KEYS: meta, lots, recent. ARGV: version, keep_recent, the entry ('' for none), then grant id and lot
pairs. Returns 1 when applied, 0 when the version was applied already, and on a gap -1 - the stored version."""

_REPLACE = (
    _EACH
    + """
local version = tonumber(ARGV[1])
local stored = tonumber(redis.call('HGET', KEYS[1], 'v')) or 0
if stored > version then return 0 end
local keep = tonumber(ARGV[3])
local lots_end = 4 + tonumber(ARGV[4])
redis.call('DEL', KEYS[2], KEYS[3])
each('HSET', KEYS[2], 5, lots_end)
if keep > 0 then each('RPUSH', KEYS[3], lots_end + 1, math.min(#ARGV, lots_end + keep)) end
redis.call('HSET', KEYS[1], 'v', version, 'n', ARGV[2])
return 1
"""
)
"""One account whole. KEYS: meta, lots, recent. ARGV: version, entries made, keep_recent, the number of lot
arguments, then grant id and lot pairs, then the entries newest first. Returns 1 when written, 0 when the view holds
a later version."""

_UNAVAILABLE = (
    RedisConnectionError,  # refused, reset, closed, loading (BusyLoadingError), auth
    RedisTimeoutError,
    OSError,
    OutOfMemoryError,  # maxmemory reached: nothing was written, a retry may pass
    ReadOnlyError,  # a replica after a failover
    ClusterDownError,
    TryAgainError,
)

SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0
MAX_CONNECTIONS = 64
"""Connections per process; a caller past them waits for one (up to ``SOCKET_TIMEOUT``) rather than failing, as
redis-py's default pool does past 100."""
BATCH = 2_000
"""Script calls per round trip in :meth:`RedisBalanceView.apply_many` and :meth:`RedisBalanceView.replace_many`."""

_Call = tuple[tuple[str, str, str], list[bytes | str | int]]
"""A script's keys and arguments."""


@contextlib.contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE as error:
        raise ReadModelUnavailableError("the balance view (Redis)", f"{type(error).__name__}: {error}") from error


def account_tag(user_id: str) -> str:
    """The hash tag's content for an account: never empty, never holding ``{`` or ``}``, one per user id."""
    if not user_id:
        return "%"
    return user_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _trimmed(values: list[Any]) -> list[Any]:
    """Without its trailing nulls, which :func:`_padded` puts back."""
    while values and values[-1] is None:
        values.pop()
    return values


def _padded(values: list[Any], size: int) -> list[Any]:
    return values + [None] * (size - len(values))


def encode_lot(lot: LotView) -> bytes:
    fields = [
        lot.source, lot.amount, lot.remaining, lot.granted_at, lot.expires_at, lot.status.value, lot.manual,
        lot.pending_until, lot.order_id, lot.reissued_from,
    ]  # fmt: skip
    return orjson.dumps(_trimmed(fields))


def decode_lot(grant_id: str, raw: bytes | str) -> LotView:
    fields = orjson.loads(raw)
    source, amount, remaining, granted_at, expires_at, status, manual, pending, order_id, reissued = _padded(fields, 10)
    return LotView(
        grant_id, source, amount, remaining, datetime.fromisoformat(granted_at), datetime.fromisoformat(expires_at),
        LotStatus(status), manual, _time(pending), order_id, reissued,
    )  # fmt: skip


def encode_entry(user_id: str, entry: HistoryEntry) -> bytes:
    fields = [
        entry.entry_id, entry.version, entry.kind.value, entry.amount, entry.delta, entry.occurred_at,
        [part for a in entry.lots for part in (a.grant_id, a.amount)],
        None if entry.user_id == user_id else entry.user_id,
        entry.source, entry.order_id, entry.grant_id, entry.use_id, entry.reason,
    ]  # fmt: skip
    return orjson.dumps(_trimmed(fields))


def decode_entry(user_id: str, raw: bytes | str) -> HistoryEntry:
    (entry_id, version, kind, amount, delta, occurred_at, lots, owner, source, order_id, grant_id, use_id,
     reason) = _padded(orjson.loads(raw), 13)  # fmt: skip
    return HistoryEntry(
        entry_id, user_id if owner is None else owner, version, EntryKind(kind), amount, delta,
        datetime.fromisoformat(occurred_at), source, order_id, grant_id, use_id, reason,
        tuple(Allocation(g, a) for g, a in zip(lots[::2], lots[1::2], strict=True)),
    )  # fmt: skip


class RedisBalanceView:
    """The :class:`app.ports.read_models.BalanceView` port on Redis (see the module's docstring for the keys).

    ``apply`` is one EVALSHA of a script that checks the version and writes; ``apply_many`` pipelines those calls for
    many events in one round trip, each still atomic on its own; ``replace_many`` (rebuilds) pipelines one script per
    account that writes it whole. ``recent`` reads the version, the entry count and the entries in one MULTI/EXEC.
    ``wait_for_version`` polls every ``poll_seconds``. A server that cannot be reached, times out, is out of memory
    or read-only gives :class:`ReadModelUnavailableError`; retrying an ``apply`` is safe (a retry of one that did get
    through returns False)."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "points",
        keep_recent: int = 100,
        poll_seconds: float = 0.005,
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"the key prefix {prefix!r} may not hold braces: they would make every key's hash tag")
        if keep_recent < 0:
            raise ValueError("keep_recent must not be negative")
        self.keep_recent = keep_recent
        self._client = client
        self._prefix = prefix
        self._poll = poll_seconds
        self._apply = client.register_script(_APPLY)
        self._replace = client.register_script(_REPLACE)

    @classmethod
    def open(
        cls, url: str, prefix: str = "points", keep_recent: int = 100, poll_seconds: float = 0.005
    ) -> RedisBalanceView:
        """On a client of its own for ``url``: a command that Redis does not answer within 2 s (1 s to connect) is
        :class:`ReadModelUnavailableError` at once, a broken connection (Redis restarted) is tried again once on a
        new one; :meth:`aclose` closes it."""
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=SOCKET_TIMEOUT,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(ExponentialWithJitterBackoff(cap=0.1, base=0.01), 1, supported_errors=(RedisConnectionError,)),
        )
        client = redis.Redis(connection_pool=pool)
        return cls(client, prefix, keep_recent, poll_seconds)

    async def aclose(self) -> None:
        await self._client.aclose()

    def keys(self, user_id: str) -> tuple[str, str, str]:
        """The account's keys: meta, lots, recent."""
        base = f"{self._prefix}:{{{account_tag(user_id)}}}:"
        return base + "meta", base + "lots", base + "recent"

    async def version(self, user_id: str) -> int:
        with _reachable():
            stored = await self._client.hget(self.keys(user_id)[0], "v")
        return 0 if stored is None else int(stored)

    async def wait_for_version(self, user_id: str, version: int, timeout: float) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            held = await self.version(user_id)
            left = deadline - loop.time()
            if held >= version or left <= 0:
                return held
            await asyncio.sleep(min(self._poll, left))

    async def lots(self, user_id: str, grant_ids: Sequence[str] | None = None) -> list[LotView]:
        key = self.keys(user_id)[1]
        with _reachable():
            if grant_ids is None:
                held = await self._client.hgetall(key)
                return [decode_lot(g if isinstance(g, str) else g.decode(), raw) for g, raw in held.items()]
            if not grant_ids:
                return []
            found = await self._client.hmget(key, list(grant_ids))
        return [decode_lot(g, raw) for g, raw in zip(grant_ids, found, strict=True) if raw is not None]

    async def read_many(self, wanted: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[int, list[LotView]]]:
        """One pipelined round trip per :data:`BATCH` accounts, on one connection (concurrent single calls would
        each take a connection of the pool, whose bound a large batch passes)."""
        found: list[tuple[int, list[LotView]]] = []
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start : start + BATCH]
            pipe = self._client.pipeline(transaction=False)
            for user_id, grant_ids in chunk:
                meta, lots, _ = self.keys(user_id)
                pipe.hget(meta, "v")
                pipe.hmget(lots, list(grant_ids) or [""])
            with _reachable():
                replies = await pipe.execute()
            for (_, grant_ids), stored, held in zip(chunk, replies[::2], replies[1::2], strict=True):
                lots_held = [decode_lot(g, raw) for g, raw in zip(grant_ids, held, strict=False) if raw is not None]
                found.append((0 if stored is None else int(stored), lots_held))
        return found

    def _apply_call(self, user_id: str, version: int, lots: Sequence[LotView], entry: HistoryEntry | None) -> _Call:
        args: list[bytes | str | int] = [
            version,
            self.keep_recent,
            b"" if entry is None else encode_entry(user_id, entry),
        ]
        for lot in lots:
            args += (lot.grant_id, encode_lot(lot))
        return self.keys(user_id), args

    async def apply(
        self, user_id: str, version: int, lots: Sequence[LotView], entry: HistoryEntry | None = None
    ) -> bool:
        keys, args = self._apply_call(user_id, version, lots, entry)
        with _reachable():
            reply = await self._apply(keys=keys, args=args)
        outcome = _outcome(user_id, version, reply)
        if isinstance(outcome, ProjectionGapError):
            raise outcome
        return outcome

    async def apply_many(
        self, items: Sequence[tuple[str, int, Sequence[LotView], HistoryEntry | None]]
    ) -> list[bool | Exception]:
        """:meth:`apply` for each item, in order, pipelined (:data:`BATCH` script calls per round trip), each item
        atomic on its own: True when applied, False when applied already, a :class:`ProjectionGapError` (returned,
        not raised) on a gap, which fails that item alone. Several versions of one account may follow each other
        in ``items``. Raises :class:`ReadModelUnavailableError` when Redis cannot be reached; some items may then
        have been applied, and calling again with the same items is safe."""
        replies = await self._pipelined(self._apply, [self._apply_call(*item) for item in items])
        return [
            _outcome(user_id, version, reply) for (user_id, version, _, _), reply in zip(items, replies, strict=True)
        ]

    async def replace_many(self, accounts: Sequence[AccountView]) -> int:
        """Each account written whole by one script (atomic per account), pipelined; an account of which the view
        holds a later version is left as it is. Returns how many were written. Entries past ``keep_recent`` (the
        oldest) are left out."""
        calls: list[_Call] = []
        for account in accounts:
            lots: list[bytes | str] = []
            for lot in account.lots:
                lots += (lot.grant_id, encode_lot(lot))
            entries = [encode_entry(account.user_id, entry) for entry in account.recent[: self.keep_recent]]
            calls.append(
                (
                    self.keys(account.user_id),
                    [account.version, account.made, self.keep_recent, len(lots), *lots, *entries],
                )
            )
        return sum(await self._pipelined(self._replace, calls))

    async def _pipelined(self, script: AsyncScript, calls: list[_Call]) -> list[int]:
        """The script's reply to each call, :data:`BATCH` calls per round trip."""
        replies: list[int] = []
        with _reachable():
            for start in range(0, len(calls), BATCH):
                replies += await self._batch(script, calls[start : start + BATCH])
        return replies

    async def _batch(self, script: AsyncScript, calls: list[_Call]) -> list[int]:
        replies = await self._send(script, calls)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            # Redis lost its scripts (a restart, SCRIPT FLUSH): load the script and send the whole batch again. A call
            # the first round did (1) answers 0 the second time, so the first round's 1 stands.
            script.sha = await self._client.script_load(script.script)
            again = await self._send(script, calls)
            replies = [first if first == 1 else second for first, second in zip(replies, again, strict=True)]
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _send(self, script: AsyncScript, calls: list[_Call]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    async def recent(self, user_id: str) -> RecentEntries:
        meta, _, recent = self.keys(user_id)
        with _reachable():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hmget(meta, ["v", "n"])
                pipe.lrange(recent, 0, self.keep_recent - 1)
                (version, made), rows = await pipe.execute()
        return RecentEntries(
            0 if version is None else int(version),
            [decode_entry(user_id, row) for row in rows] if self.keep_recent > 0 else [],
            (0 if made is None else int(made)) <= self.keep_recent,
        )

    async def delete_account(self, user_id: str) -> None:
        """Forget the account (for a rebuild): its version goes back to 0."""
        with _reachable():
            await self._client.delete(*self.keys(user_id))


def _outcome(user_id: str, version: int, reply: int) -> bool | ProjectionGapError:
    if reply < 0:
        return ProjectionGapError(f"{user_id}: got version {version} while at {-1 - reply}")
    return reply == 1
