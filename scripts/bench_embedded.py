"""Benchmark of the embedded default (a benchmark, not a test): how many commands per second, at what latency.

    uv run python scripts/bench_embedded.py                      # about 1 minute 30
    uv run python scripts/bench_embedded.py --clients 64 --seconds 30 --skip-load
    uv run python scripts/bench_embedded.py --client both        # also with an httpx load generator

Four parts, each on a fresh SQLite file in a temporary directory (WAL, synchronous=FULL):

1. HTTP: the real server (``uvicorn --factory app.entrypoints.server:create_app``, embedded profile, uvloop,
   httptools, no access log) in a subprocess, driven by N concurrent clients, each on its own keep-alive connection
   with its own users, sending grantPoints and usePoints mutations (per user in turn: a grant of 100, then two uses
   of 10) with an admin JWT: first back to back (what the server can take), then on a fixed schedule that offers
   ``--rate`` commands/s (the target: 1,000 commands/s with p99 under 20 ms). The load generator is a lean client
   of a few lines (raw HTTP/1.1 on loopback), because it shares the 2 cores with the server: httpx spends about as
   much CPU per request as the server does (``--client httpx`` or ``both`` to see it).
2. The same commands on the use cases in this process, without HTTP and GraphQL.
3. Bare SQL: the statement the store runs for those commands (its ``point_batch`` insert, whose triggers check the
   version and write point_events, point_event_outbox, point_idempotency, point_lot_expiries), straight on sqlite3,
   one transaction (one fsync) per command; then 32 commands per transaction, as group commit does. The distance to
   parts 1 and 2 is the Python cost.
4. Loading accounts through the command runner: a fresh one, 199 events (the longest tail before a snapshot),
   1,199 and 100,000 events with the runner's snapshots, and 100,000 events without any snapshot.

The load generator shares the machine (and its cores) with the server: CPU shares (the server's by thread) and the
load average are printed beside the figures; other work on the machine shows in the load average and lowers every
figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.adapters.sql.rows import CommitRows, commit_rows  # noqa: E402
from app.adapters.sql.statements import sqlite_time  # noqa: E402
from app.adapters.sqlite.batch import BatchWriter  # noqa: E402
from app.adapters.sqlite.event_store import create_schema, sqlite_connect  # noqa: E402
from app.domain.account import Account  # noqa: E402
from app.domain.events import DomainEvent, RecordedEvent, Source  # noqa: E402
from app.domain.policy import PointPolicy  # noqa: E402
from app.ports.event_store import Commit, IdempotencyRecord  # noqa: E402

POLICY = PointPolicy()
ERROR = "... on Error { code message }"
GRANT = (
    "mutation($input: GrantPointsInput!) { grantPoints(input: $input) { __typename "
    f"... on Granted {{ grantId balance version }} {ERROR} }} }}"
)
USE = (
    "mutation($input: UsePointsInput!) { usePoints(input: $input) { __typename "
    f"... on PointsUsed {{ useId balance version allocations {{ grantId amount }} }} {ERROR} }} }}"
)
"""What an order system asks for: the ids it keeps, the new balance, and an error's code and message."""


