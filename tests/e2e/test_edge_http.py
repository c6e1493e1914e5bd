"""The edge over real HTTP, on the embedded default served as users run it (``python -m app serve`` in its own
process): a fuzz test of generated queries and mutations, read-your-writes after every command, costly documents
while /health is watched, and a request head over the bound."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, queries

from tests.e2e.client import ADMIN, SDL, SERVICE, key, token
from tests.e2e.test_processes import free_port, uvicorn

ROOT = Path(__file__).resolve().parents[2]
FUZZ_DOCUMENTS = int(os.environ.get("POINTS_FUZZ_DOCUMENTS", "2000"))
"""Generated documents per run: 45 % queries, 35 % mutations, 20 % documents with one schema violation each."""


class Health:
    """Watches /health from a process of its own (tests/e2e/health_watch.py) while the block runs."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.slowest = 0.0
        self.asked = 0
        self.failed = 0
        self.stalled = 0.0
        """The longest the watching process itself could not run: the machine's part of a slow answer."""

    def __enter__(self) -> Health:
        self._watch = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.health_watch", self.base],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.3)  # it is asking by now
        return self

    def __exit__(self, *exc: object) -> None:
        out, _ = self._watch.communicate(timeout=30)
        seen = json.loads(out)
        self.slowest, self.asked, self.failed, self.stalled = (
            seen["slowest"],
            seen["asked"],
            seen["failed"],
            seen["stalled"],
        )

    def check(self) -> None:
        """/health answered within 100 ms throughout, not counting the time the machine kept the watcher itself
        from running (other processes on a shared runner)."""
        assert self.asked > 10 and self.failed == 0
        assert self.slowest - self.stalled < 0.1, (
            f"/health took {self.slowest * 1000:.0f} ms; the watcher itself was held {self.stalled * 1000:.0f} ms"
        )


@contextmanager
def served(tmp_path: Path, **env: str) -> Iterator[httpx.Client]:
    """``python -m app serve`` on a fresh SQLite file, until the block ends; nothing it logged is a traceback."""
    port = free_port()
    with uvicorn(tmp_path, [sys.executable, "-m", "app", "serve", "--port", str(port)], port, **env) as http:
        yield http
    log = (tmp_path / f"server-{port}.log").read_text()
    assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with served(
        tmp_path_factory.mktemp("fuzz"),
        POINTS_TEST_CLOCK="true",
        POINTS_RATE_LIMIT_ANONYMOUS="0",
        POINTS_RATE_LIMIT_USER="0",
    ) as http:
        yield http


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with served(tmp_path_factory.mktemp("service")) as http:
        yield http


# ------------------------------------------------------------------------------------------------------ fuzzing


def _datetime(moment: datetime, aware: bool) -> graphql.StringValueNode:
    return graphql.StringValueNode(value=(moment if aware else moment.replace(tzinfo=None)).isoformat())


DATETIMES = st.builds(
    _datetime,
    st.one_of(
        st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)),
        st.datetimes(timezones=st.just(UTC)),  # the calendar's edges too (year 1, year 9999)
    ),
    st.booleans(),
)
SCALARS = {"DateTime": DATETIMES}
BEARERS = st.sampled_from([ADMIN, SERVICE, token("u1", "user"), token("x", "nobody"), None])

ANSWERED: list[tuple[float, str]] = []
"""Every valid document's answer time and text."""


