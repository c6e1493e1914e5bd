"""Benchmark of the stack's read side (a benchmark, not a test): projector lag, queries, search and rebuild.

    scripts/stack.sh up                                           # the stack must be running (see README)
    python3 -m uv run --frozen python scripts/bench_read.py       # about 4 to 5 minutes (2 more to build the 1M index)
    python3 -m uv run --frozen python scripts/bench_read.py --keep-index       # keep the 1M index for the next run
    python3 -m uv run --frozen python scripts/bench_read.py --skip-lag --skip-rebuild --seconds 5
    python3 -m uv run --frozen python scripts/bench_read.py --drop-index       # only delete the kept 1M index

In one run, on the stack named by ``.stack/env`` (or the POINTS_* variables of the environment, which win), under a
ledger of its own (``POINTS_AGGREGATE_TYPE``, ``POINTS_REDIS_PREFIX`` and ``POINTS_HISTORY_ALIAS`` ``bench-read-<run>``,
its consumer groups committed at the topic's end first, as the tests do), so that it shares the stack with others:

1. Lag from commit to Redis: ``python -m app serve`` (stack profile, one or two processes) and one projector process
   (``python -m app project``, both projections); grantPoints offered at a steady 500 and 1,000 commands/s
   (``--rates``) by lean keep-alive clients. A poller in this process reads every awaited account's version
   (``RedisBalanceView.keys(user)[0]``, field ``v``) in one pipelined round trip every ``--poll-ms`` (1 ms) and
   stamps each command's version when it first sees it. The lag counts from the moment the command's HTTP answer
   arrived, which comes after its commit (so it is a lower bound of commit-to-visible), and, beside it, from the
   moment the request was sent, before the commit (an upper bound: it holds the command's own latency). Measurement
   error: a version is stamped when the poll that saw it returned, at most one poll period plus one round trip
   after it became visible (both printed), and the poller shares the cores with everything else.
2. ``balance`` queries per second and p99 through GraphQL over HTTP (one API process) beside a bare Starlette
   endpoint served by uvicorn in a process of its own with the same settings (uvloop, httptools, one worker, no
   access log): it makes the same calls of the same adapter (``RedisBalanceView.version``, then ``lots``: the meta
   and lots hashes) and sums the available and pending points of the lots as of now the way ``GetBalance`` does, but
   has no GraphQL, no token check and no container. Both driven back to back by ``--clients`` lean keep-alive
   clients over ``--balance-accounts`` accounts of ``--lots`` lots each, written into Redis by ``replace_many``.
3. ``history`` pages on an account with ``--history-entries`` (10,000) entries, made by the domain (grants and uses),
   replayed as a rebuild does and written into Redis (``replace_many``: its newest 100) and OpenSearch (``index``):
   the first page of 20 (from Redis) and pages of 20 at random cursors past the 100 newest (from OpenSearch),
   through GraphQL on the API process.
4. ``searchEntries`` on an index of ``--index-docs`` (1,000,000) entries of 50,000 accounts over a year, behind the
   alias ``--index-alias`` (``bench-1m-history``): built through the adapter's bulk path (``new_index``, ``index``
   in calls of 5,000 in two streams, ``swap_alias``) when it is not there with that many documents, else reused;
   deleted at the end unless ``--keep-index``. Queried through GraphQL with an admin token on an API process of its
   own pointed at that alias: by user, and by kind (USED) and a 7-day range.
5. Rebuild: ``--rebuild-events`` (100,000) events of accounts of 20 events each (grants and uses made by the domain)
   inserted into ``point_events`` as the store encodes them (no outbox rows: nothing goes to Kafka); then
   ``rebuild_balances`` into this run's Redis prefix and ``rebuild_history`` into this run's alias, timed in
   process (the functions ``python -m app rebuild`` runs). ``read_all`` replays the whole event store, every ledger's
   events, so the rates are over every event replayed, and the store's size is printed.

It ends with a met / NOT met line per target (lag p99 under 100 ms; ``balance`` at least 0.5 of the bare endpoint;
``history`` p99 under 50 ms; rebuild at least 20,000 events/s into Redis). Every figure shares the machine's cores
with the stack's servers, the load generator and other work: the CPU each took and the load average are printed
beside each part, and the share of everything else in the summary.

Clean-up, also on failure or Ctrl-C: every process it started is stopped; this run's Redis keys (``SCAN MATCH
<ledger>:*``), its OpenSearch indices and template, and its rows in the event store (the users ``<ledger>-*``) are
deleted; the 1M index too unless ``--keep-index``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomysql
import httpx
import jwt
import orjson
import redis.asyncio as redis
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_embedded import ROOT, Figures, LeanHttp, free_port, load_average, serving, stall_buckets, stall_lines
from bench_stack import CpuShares, api_process, connector_state, stack_environment

from app.adapters.cursors import encode_cursor
from app.adapters.mysql.event_store import CONNECT_ARGS, MYSQL, MySqlEventStore, mysql_time
from app.adapters.opensearch.history_index import BULK_SIZE, OpenSearchHistoryIndex
from app.adapters.redis.balance_view import RedisBalanceView
from app.adapters.sql.rows import commit_rows
from app.adapters.sql.statements import Statements
from app.application.rebuild import Replayed, rebuild_balances, rebuild_history
from app.domain.account import Account, LotStatus
from app.domain.events import Allocation, RecordedEvent, Source
from app.domain.policy import PointPolicy
from app.ports.errors import ReadModelUnavailableError
from app.ports.event_store import Commit
from app.ports.read_models import AccountView, EntryKind, HistoryEntry, LotView

ERROR = "... on Error { code message }"
GRANT = (
    "mutation($input: GrantPointsInput!) { grantPoints(input: $input) { __typename "
    f"... on Granted {{ grantId balance version }} {ERROR} }} }}"
)
BALANCE = (
    "query($u: String!) { balance(userId: $u) { __typename "
    f"... on Balance {{ available pending version source }} {ERROR} }} }}"
)
PAGE = "edges { cursor node { id userId version kind amount delta occurredAt } } pageInfo { hasNextPage endCursor }"
HISTORY = (
    "query($u: String!, $first: Int!, $after: String) { history(userId: $u, first: $first, after: $after) { "
    f"__typename ... on EntryConnection {{ version source {PAGE} }} {ERROR} }} }}"
)
SEARCH = (
    "query($f: EntryFilter!) { searchEntries(filter: $f, first: 20) { __typename "
    f"... on EntryConnection {{ {PAGE} }} {ERROR} }} }}"
)
POLICY = PointPolicy()
POLL_LIMIT = 500
"""Accounts read per poll at most, the longest awaited first: a projector that stopped must not make the poller take
the load generator's event loop (redis-py parses replies in Python)."""
REQUEST_TIMEOUT = 10.0
"""Seconds a request may take before its client counts it failed and connects again."""


