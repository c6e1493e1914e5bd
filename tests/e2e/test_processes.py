"""The service as its users run it: the CLI, and uvicorn in its own process on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests.e2e.client import SDL, SECRET, Api, document, key
from tests.e2e.conftest import e2e_settings, serve

ROOT = Path(__file__).resolve().parents[2]


def environment(tmp_path: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POINTS_")}
    env.update(
        POINTS_PROFILE="embedded",
        POINTS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'points.db'}",
        POINTS_JWT_SECRET=SECRET,
        **more,
    )
    return env


def cli(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def uvicorn(tmp_path: Path, command: list[str], port: int, **env: str) -> Iterator[httpx.Client]:
    """Starts the service in its own process (with ``env`` added to its environment) and waits until it answers;
    stops it gracefully afterwards. Its output is in ``server-<port>.log``."""
    log = (tmp_path / f"server-{port}.log").open("w")
    process = subprocess.Popen(
        command, cwd=ROOT, env=environment(tmp_path, **env), stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, (tmp_path / f"server-{port}.log").read_text()
                try:
                    if http.get("/health").json() == {"status": "ok"}:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
            yield http
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def call(http: httpx.Client, field: str, bearer: str, **variables: Any) -> dict[str, Any]:
    response = http.post(
        "/graphql",
        json={"query": document(field), "variables": variables},
        headers={"Authorization": f"Bearer {bearer}"},
    )
    body = response.json()
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"][field]
    return result


def poll(read: Any, check: Any, seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while not check(value := read()):
        assert time.monotonic() < deadline, value
        time.sleep(0.05)
    return value


def test_the_cli_mints_tokens_with_the_configured_secret(tmp_path: Path) -> None:
    printed = cli(tmp_path, "token", "--sub", "shop", "--role", "service", "--role", "admin", "--hours", "2").strip()
    claims = jwt.decode(printed, SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["roles"]) == ("shop", ["service", "admin"])
    lifetime = datetime.fromtimestamp(claims["exp"], UTC) - datetime.now(UTC)
    assert timedelta(hours=1, minutes=59) < lifetime <= timedelta(hours=2)


def test_the_cli_prints_the_sdl_that_is_kept_in_the_repository(tmp_path: Path) -> None:
    assert cli(tmp_path, "schema") == SDL.read_text()


async def test_the_cli_expiry_batch_expires_lots_that_lapsed_while_nobody_ran_it(tmp_path: Path) -> None:
    async for api in serve(e2e_settings(tmp_path)):
        await past(api)
    assert cli(tmp_path, "expire").strip() == "expired 40 points in 1 lots of 1 accounts"
    assert cli(tmp_path, "expire").strip() == "expired 0 points in 0 lots of 0 accounts", "safe to re-run"


async def past(api: Api) -> None:
    """A lot granted in 2020 that lapsed ten days later: due for any batch run with the real clock."""
    await api.set_clock("2020-01-01T00:00:00Z")
    await api.grant("u1", 40, expiresAt="2020-01-11T00:00:00Z")


def test_uvicorn_serves_graphql_and_graphiql_and_keeps_the_data_across_a_restart(tmp_path: Path) -> None:
    service = cli(tmp_path, "token", "--sub", "shop", "--role", "service").strip()
    admin = cli(tmp_path, "token", "--sub", "ops", "--role", "admin").strip()
    port = free_port()
    factory = [sys.executable, "-m", "uvicorn", "--factory", "app.entrypoints.server:create_app"]
    with uvicorn(tmp_path, [*factory, "--host", "127.0.0.1", "--port", str(port)], port) as http:
        page = http.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()
        granted = call(
            http,
            "grantPoints",
            service,
            input={"userId": "u1", "idempotencyKey": key(), "amount": 120, "source": "ORDER", "orderId": "o-1"},
        )
        assert (granted["__typename"], granted["balance"]) == ("Granted", 120)
        used = call(http, "usePoints", service, input={"userId": "u1", "idempotencyKey": key(), "amount": 20})
        assert used["balance"] == 100
        poll(lambda: call(http, "balance", service, userId="u1"), lambda b: b["version"] == 2)
        clock = call(http, "setTestClock", admin, at="2030-01-01T00:00:00Z")
        assert clock["__typename"] == "TestClockDisabledError", "off unless POINTS_TEST_CLOCK=true"

    port = free_port()
    with uvicorn(tmp_path, [sys.executable, "-m", "app", "serve", "--port", str(port)], port) as http:
        balance = call(http, "balance", service, userId="u1")
        assert (balance["available"], balance["version"]) == (100, 2), "read models rebuilt from the SQLite file"
        history = call(http, "history", admin, userId="u1", first=10)
        assert [e["node"]["kind"] for e in history["edges"]] == ["USED", "GRANTED"]
    printed = (tmp_path / f"server-{port}.log").read_text()
    assert f"GraphiQL:  http://127.0.0.1:{port}/graphql" in printed
    assert "python -m app token" in printed
