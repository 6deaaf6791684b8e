"""Upkeep as named store operations: roll up the dirty days, purge what is past its retention.

``gateway.maintenance`` decides when (its clock, the settings, the leader); these run the work on
either store and hand back plain values, so no connection leaves ``storage/``. The SQL is that of
``gateway.storage.rollups`` and ``gateway.storage.retention``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from gateway.storage.db import Database
from gateway.storage.retention import PurgeCounts, purge
from gateway.storage.rollups import Floors, RollupPlan, Zones, apply_plan, plan_dirty, rebuild_dirty
from gateway.storage.sql import Connection
from gateway.storage.store import Store

if TYPE_CHECKING:  # psycopg is imported only where PostgreSQL is used
    from gateway.storage.postgres import PostgresStore

_READER_BUSY_TIMEOUT_MS = 10_000


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """What the purge deletes: everything strictly before these."""

    events_before: datetime
    rollups_before: str
    consent_before: datetime
    salts_before: str


async def roll_up_dirty(store: Store, zones: Zones, *, floors: Floors | None = None) -> list[tuple[str, str]]:
    """Rebuild the days that received events since their last rollup; returns the (site, day) pairs written.

    On SQLite the rows are computed on a read-only connection and only swapped in on the writer, so
    event writes are held for the swap, not while a busy day's events are grouped (seconds for a
    million events). On PostgreSQL likewise: planned on a connection of its own (one REPEATABLE READ
    snapshot), written in one short transaction of the writer.
    ``floors``: each site's k, for the count of the people behind "(other)"
    (``gateway.storage.rollups``); without it the dashboard counts them from raw events.
    """
    if isinstance(store, Database):
        plan = await asyncio.to_thread(_plan_on_reader, store.path, zones, floors)
    elif store.dialect == "postgresql":
        plan = await asyncio.to_thread(_plan_on_postgres, cast("PostgresStore", store), zones, floors)
    else:
        return await store.write(lambda connection: rebuild_dirty(_any(connection), zones=zones, floors=floors))
    return await store.write(lambda connection: apply_plan(_any(connection), plan))


def _any(connection: Connection) -> Any:
    # rollups.py and retention.py still annotate sqlite3.Connection while their SQL is ported to
    # both stores; the writer hands them the store's own connection (gateway/storage/sql.py).
    return connection


def _plan_on_reader(path: Path, zones: Zones, floors: Floors | None) -> RollupPlan:
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, isolation_level=None)) as reader:
        reader.execute(f"PRAGMA busy_timeout = {_READER_BUSY_TIMEOUT_MS}")
        return plan_dirty(reader, zones=zones, floors=floors)


def _plan_on_postgres(store: PostgresStore, zones: Zones, floors: Floors | None) -> RollupPlan:
    """The plan on a connection of its own (``plan_dirty`` opens its one snapshot there), so the
    writer connection, and this node's event writes, wait only for ``apply_plan``."""

    with closing(store.connect()) as reader:
        return plan_dirty(_any(reader), zones=zones, floors=floors)


async def roll_up_and_purge(
    store: Store, cutoffs: Cutoffs, zones: Zones, *, floors: Floors | None = None
) -> tuple[list[tuple[str, str]], PurgeCounts]:
    """Roll up the dirty days, then purge what ``cutoffs`` say, in one transaction; scrub when a salt
    or a consent record went (their bytes must leave the files too). Returns the days rolled up and
    the purge counts.

    Rolling up first means the days about to lose their events are counted before the events go.
    """

    def roll_up_then_purge(connection: Connection) -> tuple[list[tuple[str, str]], PurgeCounts]:
        rolled_up = rebuild_dirty(_any(connection), zones=zones, floors=floors)
        counts = purge(
            _any(connection),
            events_before=cutoffs.events_before,
            rollups_before=cutoffs.rollups_before,
            consent_before=cutoffs.consent_before,
            salts_before=cutoffs.salts_before,
        )
        return rolled_up, counts

    rolled_up, counts = await store.write(roll_up_then_purge)
    if counts.salts or counts.consent_records:
        await store.scrub()
    return rolled_up, counts


async def rebuild_rollups(store: Store, *, site_id: str | None, zones: Zones, floors: Floors | None) -> int:
    """Rebuild every day's rollups (of one site, or all): ``consent-gateway rollup --rebuild``."""
    from gateway.storage.rollups import rebuild_all

    return await store.write(partial(rebuild_all, site_id=site_id, zones=zones, floors=floors))
