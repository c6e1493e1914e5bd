"""Query and Mutation: each resolver checks the role matrix, runs one use case and maps its result or its
refusal to a GraphQL type. Refusals are typed members of each field's result union, for queries as for
mutations; a refused call has changed nothing and returns no data."""

# Strawberry's field and mutation decorators are typed as returning Any when given keyword options.
# mypy: disable-error-code="untyped-decorator"
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, get_args

import strawberry
from graphql import GraphQLError, GraphQLInputObjectType, get_named_type, get_nullable_type, is_leaf_type, is_list_type
from strawberry.extensions import MaskErrors
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.types import ExecutionContext
from strawberry.types.base import StrawberryObjectDefinition

from app.application.authorization import Action
from app.application.commands.expiry import ExpirePoints
from app.application.commands.grants import ActivateGrant, CancelGrant, GrantPoints
from app.application.commands.results import require_id
from app.application.commands.uses import CancelUse, ClawbackPoints, UsePoints
from app.application.queries.history import StatsRequest
from app.domain.errors import DomainError, InvalidInputError
from app.domain.events import Source
from app.graphql import errors as e
from app.graphql import types as t
from app.graphql.context import LedgerInfo, RateLimited
from app.graphql.documents import PreparedDocuments
from app.graphql.execution import LedgerExecutionContext
from app.ports import read_models
from app.ports.errors import UnavailableError

GrantPointsResult = Annotated[
    t.Granted
    | e.InvalidAmountError
    | e.ExpiryOutOfRangeError
    | e.BalanceLimitExceededError
    | e.DuplicateOrderError
    | e.IdempotencyConflictError
    | e.NotFoundError
    | e.ForbiddenError
    | e.InvalidInputError
    | e.BusyError
    | e.RateLimitedError
    | e.ServiceUnavailableError,
    strawberry.union("GrantPointsResult"),
]
ActivateGrantResult = Annotated[
    t.GrantActivated
    | e.GrantNotPendingError
    | e.NotFoundError
    | e.IdempotencyConflictError
    | e.ForbiddenError
    | e.InvalidInputError
    | e.BusyError
    | e.RateLimitedError
    | e.ServiceUnavailableError,
    strawberry.union("ActivateGrantResult"),
]
UsePointsResult = Annotated[
    t.PointsUsed
    | e.InsufficientPointsError
    | e.InvalidAmountError
    | e.IdempotencyConflictError
    | e.ForbiddenError
    | e.InvalidInputError
    | e.BusyError
    | e.RateLimitedError
    | e.ServiceUnavailableError,
    strawberry.union("UsePointsResult"),
]
CancelUseResult = Annotated[
    t.UseCancelled
    | e.CancelExceedsUseError
    | e.InvalidAmountError
    | e.NotFoundError
    | e.IdempotencyConflictError
    | e.ForbiddenError
    | e.InvalidInputError
    | e.BusyError
    | e.RateLimitedError
    | e.ServiceUnavailableError,
    strawberry.union("CancelUseResult"),
]
CancelGrantResult = Annotated[
    t.GrantCancelled
    | e.GrantNotCancellableError
    | e.NotFoundError
    | e.IdempotencyConflictError
    | e.ForbiddenError
    | e.InvalidInputError
    | e.BusyError
    | e.RateLimitedError
    | e.ServiceUnavailableError,
    strawberry.union("CancelGrantResult"),
]
ClawbackPointsResult = Annotated[
    t.PointsClawedBack
    | e.InvalidAmountError
    | e.NotFoundError
    | e.IdempotencyConflictError
    | e.ForbiddenError
    | e.InvalidInputError
    | e.BusyError
    | e.RateLimitedError
    | e.ServiceUnavailableError,
    strawberry.union("ClawbackPointsResult"),
]
ExpirePointsResult = Annotated[
    t.ExpiryRun | e.ForbiddenError | e.InvalidInputError | e.BusyError | e.RateLimitedError | e.ServiceUnavailableError,
    strawberry.union("ExpirePointsResult"),
]
SetTestClockResult = Annotated[
    t.TestClock
    | e.TestClockDisabledError
    | e.ForbiddenError
    | e.InvalidInputError
    | e.RateLimitedError
    | e.ServiceUnavailableError,
    strawberry.union("SetTestClockResult"),
]
BalanceResult = Annotated[
    t.Balance | e.ForbiddenError | e.InvalidInputError | e.RateLimitedError | e.ServiceUnavailableError,
    strawberry.union("BalanceResult"),
]
ExpiringPointsResult = Annotated[
    t.ExpiringPoints | e.ForbiddenError | e.InvalidInputError | e.RateLimitedError | e.ServiceUnavailableError,
    strawberry.union("ExpiringPointsResult"),
]
HistoryResult = Annotated[
    t.EntryConnection | e.ForbiddenError | e.InvalidInputError | e.RateLimitedError | e.ServiceUnavailableError,
    strawberry.union("HistoryResult"),
]
SearchEntriesResult = Annotated[
    t.EntryConnection | e.ForbiddenError | e.InvalidInputError | e.RateLimitedError | e.ServiceUnavailableError,
    strawberry.union("SearchEntriesResult"),
]
PointStatsResult = Annotated[
    t.PointStats | e.ForbiddenError | e.InvalidInputError | e.RateLimitedError | e.ServiceUnavailableError,
    strawberry.union("PointStatsResult"),
]
AccountResult = Annotated[
    t.Account | e.ForbiddenError | e.InvalidInputError | e.RateLimitedError | e.ServiceUnavailableError,
    strawberry.union("AccountResult"),
]

