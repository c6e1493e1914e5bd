"""Every typed error the API can return, each reached through HTTP, each leaving the account as it was."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.ports.event_store import Commit, ConcurrencyError
from tests.e2e.client import ADMIN, SERVICE, Api, day, key, user


def command(user_id: str = "u1", **fields: Any) -> dict[str, Any]:
    return {"input": {"userId": user_id, "idempotencyKey": key(), **fields}}


async def version_of(api: Api, user_id: str = "u1") -> int:
    account = await api.ok("account", ADMIN, userId=user_id)
    return int(account["version"])


async def test_using_more_than_the_balance_is_refused_with_the_available_amount(api: Api) -> None:
    await api.grant("u1", 700)
    error = await api.call("usePoints", SERVICE, **command(amount=701))
    assert error["__typename"] == "InsufficientPointsError"
    assert (error["requested"], error["available"], error["code"]) == (701, 700, "INSUFFICIENT_POINTS")
    assert await version_of(api) == 1


@pytest.mark.parametrize(
    ("field", "fields", "bounds"),
    [
        ("grantPoints", {"amount": 0, "source": "PROMOTION"}, (0, 1, 100_000)),
        ("grantPoints", {"amount": 100_001, "source": "PROMOTION"}, (100_001, 1, 100_000)),
        ("usePoints", {"amount": -5}, (-5, 1, None)),
    ],
)
async def test_an_amount_outside_the_policy_is_refused_with_its_bounds(
    api: Api, field: str, fields: dict[str, Any], bounds: tuple[int, int, int | None]
) -> None:
    error = await api.call(field, ADMIN, **command(**fields))
    assert error["__typename"] == "InvalidAmountError"
    assert (error["amount"], error["minimum"], error["maximum"]) == bounds


async def test_cancelling_zero_points_of_a_use_is_an_invalid_amount(api: Api) -> None:
    await api.grant("u1", 100)
    used = await api.use("u1", 40)
    error = await api.call("cancelUse", SERVICE, **command(useId=used["useId"], amount=0))
    assert error["__typename"] == "InvalidAmountError"
    assert (error["minimum"], error["maximum"]) == (1, 40)


@pytest.mark.parametrize("expires_at", [day(0, hours=12), day(5 * 365 + 1)])
async def test_an_expiry_too_soon_or_too_far_is_refused_with_the_allowed_range(api: Api, expires_at: str) -> None:
    await api.set_clock(day(0))
    error = await api.call("grantPoints", ADMIN, **command(amount=10, source="PROMOTION", expiresAt=expires_at))
    assert error["__typename"] == "ExpiryOutOfRangeError"
    assert (error["minDays"], error["maxDaysExclusive"]) == (1, 1825)


async def test_a_grant_past_the_holding_cap_is_refused_with_the_limit(api: Api) -> None:
    await api.grant("u1", 100_000)
    await api.grant("u1", 50_000)
    error = await api.call("grantPoints", SERVICE, **command(amount=1, source="PROMOTION"))
    assert error["__typename"] == "BalanceLimitExceededError"
    assert (error["limit"], error["balance"], error["requested"]) == (150_000, 150_000, 1)


async def test_an_order_earns_only_once(api: Api) -> None:
    first = await api.grant("u1", 100, "ORDER", SERVICE, orderId="o-9")
    error = await api.call("grantPoints", SERVICE, **command(amount=100, source="ORDER", orderId="o-9"))
    assert error["__typename"] == "DuplicateOrderError"
    assert (error["orderId"], error["grantId"]) == ("o-9", first["grantId"])


async def test_a_retry_gets_the_first_answer_and_another_command_with_its_key_is_refused(api: Api) -> None:
    grant = {"userId": "u1", "idempotencyKey": "same-key", "amount": 100, "source": "PROMOTION"}
    first = await api.ok("grantPoints", SERVICE, input=grant)
    again = await api.ok("grantPoints", SERVICE, input=grant)
    assert again == first
    error = await api.call("grantPoints", SERVICE, input={**grant, "amount": 101})
    assert error["__typename"] == "IdempotencyConflictError"
    assert error["idempotencyKey"] == "same-key"
    assert await version_of(api) == 1


async def test_a_grant_that_was_partly_used_cannot_be_cancelled(api: Api) -> None:
    granted = await api.grant("u1", 100)
    await api.use("u1", 1)
    error = await api.call("cancelGrant", SERVICE, **command(grantId=granted["grantId"]))
    assert error["__typename"] == "GrantNotCancellableError"
    assert error["grantId"] == granted["grantId"]
    assert "used" in error["reason"]


async def test_only_a_pending_grant_can_be_activated(api: Api) -> None:
    granted = await api.grant("u1", 100)
    error = await api.call("activateGrant", SERVICE, **command(grantId=granted["grantId"]))
    assert error["__typename"] == "GrantNotPendingError"
    assert (error["grantId"], error["status"]) == (granted["grantId"], "ACTIVE")


async def test_a_cancel_never_exceeds_what_is_left_of_the_use(api: Api) -> None:
    await api.grant("u1", 100)
    used = await api.use("u1", 60)
    await api.ok("cancelUse", SERVICE, **command(useId=used["useId"], amount=50))
    error = await api.call("cancelUse", SERVICE, **command(useId=used["useId"], amount=11))
    assert error["__typename"] == "CancelExceedsUseError"
    assert (error["useId"], error["requested"], error["cancellable"]) == (used["useId"], 11, 10)


@pytest.mark.parametrize(
    ("field", "fields", "kind"),
    [
        ("cancelUse", {"useId": "no-such-use"}, "use"),
        ("cancelGrant", {"grantId": "no-such-grant"}, "grant"),
        ("activateGrant", {"grantId": "no-such-grant"}, "grant"),
        ("clawbackPoints", {"orderId": "no-such-order", "amount": 5}, "order grant"),
    ],
)
async def test_an_unknown_use_grant_or_order_is_not_found(
    api: Api, field: str, fields: dict[str, Any], kind: str
) -> None:
    await api.grant("u1", 100)
    error = await api.call(field, SERVICE, **command(**fields))
    assert error["__typename"] == "NotFoundError"
    assert error["kind"] == kind
    assert error["id"] in fields.values()


async def test_a_user_may_not_spend_its_own_points_through_the_api(api: Api) -> None:
    await api.grant("u1", 100)
    error = await api.call("usePoints", user("u1"), **command(amount=1))
    assert error["__typename"] == "ForbiddenError"
    assert await version_of(api) == 1


@pytest.mark.parametrize(
    ("field", "variables", "bad"),
    [
        ("grantPoints", command(amount=10, source="ORDER"), "orderId"),
        ("grantPoints", command(user_id="", amount=10, source="PROMOTION"), "userId"),
        ("grantPoints", command(amount=10, source="PROMOTION", expiresAt="2030-06-01T00:00:00"), "expiresAt"),
        ("usePoints", command(amount=1, orderId="x" * 129), "orderId"),
        ("expirePoints", {}, None),
        ("history", {"userId": "u1", "first": 101}, "first"),
        ("history", {"userId": "u1", "first": 10, "after": "not a cursor"}, "after"),
        ("searchEntries", {"filter": {"minAmount": 10, "maxAmount": 5}, "first": 10}, "minAmount"),
        ("expiringPoints", {"userId": "u1", "withinDays": 0}, "withinDays"),
        ("pointStats", {"from": day(2), "to": day(1), "interval": "DAY"}, "to"),
        ("pointStats", {"from": day(0), "to": day(3650), "interval": "DAY"}, "to"),
        ("setTestClock", {"at": "2030-06-01T00:00:00"}, "at"),
    ],
)
async def test_malformed_arguments_are_refused_naming_the_field(
    api: Api, field: str, variables: dict[str, Any], bad: str | None
) -> None:
    if bad is None:  # expirePoints has one argument of its own
        result = await api.post(
            "mutation { expirePoints(chunkSize: 0) { ... on InvalidInputError { field } } }", token=ADMIN
        )
        assert result["data"]["expirePoints"] == {"field": "chunkSize"}
        return
    error = await api.call(field, ADMIN, **variables)
    assert error["__typename"] == "InvalidInputError", error
    assert error["field"] == bad


async def test_an_account_that_stays_busy_is_refused_as_busy_and_nothing_is_written(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await api.grant("u1", 100)
    assert api.container is not None
    store = api.container.event_store()

    async def always_conflicting(commit: Commit) -> None:
        raise ConcurrencyError("another process wrote first")

    monkeypatch.setattr(store, "append", always_conflicting)
    error = await api.call("usePoints", SERVICE, **command(amount=1))
    monkeypatch.undo()
    assert error["__typename"] == "BusyError"
    assert error["userId"] == "u1"
    assert await version_of(api) == 1


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON; charset=utf-8"])
async def test_an_unexpected_failure_is_masked_and_says_nothing_of_its_cause(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, content_type: str
) -> None:
    """The failure itself is logged, with its traceback."""
    assert api.container is not None
    store = api.container.event_store()

    async def broken(commit: Commit) -> None:
        raise RuntimeError("disk /secret/path is on fire")

    monkeypatch.setattr(store, "append", broken)
    query = (
        'mutation { grantPoints(input: {userId: "u1", idempotencyKey: "k", amount: 1, source: PROMOTION})'
        " { __typename } }"
    )
    response = await api.http.post(
        "/graphql",
        content=json.dumps({"query": query}),
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": content_type},
    )
    body = response.json()
    assert body["data"] is None
    assert [e["message"] for e in body["errors"]] == ["internal error"]
    assert body["errors"][0]["path"] == ["grantPoints"]
    assert "secret" not in str(body)
    assert "disk /secret/path is on fire" in caplog.text
