"""The HTTP service: GraphQL (and GraphiQL) at /graphql, a health check at /health, Prometheus metrics at /metrics.
``uvicorn --factory app.entrypoints.server:create_app``."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.adapters.clock import SettableClock
from app.containers import build_container
from app.entrypoints.runtime import running
from app.graphql.view import LedgerGraphQL
from app.settings import Settings

GC_THRESHOLD = (7_000, 2, 10)
"""Python's default first threshold is 700 container allocations; a command allocates a few hundred, so the young
generation was collected every other command or so, and the collections of the older ones came as often. The
middle generation is collected every second young collection rather than every tenth: at 1,000 commands/s it then
holds about 12,000 objects (mostly those of the requests in flight) instead of 25,000, and its pauses fell from
7-11 ms to 2-4 ms, for the same collector time in all."""


def _settle_garbage_collector() -> None:
    """Once the service is up: what start-up made (modules, the schema, the container) lives as long as the process,
    so it is moved out of the collector's way; every full collection would otherwise walk it all again and stall
    every request in flight meanwhile."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


class LedgerApp(Starlette):
    """Starlette, with one shortcut: an HTTP request for ``/graphql`` goes straight to the GraphQL view, which
    answers every request itself (errors included), past the router and the exception middleware, whose work per
    request cost several percent of a command. Everything else, lifespan included, is Starlette's."""

    def __init__(self, graphql: LedgerGraphQL, **options: Any) -> None:
        super().__init__(**options)
        self._graphql = graphql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/graphql" and not scope.get("root_path"):
            scope["app"] = self
            await self._graphql(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    container = build_container(settings)
    graphql = LedgerGraphQL(jwt_secret=settings.jwt_secret)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running(container):
            clock = container.clock()
            graphql.test_clock = clock if settings.test_clock and isinstance(clock, SettableClock) else None
            graphql.services = container.services()
            _settle_garbage_collector()
            try:
                yield
            finally:
                graphql.services = None

    async def home(request: Request) -> Response:
        return RedirectResponse("/graphql")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok" if graphql.services is not None else "starting"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app = LedgerApp(
        graphql,
        routes=[
            Route("/", home),
            Route("/health", health),
            Route("/metrics", metrics),
            Route("/graphql", graphql, methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.container = container
    return app
