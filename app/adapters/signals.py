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
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return
        finally:
            self._event.clear()
