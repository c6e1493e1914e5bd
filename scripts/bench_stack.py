"""Benchmark of the full stack (a benchmark, not a test): commands per second through GraphQL on MariaDB, against a
bare loop of the same SQL, and the lag from commit to a Kafka consumer.

    scripts/stack.sh up                                           # the stack must be running (see README)
    python3 -m uv run --frozen python scripts/bench_stack.py      # about 2 minutes 30
    python3 -m uv run --frozen python scripts/bench_stack.py --skip-lag --seconds 5 --clients 64

In one run, on the stack named by ``.stack/env`` (or the POINTS_* variables of the environment, which win):

1. Bare SQL: what one append of the MariaDB store sends, from the store's own code: the version check, then BEGIN,
   INSERT point_events, INSERT point_event_outbox, DELETE that outbox row, INSERT point_idempotency, a grant's
   expiry upsert and COMMIT as one multi-statement query; on an aiomysql pool of its own with one connection per
   client, no Python of the service around them: what the database and driver can take at that concurrency.
2. HTTP: ``python -m app serve`` on the stack profile, first one process and then two (each on its own port, the
   clients split over them), driven back to back by ``--clients`` lean keep-alive clients with the command mix of
   ``bench_embedded.py`` (per user a grantPoints of 100, then two usePoints of 10) with a service token. Every
   command is durable when answered (innodb_flush_log_at_trx_commit=1, sync_binlog=1). The ratio HTTP / bare SQL
   is the service's own cost.
3. Lag: commands offered at a steady 500 and 1,000 commands/s (``--rates``) to the API processes while an aiokafka
   consumer, assigned to every partition of the events topic from its end offsets, stamps each message of this
   run's ledger (the outbox rows' aggregatetype, unique per run) as it arrives; matched to its command by user and
   version. The lag is counted from the event's ``occurredAt`` (decided before the commit, so an upper bound of
   the commit-to-consumer lag: it also holds the append's own time) and, beside it, from the moment the HTTP answer
   arrived (after the commit, so a lower bound). The target is judged on the upper bound.

Each run uses new user ids and a new ledger name, so runs never collide with each other or with other traffic on
the same stack; the API processes it starts are stopped at the end, also on Ctrl-C or failure. Everything shares
the machine's cores: the API processes, MariaDB, Kafka, Connect, OpenSearch, Redis and the load generator; the CPU
each took is printed beside each run, with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import aiomysql
import httpx
import jwt
import orjson
import pymysql
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_embedded import (
    ROOT,
    STALLS,
    Buckets,
    Figures,
    command_rows,
    drive,
    drive_arguments,
    free_port,
    load_average,
    numbered,
    own_cpu_seconds,
    serving,
    stall_buckets,
    stall_lines,
    thread_cpu_seconds,
)

from app.adapters.mysql.event_store import CONNECT_ARGS, MYSQL, append_transaction
from app.adapters.sql.rows import CommitRows
from app.adapters.sql.statements import Statements

STACK_SERVERS = {"mariadb": "MariaDB", "kafka": "Kafka", "connect": "Connect", "opensearch": "OpenSearch"}
"""The stack's servers whose CPU is shown beside each run (their pids in .stack/run/<name>.pid)."""


