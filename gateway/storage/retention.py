"""Deleting what is past its retention: raw events and visits, old rollups, ended consent records, salts.

GDPR Art. 5(1)(e) (storage limitation): nothing is kept longer than its purpose needs. The
cut-offs are computed by the caller from its clock and the settings (``gateway.maintenance``);
this module only deletes, through the indexes, so a daily purge costs what it deletes. On
PostgreSQL the months of events wholly before the cut-off are dropped as partitions first
(gateway/storage/partitions.py); the rest of the cut-off's month goes row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.storage.partitions import drop_months_before
from gateway.storage.sql import Connection

# A skip-scan over an index's first column: each site id once, without reading every row.
_SITES_OF_EVENTS = """
WITH RECURSIVE sites (site_id) AS (
    SELECT min(site_id) FROM events
    UNION ALL
    SELECT (SELECT min(site_id) FROM events WHERE site_id > sites.site_id) FROM sites WHERE site_id IS NOT NULL
)
SELECT site_id FROM sites WHERE site_id IS NOT NULL
"""
_SITES_OF_VISITS = _SITES_OF_EVENTS.replace("events", "visits")
_SITES_OF_ROLLUPS = _SITES_OF_EVENTS.replace("events", "rollups")
_DELETE_EVENTS = "DELETE FROM events WHERE site_id = ? AND ts < ?"
# A visit that ended before the cut-off also started before it: the started_at bound uses the index.
_DELETE_VISITS = "DELETE FROM visits WHERE site_id = ? AND started_at < ? AND last_seen < ?"
_DELETE_ROLLUPS = "DELETE FROM rollups WHERE site_id = ? AND day < ?"
# A record with no expiry ended when it was recorded (a withdrawal, an erasure tombstone).
_DELETE_CONSENT_RECORDS = "DELETE FROM consent_records WHERE coalesce(expires_at, recorded_at) < ?"
_DELETE_SALTS = "DELETE FROM salts WHERE day < ?"
# Days whose events are gone can no longer be rolled up: rebuilding them would erase their rollups.
_DELETE_DIRTY = "DELETE FROM rollup_dirty WHERE day < ?"


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    """How many rows the purge deleted, per table."""

    events: int
    visits: int
    rollups: int
    consent_records: int
    salts: int = 0

    def describe(self) -> str:
        return (
            f"deleted {self.events} event(s), {self.visits} visit(s), {self.rollups} rollup row(s), "
            f"{self.consent_records} consent record(s), {self.salts} salt(s)"
        )


def _utc_text(moment: datetime) -> str:
    """Stored times are ISO 8601 in UTC, so they compare as text with a cut-off written the same way."""
    if moment.tzinfo is None:
        raise ValueError(f"expected a timezone-aware cut-off, found {moment!r}")
    return moment.astimezone(UTC).isoformat()


def purge(
    connection: Connection,
    *,
    events_before: datetime,
    rollups_before: str,
    consent_before: datetime,
    salts_before: str | None = None,
) -> PurgeCounts:
    """Delete events with ``ts < events_before`` and visits whose ``last_seen < events_before``, rollups of
    days before ``rollups_before`` (YYYY-MM-DD), consent records that ended (``expires_at``) before
    ``consent_before``, and salts of days before ``salts_before`` (no salt is deleted when it is None).

    Run it inside one transaction (``Store.write``).
    """
    events_cut = _utc_text(events_before)
    events = drop_months_before(connection, events_cut)
    visits = rollups = 0
    for (site_id,) in connection.execute(_SITES_OF_EVENTS).fetchall():
        events += connection.execute(_DELETE_EVENTS, (site_id, events_cut)).rowcount
    for (site_id,) in connection.execute(_SITES_OF_VISITS).fetchall():
        visits += connection.execute(_DELETE_VISITS, (site_id, events_cut, events_cut)).rowcount
    for (site_id,) in connection.execute(_SITES_OF_ROLLUPS).fetchall():
        rollups += connection.execute(_DELETE_ROLLUPS, (site_id, rollups_before)).rowcount
    connection.execute(_DELETE_DIRTY, (events_cut[:10],))
    consent_records = connection.execute(_DELETE_CONSENT_RECORDS, (_utc_text(consent_before),)).rowcount
    salts = connection.execute(_DELETE_SALTS, (salts_before,)).rowcount if salts_before is not None else 0
    return PurgeCounts(events=events, visits=visits, rollups=rollups, consent_records=consent_records, salts=salts)
