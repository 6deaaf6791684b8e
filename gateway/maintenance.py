"""Background upkeep: roll up the days that received events, and purge what is past its retention.

One asyncio task per process. Every ``rollup_interval`` it rebuilds the dirty days; once per UTC
day (at start, then at the first check after midnight) it purges. Both run through the one
writer (``Database.write``), each in one transaction. Several workers on one file each run it:
the second finds no dirty day and nothing to purge, so the work is not doubled, only checked.
The loop is ``run_once`` then a short sleep, so a test drives it with a ``FixedClock`` instead.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from gateway.accounts.sessions import purge_expired_sessions
from gateway.clock import Clock
from gateway.cookies.lifetimes import Lifetime
from gateway.ingest.visitor import SaltKeeper
from gateway.periodic import Periodic
from gateway.settings import Retention, Settings
from gateway.storage.db import Database
from gateway.storage.retention import PurgeCounts, purge
from gateway.storage.rollups import Floors, RollupPlan, Zones, apply_plan, plan_dirty, rebuild_dirty

log = logging.getLogger("gateway.maintenance")

#: The longest sleep between checks, so a day change or a stop is noticed within a minute.
MAX_POLL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """What the purge deletes: everything strictly before these."""

    events_before: datetime
    rollups_before: str
    consent_before: datetime
    salts_before: str


@dataclass(frozen=True, slots=True)
class MaintenanceRun:
    """What one ``run_once`` did: the (site, day) pairs rolled up, the purge counts (None: not due)."""

    rolled_up: tuple[tuple[str, str], ...] | None
    purged: PurgeCounts | None


def _span(lifetime: Lifetime) -> timedelta:
    if lifetime.seconds is None:  # settings refuse 'session' for these; never guess
        raise ValueError("a retention or interval cannot be 'session'")
    return timedelta(seconds=lifetime.seconds)


def retention_cutoffs(now: datetime, retention: Retention) -> Cutoffs:
    """The cut-offs at ``now``.

    Events and visits go by whole UTC days (the start of the day that is ``retention.events``
    old): a day's events are deleted together, so a day is never left half there for a rebuild
    to under-count. Rollups likewise by day. Consent records go exactly ``consent_records`` after
    their consent ended. Salts older than yesterday go (yesterday's may still serve a visit
    continuing past midnight).
    """
    now = now.astimezone(UTC)
    oldest_event_day = (now - _span(retention.events)).date()
    return Cutoffs(
        events_before=datetime.combine(oldest_event_day, datetime.min.time(), tzinfo=UTC),
        rollups_before=(now - _span(retention.rollups)).date().isoformat(),
        consent_before=now - _span(retention.consent_records),
        salts_before=(now.date() - timedelta(days=1)).isoformat(),
    )


def floors(settings: Settings) -> dict[str, int]:
    """Each site's k (``min_visitors``): the rollup counts the people behind each day's "(other)" for it."""
    return {site_id: site.min_visitors for site_id, site in settings.sites.items()}


def _roll_up_and_purge(
    connection: sqlite3.Connection, cutoffs: Cutoffs, zones: Zones, floors: Floors | None = None
) -> tuple[list[tuple[str, str]], PurgeCounts]:
    # Roll up first: the days about to lose their events are counted before the events go.
    rolled_up = rebuild_dirty(connection, zones=zones, floors=floors)
    counts = purge(
        connection,
        events_before=cutoffs.events_before,
        rollups_before=cutoffs.rollups_before,
        consent_before=cutoffs.consent_before,
        salts_before=cutoffs.salts_before,
    )
    return rolled_up, counts


async def roll_up(database: Database, zones: Zones, *, floors: Floors | None = None) -> list[tuple[str, str]]:
    """Rebuild the dirty days now: computed on a reader, then written in one short transaction.

    The event writer is held only while the finished rows are swapped in, not while a busy
    day's events are grouped (seconds for a million events). ``floors``: each site's k, for the
    count of the people behind "(other)" (``gateway.storage.rollups``); without it the dashboard
    counts them from raw events.
    """
    plan = await asyncio.to_thread(_plan_on_reader, database.path, zones, floors)
    return await database.write(lambda connection: apply_plan(connection, plan))


def _plan_on_reader(path: Path, zones: Zones, floors: Floors | None) -> RollupPlan:
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)) as reader:
        reader.execute("PRAGMA busy_timeout = 10000")
        return plan_dirty(reader, zones=zones, floors=floors)


async def purge_expired(database: Database, settings: Settings, now: datetime) -> PurgeCounts:
    """Roll up the dirty days, then purge what is past its retention at ``now`` (one transaction)."""
    cutoffs = retention_cutoffs(now, settings.retention)
    zones, k = settings.zones, floors(settings)
    _, counts = await database.write(lambda connection: _roll_up_and_purge(connection, cutoffs, zones, k))
    if counts.salts or counts.consent_records:
        await database.scrub()
    return counts


class Maintenance:
    def __init__(self, database: Database, settings: Settings, clock: Clock, salts: SaltKeeper | None = None) -> None:
        """``salts``: the process's keeper, asked on every poll so that yesterday's salt is deleted
        within a poll of the grace period's end even when no event arrives (a quiet site)."""
        self._database = database
        self._salts = salts
        self._retention = settings.retention
        self._zones = settings.zones
        self._floors = floors(settings)
        self._interval = _span(settings.rollup_interval)
        self._poll = min(self._interval.total_seconds(), MAX_POLL_SECONDS)
        self._clock = clock
        self._last_rollup: datetime | None = None
        self._last_purge_day: date | None = None
        self._periodic = Periodic("maintenance", self.run_once, self._poll, log)

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        """Let a run in progress finish (its transaction commits), then stop."""
        await self._periodic.stop()

    @property
    def running(self) -> bool:
        return self._periodic.running

    async def run_once(self) -> MaintenanceRun:
        """Do whatever is due at ``clock.now()``: the rollup every interval, the purge once per UTC day."""
        now = self._clock.now()
        today = now.astimezone(UTC).date()
        if self._salts is not None:
            await self._salts.salts(now)  # past 00:30 UTC this deletes yesterday's salt for good
        if await self._database.scrub_if_due() is False:  # a reader held the WAL: next poll, within a minute
            log.info("deleted data is not yet scrubbed from the WAL (a reader is busy); trying again")
        if self._last_purge_day != today:
            cutoffs = retention_cutoffs(now, self._retention)
            early = await roll_up(self._database, self._zones, floors=self._floors)  # the heavy part, off the writer
            late, counts = await self._database.write(
                lambda c: _roll_up_and_purge(c, cutoffs, self._zones, self._floors)
            )
            if counts.salts or counts.consent_records:  # their bytes leave the -wal file too
                await self._database.scrub()
            await purge_expired_sessions(self._database, now)  # dashboard sessions past their timeouts
            rolled_up = sorted(set(early) | set(late))
            self._last_rollup, self._last_purge_day = now, today
            log.info("rolled up %d day(s); purge: %s", len(rolled_up), counts.describe())
            return MaintenanceRun(tuple(rolled_up), counts)
        if self._last_rollup is None or now - self._last_rollup >= self._interval:
            rolled_up = await roll_up(self._database, self._zones, floors=self._floors)
            self._last_rollup = now
            if rolled_up:
                log.debug("rolled up %d day(s)", len(rolled_up))
            return MaintenanceRun(tuple(rolled_up), None)
        return MaintenanceRun(None, None)
