"""Starts and stops what a running service needs, for any entry point (server lifespan, CLI, benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable

from app.application.projection import rebuild_read_models
from app.containers import Container

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def running(container: Container, relay: bool = True) -> AsyncIterator[Container]:
    """Initialise resources, rebuild the in-process read models from the store, and run the outbox relay."""
    await _maybe(container.init_resources())
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        if relay:
            rebuilt = await rebuild_read_models(container.event_store(), container.projector())
            log.info("read models rebuilt from %d stored events", rebuilt)
            task = asyncio.create_task(container.relay().run(stop), name="outbox-relay")
        yield container
    finally:
        stop.set()
        if task is not None:
            await task
        await _maybe(container.shutdown_resources())


async def _maybe(result: Awaitable[None] | None) -> None:
    """dependency-injector returns an awaitable only when some resource is async."""
    if result is not None:
        await result
