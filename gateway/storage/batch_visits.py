"""The reads and writes of a batch of events, per store: its visitors' open visits, its new and
continued visits, its events' rows. ``gateway.storage.events`` decides which visit each event joins.

SQLite (``SqliteVisits``): a statement per lookup and per new visit, at once; microseconds each in
the process, the fastest way there.

PostgreSQL (``PostgresVisits``): a few round trips whatever the batch's size. A statement costs a round
trip to the server (~0.5 ms on one machine, more across a network); and the writer stores batches one
after another, so round trips per batch bound the events per second. A batch is:

1. one pipeline (one round trip): the batch's visitor locks (transaction-level advisory locks, one
   statement, in key order), then the open visits of all its visitors (one query per site). The
   query runs after the locks are held, so its snapshot sees what other nodes committed under them;
2. new visits' ids come from a block drawn from the sequence ahead (one query per 256 new visits);
3. one statement: the new visits in their final state, the continued visits, the events and the
   rollup marks, as data-modifying CTEs.

The event writer process sends BEGIN with the first round trip and COMMIT with the last
(``PostgresStore.run_batch``), so a batch is two round trips, three when it draws visit ids.

Most batches need not wait for the lookups (``settled_in_one_statement``): when no event comes under
yesterday's id too and the batch spans less than a visit's 30 minutes, each visitor's events all join
the visit their first one finds or opens, which the server can decide alone. Such a batch is its
locks and one statement that looks the visits up, continues or opens them, and stores the events
and marks (``write_in_one_statement``): with BEGIN and COMMIT, one round trip. The two ways store the
same rows, ids included (tests/storage/test_events_batches.py checks them against SQLite).

The statements go down a libpq pipeline of the writer's own, below psycopg's cursors
(gateway/storage/pg_pipeline.py): they queue until a result is read. Each is prepared once per
connection (parsed and planned once, not per batch) and takes its values as JSON documents
(``json.dumps`` in C, one text per parameter) rather than arrays quoted value by value in Python:
at the bench's 16 events a batch this halved the batch's time (5.6 ms to 2.6 ms) and took the writer
process from ~158 to ~70 µs of CPU an event. Generic plans cannot see
how many rows a document holds, so the statements are shaped to probe indexes whatever the plan:
a LATERAL lookup per visitor, continued visits by an array of their ids.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable, Sequence
from datetime import timedelta
from itertools import count
from typing import Any, cast

from gateway.storage.records import EVENT_COLUMNS, AnonymousEvent, stored_row
from gateway.storage.rollups import MARK_DIRTY_POSTGRES_CTES, MARK_DIRTY_POSTGRES_TAIL, mark_dirty
from gateway.storage.sql import Connection

#: (id, visitor id, last seen) of a stored visit.
Found = tuple[int, str, str]
#: New visit ids drawn from the sequence at once (unused ones are a gap in the ids, nothing more).
ID_BLOCK = 256

# PostgreSQL's statements (``%s``, prepared: gateway/storage/postgres.py ``execute_prepared``). A
# batch's values go as one JSON document per statement, an array of values or of rows.
# The locks, in the order of the array (jsonb_array_elements returns its elements in order).
_LOCK_VISITORS = (
    "SELECT count(pg_advisory_xact_lock(CAST(k AS bigint))) FROM jsonb_array_elements_text(CAST(%s AS jsonb)) AS v (k)"
)
# Each visitor's latest visit that may still be open: one backward probe of index visits_open per
# visitor, whatever the plan (prepared statements get generic plans, which cannot see the array).
_FIND_OPEN_VISITS = """
SELECT v.id, w.visitor_id, v.last_seen FROM jsonb_array_elements_text(CAST(%s AS jsonb)) AS w (visitor_id)
CROSS JOIN LATERAL (
    SELECT id, last_seen FROM visits
    WHERE site_id = %s AND visitor_id = w.visitor_id AND last_seen >= %s
    ORDER BY last_seen DESC LIMIT 1
) AS v
"""
# SQLite: one visit found, one opened, per statement.
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
    last_seen = max(last_seen, ?),
    exit_page = coalesce(?, exit_page),
    pageviews = pageviews + ?,
    events = events + ?
WHERE id = ?
"""
_INSERT_EVENT = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"  # noqa: S608
_NEXT_VISIT_IDS = "SELECT nextval(pg_get_serial_sequence('visits', 'id')) FROM generate_series(1, CAST(%s AS integer))"


