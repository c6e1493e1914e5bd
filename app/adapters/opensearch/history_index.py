"""The history index on OpenSearch: one document per history entry, behind an alias over a versioned index.

Layout (``alias`` is ``points-history`` unless configured)::

    <alias>-template     composable index template for <alias>-*: settings and the strict mapping (templates.py)
    <alias>-v1           the first index, made by :meth:`OpenSearchHistoryIndex.ensure`
    <alias>-v<UTC time>  an index made by a rebuild (:meth:`rebuild_target`, :meth:`new_index`), which
                         :meth:`publish` (:meth:`swap_alias`) puts behind the alias
    <alias>              the alias: every read and write goes through it (a rebuild's target reads and writes its own
                         index)

Order and cursors, the in-memory adapter's to the microsecond:

- ``history(user)``: the account's entries by ``version`` descending (an account's versions are unique); a cursor is
  ``[version]``. :meth:`page` makes the same pages and cursors from entries alone, so that a client may page on here
  from a page made from the balance view or the write model.
- ``search``: every entry by ``(occurred_us, user_id, version)`` descending, a total order; a cursor is those three
  values, given to ``search_after``. ``occurred_us`` is the exact time in microseconds since the epoch.

Cursors are :mod:`app.adapters.cursors`' URL-safe base64 JSON of these values, built from the entries, never from
what OpenSearch answers, so that :meth:`page` needs no I/O.

Visibility: writes are not refreshed (the index refreshes itself every second). A search sees a write after the next
refresh; :meth:`wait_for_version` (read-your-writes) asks for a refresh when the account is behind, one at a time for
all waiters and at most one per poll interval, and :meth:`refresh` is for tests.

The client: opensearch-py's ``AsyncOpenSearch`` needs aiohttp, which the project does not install, so the
synchronous client runs on a small thread pool of its own (``_call``); every request has a timeout (5 s), and a
server that is down, times out, sheds load (429) or fails (5xx) raises :class:`ReadModelUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import NotFoundError, RequestError, TransportError

from app.adapters.cursors import decode_cursor, encode_cursor
from app.adapters.opensearch.templates import REFRESH_INTERVAL, index_template, template_name
from app.adapters.periods import bucket_bounds, bucket_start
from app.domain.events import Allocation
from app.ports.errors import ReadModelUnavailableError
from app.ports.read_models import (
    AccountSummary,
    EntryFilter,
    EntryKind,
    HistoryEntry,
    HistoryIndex,
    HistoryPage,
    Interval,
    Stats,
    StatsBucket,
)

T = TypeVar("T")

ALIAS = "points-history"
REQUEST_TIMEOUT = 5.0
THREADS = 8
BULK_SIZE = 5_000
"""Entries per ``_bulk`` request at most (some 1.3 MB)."""
POLL_SECONDS = 0.05
"""How often :meth:`OpenSearchHistoryIndex.wait_for_version` looks again, and the least time between its refreshes."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_LONG = (-(2**63), 2**63 - 1)
_HISTORY_SORT = [{"version": "desc"}]
_SEARCH_SORT = [{"occurred_us": "desc"}, {"user_id": "desc"}, {"version": "desc"}]
_HITS = "hits.hits._source"
_UNAVAILABLE_ITEMS = {"index_not_found_exception", "rejected_execution_exception", "circuit_breaking_exception"}
_KIND_FIELDS = {
    EntryKind.GRANTED: "granted",
    EntryKind.USED: "used",
    EntryKind.USE_CANCELLED: "use_cancelled",
    EntryKind.GRANT_CANCELLED: "grant_cancelled",
    EntryKind.EXPIRED: "expired",
    EntryKind.CLAWED_BACK: "clawed_back",
}


class IndexingError(RuntimeError):
    """OpenSearch refused documents for a reason other than being unavailable (a mapping error): a bug, not load."""


def micros(at: datetime) -> int:
    """Exact microseconds since the epoch of an aware datetime."""
    return (at - _EPOCH) // _MICROSECOND


