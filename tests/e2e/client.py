"""A small GraphQL client for the end-to-end tests: named operations, typed results, tokens and polling.

The selection of every result union is built from the exported SDL (``schema.graphql``), the public contract,
so each query asks for every field of every error type that the union can carry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jwt
from graphql import GraphQLSchema, GraphQLUnionType, build_schema

from app.containers import Container

SDL = Path(__file__).resolve().parents[2] / "schema.graphql"
SECRET = "e2e-secret-that-is-long-enough-for-hs256"

T = TypeVar("T")


@cache
def contract() -> GraphQLSchema:
    return build_schema(SDL.read_text())


ERROR_FIELDS = {
    "InsufficientPointsError": "requested available",
    "InvalidAmountError": "amount minimum maximum",
    "ExpiryOutOfRangeError": "minDays maxDaysExclusive",
    "BalanceLimitExceededError": "limit balance requested",
    "DuplicateOrderError": "orderId grantId",
    "IdempotencyConflictError": "idempotencyKey",
    "GrantNotCancellableError": "grantId reason",
    "GrantNotPendingError": "grantId status",
    "CancelExceedsUseError": "useId requested cancellable",
    "NotFoundError": "kind id",
    "ForbiddenError": "",
    "InvalidInputError": "field",
    "BusyError": "userId",
    "TestClockDisabledError": "",
    "RateLimitedError": "retryable retryAfterSeconds",
    "ServiceUnavailableError": "retryable",
}

ALLOCATIONS = "{ grantId amount }"
CONNECTION = f"""
edges {{ cursor node {{
  id userId version kind amount delta occurredAt source orderId grantId useId reason lots {ALLOCATIONS}
}} }}
pageInfo {{ hasNextPage endCursor startCursor }}
"""
SUCCESS_FIELDS = {
    "Granted": "grantId amount status expiresAt pendingUntil balance pending version",
    "GrantActivated": "grantId expiresAt balance pending version",
    "PointsUsed": f"useId amount allocations {ALLOCATIONS} balance pending version",
    "UseCancelled": f"cancelId useId amount restored {ALLOCATIONS} "
    "reissued { grantId fromGrantId amount expiresAt manual } balance pending version",
    "GrantCancelled": "grantId amount balance pending version",
    "PointsClawedBack": f"clawbackId orderId requested taken shortfall allocations {ALLOCATIONS} "
    "balance pending version",
    "ExpiryRun": "accounts lots points",
    "TestClock": "now",
    "Balance": "userId available pending version source",
    "ExpiringPoints": "userId withinDays total dates { date amount } version source",
    "EntryConnection": CONNECTION,
    "PointStats": "interval buckets { start end granted used useCancelled grantCancelled cancelled expired breakage "
    "clawedBack outstandingLiability }",
    "Account": "userId version available pending "
    "lots { grantId source status amount remaining grantedAt expiresAt manual pendingUntil orderId reissuedFrom "
    f"clawedBack expiredAmount }} uses {{ useId amount cancelled usedAt orderId allocations {ALLOCATIONS} }}",
}

# field -> (variable declarations, arguments)
OPERATIONS = {
    "grantPoints": ("$input: GrantPointsInput!", "input: $input"),
    "activateGrant": ("$input: ActivateGrantInput!", "input: $input"),
    "usePoints": ("$input: UsePointsInput!", "input: $input"),
    "cancelUse": ("$input: CancelUseInput!", "input: $input"),
    "cancelGrant": ("$input: CancelGrantInput!", "input: $input"),
    "clawbackPoints": ("$input: ClawbackPointsInput!", "input: $input"),
    "expirePoints": ("", ""),
    "setTestClock": ("$at: DateTime!", "at: $at"),
    "balance": ("$userId: String!", "userId: $userId"),
    "expiringPoints": ("$userId: String!, $withinDays: Int!", "userId: $userId, withinDays: $withinDays"),
    "history": ("$userId: String!, $first: Int!, $after: String", "userId: $userId, first: $first, after: $after"),
    "searchEntries": (
        "$filter: EntryFilter, $first: Int!, $after: String",
        "filter: $filter, first: $first, after: $after",
    ),
    "pointStats": (
        "$from: DateTime!, $to: DateTime!, $interval: Interval!",
        "from: $from, to: $to, interval: $interval",
    ),
    "account": ("$userId: String!", "userId: $userId"),
}


def selection(field: str) -> str:
    """``__typename`` and every field of every member of the field's result union."""
    schema = contract()
    root = schema.mutation_type if field in schema.mutation_type.fields else schema.query_type  # type: ignore[union-attr]
    union = root.fields[field].type.of_type  # type: ignore[union-attr]
    assert isinstance(union, GraphQLUnionType), f"{field} does not return a union"
    spreads = []
    for member in union.types:
        fields = ERROR_FIELDS[member.name] if member.name.endswith("Error") else SUCCESS_FIELDS[member.name]
        extra = "message code " if member.name.endswith("Error") else ""
        spreads.append(f"... on {member.name} {{ {extra}{fields} }}")
    return "{ __typename " + " ".join(spreads) + " }"