def _from_json_rows(types: Sequence[str]) -> str:
    """The columns of ``types`` read from ``r``, a row of a JSON array of arrays."""
    return ", ".join(
        f"r->>{index}" if kind == "text" else f"CAST(r->>{index} AS {kind})" for index, kind in enumerate(types)
    )


# A batch's writes in one statement (one parse, plan and execution, prepared): its new visits whole,
# its continued visits, its events and the rollup marks last (gateway/storage/rollups.py). The
# continued visits' ids also come as an array, so even a generic plan reads them by primary key.
_WRITE_BATCH = f"""
WITH new_visits AS (
    INSERT INTO visits (id, site_id, visitor_id, started_at, last_seen, entry_page, exit_page, pageviews, events)
    SELECT {_from_json_rows(("bigint", *["text"] * 6, "integer", "integer"))}
    FROM jsonb_array_elements(CAST(%s AS jsonb)) AS e (r)
), continued AS (
    UPDATE visits AS v SET
        visitor_id = c.visitor_id,
        last_seen = GREATEST(v.last_seen, c.last_seen),
        exit_page = coalesce(c.exit_page, v.exit_page),
        pageviews = v.pageviews + c.pageviews,
        events = v.events + c.events
    FROM (
        SELECT {_from_json_rows(("bigint", "text", "text", "text", "integer", "integer"))}
        FROM jsonb_array_elements(CAST(%s AS jsonb)) AS e (r)
    ) AS c (id, visitor_id, last_seen, exit_page, pageviews, events)
    WHERE v.id = c.id AND v.id = ANY(CAST(%s AS bigint[]))
), new_events AS (
    INSERT INTO events ({", ".join(EVENT_COLUMNS)})
    SELECT {_from_json_rows(["bigint" if column == "visit_id" else "text" for column in EVENT_COLUMNS])}
    FROM jsonb_array_elements(CAST(%s AS jsonb)) WITH ORDINALITY AS e (r, n) ORDER BY n
), {MARK_DIRTY_POSTGRES_TAIL}"""  # noqa: S608 - no value in the text: they are the %s

# A batch whose visits the server can settle alone (``settled_in_one_statement``) in one statement
# after its locks: each visitor's open visit is looked up here (the statement's snapshot is taken after
# the locks are held), continued when found, opened otherwise. A new visit takes the next of the spare
# ids sent (the first array, in the visitors' order), so ids go out as the batch-by-batch way hands them
# out; the statement answers how many it took. An event's row ends with its visitor's place in the
# visitors' array instead of a visit id.
_VISITOR_TYPES = ("text", "text", "text", "text", "text", "text", "text", "integer", "integer")
_WRITE_BATCH_AT_ONCE = f"""
WITH visitors AS MATERIALIZED (
    SELECT v.slot, v.site_id, v.visitor_id, v.started_at, v.entry_page, v.last_seen, v.exit_page, v.pageviews,
        v.events, f.id AS found_id,
        coalesce(f.id, (CAST(%s AS bigint[]))[count(*) FILTER (WHERE f.id IS NULL) OVER (ORDER BY v.slot)])
            AS visit_id
    FROM (
        SELECT n, {_from_json_rows(_VISITOR_TYPES)}
        FROM jsonb_array_elements(CAST(%s AS jsonb)) WITH ORDINALITY AS e (r, n)
    ) AS v (slot, site_id, visitor_id, threshold, started_at, entry_page, last_seen, exit_page, pageviews, events)
    LEFT JOIN LATERAL (
        SELECT id FROM visits AS s
        WHERE s.site_id = v.site_id AND s.visitor_id = v.visitor_id AND s.last_seen >= v.threshold
        ORDER BY s.last_seen DESC LIMIT 1
    ) AS f ON true
), new_visits AS (
    INSERT INTO visits (id, site_id, visitor_id, started_at, last_seen, entry_page, exit_page, pageviews, events)
    SELECT visit_id, site_id, visitor_id, started_at, last_seen, entry_page, coalesce(exit_page, entry_page),
        pageviews, events
    FROM visitors WHERE found_id IS NULL
), continued AS (
    UPDATE visits AS s SET
        last_seen = GREATEST(s.last_seen, c.last_seen),
        exit_page = coalesce(c.exit_page, s.exit_page),
        pageviews = s.pageviews + c.pageviews,
        events = s.events + c.events
    FROM visitors AS c WHERE s.id = c.found_id
), new_events AS (
    INSERT INTO events ({", ".join(EVENT_COLUMNS)})
    SELECT {_from_json_rows(["text"] * (len(EVENT_COLUMNS) - 1))}, v.visit_id
    FROM jsonb_array_elements(CAST(%s AS jsonb)) WITH ORDINALITY AS e (r, n)
    JOIN visitors AS v ON v.slot = CAST(e.r->>{len(EVENT_COLUMNS) - 1} AS bigint)
    ORDER BY e.n
), {MARK_DIRTY_POSTGRES_CTES}
SELECT count(*) FROM visitors WHERE found_id IS NULL"""  # noqa: S608 - no value in the text: they are the %s


