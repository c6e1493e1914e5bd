"""The Strawberry ASGI view: builds each request's LedgerContext from the container and the bearer token.

A plain ``POST`` of a JSON query (``{"query", "variables", "operationName"}``) whose text parses and validates
(against the cache of app.graphql.documents) and names one query or mutation runs on a direct path: the body is
decoded, the document executed by graphql-core on Strawberry's schema with Strawberry's resolvers and execution
context, errors logged and masked as the pipeline does, and the result written out. That skips the per-request
machinery of Strawberry's view and pipeline (request adapters, content negotiation, extension hooks), which cost
more than the command itself. Everything else (GraphiQL, GET, other content types, batches, streaming, a text that
does not parse or validate, an ambiguous operation) goes to Strawberry's view unchanged, body and all, so that
its answers, refusals and status codes stay Strawberry's own."""

from __future__ import annotations

import orjson
from graphql import ExecutionResult, OperationType, execute, get_operation_ast
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.execution import optimized_is_awaitable
from strawberry.http import process_result

from app.application.services import PointServices
from app.graphql.auth import BearerTokens
from app.graphql.context import LedgerContext, TestClock
from app.graphql.documents import prepare
from app.graphql.schema import masked, schema

_DIRECT = (OperationType.QUERY, OperationType.MUTATION)


class LedgerGraphQL(GraphQL[LedgerContext, None]):
    """GraphiQL in the browser at the same path. ``services`` and ``test_clock`` are attached by the service's
    lifespan once its resources are up; until then requests get 503."""

    def __init__(self, jwt_secret: str) -> None:
        super().__init__(schema, graphql_ide="graphiql", allow_queries_via_get=False)
        self._tokens = BearerTokens(jwt_secret)
        self.services: PointServices | None = None
        self.test_clock: TestClock | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.services is None:
                await PlainTextResponse("the service is starting", status_code=503)(scope, receive, send)
                return
            if scope["method"] == "POST":
                body = await _body(receive)
                if body is None:
                    return  # the client went away
                if await self._direct(scope, body, send):
                    return
                receive = _replay(body, receive)
        await super().__call__(scope, receive, send)

    async def _direct(self, scope: Scope, body: bytes, send: Send) -> bool:
        """Answers the request on the direct path and says True, or says False and leaves it to Strawberry."""
        content_type = accept = authorization = None
        for name, value in scope["headers"]:
            if name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"accept" and accept is None:
                accept = value.lower()
            elif name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
        if content_type is None or content_type.split(b";", 1)[0].strip() != b"application/json":
            return False
        if accept is not None and (b"multipart" in accept or b"event-stream" in accept):
            return False  # a streaming transport
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(data, dict):
            return False  # a batch, or not a request at all
        query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
        if (
            not isinstance(query, str)
            or not (variables is None or isinstance(variables, dict))
            or not (name is None or isinstance(name, str))
            or data.get("extensions") is not None
        ):
            return False
        prepared = prepare(schema._schema, query)
        if prepared is None or prepared.errors:
            return False
        operation = get_operation_ast(prepared.document, name)
        if operation is None or operation.operation not in _DIRECT:
            return False

        assert self.services is not None, "checked in __call__"
        caller = self._tokens.caller(authorization)
        context = LedgerContext(
            services=self.services,
            actor=caller.actor,
            refusal=caller.refusal,
            test_clock=self.test_clock,
            request=Request(scope),
        )
        outcome = execute(
            schema._schema,
            prepared.document,
            context_value=context,
            variable_values=variables,
            operation_name=name,
            executor_class=schema.execution_context_class,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]  # a TypeGuard in graphql-core's typing
            operation_extensions=None,
        )
        result = outcome if isinstance(outcome, ExecutionResult) else await outcome
        if result.errors:
            schema.process_errors(result.errors)  # logs them, as Strawberry's pipeline does
            result.errors = masked(result.errors)
        payload = self.encode_json(process_result(result))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        return True

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)  # its JSONDecodeError is json's: a body that is not JSON still gets a 400

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> LedgerContext:
        assert self.services is not None, "checked in __call__"
        caller = self._tokens.caller(request.headers.get("authorization"))
        return LedgerContext(
            services=self.services,
            actor=caller.actor,
            refusal=caller.refusal,
            test_clock=self.test_clock,
            request=request if isinstance(request, Request) else None,
            response=response if isinstance(response, Response) else None,
        )


async def _body(receive: Receive) -> bytes | None:
    """The request's body; None if the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read handed out again first."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
