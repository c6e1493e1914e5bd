"""Snapshots: an account loads from its latest snapshot plus the events after it, to the same state as from all of
its events."""

from __future__ import annotations

from datetime import timedelta

from app.domain.account import Account, AccountState
from app.domain.events import Source
from app.domain.policy import PointPolicy
from app.domain.snapshot import decode_state, encode_state
from tests.ledger import START, Ledger, make_ledger
from tests.unit.support import Driver

DAY = timedelta(days=1)


async def drive_to_version(u1: Driver, target: int) -> None:
    """A mix of every kind of event, then one-event commands until the account is at ``target``."""
    pending = await u1.grant(500, Source.ORDER, order_id="o-1", pending_for=3 * DAY)
    await u1.grant(300, Source.MANUAL, expires_in=20 * DAY)
    short = [await u1.grant(40, expires_in=(2 + n) * DAY) for n in range(4)]
    await u1.activate(pending.grant_id)
    early = await u1.use(350)
    await u1.cancel_use(early.use_id, 100)
    await u1.clawback("o-1", 50)
    await u1.cancel_grant(short[3].grant_id)
    u1.ledger.advance(days=10)
    await u1.expire()  # several lots in one commit
    await u1.cancel_use(early.use_id)  # gives back to lots that lapsed: reissues
    version = (await u1.detail()).version
    n = 0
    while version < target:
        if n % 3 == 2:
            await u1.grant(7, Source.PROMOTION)
        else:
            await u1.use(1)
        version += 1
        n += 1
    assert (await u1.detail()).version == target


async def full_replay(ledger: Ledger, user_id: str) -> Account:
    events = [r.event for _, r in await ledger.store.read_all(0, 10_000) if r.user_id == user_id]
    return Account.rebuild(user_id, events)


async def test_an_account_with_snapshots_loads_to_the_same_state_as_from_all_its_events() -> None:
    ledger = make_ledger(snapshot_every=10)
    u1 = Driver(ledger)
    await drive_to_version(u1, 95)

    loaded = await ledger.container.commands().load("u1")
    replayed = await full_replay(ledger, "u1")
    assert loaded.version == replayed.version == 95
    assert loaded.state == replayed.state
    now = ledger.clock.now()
    assert (loaded.available(now), loaded.pending(now)) == (replayed.available(now), replayed.pending(now))


async def test_loading_a_snapshotted_account_returns_only_the_tail_after_the_snapshot() -> None:
    ledger = make_ledger(snapshot_every=10)
    await drive_to_version(Driver(ledger), 95)
    stream = await ledger.store.load("u1")
    assert stream.snapshot is not None
    assert stream.snapshot.version == 90
    assert [r.version for r in stream.events] == [91, 92, 93, 94, 95]


async def test_an_account_without_snapshots_loads_every_event() -> None:
    ledger = make_ledger(snapshot_every=1_000)
    await drive_to_version(Driver(ledger), 95)
    stream = await ledger.store.load("u1")
    assert stream.snapshot is None
    assert len(stream.events) == 95


async def test_commands_decide_alike_on_an_account_loaded_from_a_snapshot() -> None:
    with_snapshots, without = make_ledger(snapshot_every=10), make_ledger(snapshot_every=1_000)
    answers = []
    for ledger in (with_snapshots, without):
        u1 = Driver(ledger)
        await drive_to_version(u1, 95)
        used = await u1.use(200)
        ledger.advance(days=30)
        cancel = await u1.cancel_use(used.use_id)
        answers.append(
            (
                [a.amount for a in used.allocations],
                [a.amount for a in cancel.restored],
                [r.amount for r in cancel.reissued],
                cancel.account,
            )
        )
    assert answers[0] == answers[1]


def test_a_snapshot_of_an_account_loaded_from_a_snapshot_keeps_every_use_without_decoding_them() -> None:
    def spend(account: Account, first: int, count: int) -> None:
        for n in range(first, first + count):
            account.use(use_id=f"use-{n}", amount=10, now=START)
        account.mark_committed()

    plain = Account.open("u1")
    plain.grant(grant_id="g", amount=1_000, source=Source.PROMOTION, now=START, policy=PointPolicy())
    spend(plain, 0, 5)
    loaded = Account(decode_state(encode_state(plain.state)))
    spend(plain, 5, 3)
    spend(loaded, 5, 3)
    encoded, fresh = loaded.state.uses.split()
    assert encoded is not None and sorted(fresh) == ["use-5", "use-6", "use-7"]

    again: AccountState = decode_state(encode_state(loaded.state))

    assert again == plain.state
    assert [u.use_id for u in Account(again).uses] == [f"use-{n}" for n in range(8)]
