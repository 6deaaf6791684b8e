"""Background upkeep: roll up the days that received events, and purge what is past its retention.

One asyncio task per process. Every ``rollup_interval`` it rebuilds the dirty days; once per UTC
day (at start, then at the first check after midnight) it purges and deletes yesterday's salt.
The work itself is storage's (``gateway.storage.upkeep``); this module decides when.

Only the maintenance leader does it (``gateway.storage.leader``): one process among every
``serve --workers`` process and every node on the store. The others ask again on every poll
(at most a minute), so when the leader stops or dies another takes over. A deleted salt or
erased record is scrubbed by whichever process's store still owes the scrub.
The loop is ``run_once`` then a short sleep, so a test drives it with a ``FixedClock`` instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from gateway.accounts.sessions import purge_expired_sessions
from gateway.clock import Clock
from gateway.cookies.lifetimes import Lifetime
from gateway.ingest.visitor import SaltKeeper
from gateway.periodic import Periodic
from gateway.scan.schedule import enqueue_scheduled
from gateway.settings import Retention, Settings
from gateway.storage.leader import Leadership
from gateway.storage.retention import PurgeCounts
from gateway.storage.rollups import Floors, Zones
from gateway.storage.store import Store
from gateway.storage.upkeep import Cutoffs, roll_up_and_purge, roll_up_dirty
from gateway.storage.visit_days import build_stale

__all__ = ["Cutoffs", "Maintenance", "MaintenanceRun", "floors", "purge_expired", "retention_cutoffs", "roll_up"]

log = logging.getLogger("gateway.maintenance")

#: The longest sleep between checks, so a day change or a stop is noticed within a minute.
MAX_POLL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class MaintenanceRun:
    """What one ``run_once`` did: the (site, day) pairs rolled up, the purge counts (None: not due);
    ``leading`` False: another process leads, so this one did nothing but ask."""

    rolled_up: tuple[tuple[str, str], ...] | None
    purged: PurgeCounts | None
    leading: bool = True


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


async def roll_up(store: Store, zones: Zones, *, floors: Floors | None = None) -> list[tuple[str, str]]:
    """Rebuild the dirty days now (``gateway.storage.upkeep.roll_up_dirty``): the ``rollup`` command's work.

    ``floors``: each site's k, for the count of the people behind "(other)" (``gateway.storage.rollups``);
    without it the dashboard counts them from raw events.
    """
    return await roll_up_dirty(store, zones, floors=floors)


async def purge_expired(store: Store, settings: Settings, now: datetime) -> PurgeCounts:
    """Roll up the dirty days, then purge what is past its retention at ``now`` (one transaction)."""
    cutoffs = retention_cutoffs(now, settings.retention)
    _, counts = await roll_up_and_purge(store, cutoffs, settings.zones, floors=floors(settings))
    return counts


#: How far back the daily run builds the stored visits a filtered view would otherwise build first.
RECENT_VISIT_DAYS = timedelta(days=62)


def _recent_days(settings: Settings, today: date) -> list[tuple[str, str]]:
    """``(site, day)`` pairs spanning the last ``RECENT_VISIT_DAYS`` of every site (``build_stale`` builds
    the stale days between a site's first and last pair)."""
    first = (today - RECENT_VISIT_DAYS).isoformat()
    return [pair for site in settings.sites for pair in ((site, first), (site, today.isoformat()))]


class Maintenance:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        salts: SaltKeeper | None = None,
        *,
        poll_seconds: float | None = None,
    ) -> None:
        """``salts``: the process's keeper, asked on every poll so that yesterday's salt is deleted
        within a poll of the grace period's end even when no event arrives (a quiet site).
        ``poll_seconds``: how often to check (default: the rollup interval, at most a minute); a
        follower takes over from a stopped leader within one poll."""
        self._store = store
        self._settings = settings
        self._salts = salts
        self._retention = settings.retention
        self._zones = settings.zones
        self._floors = floors(settings)
        self._interval = _span(settings.rollup_interval)
        self._poll = poll_seconds or min(self._interval.total_seconds(), MAX_POLL_SECONDS)
        self._clock = clock
        self._leadership = Leadership(store, "maintenance")
        self._last_rollup: datetime | None = None
        self._last_purge_day: date | None = None
        self._periodic = Periodic("maintenance", self.run_once, self._poll, log)

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        """Let a run in progress finish (its transaction commits), then stop and let the role go."""
        await self._periodic.stop()
        await self._leadership.release()

    @property
    def running(self) -> bool:
        return self._periodic.running

    @property
    def leading(self) -> bool:
        """Whether this process is the maintenance leader (as of its last poll)."""
        return self._leadership.leading

    async def run_once(self) -> MaintenanceRun:
        """Do whatever is due at ``clock.now()`` if this process leads: the rollup every interval, the
        purge once per UTC day; a follower only asks for the role."""
        now = self._clock.now()
        today = now.astimezone(UTC).date()
        if await self._store.scrub_if_due() is False:  # a reader held the WAL: next poll, within a minute
            log.info("deleted data is not yet scrubbed from the WAL (a reader is busy); trying again")
        if not await self._leadership.claim():
            self._last_rollup = self._last_purge_day = None  # a process that takes over starts afresh
            return MaintenanceRun(None, None, leading=False)
        if self._salts is not None:
            await self._salts.salts(now)  # past 00:30 UTC this deletes yesterday's salt for good
        await enqueue_scheduled(self._store, self._settings, now)  # the sites' scheduled compliance scans
        if self._last_purge_day != today:
            cutoffs = retention_cutoffs(now, self._retention)
            early = await roll_up_dirty(self._store, self._zones, floors=self._floors)  # the heavy part, off the writer
            late, counts = await roll_up_and_purge(self._store, cutoffs, self._zones, floors=self._floors)
            await purge_expired_sessions(self._store, now)  # dashboard sessions past their timeouts
            rolled_up = sorted(set(early) | set(late))
            # filtered views' stored visits: the days just rolled up, and once a day any of the last
            # two months' that lacks its pack (after an upgrade, or a visit deleted by retention)
            await build_stale(self._store, self._zones, [*rolled_up, *_recent_days(self._settings, today)])
            self._last_rollup, self._last_purge_day = now, today
            log.info("rolled up %d day(s); purge: %s", len(rolled_up), counts.describe())
            return MaintenanceRun(tuple(rolled_up), counts)
        if self._last_rollup is None or now - self._last_rollup >= self._interval:
            rolled_up = await roll_up_dirty(self._store, self._zones, floors=self._floors)
            await build_stale(self._store, self._zones, rolled_up)  # filtered views' stored visits
            self._last_rollup = now
            if rolled_up:
                log.debug("rolled up %d day(s)", len(rolled_up))
            return MaintenanceRun(tuple(rolled_up), None)
        return MaintenanceRun(None, None)