T = TypeVar("T")
log = logging.getLogger(__name__)

AtLeastVersion = Annotated[
    int | None,
    strawberry.argument(
        description="Read your writes: the account version a mutation returned. The answer then reflects at least "
        "that version: from the read model once it has it (waiting briefly, POINTS_READ_WAIT_MS), else from the "
        "write model; its `source` and `version` say which."
    ),
]


def _members(result_type: Any) -> tuple[type, ...]:
    return tuple(get_args(get_args(result_type)[0]))


async def _attempt(result_type: Any, call: Callable[[], Awaitable[T]]) -> T | Any:
    """Runs ``call``; a refusal (rate limit, authorization, validation or a rule) becomes the typed error of the
    union, and so does a server behind a port that is down (ServiceUnavailableError, retryable)."""
    try:
        return await call()
    except DomainError as error:
        return e.error_result(error, _members(result_type))
    except RateLimited as limited:
        return e.rate_limited(limited.retry_after)
    except UnavailableError as error:
        log.warning("%s", error)  # one line: the server's own logs say why
        return e.service_unavailable(str(error))
    except OverflowError:  # a date past the calendar's end that the bounds below did not foresee
        return e.error_result(InvalidInputError("input", "a date is out of range"), _members(result_type))


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
"""Dates accepted at the edge: [EARLIEST, LATEST). Expiries and periods are computed from them (years of them at
most), which near the calendar's ends (year 1 or 9999) overflows."""


def _aware(field: str, value: datetime | None) -> datetime | None:
    if value is not None:
        if value.tzinfo is None:
            raise InvalidInputError(field, f"{field} needs a timezone offset, e.g. 2026-01-01T00:00:00Z")
        if not EARLIEST <= value < LATEST:
            raise InvalidInputError(field, f"{field} must be from {EARLIEST.year} up to, not including, {LATEST.year}")
    return value


