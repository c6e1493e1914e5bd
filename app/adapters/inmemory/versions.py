"""Waiting for a read model in memory to reach an account's version (read-your-writes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class VersionWaits:
    """Readers waiting for accounts' versions, woken by the read model when it applies one."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}

    def reached(self, user_id: str, version: int) -> None:
        """The read model now holds ``version`` of the account: wake whoever waits for it or an earlier one."""
        waiting = self._waiting.get(user_id)
        if not waiting:
            return
        still = []
        for wanted, future in waiting:
            if wanted <= version:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((wanted, future))
        if still:
            self._waiting[user_id] = still
        else:
            del self._waiting[user_id]

    async def wait(self, user_id: str, version: int, held: Callable[[], int], timeout: float) -> int:
        """:meth:`app.ports.read_models.AccountVersions.wait_for_version`, given how to read the version held."""
        current = held()
        if current >= version or timeout <= 0:
            return current
        entry = (version, asyncio.get_running_loop().create_future())
        self._waiting.setdefault(user_id, []).append(entry)
        try:
            async with asyncio.timeout(timeout):
                await entry[1]
        except TimeoutError:
            pass
        finally:
            waiting = self._waiting.get(user_id)
            if waiting is not None and entry in waiting:
                waiting.remove(entry)
                if not waiting:
                    del self._waiting[user_id]
        return held()
