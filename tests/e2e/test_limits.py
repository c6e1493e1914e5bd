"""Limits that keep one request from costing the service too much."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import strawberry.schema.schema
from graphql import get_introspection_query

from app.graphql import documents
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


async def test_a_refused_query_is_refused_every_time_it_comes(api: Api) -> None:
    """Parsing and validation are kept per query text: the kept outcome of a refused query is a refusal."""
    aliases = "{ " + " ".join(f'b{i}: balance(userId: "u{i}") {{ __typename }}' for i in range(16)) + " }"
    tokens = "{ " + " ".join(["__typename"] * 2100) + " }"
    unknown = '{ balance(userId: "u1") { __typename noSuchField } }'
    for _ in range(3):
        assert "aliases" in (await api.post(aliases, token=ADMIN))["errors"][0]["message"]
        assert "token" in (await api.post(tokens, token=ADMIN))["errors"][0]["message"].lower()
        assert "noSuchField" in (await api.post(unknown, token=ADMIN))["errors"][0]["message"]


async def test_the_same_query_text_runs_again_with_other_variables(api: Api) -> None:
    query = "query($userId: String!) { balance(userId: $userId) { ... on Balance { userId } } }"
    for user_id in ("u1", "u2", "u3"):
        body = await api.post(query, {"userId": user_id}, token=ADMIN)
        assert body == {"data": {"balance": {"userId": user_id}}}


async def test_a_query_text_is_parsed_and_validated_once(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(module: Any, name: str) -> None:
        original = getattr(module, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)

    counting(strawberry.schema.schema, "parse")
    counting(strawberry.schema.schema, "validate_document")
    counting(documents, "validate_document")
    query = f"query Q{uuid.uuid4().hex} {{ __typename }}"  # a text no other test sent
    for _ in range(3):
        response = await api.http.post(
            "/graphql",
            content=json.dumps({"query": query}),
            headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
        )
        assert response.json() == {"data": {"__typename": "Query"}}
    assert sorted(calls) == ["parse", "validate_document"]


async def test_a_long_query_text_is_answered_but_not_kept(api: Api) -> None:
    query = "# " + "x" * documents.CACHED_TEXT + "\n{ __typename }"
    for _ in range(2):
        assert (await api.post(query, token=ADMIN))["data"] == {"__typename": "Query"}
    assert documents.documents.get(query) is None


async def test_graphiqls_introspection_query_is_within_the_limits(api: Api) -> None:
    body = await api.post(get_introspection_query(descriptions=True, input_value_deprecation=True))
    assert "errors" not in body, "the schema is public (it is in the repository); reading it needs no token"
    assert body["data"]["__schema"]["mutationType"]["name"] == "Mutation"


async def test_pages_are_capped_at_one_hundred_entries(api: Api) -> None:
    capped = await api.call("history", ADMIN, userId="u1", first=100)
    refused = await api.call("searchEntries", ADMIN, first=101)
    assert capped["__typename"] == "EntryConnection"
    assert (refused["__typename"], refused["field"]) == ("InvalidInputError", "first")
