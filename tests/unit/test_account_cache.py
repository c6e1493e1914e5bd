"""The command runner's cache of committed accounts."""

from __future__ import annotations

from app.application.commands.runner import AccountCache
from app.domain.account import Account
from app.domain.events import Source
from app.domain.policy import PointPolicy
from tests.ledger import START


def account_with(user_id: str, lots: int) -> Account:
    account = Account.open(user_id)
    for n in range(lots):
        account.grant(grant_id=f"g{n}", amount=100, source=Source.PROMOTION, now=START, policy=PointPolicy())
        account.use(use_id=f"use{n}", amount=10, now=START)
    account.mark_committed()
    return account


def test_a_small_account_is_kept_as_its_snapshot_bytes_and_comes_back_equal() -> None:
    cache = AccountCache(capacity=10, compact_up_to=64)
    account = account_with("u1", 3)
    cache.put("u1", account)

    assert isinstance(cache._accounts["u1"], bytes)
    back = cache.take("u1")
    assert back is not None and back.state == account.state and back.available(START) == 270
    assert cache.take("u1") is None  # taken out while a command works on it


def test_a_long_account_stays_as_objects() -> None:
    cache = AccountCache(capacity=10, compact_up_to=64)
    account = account_with("u1", 40)
    cache.put("u1", account)
    assert cache.take("u1") is account


def test_the_least_recently_used_account_is_dropped_first() -> None:
    cache = AccountCache(capacity=2)
    for user in ("u1", "u2", "u3"):
        cache.put(user, account_with(user, 1))
    assert (cache.take("u1"), cache.take("u2") is not None, cache.take("u3") is not None) == (None, True, True)
