"""Background scans: each gateway process polls the scan queue, claims one scan at a time and runs it.

The scanner is a parameter (``Scanner``): production passes ``browser_scanner`` (Chromium through
Playwright, gateway/scan/run.py), tests a function that returns a report. A scan's progress is
kept in memory by the scanner's callback (which may run on another thread) and written, with a
renewed lease, every ``progress_seconds``: a page done never waits for the database, and a node
that dies leaves a lease that runs out (``gateway.storage.scans.fail_abandoned``). A scan that
fails says why on the Compliance page: Playwright or Chromium missing is one line naming what to
install, not a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from gateway.clock import Clock
from gateway.settings import Settings, SiteSettings
from gateway.storage.db import failure_cause
from gateway.storage.leader import Leadership
from gateway.storage.scans import (
    Scan,
    claim_scan,
    fail_abandoned,
    fail_scan,
    finish_scan,
    queue_busy,
    record_progress,
)
from gateway.storage.store import Store

log = logging.getLogger("gateway.scan.jobs")

#: Pages done, pages planned so far, the page being visited (None: between pages).
ProgressCallback = Callable[[int, int, str | None], None]
#: What the scan ended with when the gateway stopped under it.
STOPPED = "The scan stopped: the gateway was shut down while it ran. Start it again."
#: Said when Playwright (the Python package) is not installed.
PLAYWRIGHT_MISSING = (
    "Scanning needs Playwright and Chromium on the gateway's machine: pip install 'consent-gateway[scan]' "
    "and install Chromium (Debian: apt-get install chromium)."
)


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """What a scanner is asked to do."""

    scan_id: int
    site: SiteSettings
    url: str
    max_pages: int


#: Runs one scan and returns its report's JSON object (format consent-gateway-scan/1).
Scanner = Callable[[ScanRequest, ProgressCallback], Awaitable[dict[str, Any]]]


class ScanUnavailable(Exception):
    """The scanner cannot run here; the message says what to install or configure."""


def this_node() -> str:
    """This process's name on the scan queue (which node runs a scan, for the page and the logs)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def machine_role() -> str:
    """The leadership role that lets one process of this machine scan at a time (``serve --workers 4``
    runs four workers, but one Chromium crawl is all a machine should carry beside serving)."""
    return "scans-" + re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:100]


def browser_scanner(settings: Settings, clock: Clock, *, browser_args: tuple[str, ...] = ()) -> Scanner:
    """The real scanner: Chromium through Playwright (gateway/scan/run.py), judged by gateway/scan/report.py.

    Imported when a scan starts, so a gateway without the ``scan`` extra serves everything else and
    a scan fails with what to install. ``browser_args``: more Chromium flags (tests map host names).
    """

    async def run(request: ScanRequest, progress: ProgressCallback) -> dict[str, Any]:
        from gateway.scan.report import build_report
        from gateway.scan.run import ScanOptions, scan

        options = ScanOptions(url=request.url, pages=request.max_pages, browser_args=browser_args)
        crawl = await scan(options, clock=clock, progress=progress)
        return dict(build_report(crawl, site=request.site, settings=settings).to_json())

    return run


class _Progress:
    """The latest progress the scanner reported (plain assignments: safe from a scanner's thread)."""

    def __init__(self) -> None:
        self.done, self.total = 0, 0
        self.url: str | None = None

    def update(self, done: int, total: int, url: str | None) -> None:
        self.done, self.total, self.url = done, total, url


def too_long(seconds: float, pages_done: int) -> str:
    """Why a scan that ran past its time limit was stopped."""
    span = f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:g} seconds"
    return (
        f"The scan was stopped after {span} ({pages_done} pages done): the browser stopped making progress "
        "or the site is too large for the time. Try fewer pages (scan_pages)."
    )


def describe_failure(error: BaseException) -> str:
    """One line for the Compliance page."""
    if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] == "playwright":
        return PLAYWRIGHT_MISSING
    if isinstance(error, ScanUnavailable):
        return str(error)
    text = " ".join(str(error).split()) or type(error).__name__
    return f"The scan failed: {text}"