def _required_aware(field: str, value: datetime) -> datetime:
    _aware(field, value)
    return value


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Grant a new lot. service: ORDER and PROMOTION; admin: also MANUAL.")
    async def grant_points(self, info: LedgerInfo, input: t.GrantPointsInput) -> GrantPointsResult:
        context = info.context

        async def call() -> t.Granted:
            source = Source(input.source.value)
            context.authorize(Action.GRANT, input.user_id, source)
            result = await context.services.grant.execute(
                GrantPoints(
                    user_id=input.user_id,
                    idempotency_key=input.idempotency_key,
                    amount=input.amount,
                    source=source,
                    order_id=input.order_id,
                    expires_at=_aware("expiresAt", input.expires_at),
                    pending_until=_aware("pendingUntil", input.pending_until),
                    reason=input.reason,
                )
            )
            return t.Granted.of(result)

        return await _attempt(GrantPointsResult, call)

    @strawberry.mutation(description="Make a pending grant spendable now; its expiry counts from now.")
    async def activate_grant(self, info: LedgerInfo, input: t.ActivateGrantInput) -> ActivateGrantResult:
        context = info.context

        async def call() -> t.GrantActivated:
            context.authorize(Action.ACTIVATE, input.user_id)
            result = await context.services.activate.execute(
                ActivateGrant(user_id=input.user_id, idempotency_key=input.idempotency_key, grant_id=input.grant_id)
            )
            return t.GrantActivated.of(result)

        return await _attempt(ActivateGrantResult, call)

    @strawberry.mutation(description="Spend points: MANUAL lots first, then soonest expiry, then oldest grant.")
    async def use_points(self, info: LedgerInfo, input: t.UsePointsInput) -> UsePointsResult:
        context = info.context

        async def call() -> t.PointsUsed:
            context.authorize(Action.USE, input.user_id)
            result = await context.services.use.execute(
                UsePoints(
                    user_id=input.user_id,
                    idempotency_key=input.idempotency_key,
                    amount=input.amount,
                    order_id=input.order_id,
                    reason=input.reason,
                )
            )
            return t.PointsUsed.of(result)

        return await _attempt(UsePointsResult, call)

    @strawberry.mutation(description="Cancel a use in full (amount omitted) or in part, repeatably.")
    async def cancel_use(self, info: LedgerInfo, input: t.CancelUseInput) -> CancelUseResult:
        context = info.context

        async def call() -> t.UseCancelled:
            context.authorize(Action.CANCEL_USE, input.user_id)
            result = await context.services.cancel_use.execute(
                CancelUse(
                    user_id=input.user_id,
                    idempotency_key=input.idempotency_key,
                    use_id=input.use_id,
                    amount=input.amount,
                    reason=input.reason,
                )
            )
            return t.UseCancelled.of(result)

        return await _attempt(CancelUseResult, call)

    @strawberry.mutation(
        description="Take back a fully unused grant, pending or active (not expired or cancelled): a pending grant "
        "can be cancelled, e.g. for an order called off before its purchase is confirmed."
    )
    async def cancel_grant(self, info: LedgerInfo, input: t.CancelGrantInput) -> CancelGrantResult:
        context = info.context

        async def call() -> t.GrantCancelled:
            context.authorize(Action.CANCEL_GRANT, input.user_id)
            result = await context.services.cancel_grant.execute(
                CancelGrant(
                    user_id=input.user_id,
                    idempotency_key=input.idempotency_key,
                    grant_id=input.grant_id,
                    reason=input.reason,
                )
            )
            return t.GrantCancelled.of(result)

        return await _attempt(CancelGrantResult, call)

    @strawberry.mutation(
        description="Refund clawback: take back what an order earned, under the configured clawback policy."
    )
    async def clawback_points(self, info: LedgerInfo, input: t.ClawbackPointsInput) -> ClawbackPointsResult:
        context = info.context

        async def call() -> t.PointsClawedBack:
            context.authorize(Action.CLAWBACK, input.user_id)
            result = await context.services.clawback.execute(
                ClawbackPoints(
                    user_id=input.user_id,
                    idempotency_key=input.idempotency_key,
                    order_id=input.order_id,
                    amount=input.amount,
                    reason=input.reason,
                )
            )
            return t.PointsClawedBack.of(result)

        return await _attempt(ClawbackPointsResult, call)

    @strawberry.mutation(description="Admin: expire every due lot now (the expiry batch, run once).")
    async def expire_points(self, info: LedgerInfo, chunk_size: int = 500) -> ExpirePointsResult:
        context = info.context

        async def call() -> t.ExpiryRun:
            context.authorize(Action.EXPIRE)
            report = await context.services.expire.execute(ExpirePoints(chunk_size=chunk_size))
            return t.ExpiryRun(accounts=report.accounts, lots=report.lots, points=report.points)

        return await _attempt(ExpirePointsResult, call)

    @strawberry.mutation(description="Admin, and only when POINTS_TEST_CLOCK is on: set the service's clock.")
    async def set_test_clock(self, info: LedgerInfo, at: datetime) -> SetTestClockResult:
        context = info.context

        async def call() -> t.TestClock | e.TestClockDisabledError:
            context.authorize(Action.SET_CLOCK)
            clock = context.test_clock
            if clock is None:
                return e.TestClockDisabledError(
                    message="the test clock is off; start the service with POINTS_TEST_CLOCK=true",
                    code="TEST_CLOCK_DISABLED",
                )
            clock.set(_required_aware("at", at))
            return t.TestClock(now=clock.now())

        return await _attempt(SetTestClockResult, call)


