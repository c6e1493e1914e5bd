"""The Strawberry ASGI view: builds each request's LedgerContext from the container and the bearer token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from app.application.services import PointServices
from app.graphql.auth import caller_from_header
from app.graphql.context import LedgerContext, TestClock
from app.graphql.schema import schema


class LedgerGraphQL(GraphQL[LedgerContext, None]):
    """GraphiQL in the browser at the same path. ``services`` and ``test_clock`` are attached by the service's
    lifespan once its resources are up; until then requests get 503."""

    def __init__(self, jwt_secret: str) -> None:
        super().__init__(schema, graphql_ide="graphiql", allow_queries_via_get=False)
        self._jwt_secret = jwt_secret
        self.services: PointServices | None = None
        self.test_clock: TestClock | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.services is None and scope["type"] == "http":
            await PlainTextResponse("the service is starting", status_code=503)(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> LedgerContext:
        assert self.services is not None, "checked in __call__"
        caller = caller_from_header(request.headers.get("authorization"), self._jwt_secret)
        return LedgerContext(
            services=self.services,
            actor=caller.actor,
            refusal=caller.refusal,
            test_clock=self.test_clock,
            request=request if isinstance(request, Request) else None,
            response=response if isinstance(response, Response) else None,
        )