class ScanJobs:
    """This process's scan worker: ``start`` in the app's lifespan, ``stop`` at its end."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        scanner: Scanner,
        *,
        node: str,
        machine: str | None = None,
        poll_seconds: float = 5.0,
        lease_seconds: float = 120.0,
        progress_seconds: float = 1.0,
        time_limit_seconds: float = 1800.0,
    ) -> None:
        """``poll_seconds``: how often an idle worker looks at the queue; ``lease_seconds``: how long a
        claimed scan stays this node's without a renewal (renewed every ``progress_seconds``);
        ``machine``: the role of which one holder scans at a time (default ``machine_role()``);
        ``time_limit_seconds``: a scan still running after this long (a browser that hangs) is stopped and
        failed, so it cannot hold this machine's turn for good (its lease is renewed while the node lives)."""
        if not 0 < progress_seconds < lease_seconds:
            raise ValueError("progress_seconds must be positive and shorter than lease_seconds")
        self._store, self._settings, self._clock, self._scanner = store, settings, clock, scanner
        self._node = node
        self._turn = Leadership(store, machine or machine_role())
        self._poll, self._progress_every = poll_seconds, progress_seconds
        self._time_limit = time_limit_seconds
        self._lease = timedelta(seconds=lease_seconds)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="scan-jobs")

    async def stop(self) -> None:
        """Stop polling; a scan in progress is cancelled and marked failed (``STOPPED``)."""
        if self._task is None:
            return
        self._stopping.set()
        await self._task
        self._task = None

    def wake(self) -> None:
        """Look at the queue now (a scan was just queued by this process) instead of at the next poll."""
        self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except Exception as error:
                cause = failure_cause(error)
                if cause is None:
                    log.exception("the scan worker failed; retrying in %.0f s", self._poll)
                else:
                    log.error("the scan worker failed: %s; retrying in %.0f s", cause, self._poll)
            self._wake.clear()
            stop = asyncio.ensure_future(self._stopping.wait())
            wake = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait((stop, wake), timeout=self._poll, return_when=asyncio.FIRST_COMPLETED)
            for waiter in (stop, wake):
                waiter.cancel()

    async def run_once(self) -> Scan | None:
        """Fail scans abandoned by dead nodes, then claim the oldest queued scan and run it to its end, unless
        another process of this machine is running one.

        Returns the scan claimed (as it was when claimed), or None when there was none to run here.
        """
        if not await queue_busy(self._store):  # the usual answer, from a read: no write per poll
            return None
        if not await self._turn.claim():  # another process of this machine is scanning
            return None
        try:
            now = self._clock.now()
            await fail_abandoned(self._store, now=now)
            scan = await claim_scan(self._store, node=self._node, now=now, lease_until=now + self._lease)
            if scan is not None:
                await self._run(scan)
            return scan
        finally:
            await self._turn.release()

    async def _run(self, scan: Scan) -> None:
        site = self._settings.sites.get(scan.site_id)
        if site is None:
            await self._fail(scan, "The site is no longer in the configuration.")
            return
        progress = _Progress()
        request = ScanRequest(scan_id=scan.id, site=site, url=scan.url, max_pages=scan.max_pages)
        log.info("scan %d of %s (%s) started", scan.id, site.id, scan.url)
        work = asyncio.ensure_future(self._scanner(request, progress.update))
        stopping = asyncio.ensure_future(self._stopping.wait())
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._time_limit  # the loop's monotonic seconds: a duration, not a date
        try:
            while not work.done():
                await asyncio.wait((work, stopping), timeout=self._progress_every, return_when=asyncio.FIRST_COMPLETED)
                if work.done():
                    break
                if stopping.done():
                    await _cancel(work)
                    await self._fail(scan, STOPPED)
                    return
                if loop.time() >= give_up_at:
                    log.warning("scan %d of %s ran past %.0f s; stopping it", scan.id, site.id, self._time_limit)
                    await _cancel(work)
                    await self._fail(scan, too_long(self._time_limit, progress.done))
                    return
                now = self._clock.now()
                kept = await record_progress(
                    self._store,
                    scan.id,
                    node=self._node,
                    pages_done=progress.done,
                    pages_total=progress.total,
                    current_url=progress.url,
                    lease_until=now + self._lease,
                )
                if not kept:  # the lease ran out (a stalled node): the scan was failed meanwhile
                    log.warning("scan %d is no longer this node's; abandoning it", scan.id)
                    await _cancel(work)
                    return
        finally:
            stopping.cancel()
        try:
            report = work.result()
        except Exception as error:
            log.warning("scan %d of %s failed: %s", scan.id, site.id, error)
            await self._fail(scan, describe_failure(error))
            return
        await finish_scan(self._store, scan.id, node=self._node, report=report, now=self._clock.now())
        log.info("scan %d of %s done: %d violation(s)", scan.id, site.id, len(report.get("violations") or ()))

    async def _fail(self, scan: Scan, message: str) -> None:
        await fail_scan(self._store, scan.id, node=self._node, error=message, now=self._clock.now())


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
