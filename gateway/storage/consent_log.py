"""SQL for the append-only proof-of-consent log (see migrations/0001_consent.sql)."""

from __future__ import annotations

import json
import secrets
import sqlite3
from datetime import datetime

from gateway.consent.records import ConsentRecord
from gateway.storage.db import Database

_INSERT = """
INSERT INTO consent_records (
    consent_id, site_id, recorded_at, method, policy_revision, banner_hash, categories, services,
    gpc, language, page_path, ip_network, ua_family, expires_at, erased, country, device
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT_BY_ID = "SELECT * FROM consent_records WHERE consent_id = ? ORDER BY seq"
_SELECT_BY_ID_AND_SITE = "SELECT * FROM consent_records WHERE consent_id = ? AND site_id = ? ORDER BY seq"
_ERASE = """
UPDATE consent_records
SET consent_id = ?, language = NULL, page_path = NULL, ip_network = NULL, ua_family = NULL, erased = 1
WHERE consent_id = ? AND erased = 0
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
    )


def _record(row: sqlite3.Row) -> ConsentRecord:
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
    )


async def append_record(db: Database, record: ConsentRecord) -> None:
    """Append one record; it is committed when this returns."""
    await db.execute_many([(_INSERT, _parameters(record))])


async def records_for(db: Database, consent_id: str, site_id: str | None = None) -> list[ConsentRecord]:
    if site_id is None:
        rows = await db.fetch_all(_SELECT_BY_ID, (consent_id,))
    else:
        rows = await db.fetch_all(_SELECT_BY_ID_AND_SITE, (consent_id, site_id))
    return [_record(row) for row in rows]


async def erase_records(db: Database, consent_id: str, *, now: datetime) -> int:
    """Unlink and blank every record of ``consent_id``; append an anonymous ``erase`` tombstone.

    Returns how many records were erased (0 when the id is unknown: nothing is written).
    """
    tombstone_id = "erased-" + secrets.token_urlsafe(12)

    def erase(connection: sqlite3.Connection) -> int:
        erased = connection.execute(_ERASE, (tombstone_id, consent_id)).rowcount
        if erased:
            site_id, revision, banner_hash = connection.execute(
                "SELECT site_id, policy_revision, banner_hash FROM consent_records WHERE consent_id = ? "
                "ORDER BY seq DESC LIMIT 1",
                (tombstone_id,),
            ).fetchone()
            tombstone = ConsentRecord(
                consent_id=tombstone_id,
                site_id=site_id,
                recorded_at=now,
                method="erase",
                policy_revision=revision,
                banner_hash=banner_hash,
                categories={},
                services={},
                gpc=False,
                erased=True,
            )
            connection.execute(_INSERT, _parameters(tombstone))
        return int(erased)

    return await db.write(erase)
