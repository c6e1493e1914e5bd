"""Starts and stops what a running service needs, for any entry point (server lifespan, CLI, benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable

from app.containers import Container

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def running(container: Container, relay: bool = True) -> AsyncIterator[Container]:
    """Initialise resources and run the profile's delivery of events to the read models (``relay``): on the embedded
    default, the read models rebuilt from the store and the outbox relay; on the stack, the events topic."""
    await _maybe(container.init_resources())
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        if relay:
            delivery = container.delivery()
            await delivery.prepare()
            task = asyncio.create_task(delivery.run(stop), name="event-delivery")
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
