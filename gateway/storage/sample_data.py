"""SQL for the sample-data marker: which sites hold the demo's generated figures (migrations/0024).

The marker is claimed in its own transaction before any sample row is written: a second start, or a
seed that stopped half way, finds it and never adds a second copy; the dashboard reads it to label
the site's pages "Sample data".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.consent.records import ConsentRecord, PolicyRevision
from gateway.storage.consent_log import _INSERT, _parameters
from gateway.storage.policy_revisions import keep_revision
from gateway.storage.sql import Connection, is_postgres
from gateway.storage.store import Store

_CLAIM = "INSERT INTO sample_data (site_id, seeded_at) VALUES (?, ?) ON CONFLICT (site_id) DO NOTHING"


async def claim_sample_data(store: Store, site_id: str, *, now: datetime) -> bool:
    """Mark ``site_id`` as holding sample data; False when it already was (then nothing is to be seeded)."""

    def claim(connection: Connection) -> bool:
        return connection.execute(_CLAIM, (site_id, now.isoformat())).rowcount == 1

    return await store.write(claim)


async def sites_with_sample_data(store: Store) -> frozenset[str]:
    return frozenset(str(row[0]) for row in await store.fetch_all("SELECT site_id FROM sample_data"))


async def append_sample_records(
    store: Store, records: Sequence[ConsentRecord], revisions: Sequence[PolicyRevision]
) -> None:
    """The sample's proof-of-consent records in one transaction, with the proof log's own statement and
    columns, and the banners they answered (``revisions``, kept as ``append_record`` keeps them, first
    used at their earliest record): ``append_record`` commits and fsyncs each, seconds for thousands."""
    rows = [_parameters(record) for record in records]
    first_used: dict[str, datetime] = {}
    for record in records:
        if record.revision_hash is not None:
            known = first_used.get(record.revision_hash)
            first_used[record.revision_hash] = record.recorded_at if known is None else min(known, record.recorded_at)

    def append(connection: Connection) -> None:
        for revision in revisions:
            if revision.content_hash in first_used:
                keep_revision(connection, revision, first_used[revision.content_hash])
        connection.executemany(_INSERT, rows)

    await store.write(append)


async def analyze_events(store: Store) -> None:
    """Planner statistics for the events and visits just written, before they are rolled up: PostgreSQL
    otherwise plans the rollups' GROUP BYs for the empty tables it last sampled (autovacuum comes only
    later), and 60 days rolled up three times slower. SQLite plans them well without."""

    def analyze(connection: Connection) -> None:
        if is_postgres(connection):
            connection.execute("ANALYZE events, visits")

    await store.write(analyze)
