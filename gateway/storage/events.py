"""SQL for anonymous events and the visits they form (one transaction per batch).

Several writers may store batches at once: the processes of one node on SQLite queue on its write
lock, but nodes on one PostgreSQL database do not. There a batch first locks each of its visitors
(a transaction-level advisory lock per site and visitor id, taken in one order by every batch, so
two batches never wait on each other in a circle): the open visit it finds is then not continued
or opened a second time by another node before this batch commits.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from gateway.storage.outbox import enqueue_outbox
from gateway.storage.partitions import ensure_months, forget_months, month_of
from gateway.storage.records import EVENT_COLUMNS, AnonymousEvent, OutboxBatch, stored_row
from gateway.storage.rollups import mark_dirty
from gateway.storage.sql import Connection, is_postgres
from gateway.storage.store import Store

VISIT_TIMEOUT = timedelta(minutes=30)

_FIND_OPEN_VISIT = """
SELECT id, visitor_id, last_seen FROM visits
WHERE site_id = ? AND visitor_id IN (?, ?) AND last_seen >= ?
ORDER BY last_seen DESC LIMIT 1
"""
_NEW_VISIT = """
INSERT INTO visits (site_id, visitor_id, started_at, last_seen, entry_page, exit_page, pageviews, events)
VALUES (?, ?, ?, ?, ?, ?, ?, 1)
RETURNING id
"""
_CONTINUE_VISIT = """
UPDATE visits SET
    visitor_id = ?,
    last_seen = {latest}(last_seen, ?),
    exit_page = coalesce(?, exit_page),
    pageviews = pageviews + ?,
    events = events + ?
