"""The command line: ``python -m app serve | token | schema | expire | migrate | project | rebuild | reconcile``
(installed as ``point-ledger``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from app.application.authorization import Role
from app.settings import Settings


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from app.entrypoints.server import bounded_protocol

    host, port = args.host or settings.host, args.port or settings.port
    lines = [
        f"point ledger ({settings.profile} profile) on http://{host}:{port}",
        f"  GraphiQL:  http://{host}:{port}/graphql",
        "  a token:   uv run python -m app token --sub ops --role admin   (send it as Authorization: Bearer <token>)",
    ]
    if settings.jwt_secret == Settings.jwt_secret:
        lines.append("  warning:   POINTS_JWT_SECRET is the development default; set your own before real use")
    if settings.test_clock:
        lines.append("  the test clock is ON: admins may call setTestClock(at:)")
    print("\n".join(lines), flush=True)
    access_log = args.access_log if args.access_log is not None else _on(os.environ.get("POINTS_ACCESS_LOG", ""))
    uvicorn.run(
        "app.entrypoints.server:create_app",
        factory=True,
        host=host,
        port=port,
        loop="uvloop",
        http=bounded_protocol(settings.max_header_bytes),  # httptools, refusing a head over the bound with 431
        access_log=access_log,  # a line per request costs a fair share of a request's CPU
        log_level="info",
    )
    return 0


def _on(flag: str) -> bool:
    return flag.strip().lower() in {"1", "true", "yes", "on"}


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from app.graphql.auth import mint_token

    print(mint_token(settings.jwt_secret, args.sub, args.role or [Role.USER.value], hours=args.hours))
    return 0


def _schema(settings: Settings, args: argparse.Namespace) -> int:
    from app.graphql.schema import schema

    print(str(schema))
    return 0


def _expire(settings: Settings, args: argparse.Namespace) -> int:
    from app.application.commands.expiry import ExpirePoints
    from app.containers import build_container
    from app.entrypoints.runtime import running

    async def run() -> None:
        container = build_container(settings)
        async with running(container, relay=False):
            report = await container.services().expire.execute(ExpirePoints(chunk_size=args.chunk_size))
        print(f"expired {report.points} points in {report.lots} lots of {report.accounts} accounts")

    asyncio.run(run())
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    if settings.profile != "stack":
        print(f"the {settings.profile} profile creates its own tables; migrations are for POINTS_PROFILE=stack")
        return 0
    from app.adapters.mysql.migrate import migrate

    migrate(settings.database_url, args.revision)
    print(f"migrated the event store to {args.revision}")
    return 0


def _project(settings: Settings, args: argparse.Namespace) -> int:
    from app.entrypoints.operations import project

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(project(settings, tuple(args.projection or ("balance", "history"))))
    return 0


def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from app.entrypoints.operations import rebuild

    asyncio.run(rebuild(settings, tuple(args.projection or ("balance", "history"))))
    return 0


def _reconcile(settings: Settings, args: argparse.Namespace) -> int:
    from app.entrypoints.operations import reconcile_all

    return 1 if asyncio.run(reconcile_all(settings)) else 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="point-ledger", description="The point ledger service.")
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the GraphQL service (uvicorn) with the configured profile")
    serve.add_argument("--host", help="default: POINTS_HOST")
    serve.add_argument("--port", type=int, help="default: POINTS_PORT")
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        help="a log line per request (default: POINTS_ACCESS_LOG, else off)",
    )
    serve.set_defaults(run=_serve)

    token = commands.add_parser("token", help="print a bearer token signed with POINTS_JWT_SECRET")
    token.add_argument("--sub", required=True, help="the caller; for the user role, the user id it may read")
    token.add_argument("--role", action="append", choices=[r.value for r in Role], help="repeatable; default: user")
    token.add_argument("--hours", type=float, default=24.0, help="lifetime (default 24)")
    token.set_defaults(run=_token)

    schema = commands.add_parser("schema", help="print the GraphQL SDL (uv run python -m app schema > schema.graphql)")
    schema.set_defaults(run=_schema)

    expire = commands.add_parser("expire", help="run the expiry batch once on the configured profile")
    expire.add_argument("--chunk-size", type=int, default=500)
    expire.set_defaults(run=_expire)

    migrate = commands.add_parser("migrate", help="apply the write model's schema migrations (stack profile: MariaDB)")
    migrate.add_argument("--revision", default="head", help="Alembic revision to upgrade to (default head)")
    migrate.set_defaults(run=_migrate)

    projections = ("balance", "history")
    project = commands.add_parser("project", help="run the stack's projectors (Kafka into Redis and OpenSearch)")
    project.add_argument("--projection", action="append", choices=projections, help="repeatable; default: both")
    project.set_defaults(run=_project)

    rebuild = commands.add_parser("rebuild", help="rebuild the stack's read models from the event store")
    rebuild.add_argument("--projection", action="append", choices=projections, help="repeatable; default: both")
    rebuild.set_defaults(run=_rebuild)

    reconcile = commands.add_parser(
        "reconcile", help="compare the read models with the event store; exit 1 when they differ"
    )
    reconcile.set_defaults(run=_reconcile)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(Settings.from_env(), args))


if __name__ == "__main__":
    sys.exit(main())
