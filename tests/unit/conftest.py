from __future__ import annotations

import pytest

from tests.ledger import Ledger, make_ledger
from tests.unit.support import Driver


@pytest.fixture
def ledger() -> Ledger:
    return make_ledger()


@pytest.fixture
def u1(ledger: Ledger) -> Driver:
    return Driver(ledger, "u1")
