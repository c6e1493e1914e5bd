"""The role matrix through the API: who may call what, and that a refusal is typed, says nothing and changes
nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from app.graphql import auth
from tests.e2e.client import ADMIN, SERVICE, Api, day, eventually, key, token, user

ADMIN_ONLY = {"admin"}
WRITERS = {"admin", "service"}


@dataclass(frozen=True)
class World:
    """u1's account as each caller finds it: a manual lot, a pending lot, an order's lot, a spare lot, a use."""

    pending_grant: str
    spare_grant: str
    use_id: str


async def make_world(api: Api) -> World:
    await api.set_clock(day(0))
    await api.grant("u1", 1000, "MANUAL")
    pending = await api.grant("u1", 300, "PROMOTION", pendingUntil=day(10))
    await api.grant("u1", 500, "ORDER", orderId="o-1")
    spare = await api.grant("u1", 50, "PROMOTION", expiresAt=day(200))
    used = await api.use("u1", 100)
    return World(pending["grantId"], spare["grantId"], used["useId"])


def command(**fields: Any) -> dict[str, Any]:
    return {"input": {"userId": "u1", "idempotencyKey": key(), **fields}}


# operation -> (field, variables, success type, roles allowed)
OPERATIONS: dict[str, tuple[str, Any, str, set[str]]] = {
    "grant ORDER points": (
        "grantPoints",
        lambda w: command(amount=10, source="ORDER", orderId="o-new"),
        "Granted",
        WRITERS,
    ),
    "grant PROMOTION points": (
        "grantPoints",
        lambda w: command(amount=10, source="PROMOTION"),
        "Granted",
        WRITERS,
    ),
    "grant MANUAL points": ("grantPoints", lambda w: command(amount=10, source="MANUAL"), "Granted", ADMIN_ONLY),
    "activate a grant": ("activateGrant", lambda w: command(grantId=w.pending_grant), "GrantActivated", WRITERS),
    "use points": ("usePoints", lambda w: command(amount=10), "PointsUsed", WRITERS),
    "cancel a use": ("cancelUse", lambda w: command(useId=w.use_id, amount=10), "UseCancelled", WRITERS),
    "cancel a grant": ("cancelGrant", lambda w: command(grantId=w.spare_grant), "GrantCancelled", WRITERS),
    "claw back a refund": ("clawbackPoints", lambda w: command(orderId="o-1", amount=10), "PointsClawedBack", WRITERS),
    "run the expiry batch": ("expirePoints", lambda w: {}, "ExpiryRun", ADMIN_ONLY),
    "set the test clock": ("setTestClock", lambda w: {"at": day(400)}, "TestClock", ADMIN_ONLY),
    "read own balance": ("balance", lambda w: {"userId": "u1"}, "Balance", {"admin", "service", "user"}),
    "read another's balance": ("balance", lambda w: {"userId": "u2"}, "Balance", WRITERS),
    "read own expiring points": (
        "expiringPoints",
        lambda w: {"userId": "u1", "withinDays": 30},
        "ExpiringPoints",
        {"admin", "user"},
    ),
    "read another's expiring points": (
        "expiringPoints",
        lambda w: {"userId": "u2", "withinDays": 30},
        "ExpiringPoints",
        ADMIN_ONLY,
    ),
    "read own history": ("history", lambda w: {"userId": "u1", "first": 10}, "EntryConnection", {"admin", "user"}),
    "read another's history": ("history", lambda w: {"userId": "u2", "first": 10}, "EntryConnection", ADMIN_ONLY),
    "search entries": (
        "searchEntries",
        lambda w: {"filter": {"userId": "u1"}, "first": 10},
        "EntryConnection",
        ADMIN_ONLY,
    ),
    "read statistics": (
        "pointStats",
        lambda w: {"from": day(0), "to": day(2), "interval": "DAY"},
        "PointStats",
        ADMIN_ONLY,
    ),
    "read own account detail": ("account", lambda w: {"userId": "u1"}, "Account", ADMIN_ONLY),
    "read another's account detail": ("account", lambda w: {"userId": "u2"}, "Account", ADMIN_ONLY),
}

CALLERS: dict[str, tuple[str | None, str]] = {
    # caller -> (token, role in the matrix; "nobody" may do nothing)
    "an admin": (ADMIN, "admin"),
    "an order service": (SERVICE, "service"),
    "user u1": (user("u1"), "user"),
    "no token": (None, "nobody"),
    "a token that is not a JWT": ("not-a-jwt", "nobody"),
    "an admin token signed with another secret": (token("ops", "admin", secret="x" * 40), "nobody"),
    "an expired admin token": (token("ops", "admin", hours=-1), "nobody"),
    "a token without roles": (token("ops"), "nobody"),
    "a token with an unknown role": (token("ops", "root"), "nobody"),
}


async def ledger_state(api: Api) -> tuple[Any, ...]:
    """Everything a refused call could have changed: u1's account in the write model and every history entry,
    read once the read models have caught up with the write model (every event of u1 here makes an entry)."""
    account = await api.ok("account", ADMIN, userId="u1")
    await eventually(
        lambda: api.history("u1", first=1),
        lambda h: bool(h["edges"]) and h["edges"][0]["node"]["version"] == account["version"],
    )
    await eventually(  # the search index may follow the balance view by a moment (the stack)
        lambda: api.ok("searchEntries", ADMIN, filter={"userId": "u1"}, first=100),
        lambda page: max((e["node"]["version"] for e in page["edges"]), default=0) == account["version"],
    )
    entries = await api.ok("searchEntries", ADMIN, first=100)
    return account, [edge["node"]["id"] for edge in entries["edges"]]


@pytest.mark.parametrize("caller", CALLERS)
async def test_each_caller_may_do_exactly_what_its_role_allows(api: Api, caller: str) -> None:
    world = await make_world(api)
    bearer, role = CALLERS[caller]
    for operation, (field, variables, success, allowed) in OPERATIONS.items():
        before = await ledger_state(api)
        result = await api.call(field, bearer, **variables(world))
        if role in allowed:
            assert result["__typename"] == success, (caller, operation, result)
            if field == "setTestClock":
                await api.set_clock(day(0))
            continue
        assert result["__typename"] == "ForbiddenError", (caller, operation, result)
        assert set(result) == {"__typename", "message", "code"}, "a refusal carries no data"
        assert result["code"] == "FORBIDDEN"
        if field not in ("balance", "expiringPoints", "history", "searchEntries", "pointStats", "account"):
            assert await ledger_state(api) == before, f"refused {operation} by {caller} changed the ledger"


async def test_a_refused_command_leaves_nothing_behind_not_even_its_idempotency_key(api: Api) -> None:
    await api.set_clock(day(0))
    refused = await api.call(
        "grantPoints",
        SERVICE,
        input={"userId": "u1", "idempotencyKey": "k-1", "amount": 100, "source": "MANUAL"},
    )
    assert refused["__typename"] == "ForbiddenError"
    assert "MANUAL" in refused["message"]
    refused_clock = await api.call("setTestClock", SERVICE, at=day(400))
    assert refused_clock["__typename"] == "ForbiddenError"

    granted = await api.ok(
        "grantPoints", ADMIN, input={"userId": "u1", "idempotencyKey": "k-1", "amount": 100, "source": "MANUAL"}
    )
    assert granted["version"] == 1, "the refused grant recorded no event"
    assert granted["expiresAt"].startswith("2031-01-01"), "the clock did not move to day 400"


async def test_a_refusal_explains_why_the_token_was_not_accepted(api: Api) -> None:
    missing = await api.call("balance", None, userId="u1")
    expired = await api.call("balance", token("u1", "user", hours=-1), userId="u1")
    forged = await api.call("balance", token("u1", "user", secret="y" * 40), userId="u1")
    assert "authentication required" in missing["message"]
    assert "expired" in expired["message"]
    assert "not valid" in forged["message"]


async def test_a_token_accepted_before_is_refused_once_it_has_expired(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verified tokens are kept between requests; their expiry is still checked at every use."""
    bearer = token("u1", "user", hours=1)
    assert (await api.call("balance", bearer, userId="u1"))["__typename"] == "Balance"
    assert (await api.call("balance", bearer, userId="u1"))["__typename"] == "Balance"
    monkeypatch.setattr(auth, "wall_clock", lambda: time.time() + 3601)
    expired = await api.call("balance", bearer, userId="u1")
    assert (expired["__typename"], expired["code"]) == ("ForbiddenError", "FORBIDDEN")
    assert "expired" in expired["message"]


async def test_a_non_bearer_authorization_header_is_refused(api: Api) -> None:
    response = await api.http.post(
        "/graphql",
        json={"query": '{ balance(userId: "u1") { __typename ... on Error { message } } }'},
        headers={"Authorization": "Basic b3BzOnNlY3JldA=="},
    )
    assert response.json()["data"]["balance"]["__typename"] == "ForbiddenError"