def ms(figures: Figures, p: float) -> str:
    return f"{figures.percentile(p) * 1000:.1f}"


def rate(figures: Figures | None) -> float:
    return len(figures.latencies) / figures.seconds if figures and figures.latencies and figures.seconds else 0.0


class Shares(CpuShares):
    """bench_stack's CPU shares, with this run's processes by role and Redis beside the stack's other servers."""

    def __init__(self, processes: dict[str, list[int]]) -> None:
        super().__init__([])
        with contextlib.suppress(OSError, ValueError):
            self._pids["Redis"] = [int((ROOT / ".stack" / "run" / "redis.pid").read_text().split()[0])]
        self._pids = {**{label: pids for label, pids in processes.items() if pids}, **self._pids}
        self._began = time.perf_counter()
        self._before = self._sample()


# -- the run's settings, processes and clean-up --------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    env: dict[str, str]
    """The stack's POINTS_* settings."""
    ledger: str
    token: str
    api_env: dict[str, str]
    logs: Path
    processes: contextlib.ExitStack
    apis: list[tuple[int, int]] = field(default_factory=list)
    """(port, pid) of the API processes of this run's ledger."""
    results: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    """Each part's CPU line, for the summary."""

    @property
    def alias(self) -> str:
        return f"{self.ledger}-history"

    def api(self, count: int) -> list[tuple[int, int]]:
        """At least ``count`` API processes of the ledger (started on first need, stopped at the end)."""
        while len(self.apis) < count:
            log = self.logs / f"api-{len(self.apis) + 1}.log"
            self.apis.append(self.processes.enter_context(api_process(self.api_env, log)))
        return self.apis[:count]

    def view(self) -> RedisBalanceView:
        return RedisBalanceView.open(self.env["POINTS_REDIS_URL"], prefix=self.ledger)

    def index(self, alias: str | None = None) -> OpenSearchHistoryIndex:
        return OpenSearchHistoryIndex.open(self.env["POINTS_OPENSEARCH_URL"], alias=alias or self.alias)


@contextlib.contextmanager
def projector_process(env: dict[str, str], log: Path) -> Iterator[int]:
    """``python -m app project`` (both projections) of the ledger in ``env``; its pid. Stopped on the way out."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "project"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        time.sleep(0.5)
        if process.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise SystemExit(f"the projector exited with {process.returncode}:\n{tail}")
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def projections_start_now(env: dict[str, str], ledger: str) -> None:
    """The ledger's projection groups committed at the topic's end (tests.servers does the same for the tests): a new
    ledger has no events before it, and a projector would otherwise read the whole shared topic to pass it over."""
    os.environ.setdefault("POINTS_KAFKA_BOOTSTRAP", env["POINTS_KAFKA_BOOTSTRAP"])
    os.environ.setdefault("POINTS_KAFKA_TOPIC", env["POINTS_KAFKA_TOPIC"])
    sys.path.insert(0, str(ROOT))
    from tests.servers import projections_start_now as start_now

    await start_now(ledger)


async def mysql_pool(env: dict[str, str], size: int) -> aiomysql.Pool:
    url = make_url(env["POINTS_DATABASE_URL"])
    return await aiomysql.create_pool(
        **url.translate_connect_args(username="user", database="db"), **CONNECT_ARGS, minsize=1, maxsize=size
    )


async def clean_up(run: Run, keep_index: bool) -> list[str]:
    """This run's Redis keys, OpenSearch indices and event-store rows deleted; the 1M index too unless kept."""
    done: list[str] = []
    client = redis.Redis.from_url(run.env["POINTS_REDIS_URL"])
    try:
        deleted = 0
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{run.ledger}:*", count=2000):
            batch.append(key)
            if len(batch) >= 2000:
                deleted += await client.unlink(*batch)
                batch = []
        if batch:
            deleted += await client.unlink(*batch)
        done.append(f"{deleted:,} Redis keys {run.ledger}:*")
    finally:
        await client.aclose()
    aliases = [run.alias] + ([] if keep_index else [run.args.index_alias])
    for alias in aliases:
        index = run.index(alias)
        try:
            await index.drop()
            done.append(f"OpenSearch {alias}-* and its template")
        finally:
            await index.close()
    pool = await mysql_pool(run.env, 1)
    try:
        async with pool.acquire() as connection, connection.cursor() as cursor:
            rows = 0
            for table in ("point_events", "point_idempotency", "point_snapshots", "point_lot_expiries"):
                delete = f"DELETE FROM {table} WHERE user_id LIKE %s LIMIT 20000"
                while deleted := await cursor.execute(delete, (f"{run.ledger}-%",)):
                    rows += deleted
            done.append(f"{rows:,} event-store rows of the users {run.ledger}-*")
    finally:
        pool.close()
        await pool.wait_closed()
    return done


# -- load generators -----------------------------------------------------------------------------------------------


async def closed_loop(
    port: int,
    path: str,
    token: str,
    clients: int,
    seconds: float,
    warmup: float,
    body: Callable[[int, int], dict[str, Any]],
    outcome: Callable[[Any], str],
) -> Figures:
    """``clients`` lean keep-alive clients send ``body(client, i)`` back to back for ``warmup + seconds``; the
    requests that start after the warm-up and end within the run are measured, each labelled ``outcome(answer)``."""
    figures = Figures(seconds=seconds)
    began = time.perf_counter()
    measure_from, stop = began + warmup, began + warmup + seconds

    async def client(number: int) -> None:
        http = LeanHttp("127.0.0.1", port, path, token)
        try:
            for i in itertools.count():
                sent = time.perf_counter()
                if sent >= stop:
                    return
                try:
                    label = outcome(await asyncio.wait_for(http.post(body(number, i)), REQUEST_TIMEOUT))
                except (OSError, asyncio.IncompleteReadError, KeyError, TypeError, ValueError) as error:
                    label = f"failed: {type(error).__name__}"
                    http = LeanHttp("127.0.0.1", port, path, token)
                done = time.perf_counter()
                if sent >= measure_from and done <= stop:
                    figures.latencies.append(done - sent)
                    figures.outcomes[label] += 1
        finally:
            await http.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return figures


def graphql_outcome(field_name: str) -> Callable[[Any], str]:
    def outcome(answer: Any) -> str:
        if answer.get("errors"):
            return f"errors: {answer['errors'][0].get('message', '')[:60]}"
        found = answer["data"][field_name]
        label: str = found["__typename"]
        if "code" in found:
            label += f" {found['code']}"
        if "edges" in found:
            label += f" of {len(found['edges'])} entries"
        if "source" in found:
            label += f" from the {found['source']}"
        return label

    return outcome