def check(http: httpx.Client, document: str, bearer: str | None, valid: bool) -> None:
    """No 5xx; a valid document is answered with data and no error (every refusal a typed member of its field's
    union); an invalid one with GraphQL errors or a 400, never a masked internal error."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    started = time.perf_counter()
    response = http.post("/graphql", json={"query": document}, headers=headers)
    took = time.perf_counter() - started
    assert response.status_code < 500, (response.status_code, response.text, document)
    if response.status_code in (400, 413, 415):
        assert not valid, (response.status_code, response.text, document)
        return
    body = response.json()
    messages = [error["message"] for error in body.get("errors", [])]
    assert "internal error" not in messages, (body, document)
    if valid:
        assert not messages and body["data"], (body, document)
        ANSWERED.append((took, document))
    else:
        assert messages, (body, document)


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=max(1, examples),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def test_generated_queries_and_mutations_get_typed_answers_and_health_stays_quick(fuzzed: httpx.Client) -> None:
    sdl = SDL.read_text()
    with Health(str(fuzzed.base_url)) as health:

        @fuzz(FUZZ_DOCUMENTS * 45 // 100)
        @given(document=queries(sdl, custom_scalars=SCALARS), bearer=BEARERS)
        def generated_queries(document: str, bearer: str | None) -> None:
            check(fuzzed, document, bearer, valid=True)

        @fuzz(FUZZ_DOCUMENTS * 35 // 100)
        @given(document=mutations(sdl, custom_scalars=SCALARS), bearer=BEARERS)
        def generated_mutations(document: str, bearer: str | None) -> None:
            check(fuzzed, document, bearer, valid=True)

        @fuzz(FUZZ_DOCUMENTS * 20 // 100)
        @given(
            document=st.one_of(
                queries(sdl, custom_scalars=SCALARS, mode=Mode.NEGATIVE),
                mutations(sdl, custom_scalars=SCALARS, mode=Mode.NEGATIVE),
            ),
            bearer=BEARERS,
        )
        def invalid_documents(document: str, bearer: str | None) -> None:
            check(fuzzed, document, bearer, valid=False)

        started = time.monotonic()
        generated_queries()
        generated_mutations()
        invalid_documents()
        took = time.monotonic() - started
    slowest = sorted(ANSWERED, reverse=True)[:3]
    print(
        f"\nfuzz: {len(ANSWERED)} valid documents answered in {took:.0f} s; /health slowest {health.slowest:.3f} s"
        f" (the watcher held up to {health.stalled:.3f} s)"
    )
    for seconds, document in slowest:
        print(f"  {seconds:.3f} s: {' '.join(document.split())[:300]}")
    assert len(ANSWERED) >= FUZZ_DOCUMENTS * 79 // 100
    health.check()


# ------------------------------------------------------------------------------------------- read-your-writes

GRANT = (
    "mutation($input: GrantPointsInput!) { grantPoints(input: $input) "
    "{ __typename ... on Granted { balance version } } }"
)
USE = (
    "mutation($input: UsePointsInput!) { usePoints(input: $input) "
    "{ __typename ... on PointsUsed { balance version } } }"
)
BALANCE = (
    "query($u: String!, $v: Int) { balance(userId: $u, atLeastVersion: $v) "
    "{ __typename ... on Balance { available version source } } }"
)


def test_a_balance_asked_right_after_each_of_a_thousand_commands_is_never_stale(service: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    sources: dict[str, int] = {}
    for n in range(1_000):
        user_id = f"ryw-{n % 10}"
        if n % 3 == 0:
            variables = {"input": {"userId": user_id, "idempotencyKey": key(), "amount": 30, "source": "PROMOTION"}}
            done = service.post("/graphql", json={"query": GRANT, "variables": variables}, headers=headers).json()
            changed = done["data"]["grantPoints"]
        else:
            variables = {"input": {"userId": user_id, "idempotencyKey": key(), "amount": 1}}
            changed = service.post("/graphql", json={"query": USE, "variables": variables}, headers=headers).json()[
                "data"
            ]["usePoints"]
            if changed["__typename"] == "InsufficientPointsError":
                continue
        read = service.post(
            "/graphql", json={"query": BALANCE, "variables": {"u": user_id, "v": changed["version"]}}, headers=headers
        ).json()["data"]["balance"]
        assert read["version"] >= changed["version"], (n, changed, read)
        assert read["available"] == changed["balance"], (n, changed, read)
        sources[read["source"]] = sources.get(read["source"], 0) + 1
    print("read-your-writes answered by", sources)
    assert sum(sources.values()) >= 900


# ------------------------------------------------------------------------------------------- costly documents


def spread_twice(n: int) -> str:
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(n))
    return f"query {{ ...F0 }} {chain} fragment F{n} on Query {{ __typename }}"


def test_costly_documents_do_not_hold_the_event_loop(service: httpx.Client) -> None:
    """The fragment bomb (5.6 s at n=20 before, minutes at n=150) and texts at the token limit, each several times,
    while /health is watched."""
    flat = "{ " + "__typename " * 990 + "}"
    same_named = "{ " + " ".join('balance(userId: "u") { __typename }' for _ in range(100)) + " }"
    aliased = "{ " + " ".join(f"a{i}: __typename" for i in range(600)) + " }"
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with Health(str(service.base_url)) as health:
        for round_ in range(3):
            for document in (*(spread_twice(n) for n in (20, 60, 100, 150, 180, 200)), flat, aliased, same_named):
                padded = document + f" # {round_} {time.monotonic()}"  # a text the cache has not seen
                started = time.perf_counter()
                response = service.post("/graphql", json={"query": padded}, headers=headers)
                assert response.status_code == 200
                assert time.perf_counter() - started < 2.0
        time.sleep(0.1)
    health.check()


# -------------------------------------------------------------------------------------------------- request head


def test_a_request_head_over_the_bound_is_refused_with_431_before_it_is_read(service: httpx.Client) -> None:
    port = service.base_url.port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"POST /graphql HTTP/1.1\r\nHost: ledger\r\nAuthorization: Bearer ")
        sent = 0
        try:
            for _ in range(16 * 1024):  # 16 MB, as the finding sent
                raw.sendall(b"a" * 1024)
                sent += 1024
        except OSError:
            pass  # the server answered and closed the connection: it did not read the rest
        answer = raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431"), answer
    assert sent < 8 * 1024 * 1024, "refused long before the whole header was sent"
    small = service.post("/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {ADMIN}"})
    assert small.json() == {"data": {"__typename": "Query"}}, "the server goes on serving others"