def stack_environment() -> dict[str, str]:
    """The stack's POINTS_* settings: ``.stack/env`` (written by ``scripts/stack.sh up``), then the environment's."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in (ROOT / ".stack" / "env").read_text().splitlines():
            name, equals, value = line.partition("=")
            if equals and name.startswith("POINTS_"):
                found[name] = value.strip()
    found.update({name: value for name, value in os.environ.items() if name.startswith("POINTS_")})
    found.setdefault("POINTS_DATABASE_URL", "mysql+aiomysql://points:points@127.0.0.1:3306/points")
    found.setdefault("POINTS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    found.setdefault("POINTS_KAFKA_TOPIC", "points.events")
    found.setdefault("POINTS_CONNECT_URL", "http://127.0.0.1:8083")
    return found


# -- CPU of everything on the machine ------------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    return sum(thread_cpu_seconds(pid).values())


class CpuShares:
    """CPU seconds of the API processes, the stack's servers and this process (the load generator) over a run, and
    of everything else on the machine (other work, which every figure of the run shares the cores with)."""

    others: ClassVar[list[float]] = []
    """Everything else's share of a core in each run so far."""

    def __init__(self, apis: list[int]) -> None:
        self._pids: dict[str, list[int]] = {"API": apis} if apis else {}
        for name, label in STACK_SERVERS.items():
            with contextlib.suppress(OSError, ValueError):
                self._pids[label] = [int((ROOT / ".stack" / "run" / f"{name}.pid").read_text().split()[0])]
        self._began = time.perf_counter()
        self._before = self._sample()

    def _sample(self) -> dict[str, float]:
        sample = {label: sum(process_cpu(pid) for pid in pids) for label, pids in self._pids.items()}
        sample["load generator"] = own_cpu_seconds()
        busy, stolen = machine_cpu()
        sample["everything else"] = busy - sum(sample.values())
        sample["stolen by the hypervisor"] = stolen
        return sample

    def line(self) -> str:
        elapsed = time.perf_counter() - self._began
        after = self._sample()
        shares = ", ".join(f"{label} {(after[label] - self._before[label]) / elapsed:.0%}" for label in after)
        CpuShares.others.append((after["everything else"] - self._before["everything else"]) / elapsed)
        return f"  CPU ({os.cpu_count()} cores, in % of one): {shares}; load average {load_average()}"


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the whole machine was busy (user, nice, system, irq, softirq) and stolen by the hypervisor."""
    try:
        ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    second = os.sysconf("SC_CLK_TCK")
    return (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / second, ticks[7] / second


# -- 1. bare SQL ------------------------------------------------------------------------------------------------


class Refused(Exception):
    """The version check found the account elsewhere (another run emptied the tables, say)."""


async def bare_loop(env: dict[str, str], args: argparse.Namespace, ledger: str) -> Figures:
    """``args.clients`` clients, each on its own connection with its own users, append the rows of the command mix
    back to back as the store sends them, one transaction per command."""
    url = make_url(env["POINTS_DATABASE_URL"])
    pool = await aiomysql.create_pool(
        **url.translate_connect_args(username="user", database="db"),
        **CONNECT_ARGS,
        minsize=args.clients,
        maxsize=args.clients,
    )
    sql = Statements.for_dialect(MYSQL)
    grant, use = command_rows(datetime.now(UTC))
    run = secrets.token_hex(4)
    per_client = max(1, args.users // args.clients)
    figures = Figures()
    measure_from = time.perf_counter() + args.warmup
    stop = measure_from + args.seconds

    async def append(connection: Any, cursor: Any, rows: CommitRows) -> None:
        """What the store sends for an append: the version check, then BEGIN ... COMMIT in one query."""
        if rows.expected_version > 0:
            await cursor.execute(sql.version_exists.sql, {"user_id": rows.user_id, "version": rows.expected_version})
            if not await cursor.fetchall():
                raise Refused(rows.user_id)
        try:
            await cursor.execute(append_transaction(cursor, sql, rows))
            while await cursor.nextset():
                pass
        except BaseException:
            await connection.rollback()
            raise

    async def client(number: int) -> None:
        versions: dict[str, int] = {}
        renamed = 0
        async with pool.acquire() as connection, connection.cursor() as cursor:
            for i in itertools.count():
                user = f"bare-{run}-{number}-{(i // 3) % per_client}-{renamed}"
                version = versions.get(user, 0) + 1
                rows = numbered(grant if (version - 1) % 3 == 0 else use, f"{run}-{number}-{i}", user, version)
                rows.outbox[0]["aggregatetype"] = ledger
                sent = time.perf_counter()
                if sent >= stop:
                    return
                try:
                    await append(connection, cursor, rows)
                    outcome, versions[user] = "committed", version
                except (Refused, pymysql.err.IntegrityError) as error:
                    outcome = f"refused ({type(error).__name__}); the user is taken again under a new name"
                    renamed += 1
                done = time.perf_counter()
                if sent >= measure_from and done <= stop:
                    figures.latencies.append(done - sent)
                    figures.outcomes[outcome] += 1

    try:
        await asyncio.gather(*(client(n) for n in range(args.clients)))
    finally:
        pool.close()
        await pool.wait_closed()
    figures.seconds = args.seconds
    return figures


# -- 2. the API processes --------------------------------------------------------------------------------------


@contextlib.contextmanager
def api_process(env: dict[str, str], log: Path) -> Iterator[tuple[int, int]]:
    """``python -m app serve`` on the stack profile on a free port, its output in ``log``: (port, pid). Once it
    answers, waits (at most a minute) until its CPU settles, i.e. its feed has read the events topic's backlog."""
    port = free_port()
    command = [sys.executable, "-m", "app", "serve", "--port", str(port)]
    with log.open("ab") as out, contextlib.ExitStack() as stack:
        try:
            process = stack.enter_context(
                serving(command, env, port, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            )
        except SystemExit as error:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise SystemExit(f"{error}; the end of its output:\n{tail}") from None
        began = time.monotonic()
        used = 1.0
        while used > 0.25 and time.monotonic() - began < 60:
            before = process_cpu(process.pid)
            time.sleep(0.5)
            used = (process_cpu(process.pid) - before) / 0.5
        print(
            f"  API process on port {port} (pid {process.pid}) ready; idle after {time.monotonic() - began:.1f} s "
            f"({used:.0%} of a core)"
        )
        yield port, process.pid


def http_run(label: str, ports: list[int], pids: list[int], token: str, args: argparse.Namespace) -> Figures:
    cpu, commits = CpuShares(pids), commit_buckets(ports)
    figures = asyncio.run(drive("lean", ports, token, args, None))
    print(figures.line(label))
    print("  outcomes:", ", ".join(f"{name} {count:,}" for name, count in figures.outcomes.most_common()))
    print(cpu.line())
    print(commit_line(ports, commits))
    return figures


def commit_buckets(ports: list[int]) -> Buckets:
    """The API processes' histograms of their transactions' times (``/metrics``), summed."""
    summed: Buckets = {name: {} for name in STALLS}
    for port in ports:
        for name, counts in stall_buckets(port).items():
            for bound, count in counts.items():
                summed[name][bound] = summed[name].get(bound, 0.0) + count
    return summed


def commit_line(ports: list[int], before: Buckets) -> str:
    """How many MariaDB transactions the run made and how many were slow: every command in one waits for its
    fsyncs (redo log and binlog), so latencies with slow commits beside them are the disk's doing."""
    lines, _ = stall_lines(before, commit_buckets(ports))
    return lines[0]  # the stack has no WAL checkpoints


# -- 3. commit to Kafka ----------------------------------------------------------------------------------------


@dataclass
class Arrival:
    perf: float
    """When the consumer got it (``time.perf_counter()``, the load generator's clock)."""
    wall: float
    """The same moment on the wall clock (the clock of ``occurredAt``)."""
    occurred_at: float
    record_time: float
    """The Kafka record's timestamp (Debezium's, when it read the change), in seconds since the epoch."""


@dataclass
class Receiver:
    """An aiokafka consumer on every partition of the events topic, from the end offsets it found at start."""

    env: dict[str, str]
    ledger: str
    arrivals: dict[tuple[str, int], Arrival] = field(default_factory=dict)
    wanted: set[tuple[str, int]] = field(default_factory=set)
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once every message in ``wanted`` arrived."""
    redelivered: int = 0
    backlog: int = 0
    """Messages on the topic when it started (each API process reads them all when it starts)."""
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        bootstrap, topic = self.env["POINTS_KAFKA_BOOTSTRAP"], self.env["POINTS_KAFKA_TOPIC"]
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:  # the consumer's own metadata knows only the topics it asked for
            described = await admin.describe_topics([topic])
        finally:
            await admin.close()
        partitions = [TopicPartition(topic, p["partition"]) for t in described for p in t["partitions"]]
        if not partitions:
            raise LookupError(f"no topic {topic} on {bootstrap}")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=10
        )
        await consumer.start()
        self._consumer = consumer
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        self.backlog = sum(ends.values()) - sum(starts.values())
        for tp, offset in ends.items():
            consumer.seek(tp, offset)

    async def run(self) -> None:
        assert self._consumer is not None
        ledger = self.ledger.encode()
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            perf, wall = time.perf_counter(), time.time()
            for records in batches.values():
                for record in records:
                    if dict(record.headers).get("aggregatetype", ledger).strip(b'"') != ledger:
                        continue
                    value = orjson.loads(record.value)
                    key = (value["userId"], int(value["version"]))
                    if key in self.arrivals:
                        self.redelivered += 1
                        continue
                    occurred = datetime.fromisoformat(value["occurredAt"]).timestamp()
                    self.arrivals[key] = Arrival(perf, wall, occurred, record.timestamp / 1000)
            self.expect(set())

    def expect(self, keys: set[tuple[str, int]]) -> None:
        self.wanted |= keys
        if self.wanted and self.wanted.issubset(self.arrivals):
            self.complete.set()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


@dataclass
class Lag:
    rate: float
    figures: Figures
    expected: int
    received: int
    from_occurred: Figures
    from_answer: Figures
    to_record: Figures


async def lag_run(env: dict[str, str], ledger: str, ports: list[int], token: str, args: argparse.Namespace,
                  rate: float) -> Lag:  # fmt: skip
    receiver = Receiver(env, ledger)
    await receiver.start()
    reading = asyncio.create_task(receiver.run())
    answers: dict[tuple[str, int], float] = {}

    def answered(user: str, answer: dict[str, Any], done: float) -> None:
        if "version" in answer:
            answers[(user, int(answer["version"]))] = done

    try:
        figures = await drive("lean", ports, token, args, rate, answered)
        receiver.expect(set(answers))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.complete.wait(), args.drain)
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        await receiver.stop()
    lag = Lag(rate, figures, len(answers), 0, Figures(), Figures(), Figures())
    for key, answered_at in answers.items():
        arrival = receiver.arrivals.get(key)
        if arrival is None:
            continue
        lag.received += 1
        lag.from_occurred.latencies.append(arrival.wall - arrival.occurred_at)
        lag.from_answer.latencies.append(arrival.perf - answered_at)
        lag.to_record.latencies.append(arrival.record_time - arrival.occurred_at)
    if receiver.redelivered:
        print(f"  ({receiver.redelivered} messages came twice)")
    return lag


def ms(figures: Figures, p: float) -> str:
    return f"{figures.percentile(p) * 1000:.1f}"


def lag_lines(lag: Lag, processes: int) -> list[str]:
    served = len(lag.figures.latencies) / lag.figures.seconds
    return [
        lag.figures.line(f"offered {lag.rate:,.0f} commands/s to {processes} API process(es)")
        + " (latency from when each was due)",
        "  outcomes: " + ", ".join(f"{name} {count:,}" for name, count in lag.figures.outcomes.most_common()),
        f"  commit to the Kafka consumer: {lag.received:,} of {lag.expected:,} events received"
        f" ({served:,.0f} commands/s served)",
        f"    from occurredAt (before the commit: an upper bound): p50 {ms(lag.from_occurred, 0.5)} ms, "
        f"p99 {ms(lag.from_occurred, 0.99)} ms, max {ms(lag.from_occurred, 1.0)} ms",
        f"    from the HTTP answer (after the commit: a lower bound): p50 {ms(lag.from_answer, 0.5)} ms, "
        f"p99 {ms(lag.from_answer, 0.99)} ms, max {ms(lag.from_answer, 1.0)} ms",
        f"    of which occurredAt to Debezium's record time (ms resolution): p50 {ms(lag.to_record, 0.5)} ms, "
        f"p99 {ms(lag.to_record, 0.99)} ms",
    ]


# -- main -------------------------------------------------------------------------------------------------------


def connector_state(env: dict[str, str]) -> str:
    try:
        status = httpx.get(f"{env['POINTS_CONNECT_URL']}/connectors/points-outbox/status", timeout=5).json()
    except (httpx.HTTPError, ValueError) as error:
        return f"not answering ({type(error).__name__})"
    states = [status.get("connector", {}).get("state", "?")] + [t.get("state", "?") for t in status.get("tasks", [])]
    return " ".join(states)


def rate(figures: Figures | None) -> float:
    return len(figures.latencies) / figures.seconds if figures and figures.latencies else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    drive_arguments(parser, "HTTP and bare SQL")
    parser.add_argument(
        "--rates", default="500,1000", help="commands/s offered in the lag runs, comma-separated (default 500,1000)"
    )
    parser.add_argument("--lag-processes", type=int, choices=[1, 2], default=2, help="API processes in the lag runs")
    parser.add_argument("--drain", type=float, default=10.0, help="s to wait for the last events on Kafka (default 10)")
    parser.add_argument("--target-rate", type=float, default=1000.0, help="commands/s over HTTP (default 1000)")
    parser.add_argument("--target-ratio", type=float, default=0.5, help="HTTP / bare SQL (default 0.5)")
    parser.add_argument("--target-p99", type=float, default=100.0, help="ms, commit to Kafka (default 100)")
    parser.add_argument("--skip-bare", action="store_true", help="no bare SQL loop")
    parser.add_argument("--skip-http", action="store_true", help="no back-to-back HTTP runs")
    parser.add_argument("--skip-lag", action="store_true", help="no commit-to-Kafka runs")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]

    env = stack_environment()
    run = secrets.token_hex(4)
    ledger = f"bench-{run}"
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    token = jwt.encode({"sub": "shop", "roles": ["service"], "exp": now + timedelta(hours=2)}, secret, "HS256")
    api_env = {
        **os.environ,
        **env,
        "POINTS_PROFILE": "stack",
        "POINTS_AGGREGATE_TYPE": ledger,
        "POINTS_JWT_SECRET": secret,
    }
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {load_average()}; "
        f"run {run} (ledger {ledger}); database {make_url(env['POINTS_DATABASE_URL']).render_as_string()}, Kafka "
        f"{env['POINTS_KAFKA_BOOTSTRAP']} topic {env['POINTS_KAFKA_TOPIC']}, connector points-outbox: "
        f"{connector_state(env)}"
    )
    bare: Figures | None = None
    http: dict[int, Figures] = {}
    lags: list[Lag] = []
    if not args.skip_bare:
        print(
            "bare SQL: what the store sends per append (a version check, then one query BEGIN ... COMMIT), "
            f"{args.clients} connections"
        )
        cpu = CpuShares([])
        bare = asyncio.run(bare_loop(env, args, ledger + "-bare"))
        print(bare.line(f"  bare SQL, {args.clients} concurrent"))
        print("  outcomes:", ", ".join(f"{name} {count:,}" for name, count in bare.outcomes.most_common()))
        print(cpu.line())
    if not (args.skip_http and args.skip_lag):
        with tempfile.TemporaryDirectory(prefix="bench-stack-") as logs, contextlib.ExitStack() as apis:
            print(f"API: python -m app serve --port N (POINTS_PROFILE=stack, POINTS_AGGREGATE_TYPE={ledger})")
            started = [apis.enter_context(api_process(api_env, Path(logs) / "api-1.log"))]
            ports, pids = [started[0][0]], [started[0][1]]
            if not args.skip_http:
                label = f"HTTP, 1 API process, {args.clients} concurrent clients, back to back"
                http[1] = http_run(label, ports, pids, token, args)
            if not args.skip_http or args.lag_processes == 2:
                started.append(apis.enter_context(api_process(api_env, Path(logs) / "api-2.log")))
                ports, pids = [port for port, _ in started], [pid for _, pid in started]
            if not args.skip_http:
                label = f"HTTP, 2 API processes, {args.clients} concurrent clients split over them, back to back"
                http[2] = http_run(label, ports, pids, token, args)
            if not args.skip_lag:
                ports, pids = ports[: args.lag_processes], pids[: args.lag_processes]
                for offered in rates:
                    cpu, commits = CpuShares(pids), commit_buckets(ports)
                    try:
                        lag = asyncio.run(lag_run(env, ledger, ports, token, args, offered))
                    except (LookupError, KafkaError) as error:
                        print(f"lag at {offered:,.0f} commands/s: not measured ({type(error).__name__}: {error})")
                        continue
                    print(*lag_lines(lag, len(ports)), sep="\n")
                    print(cpu.line())
                    print(commit_line(ports, commits))
                    lags.append(lag)
            print("stopping the API processes")
    summary(args, bare, http, lags, [] if args.skip_lag else rates)


def summary(
    args: argparse.Namespace, bare: Figures | None, http: dict[int, Figures], lags: list[Lag], rates: list[float]
) -> None:
    print("summary:")
    if CpuShares.others:
        print(
            f"  other work on the machine took {sum(CpuShares.others) / len(CpuShares.others):.0%} of a core on "
            f"average during the runs (at most {max(CpuShares.others):.0%}), of the {os.cpu_count()} cores"
        )
    for processes, figures in http.items():
        ratio = f", {rate(figures) / rate(bare):.2f} of the bare SQL loop ({rate(bare):,.0f}/s)" if bare else ""
        print(
            f"  HTTP with {processes} API process(es): {rate(figures):,.0f} commands/s, p50 {ms(figures, 0.5)} ms, "
            f"p99 {ms(figures, 0.99)} ms{ratio}"
        )
    if http:
        processes, best = max(http.items(), key=lambda item: rate(item[1]))
        met = rate(best) >= args.target_rate
        print(
            f"  target: >= {args.target_rate:,.0f} durable commands/s over HTTP: {'met' if met else 'NOT met'} "
            f"({rate(best):,.0f}/s with {processes} API process(es))"
        )
        if bare:
            share = rate(best) / rate(bare)
            print(
                f"  target: >= {args.target_ratio:g} of the bare SQL loop: "
                f"{'met' if share >= args.target_ratio else 'NOT met'} ({share:.2f} with {processes} API process(es))"
            )
    for lag in lags:
        p99 = lag.from_occurred.percentile(0.99) * 1000
        served = rate(lag.figures) >= 0.99 * lag.rate
        complete = lag.received == lag.expected > 0
        met = complete and p99 < args.target_p99
        lower = complete and lag.from_answer.percentile(0.99) * 1000 < args.target_p99
        verdict = "met" if met else "NOT met, but met on the lower bound" if lower else "NOT met"
        print(
            f"  target: commit-to-Kafka p99 < {args.target_p99:g} ms at {lag.rate:,.0f} commands/s: {verdict} "
            f"(p99 {p99:.1f} ms from occurredAt, {ms(lag.from_answer, 0.99)} ms from the answer; {lag.received:,} of "
            f"{lag.expected:,} received; {rate(lag.figures):,.0f} commands/s served"
            f"{'' if served else ', under the offered rate'})"
        )
    for offered in sorted(set(rates) - {lag.rate for lag in lags}):
        print(f"  target: commit-to-Kafka p99 < {args.target_p99:g} ms at {offered:,.0f} commands/s: NOT measured")


if __name__ == "__main__":
    main()
