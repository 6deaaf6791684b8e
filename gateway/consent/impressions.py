"""Banner impressions: counted in memory on the config request, written in batches.

The snippet adds ``b=1`` to its ``/api/config`` request when the browser holds no decision,
so the banner is about to show. Each such request adds one to a count per site, UTC day,
country and device class — nothing that could tell two visitors apart is kept. As the cookie
report does (``gateway.consent.report``), the counts are upserted in one transaction at most
once per interval, started from the request path, and at shutdown; never one write per request.

Decisions, by contrast, are written at once (they are proof), so a report read while impressions
wait in memory shows more decisions than impressions ("decision rate 200 %"). Two things keep
them together: the consent report flushes this worker's counts before it reads
(``gateway/web/dashboard_reports.py``), and a count never waits more than one interval, even in
a worker that gets no further request (a timer flushes it), so other workers' counts are written
within ``flush_interval`` too.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from gateway.clock import Clock
from gateway.consent.background_flush import BackgroundFlush
from gateway.storage.consent_report import ImpressionCount, add_impressions
from gateway.storage.store import Store

log = logging.getLogger("gateway.impressions")

_Key = tuple[str, date, str, str]  # site, UTC day, country ("" unknown), device ("" unknown)


class ImpressionCounter(BackgroundFlush):
    def __init__(self, database: Store, clock: Clock, *, flush_interval: timedelta = timedelta(seconds=10)) -> None:
        super().__init__(flush_interval)
        self._database = database
        self._clock = clock
        self._pending: Counter[_Key] = Counter()
        self._last_flush: datetime | None = None

    def count(self, site_id: str, *, country: str | None, device: str | None) -> None:
        """One banner shown now; starts a background flush when the interval has passed.

        Needs a running event loop (the request's) only when a flush is due.
        """
        now = self._clock.now()
        self._pending[(site_id, now.astimezone(UTC).date(), country or "", device or "")] += 1
        if self._last_flush is None:
            self._last_flush = now  # the first count of a batch waits one interval, like the cookie report
        elif now - self._last_flush >= self._interval:
            self._last_flush = now
            self._start_flush()
        if self._timer is None and self._pending:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # counted outside a request (a unit test): the next flush takes it
                return
            self._flush_later(loop)

    def pending(self) -> list[ImpressionCount]:
        """What has not been written yet (for tests and a shutdown log)."""
        return [ImpressionCount(*key, count) for key, count in sorted(self._pending.items())]

    async def flush(self) -> None:
        """Write what is pending in one transaction; on failure the counts are kept for the next try."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, Counter()
            try:
                await add_impressions(self._database, [ImpressionCount(*key, n) for key, n in batch.items()])
            except Exception:  # a lost count must never fail the config request that carries it
                log.exception("banner impression flush failed; %d counts kept for the next flush", len(batch))
                self._pending.update(batch)