class _SpareIds:
    """Visit ids drawn from the sequence and not used yet, for one writer connection. Safe to keep: an
    id drawn is never handed out again by the sequence; a failed batch forgets its connection's ids.

    A batch written in one statement is offered ids for all its visitors and uses as many as it opens,
    the first ones: the rest come back once its answer is read (``take`` of the next batch, after the
    commit), ahead of the others, so ids are handed out in the same order either way.
    """

    __slots__ = ("ids", "lent")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.lent: tuple[Any, list[int]] | None = None  # (the statement's answer, the ids offered to it)

    def take(self, connection: Connection, count: int) -> list[int]:
        """The next ``count`` ids, drawn from the sequence first when too few are left (a round trip)."""
        if self.lent is not None:
            answer, offered = self.lent
            self.lent = None
            self.ids[:0] = offered[int(answer.fetchall()[0][0]) :]
        if len(self.ids) < count:
            drawn = _prepared(connection, _NEXT_VISIT_IDS, max(ID_BLOCK, count - len(self.ids)))
            self.ids.extend(int(row[0]) for row in drawn.fetchall())
        taken, self.ids = self.ids[:count], self.ids[count:]
        return taken

    def lend(self, answer: Any, offered: list[int]) -> None:
        """``offered`` went to a batch written in one statement; ``answer`` will say how many it used."""
        self.lent = (answer, offered)


_spare_ids: weakref.WeakKeyDictionary[object, _SpareIds] = weakref.WeakKeyDictionary()


def _spare(connection: Connection) -> _SpareIds:
    return _spare_ids.setdefault(connection, _SpareIds())


class Visit:
    """A visit a batch touches: what the batch adds to it, written once at the end."""

    __slots__ = ("events", "exit_page", "id", "last_seen", "pageviews", "visitor_id")

    def __init__(self, visit_id: int, visitor_id: str, last_seen: str) -> None:
        self.id, self.visitor_id, self.last_seen = visit_id, visitor_id, last_seen
        self.exit_page: str | None = None
        self.pageviews = self.events = 0


#: (site, UTC day) a batch wrote events of: marked for the next rollup in the batch's transaction.
Day = tuple[str, str]


