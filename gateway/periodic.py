"""A background task that runs one step now and then every ``interval`` until it is stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from gateway.storage.db import failure_cause


class Periodic:
    """``step`` at start and every ``interval`` seconds; a failing step is logged and tried again
    next time (a locked or full disk must not end upkeep for good); ``stop`` lets a step in
    progress finish (its transaction commits)."""

    def __init__(self, name: str, step: Callable[[], Awaitable[object]], interval: float, log: logging.Logger) -> None:
        self._name, self._step, self._interval, self._log = name, step, interval, log
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        await self._task
        self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except Exception as error:
                cause = failure_cause(error)
                if cause is None:  # a bug: its traceback is what helps
                    self._log.exception("%s failed; retrying in %.0f s", self._name, self._interval)
                else:  # the store is down (full disk, read-only file): one line per try, /healthz says the rest
                    self._log.error("%s failed: %s; retrying in %.0f s", self._name, cause, self._interval)
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self._interval)
            except TimeoutError:
                continue
            return