@strawberry.type
class Query:
    @strawberry.field(description="Available and pending points now. user: own only; service and admin: any.")
    async def balance(self, info: LedgerInfo, user_id: str, at_least_version: AtLeastVersion = None) -> BalanceResult:
        context = info.context

        async def call() -> t.Balance:
            context.authorize(Action.READ_BALANCE, user_id)
            result = await context.services.balance.execute(require_id("userId", user_id), at_least_version)
            return t.Balance.of(result)

        return await _attempt(BalanceResult, call)

    @strawberry.field(description="Every expiry date within the window with its amount. user: own only; admin.")
    async def expiring_points(
        self, info: LedgerInfo, user_id: str, within_days: int = 30, at_least_version: AtLeastVersion = None
    ) -> ExpiringPointsResult:
        context = info.context

        async def call() -> t.ExpiringPoints:
            context.authorize(Action.READ_EXPIRING, user_id)
            result = await context.services.expiring.execute(
                require_id("userId", user_id), within_days, at_least_version
            )
            return t.ExpiringPoints.of(result)

        return await _attempt(ExpiringPointsResult, call)

    @strawberry.field(description="An account's history, newest first. user: own only; admin.")
    async def history(
        self,
        info: LedgerInfo,
        user_id: str,
        first: int = 20,
        after: str | None = None,
        at_least_version: AtLeastVersion = None,
    ) -> HistoryResult:
        context = info.context

        async def call() -> t.EntryConnection:
            context.authorize(Action.READ_HISTORY, user_id)
            page = await context.services.history.execute(require_id("userId", user_id), first, after, at_least_version)
            return t.EntryConnection.of(page)

        return await _attempt(HistoryResult, call)

    @strawberry.field(description="Admin: entries of every account, newest first, narrowed by the filter.")
    async def search_entries(
        self, info: LedgerInfo, filter: t.EntryFilter | None = None, first: int = 20, after: str | None = None
    ) -> SearchEntriesResult:
        context = info.context
        where = filter or t.EntryFilter()

        async def call() -> t.EntryConnection:
            context.authorize(Action.SEARCH)
            page = await context.services.search.execute(
                read_models.EntryFilter(
                    user_id=where.user_id,
                    kinds=tuple(read_models.EntryKind(k.value) for k in where.kinds or ()),
                    sources=tuple(s.value for s in where.sources or ()),
                    order_id=where.order_id,
                    occurred_from=_aware("from", where.from_),
                    occurred_to=_aware("to", where.to),
                    min_amount=where.min_amount,
                    max_amount=where.max_amount,
                ),
                first,
                after,
            )
            return t.EntryConnection.of(page)

        return await _attempt(SearchEntriesResult, call)

    @strawberry.field(description="Admin: points moved per day or month, breakage and outstanding liability.")
    async def point_stats(
        self,
        info: LedgerInfo,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        interval: t.Interval = t.Interval.DAY,
    ) -> PointStatsResult:
        context = info.context

        async def call() -> t.PointStats:
            context.authorize(Action.STATS)
            stats = await context.services.stats.execute(
                StatsRequest(
                    start=_required_aware("from", from_),
                    end=_required_aware("to", to),
                    interval=read_models.Interval(interval.value),
                )
            )
            return t.PointStats(interval=interval, buckets=[t.StatsBucket.of(b) for b in stats.buckets])

        return await _attempt(PointStatsResult, call)

    @strawberry.field(description="Admin: every lot with its remaining amount and every use with its allocations.")
    async def account(self, info: LedgerInfo, user_id: str) -> AccountResult:
        context = info.context

        async def call() -> t.Account:
            context.authorize(Action.READ_ACCOUNT, user_id)
            return t.Account.of(await context.services.account.execute(require_id("userId", user_id)))

        return await _attempt(AccountResult, call)


