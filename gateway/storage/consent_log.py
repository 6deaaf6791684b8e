"""SQL for the append-only proof-of-consent log (see migrations/0001_consent.sql and 0010).

An erasure leaves only a tombstone: a new random id per record, no language, page, network,
browser, country or device, and the day instead of the instant (the start of the site's local
day, so a per-day report counts the anonymous decision on the same day as before). The writer
deletes with ``secure_delete`` and the erasure ends with ``Store.scrub``, so the old consent
id and the erased values are not left readable in the main file, ``-wal`` or ``-shm``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, time, tzinfo
from typing import Any

from gateway.consent.records import ConsentRecord, PolicyRevision
from gateway.storage.policy_revisions import keep_revision
from gateway.storage.sql import Connection
from gateway.storage.store import Store

_INSERT = """
INSERT INTO consent_records (
    consent_id, site_id, recorded_at, method, policy_revision, banner_hash, categories, services,
    gpc, language, page_path, ip_network, ua_family, expires_at, erased, country, device, revision_hash
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT_BY_ID = "SELECT * FROM consent_records WHERE consent_id = ? ORDER BY seq"
_SELECT_BY_ID_AND_SITE = "SELECT * FROM consent_records WHERE consent_id = ? AND site_id = ? ORDER BY seq"
_TO_ERASE = """
SELECT seq, site_id, recorded_at, expires_at FROM consent_records WHERE consent_id = ? AND erased = 0 ORDER BY seq
"""
# recorded_at is ISO 8601 in UTC from the same isoformat(), so text order is time order.
_EXPORT_PAGE = """
SELECT * FROM consent_records
WHERE site_id = ? AND seq > ? AND recorded_at >= ? AND recorded_at < ?
ORDER BY seq LIMIT ?
"""
#: Rows per page of an export: a few thousand, a few megabytes at most.
EXPORT_PAGE = 2000
_ERASE = """
UPDATE consent_records
SET consent_id = ?, recorded_at = ?, expires_at = ?, language = NULL, page_path = NULL, ip_network = NULL,
    ua_family = NULL, country = NULL, device = NULL, erased = 1
WHERE seq = ? AND erased = 0
"""


def _parameters(record: ConsentRecord) -> tuple[object, ...]:
    return (
        record.consent_id,
        record.site_id,
        record.recorded_at.isoformat(),
        record.method,
        record.policy_revision,
        record.banner_hash,
        json.dumps(dict(record.categories), sort_keys=True),
        json.dumps(dict(record.services), sort_keys=True),
        int(record.gpc),
        record.language,
        record.page_path,
        record.ip_network,
        record.ua_family,
        record.expires_at.isoformat() if record.expires_at else None,
        int(record.erased),
        record.country,
        record.device,
        record.revision_hash,
    )


def _record(row: Any) -> ConsentRecord:
    return ConsentRecord(
        consent_id=row["consent_id"],
        site_id=row["site_id"],
        recorded_at=datetime.fromisoformat(row["recorded_at"]),
        method=row["method"],
        policy_revision=row["policy_revision"],
        banner_hash=row["banner_hash"],
        categories=json.loads(row["categories"]),
        services=json.loads(row["services"]),
        gpc=bool(row["gpc"]),
        language=row["language"],
        page_path=row["page_path"],
        ip_network=row["ip_network"],
        ua_family=row["ua_family"],
        expires_at=datetime.fromisoformat(row["expires_at"]) if row["expires_at"] else None,
        erased=bool(row["erased"]),
        country=row["country"],
        device=row["device"],
        revision_hash=row["revision_hash"],
    )


async def append_record(db: Store, record: ConsentRecord, revision: PolicyRevision | None = None) -> None:
    """Append one record; it is committed when this returns.

    ``revision``: what the visitor was shown, stored in the same transaction unless already
    stored, and the record points to it (a record never points to a revision that is missing).
    """
    if revision is not None:
        record = replace(record, revision_hash=revision.content_hash)
    parameters = _parameters(record)

    def append(connection: Connection) -> None:
        if revision is not None:
            keep_revision(connection, revision, record.recorded_at)
        connection.execute(_INSERT, parameters)

    await db.write(append)


async def site_records(
    db: Store, site_id: str, start: datetime, end: datetime, *, page_size: int = EXPORT_PAGE
) -> AsyncIterator[list[ConsentRecord]]:
    """The site's records with ``start <= recorded_at < end``, in order of writing, ``page_size`` at a time.

    Keyset pages by ``seq`` (each a new indexed read that starts after the last row seen), so a
    year of records is never held at once and no page costs more than the one before.
    """
    after = 0
    bounds = (start.astimezone(UTC).isoformat(), end.astimezone(UTC).isoformat())
    while True:
        rows = await db.fetch_all(_EXPORT_PAGE, (site_id, after, *bounds, page_size))
        if not rows:
            return
        yield [_record(row) for row in rows]
        if len(rows) < page_size:
            return
        after = rows[-1]["seq"]


async def records_for(db: Store, consent_id: str, site_id: str | None = None) -> list[ConsentRecord]:
    if site_id is None:
        rows = await db.fetch_all(_SELECT_BY_ID, (consent_id,))
    else:
        rows = await db.fetch_all(_SELECT_BY_ID_AND_SITE, (consent_id, site_id))
    return [_record(row) for row in rows]


def start_of_day(moment: datetime, zone: tzinfo) -> datetime:
    """The start of ``moment``'s day in ``zone``, in UTC: what an erased record keeps of its time."""
    local = moment.astimezone(zone)
    return datetime.combine(local.date(), time(), tzinfo=zone).astimezone(UTC)


def _erased_id() -> str:
    return "erased-" + secrets.token_urlsafe(12)


async def erase_records(db: Store, consent_id: str, *, now: datetime, zones: Mapping[str, tzinfo] | None = None) -> int:
    """Unlink and blank every record of ``consent_id``; append an anonymous ``erase`` tombstone.

    Each erased record gets its own random id (erased records are not linked to each other either),
    keeps its decision, and keeps its times only as the start of their day in the site's time zone
    (``zones``; UTC for a site not in it). Returns how many records were erased (0 when the id is
    unknown: nothing is written).
    """
    zones = zones or {}

    def day(moment: str, site_id: str) -> str:
        return start_of_day(datetime.fromisoformat(moment), zones.get(site_id, UTC)).isoformat()

    def erase(connection: Connection) -> int:
        # Columns by position: rows of both stores index by number (a PostgreSQL row unpacks differently).
        found = connection.execute(_TO_ERASE, (consent_id,)).fetchall()
        for row in found:
            seq, site_id, recorded_at, expires_at = row[0], row[1], row[2], row[3]
            expires = day(expires_at, site_id) if expires_at else None
            connection.execute(_ERASE, (_erased_id(), day(recorded_at, site_id), expires, seq))
        if found:
            site_id = found[-1][1]
            last = connection.execute(
                "SELECT policy_revision, banner_hash, revision_hash FROM consent_records WHERE seq = ?",
                (found[-1][0],),
            ).fetchone()
            revision, banner_hash, revision_hash = last[0], last[1], last[2]
            tombstone = ConsentRecord(
                consent_id=_erased_id(),
                site_id=site_id,
                recorded_at=start_of_day(now, zones.get(site_id, UTC)),
                method="erase",
                policy_revision=revision,
                banner_hash=banner_hash,
                categories={},
                services={},
                gpc=False,
                erased=True,
                revision_hash=revision_hash,
            )
            connection.execute(_INSERT, _parameters(tombstone))
        return len(found)

    erased = await db.write(erase)
    if erased:
        await db.scrub()  # the old id and the erased values leave the -wal file too
    return erased
