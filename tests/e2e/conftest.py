from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.domain.policy import PointPolicy
from app.entrypoints.server import create_app
from app.settings import Settings
from tests.e2e.client import SECRET, Api
from tests.servers import fresh_ledger, stack_settings

POLICY = PointPolicy(max_grant=100_000, max_balance=150_000)


def e2e_settings(tmp_path: Path, test_clock: bool = True) -> Settings:
    """The embedded profile on a fresh SQLite file, with the test clock on."""
    return Settings(
        profile="embedded",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'points.db'}",
        jwt_secret=SECRET,
        test_clock=test_clock,
        policy=POLICY,
    )


async def serve(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger.test") as http:
            yield Api(http, app.state.container)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


async def serve_stack(test_clock: bool = True) -> AsyncIterator[Api]:
    """The service on the stack, on MariaDB emptied for the test, under a ledger of its own (its name on the events
    topic, its Redis keys, its OpenSearch alias), with the ledger's two projectors running beside it."""
    ledger = await fresh_ledger()
    settings = stack_settings(ledger, jwt_secret=SECRET, test_clock=test_clock, policy=POLICY)
    async for api in serve(settings):
        assert api.container is not None
        stop = asyncio.Event()
        projectors = [api.container.balance_projector(), api.container.history_projector()]
        tasks = [asyncio.create_task(projector.run(stop)) for projector in projectors]
        try:
            yield api
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await api.container.history_index().drop()


@pytest.fixture(params=["embedded", "stack"])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    """The service on its embedded default, and on the stack (MariaDB, Debezium, Kafka, Redis, OpenSearch)."""
    served = serve_stack() if request.param == "stack" else serve(e2e_settings(tmp_path))
    async for client in served:
        yield client


@pytest.fixture
async def api_without_test_clock(tmp_path: Path) -> AsyncIterator[Api]:
    async for client in serve(e2e_settings(tmp_path, test_clock=False)):
        yield client