def outcomes(figures: Figures) -> str:
    return "  outcomes: " + ", ".join(f"{name} {count:,}" for name, count in figures.outcomes.most_common())


def query_line(label: str, figures: Figures) -> str:
    if not figures.latencies:
        return f"{label}: nothing measured"
    return (
        f"{label}: {rate(figures):,.0f} queries/s over {figures.seconds:.1f} s ({len(figures.latencies):,}); "
        f"p50 {ms(figures, 0.5)} ms, p90 {ms(figures, 0.9)} ms, p99 {ms(figures, 0.99)} ms, max {ms(figures, 1.0)} ms"
    )


def query_runs(
    run: Run,
    port: int,
    pid: int,
    what: str,
    bodies: Mapping[str, Callable[[int, int], dict[str, Any]]],
    field_name: str,
) -> dict[str, Figures]:
    """Each of ``bodies`` sent back to back by ``--history-clients`` clients to the API process on ``port``."""
    found: dict[str, Figures] = {}
    for label, body in bodies.items():
        cpu = Shares({"API": [pid]})
        found[label] = asyncio.run(
            closed_loop(
                port, "/graphql", run.token, run.args.history_clients, run.args.seconds, run.args.warmup, body,
                graphql_outcome(field_name),
            )
        )  # fmt: skip
        print(query_line(f"  {what}, {label}", found[label]))
        print(outcomes(found[label]))
        line = cpu.line()
        print(line)
        run.notes[f"{what} {label}"] = line
    return found


# -- 1. commit to Redis --------------------------------------------------------------------------------------------


@dataclass
class Awaited:
    version: int
    sent: float
    answered: float
    measured: bool


@dataclass
class Poller:
    """Reads the version of every account with a command still to show, in one pipelined round trip per poll."""

    client: redis.Redis
    view: RedisBalanceView
    period: float
    waiting: dict[str, list[Awaited]] = field(default_factory=dict)
    from_answer: Figures = field(default_factory=Figures)
    from_sent: Figures = field(default_factory=Figures)
    seen: int = 0
    seen_late: int = 0
    """Seen only by the sweep after the drain."""
    polls: int = 0
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while no account is awaited."""
    round_trips: Figures = field(default_factory=Figures)
    gaps: Figures = field(default_factory=Figures)
    """Time between the ends of two polls: how late a version can be stamped, with the round trip."""

    async def sweep(self) -> int:
        """After the run: every account still awaited read once more, its commands seen now counted (not timed).
        Returns how many commands were seen so."""
        found = 0
        users = list(self.waiting)
        for at in range(0, len(users), 1000):
            pipe = self.client.pipeline(transaction=False)
            for user in users[at : at + 1000]:
                pipe.hget(self.view.keys(user)[0], "v")
            for user, held in zip(users[at : at + 1000], await pipe.execute(), strict=True):
                left = [a for a in self.waiting[user] if a.version > int(held or 0)]
                found += len(self.waiting[user]) - len(left)
                if left:
                    self.waiting[user] = left
                else:
                    del self.waiting[user]
        self.seen += found
        return found

    def expect(self, user: str, awaited: Awaited) -> None:
        self.waiting.setdefault(user, []).append(awaited)
        self.drained.clear()

    async def run(self) -> None:
        last = time.perf_counter()
        while True:
            users = list(itertools.islice(self.waiting, POLL_LIMIT))  # the longest awaited first
            if not users:
                self.drained.set()
                await asyncio.sleep(self.period)
                last = time.perf_counter()
                continue
            pipe = self.client.pipeline(transaction=False)
            for user in users:
                pipe.hget(self.view.keys(user)[0], "v")
            began = time.perf_counter()
            versions = await pipe.execute()
            now = time.perf_counter()
            self.polls += 1
            self.round_trips.latencies.append(now - began)
            self.gaps.latencies.append(now - last)
            last = now
            for user, held in zip(users, versions, strict=True):
                version = int(held or 0)
                awaited = self.waiting[user]
                shown = [a for a in awaited if a.version <= version]
                if not shown:
                    continue
                for a in shown:
                    self.seen += 1
                    if a.measured:
                        self.from_answer.latencies.append(now - a.answered)
                        self.from_sent.latencies.append(now - a.sent)
                left = [a for a in awaited if a.version > version]
                if left:
                    self.waiting[user] = left
                else:
                    del self.waiting[user]
            await asyncio.sleep(max(0.0, self.period - (time.perf_counter() - began)))


@dataclass
class Lag:
    rate: float
    processes: int
    commands: Figures
    sent: int
    measured: int
    poller: Poller


async def offer_grants(
    ports: list[int], token: str, offered: float, args: argparse.Namespace, users: str, poller: Poller | None
) -> tuple[Figures, int, int]:
    """grantPoints of 100 on a fixed schedule adding up to ``offered`` commands/s, from ``args.lag_clients`` clients
    (client n to port n mod their number), each over its own accounts; every answered version is handed to the
    poller. Returns the commands' latencies from when each was due, the commands answered with a version, and those of
    them sent after the warm-up."""
    figures = Figures(seconds=args.seconds)
    clients = args.lag_clients
    per_client = max(1, args.lag_users // clients)
    interval = clients / offered
    began = time.perf_counter()
    measure_from, stop = began + args.warmup, began + args.warmup + args.seconds
    answered = measured = 0
    last = measure_from + args.seconds

    async def client(number: int) -> None:
        nonlocal answered, measured, last
        http = LeanHttp("127.0.0.1", ports[number % len(ports)], "/graphql", token)
        try:
            for i in itertools.count():
                due = began + (i + number / clients) * interval
                if due > time.perf_counter():
                    await asyncio.sleep(due - time.perf_counter())
                if due >= stop or time.perf_counter() >= stop + REQUEST_TIMEOUT:
                    return  # the schedule's end, or far behind it: a server that fell behind shows in the latencies
                user = f"{users}-{number}-{i % per_client}"
                key = f"{users}-{number}-{i}"
                command = {"userId": user, "idempotencyKey": key, "amount": 100, "source": "ORDER", "orderId": key}
                sent = time.perf_counter()
                try:
                    posted = http.post({"query": GRANT, "variables": {"input": command}})
                    answer = (await asyncio.wait_for(posted, REQUEST_TIMEOUT))["data"]["grantPoints"]
                    label = answer["__typename"]
                except (OSError, asyncio.IncompleteReadError, KeyError, TypeError, ValueError) as error:
                    answer, label = {}, f"failed: {type(error).__name__}"
                    http = LeanHttp("127.0.0.1", ports[number % len(ports)], "/graphql", token)
                done = time.perf_counter()
                inside = due >= measure_from
                if inside:
                    last = max(last, done)
                    figures.latencies.append(done - due)
                    figures.outcomes[label] += 1
                if "version" in answer:
                    answered += 1
                    measured += inside
                    if poller is not None:
                        poller.expect(user, Awaited(int(answer["version"]), sent, done, inside))
        finally:
            await http.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    figures.seconds = last - measure_from  # longer than the schedule's when the servers fell behind it
    return figures, answered, measured


async def lag_run(run: Run, offered: float, ports: list[int]) -> Lag:
    args = run.args
    client = redis.Redis.from_url(run.env["POINTS_REDIS_URL"])
    poller = Poller(client, RedisBalanceView(client, prefix=run.ledger), args.poll_ms / 1000)
    polling = asyncio.create_task(poller.run())
    try:
        commands, sent, measured = await offer_grants(
            ports, run.token, offered, args, f"{run.ledger}-lag{offered:.0f}", poller
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(poller.drained.wait(), args.drain)
    finally:
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
    try:
        poller.seen_late = await poller.sweep()
    finally:
        await client.aclose()
    return Lag(offered, len(ports), commands, sent, measured, poller)


async def projector_ready(run: Run, ports: list[int], seconds: float = 90.0) -> float:
    """Grants until one shows in Redis (the projector joined its group and was given the partitions): the time."""
    began = time.perf_counter()
    client = redis.Redis.from_url(run.env["POINTS_REDIS_URL"])
    view = RedisBalanceView(client, prefix=run.ledger)
    http = LeanHttp("127.0.0.1", ports[0], "/graphql", run.token)
    try:
        for i in itertools.count():
            user = f"{run.ledger}-ready-{i}"
            command = {"userId": user, "idempotencyKey": user, "amount": 100, "source": "ORDER", "orderId": user}
            await http.post({"query": GRANT, "variables": {"input": command}})
            until = time.perf_counter() + 1.0
            while time.perf_counter() < until:
                if await client.hget(view.keys(user)[0], "v"):
                    return time.perf_counter() - began
                await asyncio.sleep(0.02)
            if time.perf_counter() - began > seconds:
                raise SystemExit(f"the projector did not project within {seconds:.0f} s (see its log)")
    finally:
        await http.close()
        await client.aclose()
    raise AssertionError("unreachable")


def lag_lines(lag: Lag, period_ms: float) -> list[str]:
    poller = lag.poller
    seen_measured = len(poller.from_answer.latencies)
    return [
        lag.commands.line(f"offered {lag.rate:,.0f} grantPoints/s to {lag.processes} API process(es)")
        + " (latency from when each was due)",
        outcomes(lag.commands),
        f"  commit to Redis visible: {poller.seen:,} of {lag.sent:,} answered commands seen in Redis "
        f"({seen_measured:,} of the {lag.measured:,} after the warm-up timed; {poller.seen_late:,} seen only after "
        f"the drain); {len(poller.waiting):,} accounts still behind",
        f"    from the HTTP answer (after the commit: a lower bound): p50 {ms(poller.from_answer, 0.5)} ms, "
        f"p99 {ms(poller.from_answer, 0.99)} ms, max {ms(poller.from_answer, 1.0)} ms",
        f"    from the request sent (before the commit: an upper bound): p50 {ms(poller.from_sent, 0.5)} ms, "
        f"p99 {ms(poller.from_sent, 0.99)} ms, max {ms(poller.from_sent, 1.0)} ms",
        f"    poller ({period_ms:g} ms period, at most {POLL_LIMIT} accounts a poll): {poller.polls:,} polls, one "
        f"every {ms(poller.gaps, 0.5)} ms "
        f"(p99 {ms(poller.gaps, 0.99)} ms), round trip p50 {ms(poller.round_trips, 0.5)} ms, "
        f"p99 {ms(poller.round_trips, 0.99)} ms: a version is stamped at most one period plus one round trip late",
    ]


def projector_warnings(log: Path, offset: int) -> str:
    """The projector's warnings since ``offset`` of its log: how many, and the first."""
    with log.open("rb") as read:
        read.seek(offset)
        lines = [line for line in read.read().decode(errors="replace").splitlines() if " WARNING " in line]
    if not lines:
        return "  projector: no warnings in its log"
    return f"  projector: {len(lines):,} warnings in its log, the first: {lines[0][24:240]}"


