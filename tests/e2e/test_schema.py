"""The exported SDL is the API contract that clients rely on; it must match the schema the service runs."""

from __future__ import annotations

from app.graphql.schema import schema
from tests.e2e.client import SDL


def test_the_exported_sdl_matches_the_schema_the_service_serves() -> None:
    assert SDL.read_text().rstrip("\n") == str(schema).rstrip("\n"), (
        "schema.graphql is stale: regenerate it with `uv run python -m app schema > schema.graphql`"
    )


def test_every_mutation_named_in_the_contract_takes_one_input_and_returns_a_union() -> None:
    mutations = schema.as_str()
    for name in ("grantPoints", "activateGrant", "usePoints", "cancelUse", "cancelGrant", "clawbackPoints"):
        assert f"{name}(input: " in mutations
    for union in ("GrantPointsResult", "UsePointsResult", "CancelUseResult", "SetTestClockResult", "BalanceResult"):
        assert f"union {union} = " in mutations
