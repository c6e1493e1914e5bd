"""The stack's operations from the command line: run projectors, rebuild the read models, reconcile them."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

from app.application.rebuild import Difference, rebuild_balances, rebuild_history, reconcile
from app.containers import Container, build_container
from app.entrypoints.runtime import running
from app.settings import Settings

log = logging.getLogger(__name__)

PROJECTIONS = ("balance", "history")


def _stack(settings: Settings) -> Container:
    if settings.profile != "stack":
        raise SystemExit(f"this command runs on the stack (POINTS_PROFILE=stack), not the {settings.profile} profile")
    return build_container(settings)


async def project(settings: Settings, projections: tuple[str, ...]) -> None:
    """Run the projectors until SIGTERM or SIGINT; each in its projection's consumer group."""
    container = _stack(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running(container, relay=False):
        runners = [getattr(container, f"{name}_projector")() for name in projections]
        log.info("projecting %s from %s", ", ".join(projections), settings.kafka_topic)
        await asyncio.gather(*(runner.run(stop) for runner in runners))


@contextmanager
def _bar(label: str) -> Iterator[Callable[[int], None]]:
    with tqdm(desc=label, unit=" events", unit_scale=True, file=sys.stderr, mininterval=0.5) as bar:
        yield bar.update


async def rebuild(settings: Settings, projections: tuple[str, ...]) -> None:
    container = _stack(settings)
    async with running(container, relay=False):
        store = container.event_store()
        if "history" in projections:
            with _bar("history index") as progress:
                entries = await rebuild_history(store, container.history_index(), progress)
            print(f"history index rebuilt: {entries} entries, published as {settings.history_alias}")
        if "balance" in projections:
            with _bar("balance view") as progress:
                accounts, written = await rebuild_balances(store, container.balance_view(), progress)
            print(f"balance view rebuilt: {written} of {accounts} accounts written (the rest were ahead already)")


async def reconcile_all(settings: Settings) -> list[Difference]:
    container = _stack(settings)
    async with running(container, relay=False):
        with _bar("event store") as progress:
            differences = await reconcile(
                container.event_store(), container.balance_view(), container.history_index(), progress
            )
    for difference in differences:
        print(f"{difference.user_id}\t{difference.model}\t{difference.what}")
    print(f"{len(differences)} differences")
    return differences
