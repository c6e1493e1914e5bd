"""The HTTP service: GraphQL (and GraphiQL) at /graphql, a health check at /health, Prometheus metrics at /metrics.
``uvicorn --factory app.entrypoints.server:create_app``, or ``python -m app serve``, which also bounds the size of
a request's head (:class:`BoundedHttpToolsProtocol`)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.adapters.clock import SettableClock
from app.containers import build_container
from app.entrypoints.runtime import running
from app.graphql.limits import RateLimits, RoleLimits
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


class BodyLimit:
    """Refuses a request body larger than ``max_bytes`` with 413: at once when its Content-Length says so, before
    reading any of it; otherwise (a chunked body) as soon as the bytes read pass the bound, never holding more."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_bytes:
                    status, reason = (413, "Request body too large") if declared > 0 else (400, "Bad Content-Length")
                    await PlainTextResponse(f"{reason} (at most {self.max_bytes} bytes)", status)(scope, receive, send)
                    return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, f"Request body too large (at most {self.max_bytes} bytes)")
            return message

        await self.app(scope, bounded, send)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request whose head (request line and headers) passes
    ``max_head_bytes`` with 431 and closing the connection, instead of reading it whole (httptools sets no bound:
    a 16 MB header was read and kept). What is counted is what arrived while the head was incomplete, so at most
    one read beyond the bound is ever held."""

    max_head_bytes = 16 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        super().data_received(data)
        if self._in_head and self.parser is not None:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def _refuse_head(self) -> None:
        message = b"Request header fields too large"
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(message), message)
        )
        self.transport.close()


def bounded_protocol(max_head_bytes: int) -> type[BoundedHttpToolsProtocol]:
    return type("BoundedHttpTools", (BoundedHttpToolsProtocol,), {"max_head_bytes": max_head_bytes})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    container = build_container(settings)
    graphql = LedgerGraphQL(
        jwt_secret=settings.jwt_secret, graphiql=settings.graphiql, introspection=settings.introspection
    )
    limits = RoleLimits(
        window=settings.rate_limit_window_ms / 1000,
        anonymous=settings.rate_limit_anonymous,
        user=settings.rate_limit_user,
        service=settings.rate_limit_service,
        admin=settings.rate_limit_admin,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running(container):
            clock = container.clock()
            graphql.test_clock = clock if settings.test_clock and isinstance(clock, SettableClock) else None
            limiter = container.rate_limiter()
            if asyncio.isfuture(limiter) or asyncio.iscoroutine(limiter):
                limiter = await limiter
            graphql.rate_limits = RateLimits(limiter, limits)
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

    routes = [Route("/graphql", graphql, methods=["GET", "POST"]), Route("/health", health), Route("/", home)]
    if settings.metrics:
        routes.append(Route("/metrics", metrics))
    middleware = [Middleware(BodyLimit, max_bytes=settings.max_body_bytes)]
    if settings.cors_origins:
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                expose_headers=["Retry-After"],
                max_age=600,
            ),
        )
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.container = container
    return app