def document(field: str) -> str:
    declarations, arguments = OPERATIONS[field]
    kind = "mutation" if field in contract().mutation_type.fields else "query"  # type: ignore[union-attr]
    head = f"{kind} {field[0].upper()}{field[1:]}" + (f"({declarations})" if declarations else "")
    return f"{head} {{ {field}" + (f"({arguments})" if arguments else "") + f" {selection(field)} }}"


def token(subject: str, *roles: str, secret: str = SECRET, hours: float = 1.0) -> str:
    """Any token a client could send, unknown roles included (the CLI's minting is tested elsewhere)."""
    now = datetime.now(UTC)
    claims = {"sub": subject, "roles": list(roles), "iat": now, "exp": now + timedelta(hours=hours)}
    return jwt.encode(claims, secret, algorithm="HS256")


ADMIN = token("ops", "admin")
SERVICE = token("shop", "service")


def user(user_id: str) -> str:
    return token(user_id, "user")


class GraphQLFailure(AssertionError):
    pass


class Api:
    """Sends GraphQL over HTTP, as any client would."""

    def __init__(self, http: httpx.AsyncClient, container: Container | None = None) -> None:
        self.http = http
        self.container = container
        """The service's container, for the few tests that inject a fault behind the API."""

    async def post(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code in (200, 429), response.text  # 429: the caller is over its rate limit
        return response.json()

    async def call(self, field: str, token: str | None = ADMIN, **variables: Any) -> dict[str, Any]:
        """The field's result (a member of its union, with ``__typename``)."""
        body = await self.post(document(field), variables, token)
        if body.get("errors"):
            raise GraphQLFailure(body["errors"])
        result: dict[str, Any] = body["data"][field]
        return result

    async def ok(self, field: str, token: str | None = ADMIN, **variables: Any) -> dict[str, Any]:
        """The result, which must be the success member."""
        result = await self.call(field, token, **variables)
        assert not result["__typename"].endswith("Error"), result
        return result

    async def grant(
        self, user_id: str, amount: int, source: str = "PROMOTION", token: str = ADMIN, **more: Any
    ) -> dict[str, Any]:
        return await self.ok(
            "grantPoints",
            token,
            input={"userId": user_id, "idempotencyKey": key(), "amount": amount, "source": source, **more},
        )

    async def use(self, user_id: str, amount: int, token: str = SERVICE, **more: Any) -> dict[str, Any]:
        return await self.ok(
            "usePoints", token, input={"userId": user_id, "idempotencyKey": key(), "amount": amount, **more}
        )

    async def set_clock(self, at: str) -> dict[str, Any]:
        return await self.ok("setTestClock", ADMIN, at=at)

    async def balance(self, user_id: str) -> dict[str, Any]:
        return await self.ok("balance", ADMIN, userId=user_id)

    async def history(self, user_id: str, first: int = 100, after: str | None = None) -> dict[str, Any]:
        return await self.ok("history", ADMIN, userId=user_id, first=first, after=after)


START = datetime(2030, 1, 1, tzinfo=UTC)


def day(days: float, hours: float = 0) -> str:
    """A moment of the test clock's calendar: day 0 is 2030-01-01T00:00Z."""
    return (START + timedelta(days=days, hours=hours)).isoformat()


_keys = iter(range(1, 10**9))


def key() -> str:
    return f"key-{next(_keys)}"


async def eventually(read: Callable[[], Awaitable[T]], check: Callable[[T], bool], seconds: float = 5.0) -> T:
    """Read models follow the write model through the outbox relay: poll until ``check`` holds."""
    deadline = time.monotonic() + seconds
    while True:
        value = await read()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {seconds}s")
        await asyncio.sleep(0.02)


def kinds(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["kind"] for edge in connection["edges"]]


def amounts(allocations: Iterable[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(a["grantId"], a["amount"]) for a in allocations]