def lag_part(run: Run) -> None:
    args = run.args
    print(
        f"1. commit to Redis: {args.lag_processes} API process(es), 1 projector process (python -m app project), "
        f"grantPoints at {args.rates} commands/s from {args.lag_clients} clients"
    )
    asyncio.run(projections_start_now(run.env, run.ledger))
    pid = run.processes.enter_context(projector_process(run.api_env, run.logs / "projector.log"))
    apis = run.api(args.lag_processes)
    ports, pids = [port for port, _ in apis], [pid for _, pid in apis]
    took = asyncio.run(projector_ready(run, ports))
    print(f"  projector (pid {pid}) projects: the first grant showed in Redis after {took:.1f} s")
    lags: list[Lag] = []
    for offered in [float(r) for r in args.rates.split(",") if r.strip()]:
        cpu = Shares({"API": pids, "projector": [pid]})
        log = run.logs / "projector.log"
        read_before = log.stat().st_size
        commits = [stall_buckets(port) for port in ports]
        lag = asyncio.run(lag_run(run, offered, ports))
        print(*lag_lines(lag, args.poll_ms), sep="\n")
        for port, before in zip(ports, commits, strict=True):
            line = stall_lines(before, stall_buckets(port))[0][0].replace("store commits (fsyncs)", "MariaDB commits")
            print(f"  API on port {port}: {line.strip()}")
        print(projector_warnings(log, read_before))
        line = cpu.line()
        print(line)
        run.notes[f"lag at {offered:,.0f}/s"] = line
        lags.append(lag)
    run.results["lag"] = lags


# -- 2. balance through GraphQL and bare ---------------------------------------------------------------------------


