"""The cookie report: counted in memory on the hot path, written in batches.

The middleware calls ``observe`` for every ``Set-Cookie``; a flush writes one transaction
per interval (or when many names are pending) and at shutdown, never one per request. The
gateway's ``/api/cookies`` endpoint counts the names the snippet found in ``document.cookie``
the same way (``ScriptCookieSightings``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gateway.clock import Clock
from gateway.consent.background_flush import BackgroundFlush
from gateway.storage.cookie_report import CookieTally, ScriptSighting, add_cookie_tallies, add_script_sightings
from gateway.storage.location import DatabaseLocation
from gateway.storage.store import Store, open_store

log = logging.getLogger("gateway.cookie_report")


@dataclass(slots=True)
class _Counts:
    category: str | None
    times_set: int
    times_blocked: int
    times_capped: int
    longest_asked: int | None
    first_seen: datetime
    last_seen: datetime

    def tally(self, site_id: str, name: str) -> CookieTally:
        return CookieTally(
            site_id,
            name,
            self.category,
            self.times_set,
            self.times_blocked,
            self.times_capped,
            self.longest_asked,
            self.first_seen,
            self.last_seen,
        )


class CookieReport:
    def __init__(
        self,
        database: Store | DatabaseLocation | None,
        *,
        flush_interval: timedelta = timedelta(seconds=10),
        max_pending: int = 500,
    ) -> None:
        """``database``: an open ``Store`` (the gateway's), a location (path or URL) opened on first
        flush, or None to only count."""
        self._database = database
        self._owned: Store | None = None
        self._interval = flush_interval
        self._max_pending = max_pending
        self._pending: dict[tuple[str, str], _Counts] = {}
        self._last_flush: datetime | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    def observe(
        self,
        site_id: str,
        name: str,
        category: str | None,
        verdict: str,
        asked: int | None,
        now: datetime,
        times: int = 1,
    ) -> None:
        """Count ``times`` ``Set-Cookie`` of one kind; ``verdict`` is "blocked", "capped" or "kept"."""
        counts = self._pending.get((site_id, name))
        blocked = times if verdict == "blocked" else 0
        capped = times if verdict == "capped" else 0
        if counts is None:
            self._pending[(site_id, name)] = _Counts(category, times, blocked, capped, asked, now, now)
            if self._last_flush is None:
                self._last_flush = now
            return
        counts.times_set += times
        counts.times_blocked += blocked
        counts.times_capped += capped
        if asked is not None and (counts.longest_asked is None or asked > counts.longest_asked):
            counts.longest_asked = asked
        counts.last_seen = now

    def flush_soon(self, now: datetime) -> None:
        """Start a background flush when the interval has passed or many names wait."""
        if not self._pending or self._database is None or self._last_flush is None:
            return
        if len(self._pending) < self._max_pending and now - self._last_flush < self._interval:
            return
        self._last_flush = now
        task = asyncio.get_running_loop().create_task(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def pending(self) -> list[CookieTally]:
        return [counts.tally(site, name) for (site, name), counts in self._pending.items()]

    async def flush(self) -> None:
        """Write what is pending in one transaction; on failure the counts are kept for the next try."""
        async with self._lock:
            if not self._pending or self._database is None:
                return
            batch, self._pending = self._pending, {}
            tallies = [counts.tally(site, name) for (site, name), counts in batch.items()]
            try:
                await add_cookie_tallies(await self._open(), tallies)
            except Exception:  # the report must never break the app it watches
                log.exception("cookie report flush failed; %d names kept for the next flush", len(batch))
                for key, counts in batch.items():
                    self._pending.setdefault(key, counts)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush()
        if self._owned is not None:
            await self._owned.close()
            self._owned = None

    async def _open(self) -> Store:
        if isinstance(self._database, Store):
            return self._database
        if self._owned is None:
            assert self._database is not None  # noqa: S101 - flush() checked it
            self._owned = await open_store(self._database).open()
        return self._owned


#: Rows a site's cookie report may hold before names reported by script stop adding rows (known ones still count).
MAX_REPORTED_NAMES = 2000


class ScriptCookieSightings(BackgroundFlush):
    """Cookie names the snippet found in ``document.cookie``, counted in memory and written in batches.

    Like the banner impressions (``gateway.consent.impressions``): one transaction per interval
    (sooner when many names wait), a timer so a count never waits longer than one interval, and
    a final flush at shutdown. Only names and counts are kept; the snippet never sends a value.
    """

    def __init__(
        self,
        database: Store,
        clock: Clock,
        *,
        flush_interval: timedelta = timedelta(seconds=10),
        max_pending: int = 500,
        max_names: int = MAX_REPORTED_NAMES,
    ) -> None:
        super().__init__(flush_interval)
        self._database = database
        self._clock = clock
        self._max_pending = max_pending
        self._max_names = max_names
        self._pending: dict[str, dict[str, ScriptSighting]] = {}
        self._size = 0

    def count(self, site_id: str, names: Mapping[str, str | None]) -> None:
        """One page load saw ``names`` (name -> the catalog's category, None when unknown)."""
        now = self._clock.now()
        site = self._pending.setdefault(site_id, {})
        for name, category in names.items():
            seen = site.get(name)
            if seen is None:
                self._size += 1
            site[name] = (
                ScriptSighting(category, 1, now, now)
                if seen is None
                else replace(seen, category=category, times=seen.times + 1, last_seen=now)
            )
        if self._size >= self._max_pending:
            self._start_flush()
        else:
            self._flush_later(asyncio.get_running_loop())

    def pending(self) -> dict[str, dict[str, ScriptSighting]]:
        return {site: dict(names) for site, names in self._pending.items()}

    async def flush(self) -> None:
        """Write what is pending, one transaction per site; on failure the counts wait for the next try."""
        async with self._lock:
            batch, self._pending, self._size = self._pending, {}, 0
            for site_id, names in batch.items():
                try:
                    left_out = await add_script_sightings(self._database, site_id, names, max_names=self._max_names)
                except Exception:  # the report must never break the requests that feed it
                    log.exception("script cookie flush failed; %d names kept for the next flush", len(names))
                    self._keep(site_id, names)
                    continue
                if left_out:
                    log.warning(
                        "site %s: %d names reported by script left out, its cookie report holds %d names already",
                        site_id,
                        left_out,
                        self._max_names,
                    )

    def _keep(self, site_id: str, names: Mapping[str, ScriptSighting]) -> None:
        site = self._pending.setdefault(site_id, {})
        for name, seen in names.items():
            newer = site.get(name)
            if newer is None:
                self._size += 1
                site[name] = seen
            else:
                site[name] = replace(newer, times=newer.times + seen.times, first_seen=seen.first_seen)
