"""Keep a node's ``CorrectedClock`` on the database server's time (several nodes, one order)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.clock import CorrectedClock
from gateway.storage.store import Store, failure_cause

log = logging.getLogger("gateway.clock")

#: How often the offset is measured again (clocks drift by milliseconds per hour, NTP steps them).
INTERVAL_SECONDS = 60.0


class ClockSync:
    """Measures the server's time at start-up, then every ``interval`` seconds, in the background."""

    def __init__(self, store: Store, clock: CorrectedClock, *, interval: float = INTERVAL_SECONDS) -> None:
        self.store = store
        self.clock = clock
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def measure(self) -> bool:
        """One measurement; False when the server could not be read (the last offset stays)."""
        sent = self.clock.local()
        try:
            reference = await self.store.server_time()
        except Exception as error:
            if failure_cause(error) is None:
                raise
            log.warning("clock: cannot read the database server's time: %s", failure_cause(error))
            return False
        received = self.clock.local()
        if reference is None:
            return False
        self.clock.correct(reference, sent=sent, received=received)
        return True

    async def start(self) -> None:
        await self.measure()
        self._task = asyncio.create_task(self._run(), name="clock-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.measure()
