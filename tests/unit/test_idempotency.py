"""Idempotency (rule 9): a retry with the same key returns the first result; the same key with another command is
refused."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from app.application.commands.grants import ActivateGrant, CancelGrant, GrantPoints
from app.application.commands.runner import fingerprint
from app.application.commands.uses import CancelUse, ClawbackPoints, UsePoints
from app.application.errors import IdempotencyConflictError
from app.domain.errors import InsufficientPointsError
from app.domain.events import Source
from tests.ledger import Ledger
from tests.unit.support import Driver


async def test_a_retried_grant_returns_the_first_result_without_a_second_grant(ledger: Ledger) -> None:
    request = GrantPoints("u1", "grant-1", 100, Source.PROMOTION)
    first = await ledger.services.grant.execute(request)
    ledger.advance(minutes=5)
    again = await ledger.services.grant.execute(request)
    assert again == first
    detail = await ledger.services.account.execute("u1")
    assert (len(detail.lots), detail.available, detail.version) == (1, 100, 1)


async def test_a_retried_use_returns_the_first_result_without_a_second_use(ledger: Ledger) -> None:
    await Driver(ledger).grant(100)
    request = UsePoints("u1", "use-1", 30, order_id="o-1")
    first = await ledger.services.use.execute(request)
    again = await ledger.services.use.execute(request)
    assert again == first
    assert again.account.balance == 70
    detail = await ledger.services.account.execute("u1")
    assert (len(detail.uses), detail.available) == (1, 70)


async def test_a_retried_cancel_returns_the_first_result_even_after_the_state_moved_on(ledger: Ledger) -> None:
    u1 = Driver(ledger)
    await u1.grant(100)
    used = await u1.use(100)
    request = CancelUse("u1", "cancel-1", used.use_id, amount=40)
    first = await ledger.services.cancel_use.execute(request)
    await u1.use(40)
    again = await ledger.services.cancel_use.execute(request)
    assert again == first
    assert await u1.available() == 0


async def test_every_command_answers_a_retry_with_its_first_result(ledger: Ledger) -> None:
    s = ledger.services
    pending = await s.grant.execute(
        GrantPoints("u1", "k1", 100, Source.ORDER, order_id="o-1", pending_until=ledger.clock.now() + timedelta(1))
    )
    await s.grant.execute(GrantPoints("u1", "k2", 100, Source.MANUAL))
    other = await s.grant.execute(GrantPoints("u1", "k2b", 100, Source.PROMOTION))
    requests = [
        (s.activate, ActivateGrant("u1", "k3", pending.grant_id)),
        (s.use, UsePoints("u1", "k4", 10)),
        (s.clawback, ClawbackPoints("u1", "k5", "o-1", 5)),
        (s.cancel_grant, CancelGrant("u1", "k6", other.grant_id, reason="typo")),
    ]
    for use_case, request in requests:
        first = await use_case.execute(request)  # type: ignore[attr-defined]
        version = (await s.account.execute("u1")).version
        assert await use_case.execute(request) == first  # type: ignore[attr-defined]
        assert (await s.account.execute("u1")).version == version


async def test_the_same_key_with_a_different_command_is_refused(ledger: Ledger) -> None:
    await ledger.services.grant.execute(GrantPoints("u1", "k", 100, Source.PROMOTION))
    with pytest.raises(IdempotencyConflictError) as refused:
        await ledger.services.grant.execute(GrantPoints("u1", "k", 101, Source.PROMOTION))
    assert refused.value.key == "k"
    with pytest.raises(IdempotencyConflictError):
        await ledger.services.use.execute(UsePoints("u1", "k", 100))
    detail = await ledger.services.account.execute("u1")
    assert (len(detail.lots), detail.uses, detail.available) == (1, [], 100)


async def test_a_key_belongs_to_one_account(ledger: Ledger) -> None:
    first = await ledger.services.grant.execute(GrantPoints("u1", "k", 100, Source.PROMOTION))
    second = await ledger.services.grant.execute(GrantPoints("u2", "k", 100, Source.PROMOTION))
    assert first.grant_id != second.grant_id


async def test_a_refused_command_does_not_take_its_key(ledger: Ledger) -> None:
    with pytest.raises(InsufficientPointsError):
        await ledger.services.use.execute(UsePoints("u1", "k", 10))
    await Driver(ledger).grant(10)
    used = await ledger.services.use.execute(UsePoints("u1", "k", 10))
    assert used.account.balance == 0


async def test_ten_concurrent_identical_commands_have_one_effect_and_ten_identical_answers(
    ledger: Ledger,
) -> None:
    await Driver(ledger).grant(1_000)
    request = UsePoints("u1", "once", 7, order_id="o-1")
    answers = await asyncio.gather(*(ledger.services.use.execute(request) for _ in range(10)))
    assert len(set(answers)) == 1
    assert answers[0].account.balance == 993
    detail = await ledger.services.account.execute("u1")
    assert (len(detail.uses), detail.available, detail.version) == (1, 993, 2)


async def test_ten_concurrent_identical_grants_make_one_lot(ledger: Ledger) -> None:
    request = GrantPoints("u1", "once", 100, Source.ORDER, order_id="o-1")
    answers = await asyncio.gather(*(ledger.services.grant.execute(request) for _ in range(10)))
    assert len(set(answers)) == 1
    detail = await ledger.services.account.execute("u1")
    assert (len(detail.lots), detail.available) == (1, 100)


def test_a_commands_fingerprint_stays_what_stored_keys_were_written_with() -> None:
    """Keys stored by an earlier release must still match a retry: the fingerprint is pinned, not just consistent."""
    grant = GrantPoints("alice", "k-1", 100, Source.ORDER, order_id="o-1")

    assert fingerprint(grant) == "ec4198073073ddc3227cf1bd33c56b8790b0e1d2c0484954fe52319c0f133200"
    assert fingerprint(replace(grant, idempotency_key="k-2")) == fingerprint(grant)
    assert fingerprint(replace(grant, amount=101)) != fingerprint(grant)
