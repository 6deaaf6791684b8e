"""SQL for anonymous events and the visits they form (one transaction per batch).

Several writers may store batches at once: the processes of one node on SQLite queue on its write
lock, but nodes on one PostgreSQL database do not. There a batch first locks each of its visitors
(a transaction-level advisory lock per site and visitor id, taken in one order by every batch, so
two batches never wait on each other in a circle): the open visit it finds is then not continued
or opened a second time by another node before this batch commits.

A statement costs a round trip to PostgreSQL (~0.7 ms), against microseconds for SQLite in the
process, so there a batch is a handful of statements whatever its size: the locks in one, the open
visits of all its visitors in one, its new visits (ids drawn from the sequence in one query) and
continued visits in one each, its events in one (``_PostgresVisits``, ``_insert_rows_postgres``).
SQLite keeps a statement per lookup and per new visit, which is the fastest way there.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from itertools import count
from typing import Any, cast

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

# PostgreSQL: one statement each, whatever the batch's size (lists travel as array literals).
# The locks, in the order of the array (unnest returns its elements in order).
_LOCK_VISITORS = "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(? AS bigint[])) AS visitors (k)"
# Each visitor's latest visit that may still be open (the index visits_open answers each visitor).
_FIND_OPEN_VISITS = """
SELECT DISTINCT ON (visitor_id) id, visitor_id, last_seen FROM visits
WHERE site_id = ? AND visitor_id = ANY(CAST(? AS text[])) AND last_seen >= ?
ORDER BY visitor_id, last_seen DESC
"""
_NEXT_VISIT_IDS = "SELECT nextval(pg_get_serial_sequence('visits', 'id')) FROM generate_series(1, ?)"
# New rows go by COPY: 1,000 events take ~10 ms, against ~70 ms as one INSERT of arrays and ~150 ms as
# pipelined INSERTs (measured on the test cluster).
_COPY_VISITS = (
    "COPY visits (id, site_id, visitor_id, started_at, last_seen, entry_page, exit_page, pageviews, events) FROM STDIN"
)
_COPY_EVENTS = f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
_CONTINUE_VISITS = """
UPDATE visits AS v SET
    visitor_id = c.visitor_id,
    last_seen = GREATEST(v.last_seen, c.last_seen),
    exit_page = coalesce(c.exit_page, v.exit_page),
    pageviews = v.pageviews + c.pageviews,
    events = v.events + c.events
