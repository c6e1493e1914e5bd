from datetime import timedelta

from app.application.commands.grants import GrantPoints
from app.application.commands.uses import CancelUse, UsePoints
from app.domain.events import Allocation, Source
from tests.ledger import START, make_ledger


async def test_the_worked_example_of_the_domain_reference() -> None:
    ledger = make_ledger()
    s = ledger.services
    a = await s.grant.execute(GrantPoints("u1", "g-a", 1_000, Source.MANUAL, expires_at=START + timedelta(days=30)))
    b = await s.grant.execute(
        GrantPoints("u1", "g-b", 500, Source.ORDER, order_id="o-1", expires_at=START + timedelta(days=10))
    )
    used = await s.use.execute(UsePoints("u1", "use-1", 1_200, order_id="o-2"))
    assert used.allocations == (Allocation(a.grant_id, 1_000), Allocation(b.grant_id, 200))

    ledger.advance(days=20)
    cancel = await s.cancel_use.execute(CancelUse("u1", "cancel-1", used.use_id, amount=1_100))
    assert cancel.restored == (Allocation(a.grant_id, 1_000),)
    (reissue,) = cancel.reissued
    assert (reissue.from_grant_id, reissue.amount, reissue.manual) == (b.grant_id, 100, False)
    assert reissue.expires_at == ledger.clock.now() + timedelta(days=365)
    assert cancel.account.balance == 1_100

    await ledger.project()
    balance = await s.balance.execute("u1")
    assert (balance.available, balance.pending, balance.version) == (1_100, 0, 4)
