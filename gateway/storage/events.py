"""SQL for anonymous events and the visits they form (one transaction per batch).

Several writers may store batches at once: the processes of one node on SQLite queue on its write
lock, but nodes on one PostgreSQL database do not. There a batch first locks each of its visitors
(a transaction-level advisory lock per site and visitor id, taken in one order by every batch, so
two batches never wait on each other in a circle): the open visit it finds is then not continued
or opened a second time by another node before this batch commits.

The reads and writes go through gateway/storage/batch_visits.py, one way per store: on PostgreSQL a
batch is a few round trips whatever its size, on SQLite a statement per lookup and per new visit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from gateway.storage.batch_visits import (
    PostgresVisits,
    SqliteVisits,
    Visit,
    settled_in_one_statement,
    write_in_one_statement,
)
from gateway.storage.outbox import enqueue_outbox
from gateway.storage.partitions import ensure_months, month_of
from gateway.storage.records import AnonymousEvent, OutboxBatch, stored_row
from gateway.storage.sql import Connection, is_postgres
from gateway.storage.store import Store

VISIT_TIMEOUT = timedelta(minutes=30)


def insert_events(connection: Connection, events: Sequence[AnonymousEvent]) -> None:
    """Store ``events`` in order, opening or continuing visits (30 minutes of inactivity ends one).

    One batch is one transaction, and no other writer can open or continue a visit of its visitors
    meanwhile (SQLite's write lock; PostgreSQL's per-visitor locks): a visitor's visit is looked up
    once per batch, later events of theirs continue it in memory, and the rows go to the database
    in a few statements rather than three per event. A failed batch's transaction rolls back through
    ``gateway.storage.postgres._roll_back``, which also forgets the months and visit ids it took.
    """
    stored: SqliteVisits | PostgresVisits
    if is_postgres(connection):
        ensure_months(connection, {month_of(event.ts.isoformat()) for event in events})
        if settled_in_one_statement(events, VISIT_TIMEOUT):
            write_in_one_statement(connection, events, timeout=VISIT_TIMEOUT)
            return
        stored = PostgresVisits(connection, events, timeout=VISIT_TIMEOUT)  # locks its visitors first
    else:
        stored = SqliteVisits(connection)
    known: dict[tuple[str, str], Visit] = {}  # (site, visitor id) -> the latest visit seen in this batch
    by_id: dict[int, Visit] = {}  # every visit in memory, so one visit is never two objects
    looked_up: set[tuple[str, str]] = set()
    touched: dict[int, Visit] = {}
    joined: list[tuple[AnonymousEvent, str, Visit]] = []  # each event and its visit (whose id may change)
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
                found = by_id[row[0]] = Visit(*row)
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
    stored.assign_ids()
    rows = [stored_row(event, ts, visit.id) for event, ts, visit in joined]
    stored.write(touched, rows, dirty)


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
