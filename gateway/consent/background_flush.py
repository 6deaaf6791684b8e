"""Counts kept in memory and written in the background: the flush timer, the flushes in flight, and the
last write at shutdown, shared by the banner impression counter and the script cookie sightings.

A request only counts; writing each count would put a database transaction on the snippet's hot path.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta


class BackgroundFlush:
    """Subclasses keep their counts and define ``flush`` (write them under a lock, keep them on failure)."""

    def __init__(self, interval: timedelta) -> None:
        self._interval = interval
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        #: The flush due one interval after the first count of a batch (None when nothing waits).
        self._timer: asyncio.TimerHandle | None = None

    async def flush(self) -> None:
        raise NotImplementedError

    def _flush_later(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flush one interval from now, unless a flush is already due."""
        if self._timer is None:
            self._timer = loop.call_later(self._interval.total_seconds(), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._start_flush()

    def _start_flush(self) -> None:
        task = asyncio.get_running_loop().create_task(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flushes_done(self) -> None:
        """Return once every background flush started so far has finished (what a reader waits for)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop the timer, wait for background flushes, write the rest (call before the database closes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flushes_done()
        await self.flush()
