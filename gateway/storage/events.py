"""SQL for anonymous events and the visits they form (one transaction per batch)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import timedelta

from gateway.storage.records import EVENT_COLUMNS, AnonymousEvent, stored_row

VISIT_TIMEOUT = timedelta(minutes=30)

_FIND_OPEN_VISIT = """
SELECT id, visitor_id, last_seen FROM visits
WHERE site_id = ? AND visitor_id IN (?, ?) AND last_seen >= ?
ORDER BY last_seen DESC LIMIT 1
"""
_NEW_VISIT = """
INSERT INTO visits (site_id, visitor_id, started_at, last_seen, entry_page, exit_page, pageviews, events)
VALUES (?, ?, ?, ?, ?, ?, ?, 1)
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
_PLACEHOLDERS = ", ".join("?" * len(EVENT_COLUMNS))
_INSERT_EVENT = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({_PLACEHOLDERS})"  # noqa: S608 - names from the record
_MARK_DIRTY = "INSERT OR IGNORE INTO rollup_dirty (site_id, day) VALUES (?, ?)"


class _Visit:
    """A visit this batch touches: what the batch adds to it, written once at the end."""

    __slots__ = ("events", "exit_page", "id", "last_seen", "pageviews", "visitor_id")

    def __init__(self, visit_id: int, visitor_id: str, last_seen: str) -> None:
        self.id, self.visitor_id, self.last_seen = visit_id, visitor_id, last_seen
        self.exit_page: str | None = None
        self.pageviews = self.events = 0


def insert_events(connection: sqlite3.Connection, events: Sequence[AnonymousEvent]) -> None:
    """Store ``events`` in order, opening or continuing visits (30 minutes of inactivity ends one).

    One batch is one transaction holding the write lock, so no other writer can open a visit
    meanwhile: a visitor's visit is looked up once per batch, later events of theirs continue it
    in memory, and the rows go to SQLite in a few statements rather than three per event.
    """
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
            visit = _Visit(int(cursor.lastrowid or 0), current, ts)
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
            _CONTINUE_VISIT,
            [(v.visitor_id, v.last_seen, v.exit_page, v.pageviews, v.events, v.id) for v in touched.values()],
        )
    connection.executemany(_INSERT_EVENT, rows)
    connection.executemany(_MARK_DIRTY, sorted(dirty))
