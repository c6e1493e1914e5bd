from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.domain.policy import PointPolicy
from app.entrypoints.server import create_app
from app.settings import Settings
from tests.e2e.client import SECRET, Api

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


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async for client in serve(e2e_settings(tmp_path)):
        yield client


@pytest.fixture
async def api_without_test_clock(tmp_path: Path) -> AsyncIterator[Api]:
    async for client in serve(e2e_settings(tmp_path, test_clock=False)):
        yield client
