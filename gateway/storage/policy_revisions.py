"""SQL for the stored policy revisions: each banner visitors answered, kept once (migrations/0023).

A revision is written in the same transaction as the first record that answers it, with
``ON CONFLICT DO NOTHING``: several nodes storing the same banner at once leave one row, and a
record never points to a revision that is not there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from gateway.consent.records import PolicyRevision
from gateway.storage.sql import Connection
from gateway.storage.store import Store

_INSERT = """
INSERT INTO policy_revisions (content_hash, site_id, revision, language, content, first_used)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (content_hash) DO NOTHING
"""
#: Hashes looked up per statement (well under SQLite's 999 parameters).
_LOOKUP_CHUNK = 500


def keep_revision(connection: Connection, revision: PolicyRevision, first_used: datetime) -> None:
    """Store ``revision`` unless it is stored already (inside the caller's transaction)."""
    connection.execute(
        _INSERT,
        (
            revision.content_hash,
            revision.site_id,
            revision.revision,
            revision.language,
            revision.content,
            first_used.isoformat(),
        ),
    )


async def store_revision(db: Store, revision: PolicyRevision, *, first_used: datetime) -> None:
    await db.write(lambda connection: keep_revision(connection, revision, first_used))


async def revisions_by_hash(db: Store, site_id: str, hashes: Iterable[str]) -> dict[str, PolicyRevision]:
    """The stored revisions of ``site_id`` among ``hashes`` (a hash of another site is not returned)."""
    wanted = sorted(set(hashes))
    found: dict[str, PolicyRevision] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        rows = await db.fetch_all(
            f"SELECT * FROM policy_revisions WHERE site_id = ? AND content_hash IN ({marks})",  # noqa: S608 - only ? marks
            (site_id, *chunk),
        )
        for row in rows:
            found[row["content_hash"]] = _revision(row)
    return found


def _revision(row: Any) -> PolicyRevision:
    return PolicyRevision(
        content_hash=row["content_hash"],
        site_id=row["site_id"],
        revision=row["revision"],
        language=row["language"],
        content=row["content"],
    )
