"""GraphQL over HTTP: what a request that is not a plain JSON query gets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.client import ADMIN, Api

BALANCE = 'query Balance { balance(userId: "u1") { __typename ... on Balance { available } } }'
HEADERS = {"Authorization": f"Bearer {ADMIN}"}


async def post(api: Api, content: str | bytes, content_type: str = "application/json", **headers: str) -> Any:
    return await api.http.post(
        "/graphql", content=content, headers={**HEADERS, "Content-Type": content_type, **headers}
    )


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "Application/Json"]
)
async def test_a_json_query_is_answered_whatever_the_spelling_of_its_content_type(api: Api, content_type: str) -> None:
    response = await post(api, json.dumps({"query": BALANCE, "variables": None}), content_type)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"data": {"balance": {"__typename": "Balance", "available": 0}}}


async def test_the_named_operation_of_several_is_run(api: Api) -> None:
    document = BALANCE + " query Other { __typename }"
    response = await post(api, json.dumps({"query": document, "operationName": "Other"}))
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ("not json", 400, "Unable to parse request body as JSON"),
        ("[]", 400, "Batching is not enabled"),
        ("{}", 400, "No GraphQL query found in the request"),
        (json.dumps({"query": BALANCE, "variables": [1]}), 400, "`variables` must be an object"),
        (json.dumps({"query": 1}), 400, "`query` must be a string"),
        (json.dumps({"query": BALANCE, "operationName": "Nope"}), 400, 'Unknown operation named "Nope"'),
    ],
)
async def test_a_request_that_is_not_a_query_is_refused_with_400(api: Api, body: str, status: int, says: str) -> None:
    response = await post(api, body)
    assert response.status_code == status
    assert says in response.text


async def test_a_query_that_does_not_parse_gets_the_syntax_error(api: Api) -> None:
    response = await post(api, json.dumps({"query": "{ balance(userId: "}))
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["message"].startswith("Syntax Error")


async def test_a_query_that_does_not_validate_gets_the_validation_error(api: Api) -> None:
    response = await post(api, json.dumps({"query": "{ balance { __typename } }"}))
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert "userId" in body["errors"][0]["message"]


async def test_variables_of_the_wrong_type_are_refused_as_graphql_errors(api: Api) -> None:
    query = "query($u: String!) { balance(userId: $u) { __typename } }"
    response = await post(api, json.dumps({"query": query, "variables": {"u": 5}}))
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert "$u" in body["errors"][0]["message"]


async def test_graphiql_is_served_to_a_browser(api: Api) -> None:
    response = await api.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_a_query_over_get_is_refused(api: Api) -> None:
    response = await api.http.get("/graphql", params={"query": "{ __typename }"}, headers=HEADERS)
    assert response.status_code == 400


def sample(text: str, name: str) -> float:
    """One sample's value from Prometheus' text format."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and not found.labels:
                return float(found.value)
    raise AssertionError(f"no sample {name} in /metrics")


async def test_metrics_count_the_store_commits_that_commands_wait_for(api: Api) -> None:
    before = (await api.http.get("/metrics")).text
    for n in range(3):
        await api.grant(f"metrics-{n}", 10)

    response = await api.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    committed = sample(response.text, "points_store_commit_seconds_count")
    appended = sample(response.text, "points_store_batch_appends_sum")
    assert committed >= sample(before, "points_store_commit_seconds_count") + 3  # one grant waits for one commit
    assert appended == sample(before, "points_store_batch_appends_sum") + 3
