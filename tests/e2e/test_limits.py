"""Limits that keep one request from costing the service too much."""

from __future__ import annotations

from graphql import get_introspection_query

from tests.e2e.client import ADMIN, Api


async def test_a_query_with_too_many_aliases_is_refused_before_it_runs(api: Api) -> None:
    fields = " ".join(f'b{i}: balance(userId: "u{i}") {{ __typename }}' for i in range(16))
    body = await api.post(f"{{ {fields} }}", token=ADMIN)
    assert body.get("data") is None
    assert "aliases" in body["errors"][0]["message"]


async def test_fifteen_aliases_are_still_fine(api: Api) -> None:
    fields = " ".join(f'b{i}: balance(userId: "u{i}") {{ __typename }}' for i in range(15))
    body = await api.post(f"{{ {fields} }}", token=ADMIN)
    assert "errors" not in body
    assert len(body["data"]) == 15


async def test_a_query_with_too_many_tokens_is_refused_before_it_runs(api: Api) -> None:
    fields = " ".join(["__typename"] * 2100)
    body = await api.post(f"{{ {fields} }}", token=ADMIN)
    assert body.get("data") is None
    assert "token" in body["errors"][0]["message"].lower()


async def test_graphiqls_introspection_query_is_within_the_limits(api: Api) -> None:
    body = await api.post(get_introspection_query(descriptions=True, input_value_deprecation=True))
    assert "errors" not in body, "the schema is public (it is in the repository); reading it needs no token"
    assert body["data"]["__schema"]["mutationType"]["name"] == "Mutation"


async def test_pages_are_capped_at_one_hundred_entries(api: Api) -> None:
    capped = await api.call("history", ADMIN, userId="u1", first=100)
    refused = await api.call("searchEntries", ADMIN, first=101)
    assert capped["__typename"] == "EntryConnection"
    assert (refused["__typename"], refused["field"]) == ("InvalidInputError", "first")
