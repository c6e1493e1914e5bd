"""The embedded profile's write model: the SQLite event store as a container resource."""

from __future__ import annotations

from collections.abc import AsyncIterator

from dependency_injector import containers, providers
from sqlalchemy.engine import make_url

from app.adapters.sqlite.event_store import SqlEventStore
from app.settings import Settings


def sqlite_path(database_url: str) -> str:
    """The file of a ``sqlite`` URL (any driver part, e.g. ``sqlite+aiosqlite:///./var/points.db``); a relative
    path is relative to the working directory. The store drives SQLite itself, from its own writer thread."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise ValueError(f"the embedded profile needs a sqlite URL, not {url.get_backend_name()}")
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        raise ValueError("the embedded profile needs a SQLite file; use the memory profile for no file")
    return url.database


class OpenedStore:
    """Holds the store between ``init_resources()`` and ``shutdown_resources()``."""

    def __init__(self) -> None:
        self.store: SqlEventStore | None = None

    def get(self) -> SqlEventStore:
        if self.store is None:
            raise RuntimeError("the event store is not open: await container.init_resources() first")
        return self.store


async def open_event_store(settings: Settings, opened: OpenedStore) -> AsyncIterator[SqlEventStore]:
    store = await SqlEventStore.open(sqlite_path(settings.database_url))
    opened.store = store
    try:
        yield store
    finally:
        opened.store = None
        await store.close()


def override_embedded(container: containers.Container, settings: Settings) -> None:
    """The event store (and the outbox, the same provider) becomes the SQLite store.

    The store is an async ``Resource`` (``sql_event_store``), opened by ``await container.init_resources()`` and
    closed by ``await container.shutdown_resources()``. ``event_store`` itself is a plain call that hands out the
    opened store: were it the async resource, it and every provider built on it (commands, services, relay) would
    return awaitables for good.
    """
    opened = OpenedStore()
    container.sql_event_store = providers.Resource(open_event_store, settings, opened)
    container.event_store.override(providers.Callable(opened.get))
