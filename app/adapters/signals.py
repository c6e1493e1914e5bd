"""A signal from a store's writes to the relay that waits for them."""

from __future__ import annotations

import asyncio


class WriteSignal:
    """Set after appends are written; ``wait`` returns once it is set (and clears it), or after the timeout."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):  # not wait_for, which makes a task of every wait
                await self._event.wait()
        except TimeoutError:
            return
        finally:
            self._event.clear()