FROM unnest(
    CAST(? AS bigint[]), CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]), CAST(? AS integer[]),
    CAST(? AS integer[])
) AS c (id, visitor_id, last_seen, exit_page, pageviews, events)
WHERE v.id = c.id
"""


class _Visit:
    """A visit this batch touches: what the batch adds to it, written once at the end."""

    __slots__ = ("events", "exit_page", "id", "last_seen", "pageviews", "visitor_id")

    def __init__(self, visit_id: int, visitor_id: str, last_seen: str) -> None:
        self.id, self.visitor_id, self.last_seen = visit_id, visitor_id, last_seen
        self.exit_page: str | None = None
        self.pageviews = self.events = 0


Found = tuple[int, str, str]  # an open visit as stored: (id, visitor id, last seen)


class _SqliteVisits:
    """Visits on SQLite: each lookup and each new visit is a statement at once (microseconds each)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def find(self, site: str, current: str, previous: str, threshold: str) -> Found | None:
        """The stored visit of either id last seen at ``threshold`` or later, the latest one."""
        row = self.connection.execute(_FIND_OPEN_VISIT, (site, current, previous, threshold)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def open(self, site: str, visitor: str, ts: str, page: str, is_pageview: bool) -> _Visit:
        cursor = self.connection.execute(_NEW_VISIT, (site, visitor, ts, ts, page, page, int(is_pageview)))
        return _Visit(int(cursor.fetchone()[0]), visitor, ts)

    def write(self, touched: Iterable[_Visit]) -> None:
        rows = [(v.visitor_id, v.last_seen, v.exit_page, v.pageviews, v.events, v.id) for v in touched]
        if rows:
            self.connection.executemany(_CONTINUE_VISIT_SQLITE, rows)


class _PostgresVisits:
    """Visits on PostgreSQL: what ``_SqliteVisits`` does, in a few statements per batch.

    The open visits of every visitor of the batch are read in one query first (under the batch's
    locks nobody else changes them); ``find`` then answers from them and from the visits the batch
    opened, as the SQL lookup would. New visits get temporary ids, and ``write`` draws their real
    ids from the sequence and inserts them in their final state, with one statement for the others.
    """

    def __init__(self, connection: Connection, events: Sequence[AnonymousEvent]) -> None:
        self.connection = connection
        self.latest: dict[tuple[str, str], Found] = {}  # (site, visitor id) -> its latest stored visit
        self.opened: list[tuple[_Visit, str, str, str, bool]] = []  # (visit, site, started at, entry page, pageview)
        self._temporary_ids = count(-1, -1)
        visitors: dict[str, set[str]] = {}
        since: dict[str, str] = {}
        for event in events:
            ids = visitors.setdefault(event.site_id, set())
            ids.add(event.visitor_id)
            if event.previous_visitor_id:
                ids.add(event.previous_visitor_id)
            threshold = (event.ts - VISIT_TIMEOUT).isoformat()
            since[event.site_id] = min(since.get(event.site_id, threshold), threshold)
        for site, ids in visitors.items():
            for visit_id, visitor, last_seen in connection.execute(_FIND_OPEN_VISITS, (site, sorted(ids), since[site])):
                self.latest[(site, visitor)] = (int(visit_id), visitor, last_seen)

    def find(self, site: str, current: str, previous: str, threshold: str) -> Found | None:
        stored = [
            found
            for visitor in {current, previous}
            if (found := self.latest.get((site, visitor))) is not None and found[2] >= threshold
        ]
        return max(stored, key=lambda found: found[2], default=None)

    def open(self, site: str, visitor: str, ts: str, page: str, is_pageview: bool) -> _Visit:
        visit = _Visit(next(self._temporary_ids), visitor, ts)
        self.opened.append((visit, site, ts, page, is_pageview))
        latest = self.latest.get((site, visitor))
        if latest is None or latest[2] < ts:
            self.latest[(site, visitor)] = (visit.id, visitor, ts)
        return visit

    def write(self, touched: Iterable[_Visit]) -> None:
        continued = [v for v in touched if v.id > 0]  # the batch's own new visits go in whole, below
        if self.opened:
            ids = self.connection.execute(_NEXT_VISIT_IDS, (len(self.opened),)).fetchall()
            for (visit, *_), (real_id,) in zip(self.opened, ids, strict=True):
                visit.id = int(real_id)
            _copy(
                self.connection,
                _COPY_VISITS,
                [
                    (v.id, site, v.visitor_id, started, v.last_seen, page, v.exit_page or page,
                     int(pageview) + v.pageviews, 1 + v.events)
                    for v, site, started, page, pageview in self.opened
                ],
            )  # fmt: skip
        if continued:
            self.connection.execute(
                _CONTINUE_VISITS,
                _columns((v.id, v.visitor_id, v.last_seen, v.exit_page, v.pageviews, v.events) for v in continued),
            )


def _columns(rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """Rows as one list per column, each bound as one array."""
    return [list(column) for column in zip(*rows, strict=True)]


def _copy(connection: Connection, statement: str, rows: Iterable[Sequence[Any]]) -> None:
    """``COPY ... FROM STDIN`` of ``rows`` on the PostgreSQL adapter's own connection (gateway/storage/postgres.py:
    ``raw``, in the transaction the store began), values as psycopg adapts them."""
    raw = cast(Any, connection).raw
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


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
    stored: _SqliteVisits | _PostgresVisits
    if postgres:
        ensure_months(connection, {month_of(event.ts.isoformat()) for event in events})
        _lock_visitors(connection, ((e.site_id, v) for e in events for v in (e.visitor_id, e.previous_visitor_id) if v))
        stored = _PostgresVisits(connection, events)
    else:
        stored = _SqliteVisits(connection)
    known: dict[tuple[str, str], _Visit] = {}  # (site, visitor id) -> the latest visit seen in this batch
    by_id: dict[int, _Visit] = {}  # every visit in memory, so one visit is never two objects
    looked_up: set[tuple[str, str]] = set()
    touched: dict[int, _Visit] = {}
    joined: list[tuple[AnonymousEvent, str, _Visit]] = []  # each event and its visit (whose id may change)
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
            row = stored.find(site, current, previous, threshold)
            if row is not None and row[0] not in by_id:
                found = by_id[row[0]] = _Visit(*row)
                known.setdefault((site, found.visitor_id), found)
        candidates = [visit for key in keys if (visit := known.get(key)) is not None and visit.last_seen >= threshold]
        visit = max(candidates, key=lambda candidate: candidate.last_seen, default=None)
        if visit is None:
            visit = stored.open(site, current, ts, event.pathname, is_pageview)
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
        joined.append((event, ts, visit))
        dirty.add((site, ts[:10]))
    stored.write(touched.values())
    rows = [stored_row(event, ts, visit.id) for event, ts, visit in joined]
    if postgres:
        _copy(connection, _COPY_EVENTS, rows)
    else:
        connection.executemany(_INSERT_EVENT, rows)
    mark_dirty(connection, dirty)


def _visitor_key(site: str, visitor: str) -> int:
    """A 64-bit advisory lock key for one visitor of one site (a collision only makes two visitors queue)."""
    digest = hashlib.blake2b(f"{site}\0{visitor}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock_visitors(connection: Connection, visitors: Iterable[tuple[str, str]]) -> None:
    """Lock every visitor of a batch until it commits, in ascending key order (no deadlock between batches)."""
    keys = sorted({_visitor_key(site, visitor) for site, visitor in visitors})
    if keys:
        connection.execute(_LOCK_VISITORS, (keys,)).fetchone()


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