class SqliteVisits:
    """Visits on SQLite: each lookup and each new visit is a statement at once."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def find(self, site: str, current: str, previous: str, threshold: str) -> Found | None:
        """The stored visit of either id last seen at ``threshold`` or later, the latest one."""
        row = self.connection.execute(_FIND_OPEN_VISIT, (site, current, previous, threshold)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def open(self, site: str, visitor: str, ts: str, page: str, is_pageview: bool) -> Visit:
        cursor = self.connection.execute(_NEW_VISIT, (site, visitor, ts, ts, page, page, int(is_pageview)))
        return Visit(int(cursor.fetchone()[0]), visitor, ts)

    def assign_ids(self) -> None:
        """Nothing to do: a new visit has its id from its INSERT."""

    def write(self, touched: dict[int, Visit], events: list[tuple[object, ...]], dirty: Iterable[Day]) -> None:
        rows = [(v.visitor_id, v.last_seen, v.exit_page, v.pageviews, v.events, v.id) for v in touched.values()]
        if rows:
            self.connection.executemany(_CONTINUE_VISIT, rows)
        self.connection.executemany(_INSERT_EVENT, events)
        mark_dirty(self.connection, dirty)


class PostgresVisits:
    """The stored visits a batch needs, read at once; what it opens and continues, written at once.

    ``find`` answers as the SQL lookup of SQLite would (the latest stored visit of either id, last
    seen at the threshold or later) from the visits read first and those the batch opened. New
    visits get temporary (negative) ids until ``write``.
    """

    def __init__(self, connection: Connection, events: Sequence[AnonymousEvent], *, timeout: timedelta) -> None:
        self.connection = connection
        self.latest: dict[tuple[str, str], Found] = {}  # (site, visitor id) -> its latest stored visit
        self.opened: list[tuple[Visit, str, str, str, bool]] = []  # (visit, site, started at, entry page, pageview)
        self._temporary_ids = count(-1, -1)
        visitors: dict[str, set[str]] = {}
        for event in events:
            ids = visitors.setdefault(event.site_id, set())
            ids.add(event.visitor_id)
            if event.previous_visitor_id:
                ids.add(event.previous_visitor_id)
        keys = lock_keys((site, visitor) for site, ids in visitors.items() for visitor in ids)
        if keys:  # queued with the lookups: one round trip for both (reading the first result sends them)
            _prepared(connection, _LOCK_VISITORS, keys)
        cursors = [
            (site, _prepared(connection, _FIND_OPEN_VISITS, sorted(ids), site, _earliest(events, site, timeout)))
            for site, ids in visitors.items()
        ]
        for site, cursor in cursors:
            for visit_id, visitor, last_seen in cursor.fetchall():
                self.latest[(site, visitor)] = (int(visit_id), str(visitor), str(last_seen))

    def find(self, site: str, current: str, previous: str, threshold: str) -> Found | None:
        stored = [
            found
            for visitor in {current, previous}
            if (found := self.latest.get((site, visitor))) is not None and found[2] >= threshold
        ]
        return max(stored, key=lambda found: found[2], default=None)

    def open(self, site: str, visitor: str, ts: str, page: str, is_pageview: bool) -> Visit:
        visit = Visit(next(self._temporary_ids), visitor, ts)
        self.opened.append((visit, site, ts, page, is_pageview))
        latest = self.latest.get((site, visitor))
        if latest is None or latest[2] < ts:
            self.latest[(site, visitor)] = (visit.id, visitor, ts)
        return visit

    def assign_ids(self) -> None:
        """Give the batch's new visits their real ids (from the connection's spare ids, drawn ahead)."""
        if not self.opened:
            return
        ids = _spare(self.connection).take(self.connection, len(self.opened))
        for (visit, *_), visit_id in zip(self.opened, ids, strict=True):
            visit.id = visit_id

    def write(self, touched: dict[int, Visit], events: list[tuple[object, ...]], dirty: Iterable[Day]) -> None:
        """The new visits whole, the continued ones, the events' rows (``assign_ids`` first) and the
        rollup marks of ``dirty`` in one statement (1,000 events as JSON take as long as by COPY,
        which could not run in the batch's pipeline).

        ``touched``: the visits continued or re-keyed, by the id they had then (the new ones' were negative).
        """
        continued = [visit for key, visit in touched.items() if key > 0]
        _prepared(
            self.connection,
            _WRITE_BATCH,
            [
                (v.id, site, v.visitor_id, started, v.last_seen, page, v.exit_page or page,
                 int(pageview) + v.pageviews, 1 + v.events)
                for v, site, started, page, pageview in self.opened
            ],
            [(v.id, v.visitor_id, v.last_seen, v.exit_page, v.pageviews, v.events) for v in continued],
            "{" + ",".join(str(v.id) for v in continued) + "}",  # a bigint[] literal
            events,
            sorted(set(dirty)),
        )  # fmt: skip


class _Visitor:
    """One visitor of a batch written in one statement: what its events add to the visit they join."""

    __slots__ = ("entry_page", "events", "exit_page", "last_seen", "pageviews", "site", "slot", "started_at",
                 "threshold", "visitor_id")  # fmt: skip

    def __init__(self, slot: int, event: AnonymousEvent, ts: str, timeout: timedelta) -> None:
        self.slot, self.site, self.visitor_id = slot, event.site_id, event.visitor_id
        self.threshold = (event.ts - timeout).isoformat()  # the open visit its first event may join
        self.started_at, self.entry_page, self.last_seen = ts, event.pathname, ts
        self.exit_page: str | None = None
        self.pageviews = self.events = 0

    def row(self) -> tuple[object, ...]:
        return (self.site, self.visitor_id, self.threshold, self.started_at, self.entry_page, self.last_seen,
                self.exit_page, self.pageviews, self.events)  # fmt: skip


def settled_in_one_statement(events: Sequence[AnonymousEvent], timeout: timedelta) -> bool:
    """Whether the server can settle a batch's visits alone (``write_in_one_statement``): no event comes
    with yesterday's id as well (re-keying a visit needs the lookup's answer first), and the batch spans
    less than ``timeout``, so all of a visitor's events join the visit their first one finds or opens.
    The event writer's batches are the events of a few milliseconds: nearly all of them qualify."""
    if not events or any(event.previous_visitor_id not in (None, event.visitor_id) for event in events):
        return False
    times = [event.ts for event in events]
    return max(times) - min(times) < timeout


def write_in_one_statement(connection: Connection, events: Sequence[AnonymousEvent], *, timeout: timedelta) -> None:
    """Queue a batch that ``settled_in_one_statement`` as its visitors' locks and one write statement:
    with BEGIN and COMMIT around them (``run_batch``) the batch is one round trip, as long as the
    connection has spare visit ids for its visitors. The same visits and rows as ``insert_events``'
    statement per lookup, which needs the lookups' answers before it writes."""
    visitors: dict[tuple[str, str], _Visitor] = {}
    rows: list[tuple[object, ...]] = []
    dirty: set[Day] = set()
    for event in events:
        ts = event.ts.isoformat()
        visitor = visitors.get((event.site_id, event.visitor_id))
        if visitor is None:
            visitor = visitors[(event.site_id, event.visitor_id)] = _Visitor(len(visitors) + 1, event, ts, timeout)
        visitor.last_seen = max(visitor.last_seen, ts)
        visitor.events += 1
        if event.name == "pageview":
            visitor.pageviews += 1
            visitor.exit_page = event.pathname
        rows.append(stored_row(event, ts, visitor.slot))
        dirty.add((event.site_id, ts[:10]))
    spare = _spare(connection)
    offered = spare.take(connection, len(visitors))
    _prepared(connection, _LOCK_VISITORS, lock_keys(visitors))
    answer = _prepared(
        connection,
        _WRITE_BATCH_AT_ONCE,
        "{" + ",".join(map(str, offered)) + "}",  # a bigint[] literal
        [visitor.row() for visitor in visitors.values()],
        rows,
        sorted(dirty),
    )
    spare.lend(answer, offered)


def forget_spare_ids(connection: Connection) -> None:
    """After a failed batch: whether its ids were used is not known for sure, so they are dropped."""
    _spare_ids.pop(connection, None)


def lock_keys(visitors: Iterable[tuple[str, str]]) -> list[int]:
    """The advisory lock keys of (site, visitor id) pairs, ascending: every batch locks in this order,
    so two batches never wait on each other in a circle."""
    return sorted({_visitor_key(site, visitor) for site, visitor in visitors})


def _visitor_key(site: str, visitor: str) -> int:
    """A 64-bit advisory lock key for one visitor of one site (a collision only makes two visitors queue)."""
    digest = hashlib.blake2b(f"{site}\0{visitor}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _earliest(events: Sequence[AnonymousEvent], site: str, timeout: timedelta) -> str:
    """The earliest time a visit still open for one of the site's events may have been last seen."""
    return (min(event.ts for event in events if event.site_id == site) - timeout).isoformat()


def _prepared(connection: Connection, sql: str, *values: Any) -> Any:
    """One of the PostgreSQL statements above, prepared and queued (gateway/storage/pg_pipeline.py);
    each list or tuple value sent as JSON. ``fetchall()`` on the result sends what is queued."""
    return cast(Any, connection).execute_prepared(sql, values)
