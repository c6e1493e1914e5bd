"""The Strawberry ASGI view: builds each request's LedgerContext from the container, the bearer token and the
caller's rate limit. Everything else is Strawberry's view (content negotiation, GraphiQL, schema extensions,
directives, error masking), served through Starlette's router and middleware like any other endpoint.

Three refinements, each through a hook of Strawberry's view: the ``Content-Type`` is matched case-insensitively and
only ``application/json`` is read as JSON (415 otherwise); a JSON body that is not an object or a batch (``42``,
``"x"``, ``null``) is a 400 rather than an internal error; and JSON is read and written with orjson."""

from __future__ import annotations

import math
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException, StarletteRequestAdapter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData
from strawberry.schema import BaseSchema

from app.application.services import PointServices
from app.graphql.auth import BearerTokens
from app.graphql.context import LedgerContext, TestClock
from app.graphql.limits import RateLimits
from app.graphql.schema import schema

JSON = "application/json"


class _RequestAdapter(StarletteRequestAdapter):
    """Strawberry's Starlette adapter, with the media type of the ``Content-Type`` lower-cased (media types are
    case-insensitive; Strawberry compares them as written)."""

    @property
    def content_type(self) -> str | None:
        raw = self.headers.get("content-type")
        if raw is None:
            return None
        media_type, separator, parameters = raw.partition(";")
        return media_type.strip().lower() + separator + parameters


class LedgerGraphQL(GraphQL[LedgerContext, None]):
    """GraphiQL in the browser at the same path (unless switched off). ``services``, ``test_clock`` and
    ``rate_limits`` are attached by the service's lifespan once its resources are up; until then requests get
    503."""

    request_adapter_class = _RequestAdapter

    def __init__(
        self,
        jwt_secret: str,
        *,
        graphiql: bool = True,
        introspection: bool = True,
        graphql_schema: BaseSchema = schema,
    ) -> None:
        super().__init__(graphql_schema, graphql_ide="graphiql" if graphiql else None, allow_queries_via_get=False)
        self._tokens = BearerTokens(jwt_secret)
        self.introspection = introspection
        self.services: PointServices | None = None
        self.test_clock: TestClock | None = None
        self.rate_limits: RateLimits | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.services is None:
            await PlainTextResponse("the service is starting", status_code=503)(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData | list[GraphQLRequestData]:
        """A POST is read here: Strawberry's way parses the Content-Type with the email package and looks for a
        streaming transport in the headers (the schema has no subscriptions and no incremental delivery), which
        cost a tenth of a request. A batch, and anything but a POST, is Strawberry's (which refuses batches)."""
        if request.method != "POST":
            return await super().parse_http_body(request)
        media_type = (request.content_type or "").partition(";")[0].strip()
        if media_type != JSON:
            raise HTTPException(415, f"Unsupported content type: send the GraphQL request as {JSON}")
        data = self.parse_json(await request.get_body())
        if not isinstance(data, dict):
            return await super().parse_http_body(request)
        query, variables, extensions = data.get("query"), data.get("variables"), data.get("extensions")
        for name, value, kind, expected in (
            ("query", query, str, "a string"),
            ("variables", variables, dict, "an object"),
            ("extensions", extensions, dict, "an object"),
        ):
            if value is not None and not isinstance(value, kind):
                raise HTTPException(400, f"The GraphQL operation's `{name}` must be {expected} or null, if provided.")
        return GraphQLRequestData(query, variables, data.get("operationName"), extensions, "http")

    def parse_json(self, data: str | bytes) -> Any:
        value = super().parse_json(data)
        if not isinstance(value, dict | list):
            raise HTTPException(400, "The request body must be a JSON object: {query, variables, operationName}")
        return value

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)  # its JSONDecodeError is json's: a body that is not JSON still gets a 400

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> LedgerContext:
        assert self.services is not None, "checked in __call__"
        caller = self._tokens.caller(request.headers.get("authorization"))
        retry_after = None
        if self.rate_limits is not None:
            address = request.client.host if request.client else None
            retry_after = await self.rate_limits.retry_after(caller.actor, address)
            if retry_after is not None and isinstance(response, Response):
                response.status_code = 429
                response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return LedgerContext(
            services=self.services,
            actor=caller.actor,
            refusal=caller.refusal,
            test_clock=self.test_clock,
            request=request if isinstance(request, Request) else None,
            response=response if isinstance(response, Response) else None,
            retry_after=retry_after,
            introspection=self.introspection,
        )