WHERE id = ?
"""
_PLACEHOLDERS = ", ".join("?" * len(EVENT_COLUMNS))
_INSERT_EVENT = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({_PLACEHOLDERS})"  # noqa: S608 - names from the record
_CONTINUE_VISIT_SQLITE = _CONTINUE_VISIT.format(latest="max")
_CONTINUE_VISIT_POSTGRES = _CONTINUE_VISIT.format(latest="GREATEST")  # max(a, b) is an aggregate there
# One statement locks a chunk of visitors, in the order given (a VALUES list is scanned in order).
_LOCK_CHUNK = 500
_LOCK_VISITORS = "SELECT count(pg_advisory_xact_lock(k)) FROM (VALUES {values}) AS visitors (k)"


class _Visit:
    """A visit this batch touches: what the batch adds to it, written once at the end."""

    __slots__ = ("events", "exit_page", "id", "last_seen", "pageviews", "visitor_id")

    def __init__(self, visit_id: int, visitor_id: str, last_seen: str) -> None:
        self.id, self.visitor_id, self.last_seen = visit_id, visitor_id, last_seen
        self.exit_page: str | None = None
        self.pageviews = self.events = 0


def insert_events(connection: Connection, events: Sequence[AnonymousEvent]) -> None:
    """Store ``events`` in order, opening or continuing visits (30 minutes of inactivity ends one).

    One batch is one transaction, and no other writer can open or continue a visit of its visitors
    meanwhile (SQLite's write lock; PostgreSQL's per-visitor locks): a visitor's visit is looked up
    once per batch, later events of theirs continue it in memory, and the rows go to the database
    in a few statements rather than three per event.
    """
    try:
        _insert_events(connection, events)
    except BaseException:
        forget_months(connection)  # the months this batch created were rolled back with it
        raise


def _insert_events(connection: Connection, events: Sequence[AnonymousEvent]) -> None:
    postgres = is_postgres(connection)
    if postgres:
        ensure_months(connection, {month_of(event.ts.isoformat()) for event in events})
        _lock_visitors(connection, ((e.site_id, v) for e in events for v in (e.visitor_id, e.previous_visitor_id) if v))
    known: dict[tuple[str, str], _Visit] = {}  # (site, visitor id) -> the latest visit seen in this batch
    by_id: dict[int, _Visit] = {}  # every visit in memory, so one visit is never two objects
    looked_up: set[tuple[str, str]] = set()
    touched: dict[int, _Visit] = {}
    rows = []
    dirty: set[tuple[str, str]] = set()
    for event in events:
        ts = event.ts.isoformat()
        is_pageview = event.name == "pageview"
        site, current = event.site_id, event.visitor_id
        previous = event.previous_visitor_id or current
        keys = ((site, current), (site, previous))
        threshold = (event.ts - VISIT_TIMEOUT).isoformat()
        if not (keys[0] in looked_up and keys[1] in looked_up):
            looked_up.update(keys)
            row = connection.execute(_FIND_OPEN_VISIT, (site, current, previous, threshold)).fetchone()
            if row is not None and row[0] not in by_id:
                found = by_id[row[0]] = _Visit(row[0], row[1], row[2])
                known.setdefault((site, found.visitor_id), found)
        candidates = [visit for key in keys if (visit := known.get(key)) is not None and visit.last_seen >= threshold]
        visit = max(candidates, key=lambda candidate: candidate.last_seen, default=None)
        if visit is None:
            cursor = connection.execute(
                _NEW_VISIT, (site, current, ts, ts, event.pathname, event.pathname, int(is_pageview))
            )
            visit = _Visit(int(cursor.fetchone()[0]), current, ts)
            by_id[visit.id] = visit
        else:  # continued; found under yesterday's salt, it is re-keyed to today's id so it can go
            # on after yesterday's salt is deleted (30 minutes after midnight)
            touched[visit.id] = visit
            visit.events += 1
            visit.pageviews += is_pageview
            if is_pageview:
                visit.exit_page = event.pathname
            visit.last_seen = max(visit.last_seen, ts)
        if visit.visitor_id != current:
            known.pop((site, visit.visitor_id), None)
            visit.visitor_id = current
            touched[visit.id] = visit
        known[(site, current)] = visit
        rows.append(stored_row(event, ts, visit.id))
        dirty.add((site, ts[:10]))
    if touched:
        connection.executemany(
            _CONTINUE_VISIT_POSTGRES if postgres else _CONTINUE_VISIT_SQLITE,
            [(v.visitor_id, v.last_seen, v.exit_page, v.pageviews, v.events, v.id) for v in touched.values()],
        )
    connection.executemany(_INSERT_EVENT, rows)
    mark_dirty(connection, dirty)


def _visitor_key(site: str, visitor: str) -> int:
    """A 64-bit advisory lock key for one visitor of one site (a collision only makes two visitors queue)."""
    digest = hashlib.blake2b(f"{site}\0{visitor}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock_visitors(connection: Connection, visitors: Iterable[tuple[str, str]]) -> None:
    """Lock every visitor of a batch until it commits, in ascending key order (no deadlock between batches)."""
    keys = sorted({_visitor_key(site, visitor) for site, visitor in visitors})
    for start in range(0, len(keys), _LOCK_CHUNK):
        chunk = keys[start : start + _LOCK_CHUNK]
        values = ", ".join(["(CAST(? AS BIGINT))"] * len(chunk))
        connection.execute(_LOCK_VISITORS.format(values=values), chunk).fetchone()


def store_events(
    connection: Connection, events: Sequence[AnonymousEvent], outbox: Sequence[OutboxBatch], *, now: datetime | None
) -> None:
    """One batch of the event writer, inside its transaction: the events, their visits and the
    forwarders' outbox rows (queued at ``now``), so a committed event is always forwarded too.
    The writer thread (``write_events``) and the writer process (gateway/storage/batch_writer.py)
    both store a batch with this, so they store the same rows."""
    insert_events(connection, events)
    if outbox:
        if now is None:
            raise ValueError("outbox rows need the time they are queued at")
        enqueue_outbox(connection, outbox, now=now)


async def write_events(
    store: Store, events: Sequence[AnonymousEvent], outbox: Sequence[OutboxBatch], *, now: datetime | None
) -> float:
    """``store_events`` in one transaction on the store's writer thread; returns the seconds from the
    transaction's start to its commit being known here (the commit-time metrics)."""
    started: list[float] = []

    def run(connection: Connection) -> None:
        started.append(time.perf_counter())
        store_events(connection, events, outbox, now=now)

    await store.write(run)
    return time.perf_counter() - started[0]