@dataclass
class Figures:
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def percentile(self, p: float) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else float("nan")

    def line(self, label: str) -> str:
        lat = sorted(self.latencies)
        if not lat:
            return f"{label}: nothing measured"

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(len(lat) * p))] * 1000

        rate = len(lat) / self.seconds
        return (
            f"{label}: {rate:,.0f} commands/s over {self.seconds:.1f} s ({len(lat):,} commands); latency "
            f"p50 {pct(0.50):.2f} ms, p90 {pct(0.90):.2f} ms, p99 {pct(0.99):.2f} ms, max {lat[-1] * 1000:.1f} ms"
        )


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU of each thread of a process (Linux /proc), by thread id; the main thread's id is the pid."""
    threads: dict[int, float] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                threads[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return threads


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STALLS = {
    "points_store_commit_seconds_bucket": "store commits (fsyncs)",
    "points_store_checkpoint_seconds_bucket": "checkpoints on the writer",
}
"""The server's histograms of the waits every command in flight shares (from /metrics), and what they are called."""

Buckets = dict[str, dict[float, float]]


def stall_buckets(port: int) -> Buckets:
    """Per histogram of :data:`STALLS`: its cumulative count by upper bound (the writer's checkpoints only)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found: Buckets = {name: {} for name in STALLS}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in found and sample.labels.get("thread", "writer") == "writer":
                found[sample.name][float(sample.labels["le"])] = sample.value
    return found


def stall_lines(before: Buckets, after: Buckets) -> tuple[list[str], bool]:
    """How many commits and writer checkpoints the run made and how many were slow, and whether any took over
    20 ms. A command is answered only after its transaction's fsync, and the writer takes no batch while it
    checkpoints, so a missed latency target with slow ones beside it is the disk's doing."""
    lines = []
    stalled = False
    for name, label in STALLS.items():
        count = {bound: total - before[name].get(bound, 0.0) for bound, total in after[name].items()}
        total = count.get(float("inf"), 0.0)
        slow = {bound: total - count[bound] for bound in (0.02, 0.1, 0.5) if bound in count}
        slowest = next((bound for bound in sorted(count) if count[bound] == total), float("inf"))
        stalled = stalled or slow.get(0.02, 0) > 0
        lines.append(
            f"  {label} in the run, warm-up included: {total:,.0f}; over 20 ms {slow.get(0.02, 0):,.0f}, over 100 ms "
            f"{slow.get(0.1, 0):,.0f}, over 500 ms {slow.get(0.5, 0):,.0f}; the slowest under {slowest:g} s"
        )
    return lines, stalled


# -- 1. HTTP ------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def server(args: argparse.Namespace, directory: Path, port: int, secret: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "POINTS_PROFILE": args.profile,
        "POINTS_DATABASE_URL": f"sqlite:///{directory / 'points.db'}",
        "POINTS_JWT_SECRET": secret,
    }
    command = [
        sys.executable, "-m", "uvicorn", "--factory", args.app,
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
        "--log-level", "warning",
    ]  # fmt: skip
    print("server:", " ".join(["python", *command[1:]]), f"(POINTS_PROFILE={args.profile}, a fresh SQLite file)")
    with serving(command, env, port) as process:
        yield process


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], port: int, **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """``command``, a server on ``port``, once its /health answers ok; stopped on the way out (also on failure)."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, **popen)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json().get("status") == "ok":
                    break
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start within 60 s")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LeanHttp:
    """A lean HTTP/1.1 keep-alive client on one connection: next to no CPU, so that the server's share shows."""

    def __init__(self, host: str, port: int, path: str, token: str) -> None:
        self._address = (host, port)
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, body: dict[str, Any]) -> Any:
        if self._streams is None:
            self._streams = await asyncio.open_connection(*self._address)
        reader, writer = self._streams
        payload = json.dumps(body).encode()
        writer.write(self._head + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        return json.loads(await reader.readexactly(length))

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


class HttpxHttp:
    def __init__(self, client: httpx.AsyncClient, url: str, token: str) -> None:
        self._client = client
        self._url = url
        self._headers = {"Authorization": f"Bearer {token}"}

    async def post(self, body: dict[str, Any]) -> Any:
        response = await self._client.post(self._url, json=body, headers=self._headers)
        return response.json()

    async def close(self) -> None:
        await self._client.aclose()


async def drive(
    kind: str,
    port: int | list[int],
    token: str,
    args: argparse.Namespace,
    rate: float | None,
    answered: Callable[[str, dict[str, Any], float], None] | None = None,
) -> Figures:
    """``args.clients`` clients, each with its own connection and its own users, send commands back to back, or,
    with a ``rate``, on a fixed schedule that adds up to ``rate`` commands/s; then a command's latency counts from
    when it was due, so that a server falling behind shows in it. With several ports, client n talks to port n mod
    their number. ``answered(user, answer, perf_counter time)`` sees each measured command's answer."""
    ports = [port] if isinstance(port, int) else port
    figures = Figures()
    run = secrets.token_hex(3)
    per_client = max(1, args.users // args.clients)
    began = time.perf_counter()
    measure_from = began + args.warmup
    stop = measure_from + args.seconds
    interval = args.clients / rate if rate else 0.0

    def connect(port: int) -> LeanHttp | HttpxHttp:
        if kind == "lean":
            return LeanHttp("127.0.0.1", port, "/graphql", token)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return HttpxHttp(httpx.AsyncClient(limits=limits, timeout=30), f"http://127.0.0.1:{port}/graphql", token)

    async def client(number: int) -> None:
        http = connect(ports[number % len(ports)])
        accounts = [f"bench-{run}-{number}-{n}" for n in range(per_client)]
        try:
            for i in itertools.count():
                due = began + (i + number / args.clients) * interval
                if rate and due > time.perf_counter():
                    await asyncio.sleep(due - time.perf_counter())
                if time.perf_counter() >= stop:
                    return
                user = accounts[(i // 3) % per_client]
                key = f"{run}-{number}-{i}"
                command: dict[str, Any] = {"userId": user, "idempotencyKey": key}
                if i % 3 == 0:  # per user in turn: a grant of 100, then two uses of 10
                    command.update(amount=100, source="ORDER", orderId=key)
                    body, name = {"query": GRANT, "variables": {"input": command}}, "grantPoints"
                else:
                    command.update(amount=10)
                    body, name = {"query": USE, "variables": {"input": command}}, "usePoints"
                sent = due if rate else time.perf_counter()
                try:
                    answer = (await http.post(body))["data"][name]
                    outcome = answer["__typename"]
                except (OSError, asyncio.IncompleteReadError, httpx.HTTPError, KeyError, TypeError, ValueError) as e:
                    outcome = f"failed: {type(e).__name__}"
                done = time.perf_counter()
                if (done if rate else sent) >= measure_from and done <= stop:
                    figures.latencies.append(done - sent)
                    figures.outcomes[outcome] += 1
                    if answered is not None and not outcome.startswith("failed"):
                        answered(user, answer, done)
        finally:
            await http.close()

    await asyncio.gather(*(client(n) for n in range(args.clients)))
    figures.seconds = args.seconds
    return figures


def http_part(args: argparse.Namespace, directory: Path) -> None:
    secret = secrets.token_urlsafe(32)
    port = free_port()
    now = datetime.now(UTC)
    token = jwt.encode(
        {"sub": "bench", "roles": ["admin"], "iat": now, "exp": now + timedelta(hours=1)}, secret, algorithm="HS256"
    )
    kinds = ["httpx", "lean"] if args.client == "both" else [args.client]
    runs: list[tuple[str, float | None]] = [(kind, None) for kind in kinds]
    if args.rate:
        runs += [(kinds[-1], args.rate)] * args.rate_runs
    verdicts: list[tuple[bool, float, bool]] = []  # per run at the rate: met, p99 in ms, a disk stall beside it
    if "lean" in kinds:
        print(
            "load generator: the lean client (raw HTTP/1.1 keep-alive on loopback, a few lines of asyncio), which "
            "leaves the cores to the server; httpx would take about as much CPU per request as the server does"
        )
    with server(args, directory, port, secret) as process:
        for kind, rate in runs:
            threads, client_cpu = thread_cpu_seconds(process.pid), own_cpu_seconds()
            stalls = stall_buckets(port) if args.profile == "embedded" else None
            figures = asyncio.run(drive(kind, port, token, args, rate))
            elapsed = args.warmup + args.seconds
            client_cpu = own_cpu_seconds() - client_cpu
            used = {tid: cpu - threads.get(tid, 0.0) for tid, cpu in thread_cpu_seconds(process.pid).items()}
            loop_cpu = used.pop(process.pid, 0.0)
            offered = f"{rate:,.0f} commands/s offered" if rate else "back to back"
            print(figures.line(f"HTTP ({kind} client, {args.clients} clients, {offered}, {args.users:,} users)"))
            print("  outcomes:", ", ".join(f"{name} {count:,}" for name, count in figures.outcomes.most_common()))
            print(
                f"  CPU ({os.cpu_count()} cores, shared): server {(loop_cpu + sum(used.values())) / elapsed:.0%} of "
                f"a core (event loop thread {loop_cpu / elapsed:.0%}, other threads {sum(used.values()) / elapsed:.0%}"
                f"), load generator {client_cpu / elapsed:.0%} of a core; load average {load_average()}"
            )
            stalled = False
            if stalls is not None:
                lines, stalled = stall_lines(stalls, stall_buckets(port))
                print(*lines, sep="\n")
            if rate:
                served, p99 = len(figures.latencies) / figures.seconds, figures.percentile(0.99) * 1000
                met = served >= 0.99 * rate and p99 < args.target_p99
                verdicts.append((met, p99, stalled))
                print(
                    f"  target ({rate:,.0f} commands/s over HTTP with p99 under {args.target_p99:g} ms): "
                    f"{'met' if met else 'NOT met'} ({served:,.0f} commands/s, p99 {p99:.1f} ms)"
                )
    if len(verdicts) > 1:
        missed = [(p99, stalled) for met, p99, stalled in verdicts if not met]
        print(
            f"target over {len(verdicts)} runs at {args.rate:,.0f} commands/s: met in {len(verdicts) - len(missed)}, "
            f"missed in {len(missed)} ({sum(stalled for _, stalled in missed)} of them with a commit or writer "
            f"checkpoint over 20 ms beside them); p99 by run: {', '.join(f'{p99:.1f}' for _, p99, _ in verdicts)} ms"
        )


async def drive_use_cases(args: argparse.Namespace, directory: Path) -> tuple[Figures, float]:
    """The same commands on the use cases in this process (no HTTP, no GraphQL), with the relay running."""
    from app.application.commands.grants import GrantPoints
    from app.application.commands.uses import UsePoints
    from app.containers import build_container
    from app.domain.errors import DomainError
    from app.entrypoints.runtime import running
    from app.settings import Settings

    container = build_container(Settings(profile="embedded", database_url=f"sqlite:///{directory / 'cases.db'}"))
    figures = Figures()
    per_client = max(1, args.users // args.clients)
    async with running(container):
        services = container.services()
        cpu = own_cpu_seconds()
        measure_from = time.perf_counter() + args.warmup
        stop = measure_from + args.case_seconds

        async def client(number: int) -> None:
            accounts = [f"bench-{number}-{n}" for n in range(per_client)]
            for i in itertools.count():
                if time.perf_counter() >= stop:
                    return
                user, key = accounts[(i // 3) % per_client], f"{number}-{i}"
                sent = time.perf_counter()
                try:
                    if i % 3 == 0:
                        result: object = await services.grant.execute(
                            GrantPoints(user, key, 100, Source.ORDER, order_id=key)
                        )
                    else:
                        result = await services.use.execute(UsePoints(user, key, 10))
                    outcome = type(result).__name__
                except DomainError as error:
                    outcome = type(error).__name__
                done = time.perf_counter()
                if sent >= measure_from and done <= stop:
                    figures.latencies.append(done - sent)
                    figures.outcomes[outcome] += 1

        await asyncio.gather(*(client(n) for n in range(args.clients)))
        cpu = own_cpu_seconds() - cpu
    figures.seconds = args.case_seconds
    return figures, cpu / (args.warmup + args.case_seconds)


def use_case_part(args: argparse.Namespace, directory: Path) -> None:
    figures, cpu = asyncio.run(drive_use_cases(args, directory))
    print(figures.line(f"use cases in process (no HTTP), {args.clients} concurrent, {args.users:,} users"))
    print("  outcomes:", ", ".join(f"{name} {count:,}" for name, count in figures.outcomes.most_common()))
    print(f"  CPU: {cpu:.0%} of a core (event loop and SQLite writer thread); load average {load_average()}")


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


# -- 2. bare SQL --------------------------------------------------------------------------------------------------


def command_rows(now: datetime) -> tuple[CommitRows, CommitRows]:
    """The rows of one grant and one use as the store prepares them, from real events (ids replaced per command)."""
    account = Account.open("bench-user")
    account.grant(grant_id="g" * 32, amount=100, source=Source.ORDER, now=now, policy=PointPolicy(), order_id="o" * 14)
    grant = account.new_events()
    account.mark_committed()
    account.use(use_id="u" * 32, amount=10, now=now)
    use = account.new_events()
    record = IdempotencyRecord("k" * 14, "f" * 64, b'{"use_id": "' + b"u" * 32 + b'", "amount": 10}')

    def rows(version: int, events: list[DomainEvent]) -> CommitRows:
        recorded = [RecordedEvent("e" * 32, "bench-user", version, e) for e in events]
        return commit_rows(Commit("bench-user", version - 1, recorded, record), sqlite_time)

    return rows(1, grant), rows(2, use)


def numbered(template: CommitRows, ident: str, user: str, version: int) -> CommitRows:
    """One command's rows (``template``) as another command's: ids of its own from ``ident``, on ``user`` at
    ``version``."""
    return CommitRows(
        user_id=user,
        expected_version=version - 1,
        events=[dict(template.events[0], event_id=ident, user_id=user, version=version)],
        outbox=[dict(template.outbox[0], id=ident, aggregateid=user, version=version)],
        idempotency={**(template.idempotency or {}), "user_id": user, "key": f"k{ident}"},
        snapshot=None,
        expiries=[dict(e, grant_id=f"g{ident}", user_id=user) for e in template.expiries],
        unscheduled=[],
    )


def bare_sql(path: Path, seconds: float, batch: int) -> Figures:
    """The store's statements for a 1:2 mix of grants and uses, ``batch`` commands per transaction."""
    create_schema(str(path))
    connection = sqlite_connect(str(path))
    writer = BatchWriter(connection)
    grant, use = command_rows(datetime.now(UTC))
    figures = Figures()
    versions: dict[str, int] = {}
    stop = time.perf_counter() + seconds
    started = time.perf_counter()
    counter = itertools.count()
    while time.perf_counter() < stop:
        began = time.perf_counter()
        commits: list[CommitRows] = []
        for _ in range(batch):
            i = next(counter)
            user = f"u{i % 2000}"
            version = versions.get(user, 0) + 1
            commits.append(numbered(grant if (version - 1) % 3 == 0 else use, f"{i:032x}", user, version))
            versions[user] = version
        try:
            writer.write(commits, [])
        except sqlite3.IntegrityError as error:
            raise SystemExit(f"bare SQL: the store refused a command: {error}") from None
        took = time.perf_counter() - began
        figures.latencies.extend([took] * batch)  # every command of a batch waits for its commit
    figures.seconds = time.perf_counter() - started
    connection.close()
    return figures


def sql_part(args: argparse.Namespace, directory: Path) -> None:
    mode = sqlite3.connect(":memory:").execute("select sqlite_version()").fetchone()[0]
    print(f"bare SQL: sqlite3 {mode}, journal_mode=WAL, synchronous=FULL, the store's compiled statements")
    print(bare_sql(directory / "bare-1.db", args.sql_seconds, 1).line("  bare SQL, 1 command per transaction"))
    print(bare_sql(directory / "bare-32.db", args.sql_seconds, 32).line("  bare SQL, 32 commands per transaction"))


# -- 3. loading a long account -------------------------------------------------------------------------------------


async def write_history(store: Any, user: str, count: int, now: datetime) -> None:
    """``count`` events on ``user`` (a grant of 100,000, then 999 uses of 100, and again), appended in commits of
    1,000 with the snapshot the runner would hold: at the last multiple of 200, if the history reaches one."""
    history = Account.open(user)
    snapshot_at = count - count % 200
    for start in range(0, count, 1000):
        for v in range(start, min(count, start + 1000)):
            if v == snapshot_at and v > 0 and history.new_events():
                break  # end this commit at the snapshot's version
            if v % 1000 == 0:
                history.grant(grant_id=f"g{v}", amount=100_000, source=Source.PROMOTION, now=now, policy=POLICY)
            else:
                history.use(use_id=f"u{v}", amount=100, now=now)
        base, events = history.committed_version, history.new_events()
        recorded = [RecordedEvent(f"{user}-{base + i + 1}", user, base + i + 1, e) for i, e in enumerate(events)]
        snapshot = history.state if history.version == snapshot_at and snapshot_at > 0 else None
        await store.append(Commit(user, base, recorded, snapshot=snapshot))
        history.mark_committed()
    while history.version < count:  # the tail after the snapshot
        history.use(use_id=f"u{history.version}", amount=100, now=now)
        base, events = history.committed_version, history.new_events()
        await store.append(Commit(user, base, [RecordedEvent(f"{user}-{base + 1}", user, base + 1, events[0])]))
        history.mark_committed()


async def load_part(args: argparse.Namespace, directory: Path) -> None:
    """Accounts of several lengths written through the store with the snapshots the runner keeps (one every 200
    events), and the longest copied once more without any; then the command runner loads each, and a usePoints runs
    on each. Loading costs what decoding the snapshot (every lot and use the account ever had) and the events after
    it costs."""
    from app.adapters.clock import FixedClock
    from app.application.commands.uses import UsePoints
    from app.containers import build_container
    from app.settings import Settings

    now = datetime(2026, 1, 1, tzinfo=UTC)
    path = directory / "load.db"
    container = build_container(Settings(profile="embedded", database_url=f"sqlite:///{path}", snapshot_every=200))
    container.clock.override(FixedClock(now))
    await _settled(container.init_resources())
    try:
        store, commands, services = container.event_store(), container.commands(), container.services()
        longest = args.events
        print("loading accounts (per 1,000 events: a grant of 100,000, then 999 uses of 100), snapshot every 200")
        began = time.perf_counter()
        accounts = {"fresh": 1, "tail-199": 199, "1k-plus-199": 1199, f"{longest // 1000}k": longest}
        for user, count in accounts.items():
            await write_history(store, user, count, now)
        copy = sqlite_connect(str(path))  # the longest history again, without a snapshot
        with contextlib.closing(copy):
            copy.execute("BEGIN IMMEDIATE")
            copy.execute(
                "INSERT INTO point_events (event_id, user_id, version, type, occurred_at, payload) "
                "SELECT event_id || '-copy', ?, version, type, occurred_at, payload FROM point_events "
                "WHERE user_id = ? ORDER BY version",
                (f"{longest // 1000}k-no-snapshot", f"{longest // 1000}k"),
            )
            copy.execute("COMMIT")
        accounts[f"{longest // 1000}k-no-snapshot"] = longest
        print(f"  (written in {time.perf_counter() - began:.1f} s)")
        for user in accounts:
            stream = await store.load(user)
            snap = f"snapshot at {stream.snapshot.version:,}" if stream.snapshot else "no snapshot"
            began = time.perf_counter()
            loaded = await commands.load(user)
            load_took = time.perf_counter() - began
            began = time.perf_counter()
            await services.use.execute(UsePoints(user, f"bench-use-{user}", 1))
            use_took = time.perf_counter() - began
            print(
                f"  {user:>16}: {loaded.version:>7,} events, {snap:>20} + {len(stream.events):>6,} after it: "
                f"load {load_took * 1000:8.1f} ms, one usePoints (load + decide + append) {use_took * 1000:8.1f} ms"
            )
    finally:
        await _settled(container.shutdown_resources())


async def _settled(result: Awaitable[None] | None) -> None:
    if result is not None:
        await result


# -- main ---------------------------------------------------------------------------------------------------------


def drive_arguments(parser: argparse.ArgumentParser, measured: str) -> None:
    """The knobs :func:`drive` reads."""
    parser.add_argument("--clients", type=int, default=32, help=f"concurrent {measured} clients (default 32)")
    parser.add_argument("--users", type=int, default=4000, help="distinct users, split over the clients")
    parser.add_argument("--seconds", type=float, default=10.0, help=f"each {measured} measurement (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up before each measurement (default 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    drive_arguments(parser, "HTTP")
    parser.add_argument("--case-seconds", type=float, default=10.0, help="use cases in process (default 10)")
    parser.add_argument("--sql-seconds", type=float, default=4.0, help="each bare SQL loop (default 4)")
    parser.add_argument("--events", type=int, default=100_000, help="events of the long account (default 100000)")
    parser.add_argument(
        "--client", choices=["httpx", "lean", "both"], default="lean", help="HTTP load generator (default lean)"
    )
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="then offer this many commands/s with the last client (0: no)"
    )
    parser.add_argument("--target-p99", type=float, default=20.0, help="ms; the target's p99 at --rate (default 20)")
    parser.add_argument(
        "--rate-runs", type=int, default=1, help="runs at --rate, each with new users, and a summary (default 1)"
    )
    parser.add_argument("--app", default="app.entrypoints.server:create_app", help="the server's ASGI factory")
    parser.add_argument("--profile", default="embedded", help="the server's profile (memory: no SQLite at all)")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-cases", action="store_true")
    parser.add_argument("--skip-sql", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
        "the load generator runs on the same machine as the server"
    )
    with tempfile.TemporaryDirectory(prefix="bench-embedded-") as temp:
        directory = Path(temp)
        if not args.skip_http:
            http_part(args, directory)
        if not args.skip_cases:
            use_case_part(args, directory)
        if not args.skip_sql:
            sql_part(args, directory)
        if not args.skip_load:
            asyncio.run(load_part(args, directory))


if __name__ == "__main__":
    main()