def bare_app(redis_url: str, prefix: str) -> Any:
    """A Starlette app of one endpoint: POST /balance {"userId"} -> the account's available and pending points and
    version, from the same Redis calls GetBalance makes (the version, then the lots), summed the same way."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    view = RedisBalanceView.open(redis_url, prefix=prefix)

    async def balance(request: Request) -> Response:
        user = orjson.loads(await request.body())["userId"]
        version = await view.version(user)
        lots = await view.lots(user)
        now = datetime.now(UTC)
        available = sum(lot.remaining for lot in lots if lot.status_at(now) is LotStatus.ACTIVE)
        pending = sum(lot.remaining for lot in lots if lot.status_at(now) is LotStatus.PENDING)
        body = {"userId": user, "available": available, "pending": pending, "version": version}
        return Response(orjson.dumps(body), media_type="application/json")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/balance", balance, methods=["POST"]), Route("/health", health)])


def serve_bare(port: int, redis_url: str, prefix: str) -> None:
    import uvicorn

    uvicorn.run(
        bare_app(redis_url, prefix),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


async def seed_balances(run: Run, count: int, lots: int) -> list[str]:
    """``count`` accounts of ``lots`` active lots each, written whole into the balance view as a rebuild does."""
    now = datetime.now(UTC)
    users = [f"{run.ledger}-bal-{n}" for n in range(count)]
    accounts = [
        AccountView(
            user,
            lots,
            [
                LotView(
                    f"{user}-g{g}",
                    "ORDER",
                    100,
                    100 - (g * 7) % 100,
                    now - timedelta(days=g),
                    now + timedelta(days=300),
                    LotStatus.ACTIVE,
                    False,
                    None,
                    f"{user}-o{g}",
                )
                for g in range(lots)
            ],
            [],
            lots,
        )
        for user in users
    ]
    view = run.view()
    try:
        await view.replace_many(accounts)
    finally:
        await view.aclose()
    return users


def balance_part(run: Run) -> None:
    args = run.args
    users = asyncio.run(seed_balances(run, args.balance_accounts, args.lots))
    (port, pid), *_ = run.api(1)
    bare_port = free_port()
    command = [
        sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(bare_port), "--bare-prefix", run.ledger,
    ]  # fmt: skip
    print(
        f"2. balance: {args.clients} lean keep-alive clients back to back, {len(users):,} accounts of {args.lots} "
        "lots; GraphQL on one API process, beside a bare Starlette endpoint (uvicorn, uvloop, httptools) in its own "
        "process"
    )
    with (
        (run.logs / "bare.log").open("ab") as out,
        serving(command, run.api_env, bare_port, stdout=out, stderr=subprocess.STDOUT) as bare,
    ):

        def graphql(client: int, i: int) -> dict[str, Any]:
            return {"query": BALANCE, "variables": {"u": users[(client * 7919 + i) % len(users)]}}

        def plain(client: int, i: int) -> dict[str, Any]:
            return {"userId": users[(client * 7919 + i) % len(users)]}

        check = asyncio.run(sample_answers(port, bare_port, run.token, users[0]))
        print(f"  the same answer from both: {check}")
        figures: dict[str, Figures] = {}
        for label, target, path, body, outcome, server in (
            ("GraphQL", port, "/graphql", graphql, graphql_outcome("balance"), pid),
            ("bare", bare_port, "/balance", plain, lambda answer: "ok" if "available" in answer else "?", bare.pid),
        ):
            cpu = Shares({f"{label} server": [server]})
            figures[label] = asyncio.run(
                closed_loop(target, path, run.token, args.clients, args.seconds, args.warmup, body, outcome)
            )
            print(query_line(f"  balance, {label}", figures[label]))
            print(outcomes(figures[label]))
            line = cpu.line()
            print(line)
            run.notes[f"balance {label}"] = line
    answered = {label: answered_rate(found) for label, found in figures.items()}
    ratio = answered["GraphQL"] / answered["bare"] if answered["bare"] else 0.0
    print(
        f"  GraphQL / bare: {ratio:.2f} (balances answered: {answered['GraphQL']:,.0f} against {answered['bare']:,.0f}"
        " per second; errors and failures left out)"
    )
    run.results["balance"] = (figures["GraphQL"], figures["bare"], ratio)


def answered_rate(figures: Figures) -> float:
    """Queries per second that were answered with a balance (an error or a failure is not)."""
    good = sum(count for label, count in figures.outcomes.items() if label.startswith(("Balance", "ok")))
    return good / figures.seconds if figures.seconds else 0.0


async def sample_answers(port: int, bare_port: int, token: str, user: str) -> str:
    graphql = LeanHttp("127.0.0.1", port, "/graphql", token)
    bare = LeanHttp("127.0.0.1", bare_port, "/balance", token)
    try:
        one = (await graphql.post({"query": BALANCE, "variables": {"u": user}}))["data"]["balance"]
        two = await bare.post({"userId": user})
    finally:
        await graphql.close()
        await bare.close()
    same = all(one[k] == two[k] for k in ("available", "pending", "version"))
    return f"{'yes' if same else 'NO'} (GraphQL {one}, bare {two})"


# -- 3. history of a long account ----------------------------------------------------------------------------------


def account_history(user: str, count: int, start: datetime, step: timedelta) -> list[RecordedEvent]:
    """``count`` events of one account made by the domain: per ten, a grant of 90 and nine uses of 10."""
    account = Account.open(user)
    recorded: list[RecordedEvent] = []
    for v in range(count):
        now = start + v * step
        if v % 10 == 0:
            account.grant(grant_id=f"{user}-g{v}", amount=90, source=Source.ORDER, now=now, policy=POLICY,
                          order_id=f"{user}-o{v}")  # fmt: skip
        else:
            account.use(use_id=f"{user}-u{v}", amount=10, now=now)
        base, events = account.committed_version, account.new_events()
        recorded += [RecordedEvent(f"{user}-e{base + i + 1}", user, base + i + 1, e) for i, e in enumerate(events)]
        account.mark_committed()
    return recorded


async def seed_history(run: Run, user: str, count: int) -> tuple[int, float]:
    """The account's read models as the projections make them: the newest 100 entries and lots in Redis, every
    entry in the history index (through the alias, refreshed). Returns the newest version and the seconds taken."""
    began = time.perf_counter()
    now = datetime.now(UTC)
    events = account_history(user, count, now - timedelta(days=30), timedelta(days=29) / count)
    replayed = Replayed(user, 100)
    entries = [entry for recorded in events if (entry := replayed.apply(recorded)) is not None]
    view, index = run.view(), run.index()
    try:
        await view.replace_many([replayed.view()])
        await index.ensure()
        await index.index(entries)
        await index.refresh()
    finally:
        await view.aclose()
        await index.close()
    return replayed.version, time.perf_counter() - began


async def history_check(port: int, token: str, user: str) -> str:
    """The first page of 100 and the page after it, as a client pages: where each came from."""
    http = LeanHttp("127.0.0.1", port, "/graphql", token)
    try:
        first = (await http.post({"query": HISTORY, "variables": {"u": user, "first": 100}}))["data"]["history"]
        after = first["pageInfo"]["endCursor"]
        older = (await http.post({"query": HISTORY, "variables": {"u": user, "first": 20, "after": after}}))["data"][
            "history"
        ]
    finally:
        await http.close()
    versions = [edge["node"]["version"] for edge in older["edges"]]
    return (
        f"the 100 newest end at version {first['edges'][-1]['node']['version']:,}; the page after them holds "
        f"{len(versions)} entries, versions {versions[0]:,} to {versions[-1]:,}"
        if versions
        else f"the page after the 100 newest is empty: {older}"
    )


def history_part(run: Run) -> None:
    args = run.args
    user = f"{run.ledger}-long"
    (port, pid), *_ = run.api(1)
    newest, took = asyncio.run(seed_history(run, user, args.history_entries))
    print(
        f"3. history: an account of {newest:,} entries (grants and uses made by the domain; written in {took:.1f} s), "
        f"{args.history_clients} clients back to back, pages of 20 through GraphQL"
    )
    print(f"  {asyncio.run(history_check(port, run.token, user))}")
    older_than = max(2, newest - 100)
    pages = {
        "first page (Redis)": lambda client, i: {"query": HISTORY, "variables": {"u": user, "first": 20}},
        "older page past the 100 newest (OpenSearch)": lambda client, i: {
            "query": HISTORY,
            "variables": {"u": user, "first": 20, "after": encode_cursor([random.randint(21, older_than)])},
        },
    }
    run.results["history"] = query_runs(run, port, pid, "history", pages, "history")


# -- 4. searchEntries on a million documents -----------------------------------------------------------------------

INDEX_USERS = 50_000


def index_entries(first_user: int, users: int, per_user: int, start: datetime, span: timedelta) -> list[HistoryEntry]:
    """``per_user`` entries for each of ``users`` accounts from ``first_user``: a grant, then uses, cancels and an
    expiry, spread over ``span`` from ``start``."""
    entries: list[HistoryEntry] = []
    rng = random.Random(first_user)
    for n in range(first_user, first_user + users):
        user = f"bench-1m-{n:05d}"
        at = start + rng.random() * span / 2
        for v in range(1, per_user + 1):
            at += rng.random() * span / (2 * per_user)
            amount = rng.randint(1, 500)
            grant = f"{user}-g{v - v % 5}"
            if v % 5 == 1:
                kind, delta, extra = EntryKind.GRANTED, amount, {"source": "ORDER", "order_id": f"{user}-o{v}"}
            elif v % 10 == 0:
                kind, delta, extra = EntryKind.EXPIRED, -amount, {}
            elif v % 7 == 0:
                kind, delta, extra = EntryKind.USE_CANCELLED, amount, {"use_id": f"{user}-u{v - 1}"}
            else:
                kind, delta, extra = EntryKind.USED, -amount, {"use_id": f"{user}-u{v}", "order_id": f"{user}-p{v}"}
            entries.append(
                HistoryEntry(
                    f"{user}-{v}",
                    user,
                    v,
                    kind,
                    amount,
                    delta,
                    at,
                    grant_id=grant if kind is not EntryKind.USED else None,
                    lots=(Allocation(grant, amount),) if kind is EntryKind.USED else (),
                    **extra,
                )
            )
    return entries


def index_count(run: Run, alias: str) -> int:
    """Documents behind ``alias`` (0 when there is no such alias)."""
    answer = httpx.get(f"{run.env['POINTS_OPENSEARCH_URL']}/{alias}/_count", timeout=30)
    return int(answer.json()["count"]) if answer.status_code == 200 else 0


async def build_index(run: Run, alias: str, docs: int, streams: int = 2) -> tuple[int, float, int]:
    """``docs`` entries into a new index through the adapter's bulk path, in ``streams`` concurrent streams of
    calls of :data:`BULK_SIZE`, then published behind ``alias``; whatever the alias had before is deleted first. A
    call that times out is made again (indexing is idempotent). Returns the documents, seconds and calls made again."""
    index = run.index(alias)
    per_user = max(1, docs // INDEX_USERS)
    end = datetime.now(UTC)
    start, span = end - timedelta(days=365), timedelta(days=365)
    users_per_call = max(1, BULK_SIZE // per_user)
    calls = [(u, min(users_per_call, INDEX_USERS - u)) for u in range(0, INDEX_USERS, users_per_call)]
    written = again = 0
    began = time.perf_counter()
    try:
        await index.drop()
        name = await index.new_index()
        queue = iter(calls)

        async def stream() -> None:
            nonlocal written, again
            for first, users in queue:
                entries = index_entries(first, users, per_user, start, span)
                for attempt in range(5):
                    try:
                        await index.index(entries, into=name)
                        break
                    except ReadModelUnavailableError:
                        if attempt == 4:
                            raise
                        again += 1
                        await asyncio.sleep(2)
                written += len(entries)
                if written % 100_000 < len(entries):
                    print(f"    {written:,} documents in {time.perf_counter() - began:.0f} s", flush=True)

        await asyncio.gather(*(stream() for _ in range(streams)))
        await index.swap_alias(name)
    except BaseException:
        with contextlib.suppress(Exception):
            await index.drop()  # no half-built index left behind
        raise
    finally:
        await index.close()
    return written, time.perf_counter() - began, again


def search_part(run: Run) -> None:
    args = run.args
    alias = args.index_alias
    held = index_count(run, alias)
    print(f"4. searchEntries on the index behind {alias}: {held:,} documents found there")
    if held < args.index_docs:
        print(f"  building it: {args.index_docs:,} entries of {INDEX_USERS:,} accounts over a year, 2 streams")
        cpu = Shares({})
        written, took, again = asyncio.run(build_index(run, alias, args.index_docs))
        print(
            f"  indexed {written:,} documents in {took:.1f} s: {written / took:,.0f} documents/s ({again} bulk "
            "calls timed out and were made again)"
        )
        print(cpu.line())
        held = index_count(run, alias)
    env = {**run.api_env, "POINTS_HISTORY_ALIAS": alias}
    port, pid = run.processes.enter_context(api_process(env, run.logs / "api-search.log"))
    end = datetime.now(UTC)

    def by_user(client: int, i: int) -> dict[str, Any]:
        return {"query": SEARCH, "variables": {"f": {"userId": f"bench-1m-{random.randrange(INDEX_USERS):05d}"}}}

    def by_kind_and_range(client: int, i: int) -> dict[str, Any]:
        to = end - timedelta(days=random.uniform(0, 300))
        window = {"kinds": ["USED"], "from": (to - timedelta(days=7)).isoformat(), "to": to.isoformat()}
        return {"query": SEARCH, "variables": {"f": window}}

    queries = {"by user": by_user, "by kind USED and a 7-day range": by_kind_and_range}
    found = query_runs(run, port, pid, f"searchEntries on {held:,} documents", queries, "searchEntries")
    run.results["search"] = (held, found)


# -- 5. rebuild ----------------------------------------------------------------------------------------------------


def account_events(user: str, count: int, now: datetime) -> list[RecordedEvent]:
    """``count`` events of one account made by the domain: per user in turn a grant of 100, then two uses of 10."""
    account = Account.open(user)
    for v in range(count):
        if v % 3 == 0:
            account.grant(grant_id=f"{user}-g{v}", amount=100, source=Source.ORDER, now=now, policy=POLICY,
                          order_id=f"{user}-o{v}")  # fmt: skip
        else:
            account.use(use_id=f"{user}-u{v}", amount=10, now=now)
    return [RecordedEvent(f"{user}-e{i + 1}", user, i + 1, e) for i, e in enumerate(account.new_events())]


async def seed_store(run: Run, events: int, per_account: int = 20, connections: int = 4) -> tuple[int, float]:
    """``events`` events of accounts of ``per_account`` events inserted into point_events as the store encodes them,
    1,000 rows per statement over ``connections`` connections. Returns the rows written and the seconds taken."""
    began = time.perf_counter()
    now = datetime.now(UTC)
    insert = Statements.for_dialect(MYSQL).insert_event.sql
    rows: list[dict[str, Any]] = []
    for n in range(max(1, events // per_account)):
        user = f"{run.ledger}-store-{n}"
        recorded = account_events(user, per_account, now)
        rows += commit_rows(Commit(user, 0, recorded), mysql_time).events
    chunks = [rows[at : at + 1000] for at in range(0, len(rows), 1000)]
    pool = await mysql_pool(run.env, connections)
    try:
        queue = iter(chunks)

        async def writer() -> None:
            async with pool.acquire() as connection, connection.cursor() as cursor:
                for chunk in queue:
                    await cursor.executemany(insert, chunk)

        await asyncio.gather(*(writer() for _ in range(connections)))
    finally:
        pool.close()
        await pool.wait_closed()
    return len(rows), time.perf_counter() - began


async def store_size(env: dict[str, str]) -> tuple[int, int]:
    pool = await mysql_pool(env, 1)
    try:
        async with pool.acquire() as connection, connection.cursor() as cursor:
            await cursor.execute("SELECT COUNT(*), COUNT(DISTINCT user_id) FROM point_events")
            (events, accounts), *_ = await cursor.fetchall()
    finally:
        pool.close()
        await pool.wait_closed()
    return int(events), int(accounts)


@dataclass
class Rebuilt:
    store_events: int
    store_accounts: int
    read: int
    seconds: float
    what: str


async def timed_rebuild(run: Run, which: str) -> Rebuilt:
    store = MySqlEventStore.open(run.env["POINTS_DATABASE_URL"], pool_size=4)
    view, index = run.view(), run.index()
    events, accounts = await store_size(run.env)
    read = 0

    def progress(count: int) -> None:
        nonlocal read
        read += count

    try:
        began = time.perf_counter()
        if which == "balance":
            replayed, written = await rebuild_balances(store, view, progress)
            what = f"{written:,} of {replayed:,} accounts written"
        else:
            entries = await rebuild_history(store, index, progress)
            what = f"{entries:,} entries indexed and published behind {run.alias}"
        took = time.perf_counter() - began
    finally:
        await store.close()
        await view.aclose()
        await index.close()
    return Rebuilt(events, accounts, read, took, what)


def rebuild_part(run: Run) -> None:
    args = run.args
    print(f"5. rebuild: {args.rebuild_events:,} events (accounts of 20: grants and uses) into the event store")
    cpu = Shares({})
    written, took = asyncio.run(seed_store(run, args.rebuild_events))
    print(f"  inserted {written:,} events into point_events in {took:.1f} s (made by the domain, encoded by the store)")
    print(cpu.line())
    found: dict[str, Rebuilt] = {}
    for which, label in (("balance", "Redis (rebuild_balances)"), ("history", "OpenSearch (rebuild_history)")):
        cpu = Shares({})
        rebuilt = asyncio.run(timed_rebuild(run, which))
        print(
            f"  into {label}: {rebuilt.read:,} events replayed in {rebuilt.seconds:.1f} s: "
            f"{rebuilt.read / rebuilt.seconds:,.0f} events/s ({rebuilt.what}); the store held {rebuilt.store_events:,}"
            f" events of {rebuilt.store_accounts:,} accounts, every ledger's"
        )
        line = cpu.line()
        print(line)
        run.notes[f"rebuild {which}"] = line
        found[which] = rebuilt
    run.results["rebuild"] = found


# -- summary -------------------------------------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def summary(run: Run) -> None:
    args, results = run.args, run.results
    print("summary:")
    if CpuShares.others:
        print(
            f"  other work on the machine took {sum(CpuShares.others) / len(CpuShares.others):.0%} of a core on "
            f"average during the parts (at most {max(CpuShares.others):.0%}), of the {os.cpu_count()} cores; "
            f"load average now {load_average()}"
        )
    for lag in results.get("lag", []):
        poller = lag.poller
        complete = len(poller.from_answer.latencies) == lag.measured > 0
        p99 = poller.from_answer.percentile(0.99) * 1000
        upper = poller.from_sent.percentile(0.99) * 1000
        served = rate(lag.commands)
        print(
            f"  target: commit-to-Redis p99 < {args.target_lag:g} ms at {lag.rate:,.0f} commands/s: "
            f"{verdict(complete and p99 < args.target_lag)} (p99 {p99:.1f} ms from the answer, {upper:.1f} ms from the "
            f"request sent: {verdict(complete and upper < args.target_lag)} on that upper bound; "
            f"{len(poller.from_answer.latencies):,} of {lag.measured:,} seen; {served:,.0f} commands/s served"
            f"{'' if served >= 0.99 * lag.rate else ', under the offered rate'})"
        )
    if "balance" in results:
        graphql, bare, ratio = results["balance"]
        print(
            f"  target: balance through GraphQL >= {args.target_ratio:g} of the bare endpoint: "
            f"{verdict(ratio >= args.target_ratio)} ({ratio:.2f}: {answered_rate(graphql):,.0f} against "
            f"{answered_rate(bare):,.0f} balances/s; p99 {ms(graphql, 0.99)} ms against {ms(bare, 0.99)} ms)"
        )
    for label, figures in results.get("history", {}).items():
        p99 = figures.percentile(0.99) * 1000
        print(
            f"  target: history {label} p99 < {args.target_history:g} ms: {verdict(p99 < args.target_history)} "
            f"(p99 {p99:.1f} ms, p50 {ms(figures, 0.5)} ms, {rate(figures):,.0f} pages/s)"
        )
    if "search" in results:
        held, found = results["search"]
        for label, figures in found.items():
            print(
                f"  searchEntries {label} on {held:,} documents: p50 {ms(figures, 0.5)} ms, p99 {ms(figures, 0.99)} ms"
                f" ({rate(figures):,.0f} queries/s; no target)"
            )
    rebuilt = results.get("rebuild", {})
    if "balance" in rebuilt:
        r = rebuilt["balance"]
        print(
            f"  target: rebuild >= {args.target_rebuild:,.0f} events/s into Redis: "
            f"{verdict(r.read / r.seconds >= args.target_rebuild)} ({r.read / r.seconds:,.0f} events/s over "
            f"{r.read:,} events)"
        )
    if "history" in rebuilt:
        r = rebuilt["history"]
        print(f"  rebuild into OpenSearch: {r.read / r.seconds:,.0f} events/s over {r.read:,} events (no target)")


# -- main ----------------------------------------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="each measurement (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up before each measurement (default 2)")
    parser.add_argument("--rates", default="500,1000", help="grantPoints/s offered in the lag runs (default 500,1000)")
    parser.add_argument("--lag-processes", type=int, choices=[1, 2], default=2, help="API processes in the lag runs")
    parser.add_argument("--lag-clients", type=int, default=128, help="clients offering the commands (default 128)")
    parser.add_argument("--lag-users", type=int, default=4000, help="accounts per lag run (default 4000)")
    parser.add_argument("--poll-ms", type=float, default=1.0, help="the Redis poller's period (default 1 ms)")
    parser.add_argument("--drain", type=float, default=10.0, help="s to wait for the last versions (default 10)")
    parser.add_argument("--clients", type=int, default=32, help="balance clients, back to back (default 32)")
    parser.add_argument("--balance-accounts", type=int, default=1000, help="accounts queried (default 1000)")
    parser.add_argument("--lots", type=int, default=20, help="lots per queried account (default 20)")
    parser.add_argument("--history-clients", type=int, default=4, help="history and search clients (default 4)")
    parser.add_argument("--history-entries", type=int, default=10_000, help="entries of the long account")
    parser.add_argument("--index-docs", type=int, default=1_000_000, help="documents of the search index")
    parser.add_argument("--index-alias", default="bench-1m-history", help="the search index's alias")
    parser.add_argument("--keep-index", action="store_true", help="keep the search index for the next run")
    parser.add_argument("--drop-index", action="store_true", help="only delete the search index kept, then exit")
    parser.add_argument("--rebuild-events", type=int, default=100_000, help="events written for the rebuild")
    parser.add_argument("--target-lag", type=float, default=100.0, help="ms, commit-to-Redis p99 (default 100)")
    parser.add_argument("--target-ratio", type=float, default=0.5, help="balance GraphQL / bare (default 0.5)")
    parser.add_argument("--target-history", type=float, default=50.0, help="ms, history page p99 (default 50)")
    parser.add_argument("--target-rebuild", type=float, default=20_000.0, help="events/s into Redis (default 20000)")
    for part in ("lag", "balance", "history", "search", "rebuild"):
        parser.add_argument(f"--skip-{part}", action="store_true", help=f"no {part} part")
    parser.add_argument("--clean-up", metavar="LEDGER", help="only delete what the run of LEDGER left (after a kill)")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--bare-prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.index_alias.startswith("points-history"):
        parser.error("--index-alias may not start with points-history (the service's own indices)")
    return args


def main() -> None:
    args = arguments()
    env = stack_environment()
    if args.serve_bare:
        serve_bare(args.serve_bare, env.get("POINTS_REDIS_URL", "redis://127.0.0.1:6379/0"), args.bare_prefix)
        return
    env.setdefault("POINTS_REDIS_URL", "redis://127.0.0.1:6379/0")
    env.setdefault("POINTS_OPENSEARCH_URL", "http://127.0.0.1:9200")
    signal.signal(signal.SIGTERM, stopped)  # the clean-up runs on SIGTERM too
    run_id = secrets.token_hex(4)
    ledger = args.clean_up or f"bench-read-{run_id}"
    if not ledger.startswith("bench-read-"):
        raise SystemExit(f"{ledger} is not a ledger of this benchmark (bench-read-...)")
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    token = jwt.encode({"sub": "bench", "roles": ["admin"], "exp": now + timedelta(hours=2)}, secret, "HS256")
    api_env = {
        **os.environ,
        **env,
        "POINTS_PROFILE": "stack",
        "POINTS_AGGREGATE_TYPE": ledger,
        "POINTS_REDIS_PREFIX": ledger,
        "POINTS_HISTORY_ALIAS": f"{ledger}-history",
        "POINTS_JWT_SECRET": secret,
        "POINTS_ACCESS_LOG": "false",
    }
    with tempfile.TemporaryDirectory(prefix="bench-read-") as logs:
        run = Run(args, env, ledger, token, api_env, Path(logs), contextlib.ExitStack())
        if args.drop_index:
            print(f"deleted: {', '.join(asyncio.run(drop_index(run)))}")
            return
        if args.clean_up:
            print(f"cleaned up: {'; '.join(asyncio.run(clean_up(run, keep_index=True)))}")
            return
        print(
            f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {load_average()}; run "
            f"{run_id} (ledger, Redis prefix {ledger}, alias {run.alias}); connector points-outbox: "
            f"{connector_state(env)}"
        )
        began = time.perf_counter()
        try:
            with run.processes:  # every process stopped before the clean-up
                for part, runner in (
                    ("lag", lag_part),
                    ("balance", balance_part),
                    ("history", history_part),
                    ("search", search_part),
                    ("rebuild", rebuild_part),
                ):
                    if getattr(args, f"skip_{part}"):
                        continue
                    try:
                        runner(run)
                    except Exception:  # a part that fails is reported; the others still run
                        print(f"the {part} part failed:\n{traceback.format_exc()}", flush=True)
                print("stopping the processes")
        finally:
            done = asyncio.run(clean_up(run, args.keep_index))
            print(f"cleaned up: {'; '.join(done)}")
            if args.keep_index:
                print(f"kept {args.index_alias} for the next run (--drop-index deletes it)")
        summary(run)
        print(f"the run took {time.perf_counter() - began:.0f} s")


def stopped(signal_number: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signal_number}")


async def drop_index(run: Run) -> list[str]:
    index = run.index(run.args.index_alias)
    try:
        await index.drop()
    finally:
        await index.close()
    return [f"OpenSearch {run.args.index_alias}-* and its template"]


if __name__ == "__main__":
    main()