def document(entry: HistoryEntry) -> dict[str, Any]:
    """An entry as its document; fields that are None are left out."""
    doc: dict[str, Any] = {
        "entry_id": entry.entry_id,
        "user_id": entry.user_id,
        "version": entry.version,
        "kind": entry.kind.value,
        "amount": entry.amount,
        "delta": entry.delta,
        "occurred_at": entry.occurred_at.isoformat(),
        "occurred_us": micros(entry.occurred_at),
    }
    for field in ("source", "order_id", "grant_id", "use_id", "reason"):
        if (value := getattr(entry, field)) is not None:
            doc[field] = value
    if entry.lots:
        doc["lots"] = [[a.grant_id, a.amount] for a in entry.lots]
    return doc


def entry(doc: dict[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        entry_id=doc["entry_id"],
        user_id=doc["user_id"],
        version=doc["version"],
        kind=EntryKind(doc["kind"]),
        amount=doc["amount"],
        delta=doc["delta"],
        occurred_at=datetime.fromisoformat(doc["occurred_at"]),
        source=doc.get("source"),
        order_id=doc.get("order_id"),
        grant_id=doc.get("grant_id"),
        use_id=doc.get("use_id"),
        reason=doc.get("reason"),
        lots=tuple(Allocation(g, a) for g, a in doc.get("lots", ())),
    )


def _history_key(e: HistoryEntry) -> list[Any]:
    return [e.version]


def _search_key(e: HistoryEntry) -> list[Any]:
    return [micros(e.occurred_at), e.user_id, e.version]


def _cursor(after: str | None, shape: list[type]) -> list[Any] | None:
    """The sort values in ``after`` (None for no cursor); ValueError unless they are of ``shape`` and fit a long."""
    if not after:
        return None
    values = decode_cursor(after)
    if [type(v) for v in values] != shape or any(type(v) is int and not _LONG[0] <= v <= _LONG[1] for v in values):
        raise ValueError("malformed cursor")
    return values


def _page(entries: list[HistoryEntry], first: int, key: Callable[[HistoryEntry], list[Any]]) -> HistoryPage:
    """The first ``first`` of ``entries`` (already in order, one more than a page when there is a next page)."""
    return HistoryPage([(encode_cursor(key(e)), e) for e in entries[:first]], has_next=len(entries) > first)


def _filters(where: EntryFilter) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = []
    if where.user_id is not None:
        filters.append({"term": {"user_id": where.user_id}})
    if where.kinds:
        filters.append({"terms": {"kind": [k.value for k in where.kinds]}})
    if where.sources:
        filters.append({"terms": {"source": list(where.sources)}})
    if where.order_id is not None:
        filters.append({"term": {"order_id": where.order_id}})
    occurred: dict[str, int] = {}
    if where.occurred_from is not None:
        occurred["gte"] = micros(where.occurred_from)
    if where.occurred_to is not None:
        occurred["lt"] = micros(where.occurred_to)
    if occurred:
        filters.append({"range": {"occurred_us": occurred}})
    amount: dict[str, int] = {}
    if where.min_amount is not None:
        amount["gte"] = where.min_amount
    if where.max_amount is not None:
        amount["lte"] = where.max_amount
    if amount:
        filters.append({"range": {"amount": amount}})
    return filters


def _sum(agg: dict[str, Any]) -> int:
    """A sum or max aggregation's value (a double: exact for totals below 2**53 points)."""
    return round(float(agg["value"]))


class OpenSearchHistoryIndex:
    """The :class:`app.ports.read_models.HistoryIndex` port on OpenSearch; see the module's docstring."""

    def __init__(
        self,
        client: OpenSearch,
        alias: str = ALIAS,
        threads: int = THREADS,
        *,
        target: str | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        """``target``: an index that this one reads and writes directly instead of the alias (a rebuild's, made by
        :meth:`rebuild_target`, which shares its client and ``executor`` and leaves them to the owner to close)."""
        self.alias = alias
        self._target = target or alias
        self._client = client
        self._owner = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=threads, thread_name_prefix="opensearch")
        self._refreshing: asyncio.Future[None] | None = None
        self._refreshed_at = 0.0

    @classmethod
    def open(cls, url: str, alias: str = ALIAS, timeout: float = REQUEST_TIMEOUT) -> OpenSearchHistoryIndex:
        """An index on the server at ``url``, through ``alias``; nothing is sent until the first call."""
        client = OpenSearch(
            hosts=[url],
            timeout=timeout,
            max_retries=0,  # one node: a retry would only double the wait; callers retry on the typed error
            pool_maxsize=THREADS,
            http_compress=False,
        )
        return cls(client, alias)

    async def close(self) -> None:
        if self._owner:
            await self._call(self._client.close)
            self._executor.shutdown(wait=False)

    async def _call(self, request: Callable[..., T], /, **kwargs: Any) -> T:
        """``request(**kwargs)`` on the pool; the server down, timing out, shedding load or failing is
        :class:`ReadModelUnavailableError`."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(request, **kwargs))
        except OpenSearchConnectionError as error:  # refused, reset, timed out (ConnectionTimeout), TLS
            raise ReadModelUnavailableError("the history index (OpenSearch)", f"{error.error}") from error
        except TransportError as error:
            status = error.status_code
            if isinstance(status, int) and (status == 429 or status >= 500):
                raise ReadModelUnavailableError("the history index (OpenSearch)", f"{status} {error.error}") from error
            raise

    # -- the alias, its template and its indices ------------------------------------------------------------------

    async def ensure(self) -> None:
        """The template, a first index and the alias over it, each made when missing (idempotent; concurrent callers
        make one index)."""
        await self._put_template()
        if await self.indices():
            return
        first = f"{self.alias}-v1"
        try:
            await self._call(self._client.indices.create, index=first, body={"aliases": {self.alias: {}}})
        except RequestError as error:
            if error.error != "resource_already_exists_exception":
                raise
        if not await self.indices():  # the first index was there without the alias
            await self._call(self._client.indices.put_alias, index=first, name=self.alias)

    async def _put_template(self) -> None:
        await self._call(
            self._client.indices.put_index_template, name=template_name(self.alias), body=index_template(self.alias)
        )

    async def indices(self) -> list[str]:
        """The indices behind the alias (one, but for a moment of a rebuild gone wrong)."""
        found = await self._call(self._client.indices.get_alias, name=self.alias, ignore=404)  # 404: not logged
        return [] if found.get("status") == 404 else sorted(found)

    async def new_index(self) -> str:
        """A new, empty versioned index for a rebuild, not behind the alias yet and not refreshing (bulk loads are
        faster so). Fill it with ``index(entries, into=name)``, then :meth:`swap_alias`."""
        await self._put_template()
        name = f"{self.alias}-v{datetime.now(UTC):%Y%m%d%H%M%S%f}"
        await self._call(
            self._client.indices.create, index=name, body={"settings": {"index": {"refresh_interval": "-1"}}}
        )
        return name

    async def swap_alias(self, new: str) -> list[str]:
        """Put ``new`` behind the alias in place of what was there, in one atomic ``_aliases`` call, after giving it
        back its refresh interval and refreshing it; then delete the indices it replaced, and return their names.

        Entries indexed through the alias while ``new`` was being filled went to the old index and are deleted with
        it: a rebuild reads the event store again from where it was when it swapped (indexing is idempotent)."""
        await self._call(
            self._client.indices.put_settings, index=new, body={"index": {"refresh_interval": REFRESH_INTERVAL}}
        )
        await self._call(self._client.indices.refresh, index=new)
        old = [name for name in await self.indices() if name != new]
        actions = [{"add": {"index": new, "alias": self.alias}}]
        actions += [{"remove": {"index": name, "alias": self.alias}} for name in old]
        await self._call(self._client.indices.update_aliases, body={"actions": actions})
        for name in old:
            with contextlib.suppress(NotFoundError):
                await self._call(self._client.indices.delete, index=name)
        return old

    async def rebuild_target(self) -> OpenSearchHistoryIndex:
        """A new, empty versioned index (:meth:`new_index`), to be filled through the index returned, which writes
        and reads it directly; :meth:`publish` puts it behind the alias."""
        name = await self.new_index()
        return OpenSearchHistoryIndex(self._client, self.alias, target=name, executor=self._executor)

    async def publish(self, rebuilt: HistoryIndex) -> None:
        """``rebuilt`` (from :meth:`rebuild_target`) behind the alias, the index it replaces deleted
        (:meth:`swap_alias`)."""
        if (
            not isinstance(rebuilt, OpenSearchHistoryIndex)
            or rebuilt.alias != self.alias
            or rebuilt._target == self.alias
        ):
            raise ValueError("only an index from this index's rebuild_target can be published")
        await self.swap_alias(rebuilt._target)

    async def drop(self) -> None:
        """Delete every index of this alias and its template (tests, and a rebuild from nothing)."""
        await self._call(self._client.indices.delete, index=f"{self.alias}-*", expand_wildcards="all")
        with contextlib.suppress(NotFoundError):
            await self._call(self._client.indices.delete_index_template, name=template_name(self.alias))

    async def refresh(self) -> None:
        """Make every write so far searchable. For tests: the projector never refreshes."""
        await self._call(self._client.indices.refresh, index=self._target)

    # -- writes ---------------------------------------------------------------------------------------------------

    async def index(self, entries: Sequence[HistoryEntry], *, into: str | None = None) -> None:
        """A ``_bulk`` request through the alias (or into the index ``into``, for a rebuild), one per
        :data:`BULK_SIZE` entries; an entry's document id is its id, so indexing it again changes nothing. No
        refresh. The documents are encoded on the pool's thread, off the event loop."""
        for at in range(0, len(entries), BULK_SIZE):
            answer = await self._call(self._bulk, entries=entries[at : at + BULK_SIZE], into=into)
            if not answer.get("errors"):
                continue
            errors = [item.get("error") for op in answer.get("items", []) for item in op.values()]
            errors = [e for e in errors if e and e.get("type") != "version_conflict_engine_exception"]
            if any(e.get("type") in _UNAVAILABLE_ITEMS for e in errors):
                raise ReadModelUnavailableError("the history index (OpenSearch)", str(errors[0]))
            if errors:
                raise IndexingError(f"{len(errors)} of {len(entries)} entries refused, first: {errors[0]}")

    def _bulk(self, entries: Sequence[HistoryEntry], into: str | None) -> Any:
        lines = bytearray()
        for e in entries:
            lines += orjson.dumps({"index": {"_id": e.entry_id}})
            lines += b"\n"
            lines += orjson.dumps(document(e))
            lines += b"\n"
        return self._client.bulk(
            body=bytes(lines),
            index=into or self._target,
            require_alias=(into or self._target) == self.alias,  # a write never makes an index named like the alias
            filter_path="errors,items.*.error",
        )

    # -- reads ----------------------------------------------------------------------------------------------------

    async def _search(self, body: dict[str, Any], filter_path: str = _HITS) -> dict[str, Any]:
        try:
            return await self._call(self._client.search, index=self._target, body=body, filter_path=filter_path)
        except NotFoundError as error:
            raise ReadModelUnavailableError("the history index (OpenSearch)", "no index behind the alias") from error

    async def _entries(self, filters: list[dict[str, Any]], sort: list[Any], size: int, after: Any) -> list[Any]:
        body: dict[str, Any] = {
            "query": {"bool": {"filter": filters}},
            "sort": sort,
            "size": size,
            "track_total_hits": False,
        }
        if after is not None:
            body["search_after"] = after
        answer = await self._search(body)
        return [entry(hit["_source"]) for hit in answer.get("hits", {}).get("hits", [])]

    def page(self, entries: Sequence[HistoryEntry], first: int, after: str | None) -> HistoryPage:
        below = _cursor(after, [int])
        by_version = {e.version: e for e in entries}
        newest = sorted(
            (e for v, e in by_version.items() if below is None or v < below[0]), key=_history_key, reverse=True
        )
        return _page(newest, first, _history_key)

    async def history(self, user_id: str, first: int, after: str | None) -> HistoryPage:
        found = await self._entries([{"term": {"user_id": user_id}}], _HISTORY_SORT, first + 1, _cursor(after, [int]))
        return _page(found, first, _history_key)

    async def search(self, where: EntryFilter, first: int, after: str | None) -> HistoryPage:
        found = await self._entries(_filters(where), _SEARCH_SORT, first + 1, _cursor(after, [int, str, int]))
        return _page(found, first, _search_key)

    async def stats(self, start: datetime, end: datetime, interval: Interval) -> Stats:
        """One search: the sum of deltas before ``start``, and per calendar bucket (UTC) within ``[start, end)``
        the sum of amounts per kind and of deltas; the outstanding liability at a bucket's end is the first plus
        the deltas of the buckets up to it."""
        start_us, end_us = micros(start), micros(end)
        histogram = {
            "field": "occurred_at",  # milliseconds: a calendar boundary is a whole second, so none is crossed
            "calendar_interval": "day" if interval is Interval.DAY else "month",
            "time_zone": "UTC",
            "min_doc_count": 1,
        }
        body = {
            "size": 0,
            "track_total_hits": False,
            "query": {"range": {"occurred_us": {"lt": end_us}}},
            "aggs": {
                "before": {
                    "filter": {"range": {"occurred_us": {"lt": start_us}}},
                    "aggs": {"delta": {"sum": {"field": "delta"}}},
                },
                "within": {
                    "filter": {"range": {"occurred_us": {"gte": start_us}}},
                    "aggs": {
                        "buckets": {
                            "date_histogram": histogram,
                            "aggs": {
                                "delta": {"sum": {"field": "delta"}},
                                "kinds": {
                                    "terms": {"field": "kind", "size": len(EntryKind)},
                                    "aggs": {"amount": {"sum": {"field": "amount"}}},
                                },
                            },
                        }
                    },
                },
            },
        }
        answer = (await self._search(body, filter_path="aggregations"))["aggregations"]
        found = {b["key"]: b for b in answer["within"]["buckets"]["buckets"]}
        outstanding = _sum(answer["before"]["delta"])
        buckets: list[StatsBucket] = []
        for lo, hi in bucket_bounds(start, end, interval):
            bucket = found.get(micros(bucket_start(lo, interval)) // 1000)
            sums: dict[str, int] = {}
            if bucket is not None:
                outstanding += _sum(bucket["delta"])
                for by_kind in bucket["kinds"]["buckets"]:
                    field = _KIND_FIELDS.get(EntryKind(by_kind["key"]))
                    if field is not None:
                        sums[field] = _sum(by_kind["amount"])
            buckets.append(StatsBucket(lo, hi, outstanding=outstanding, **sums))
        return Stats(buckets)

    async def summaries(self, after: str | None, limit: int) -> list[AccountSummary]:
        """A composite aggregation by user id (in the order of their UTF-8 bytes, which is Python's order of str),
        paged by its ``after`` key: per account the count of its documents, their highest version and sum of deltas.
        """
        composite: dict[str, Any] = {"size": limit, "sources": [{"user_id": {"terms": {"field": "user_id"}}}]}
        if after is not None:
            composite["after"] = {"user_id": after}
        body = {
            "size": 0,
            "track_total_hits": False,
            "aggs": {
                "accounts": {
                    "composite": composite,
                    "aggs": {"version": {"max": {"field": "version"}}, "delta": {"sum": {"field": "delta"}}},
                }
            },
        }
        answer = await self._search(body, filter_path="aggregations.accounts.buckets")
        return [
            AccountSummary(b["key"]["user_id"], b["doc_count"], _sum(b["version"]), _sum(b["delta"]))
            for b in answer.get("aggregations", {}).get("accounts", {}).get("buckets", [])
        ]

    # -- versions (read-your-writes) ------------------------------------------------------------------------------

    async def version(self, user_id: str) -> int:
        body = {
            "query": {"bool": {"filter": [{"term": {"user_id": user_id}}]}},
            "sort": _HISTORY_SORT,
            "size": 1,
            "_source": False,
            "track_total_hits": False,
        }
        hits = (await self._search(body, filter_path="hits.hits.sort")).get("hits", {}).get("hits", [])
        return int(hits[0]["sort"][0]) if hits else 0

    async def wait_for_version(self, user_id: str, version: int, timeout: float) -> int:
        """Searches see writes after a refresh: while the account is behind, this asks for one (shared with every
        other waiter, at most one per :data:`POLL_SECONDS`) and looks again, until ``timeout``."""
        held = await self.version(user_id)
        if held >= version or timeout <= 0:
            return held
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self._shared_refresh()
                    held = await self.version(user_id)
                    if held >= version or loop.time() >= deadline:
                        return held
                    await asyncio.sleep(POLL_SECONDS)
        except TimeoutError:
            return held

    async def _shared_refresh(self) -> None:
        loop = asyncio.get_running_loop()
        running = self._refreshing
        if running is None or (running.done() and loop.time() - self._refreshed_at >= POLL_SECONDS):
            self._refreshed_at = loop.time()
            running = self._refreshing = asyncio.ensure_future(self.refresh())
        await asyncio.shield(running)