MASKED = "internal error"


def _unexpected(error: GraphQLError) -> bool:
    """Mask what the code did not mean to say (a bug's message); keep GraphQL's own validation messages."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class LedgerSchema(strawberry.Schema):
    """Strawberry's schema, logging as a service should: a request the client got wrong (syntax, validation,
    variables) makes one line without a traceback, at INFO; an error the code did not mean to raise (a bug, masked
    for the client) is logged with its traceback, as Strawberry does."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        client = [error for error in errors if not _unexpected(error)]
        if client:
            more = f" (and {len(client) - 1} more)" if len(client) > 1 else ""
            log.info("request refused: %s%s", client[0].message, more)
        super().process_errors([error for error in errors if _unexpected(error)], execution_context)


class _MaskErrors(MaskErrors):
    """Strawberry's MaskErrors, asking a result for its errors directly: its own check is an isinstance of a
    runtime-checkable Protocol, which Python 3.11 answers by listing the protocol's members again (some 60 us, a
    tenth of a command's time at the edge)."""

    def _process_result(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]  # has errors, as checked


class _NameConverter(NameConverter):
    """Strawberry's names, each worked out once: it converts every input field's name on every request."""

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, str] = {}

    def apply_naming_config(self, name: str) -> str:
        converted = self._names.get(name)
        if converted is None:
            converted = self._names[name] = super().apply_naming_config(name)
        return converted


schema = LedgerSchema(
    query=Query,
    mutation=Mutation,
    config=StrawberryConfig(name_converter=_NameConverter()),
    execution_context_class=LedgerExecutionContext,
    extensions=[
        # factories, not instances: an extension keeps per-operation state, so each request gets its own
        PreparedDocuments,  # parsing and validation once per query text, with the depth, token and alias limits
        lambda: _MaskErrors(should_mask_error=_unexpected, error_message=MASKED),
    ],
)


def _build_inputs_directly(schema: strawberry.Schema) -> None:
    """Input objects whose fields are all scalars, enums or lists of them are built straight from graphql-core's
    coerced values (which are already the Python values: strings, ints, datetimes, enum members), through the
    ``from_input`` hook of their definitions. Strawberry's own conversion works out each field's type and name again
    on every request, which cost a tenth of a command. Any other input is left to Strawberry."""
    for name, graphql_type in schema._schema.type_map.items():
        definition = schema.get_type_by_name(name)
        if not isinstance(graphql_type, GraphQLInputObjectType) or not isinstance(
            definition, StrawberryObjectDefinition
        ):
            continue
        if definition.from_input is not None:
            continue
        fields: list[tuple[str, str, bool]] = []
        for field in definition.fields:
            graphql_name = schema.config.name_converter.from_field(field)
            field_type = graphql_type.fields[graphql_name].type
            if not is_leaf_type(get_named_type(field_type)):
                break
            fields.append((graphql_name, field.python_name, is_list_type(get_nullable_type(field_type))))
        else:
            definition.from_input = _input_builder(fields)


def _input_builder(fields: list[tuple[str, str, bool]]) -> Callable[[type, Mapping[str, Any], Any], Any]:
    def build(cls: type, value: Mapping[str, Any], context: Any) -> Any:
        kwargs = {}
        for graphql_name, python_name, is_list in fields:
            if graphql_name in value:
                given = value[graphql_name]
                # a list is copied: graphql-core hands every request the same default
                kwargs[python_name] = list(given) if is_list and given is not None else given
        return cls(**kwargs)

    return build


_build_inputs_directly(schema)
