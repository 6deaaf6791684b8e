"""A batch of events forms exactly the visits the same events would form one by one (on both stores)."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ingest.event import AnonymousEvent
from gateway.storage.batch_visits import settled_in_one_statement
from gateway.storage.events import insert_events
from gateway.storage.location import PostgresUrl
from gateway.storage.postgres import PgConnection, PostgresStore
from gateway.storage.records import EVENT_COLUMNS, stored_row
from gateway.storage.store import Store, open_store
from tests.events import anonymous_event
from tests.stores import PostgresServer, open_test_store, postgres_server_or_skip, with_database

START = datetime(2026, 3, 10, 23, 0, tzinfo=UTC)


def _event(
    visitor: str, previous: str | None, minutes: float, name: str, path: str, site: str = "shop"
) -> AnonymousEvent:
    return anonymous_event(
        START + timedelta(minutes=minutes),
        visitor,
        path,
        name=name,
        site_id=site,
        previous_visitor_id=previous,
        browser="Firefox",
        browser_version="128.0",
        screen=None,
    )


events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["today-a", "today-b", "today-c"]),
        st.sampled_from([None, "yesterday-a", "yesterday-b"]),
        st.floats(min_value=0, max_value=20),  # minutes after the previous event
        st.sampled_from(["pageview", "pageview", "Signup"]),
        st.sampled_from(["/", "/pricing", "/blog"]),
    ),
    min_size=1,
    max_size=25,
)


def _stored_by(store: Store, batches: Sequence[Sequence[AnonymousEvent]]) -> list[tuple[object, ...]]:
    """Store ``batches`` one transaction each (``store`` unopened: a first PostgreSQL database is migrated
    with asyncio.run, outside the loop); the visits and each event's visit."""

    async def scenario() -> list[tuple[object, ...]]:
        db = await store.open()
        try:
            for batch in batches:
                await db.write(partial(insert_events, events=batch))
            visits = await db.fetch_all(
                "SELECT id, site_id, visitor_id, started_at, last_seen, entry_page, exit_page, pageviews, events "
                "FROM visits ORDER BY id"
            )
            links = await db.fetch_all("SELECT id, site_id, visitor_id, ts, visit_id FROM events ORDER BY id")
        finally:
            await db.close()
        return [tuple(row) for row in (*visits, *links)]

    return asyncio.run(scenario())


def _store(path: Path, batches: Sequence[Sequence[AnonymousEvent]]) -> list[tuple[object, ...]]:
    """Store yesterday's visits (as an earlier batch, or another node, left them), then ``batches`` one
    transaction each; the visits and each event's visit."""
    yesterday = [[_event(visitor, None, -10, "pageview", "/old")] for visitor in ("yesterday-a", "yesterday-b")]
    return _stored_by(open_test_store(path), [*yesterday, *batches])


@settings(max_examples=60, deadline=None)
@given(raw=events_strategy, split=st.integers(min_value=1, max_value=25))
def test_batched_events_form_the_same_visits_as_one_by_one(tmp_path_factory: object, raw: list, split: int) -> None:  # type: ignore[type-arg]
    minutes = 0.0
    events = []
    for visitor, previous, gap, name, path in raw:
        minutes += gap
        events.append(_event(visitor, previous, minutes, name, path))
    folder = tmp_path_factory.mktemp("batches")  # type: ignore[attr-defined]
    one_by_one = _store(folder / "single.sqlite3", [[event] for event in events])
    batched = _store(folder / "batched.sqlite3", [events[i : i + split] for i in range(0, len(events), split)])
    assert batched == one_by_one


def test_a_visit_found_under_yesterdays_id_continues_under_todays_in_one_batch(tmp_path: Path) -> None:
    rows = _store(
        tmp_path / "db.sqlite3",
        [
            [
                _event("today-a", "yesterday-a", 5, "pageview", "/next"),
                _event("today-a", "yesterday-a", 6, "Signup", "/"),
            ]
        ],
    )
    visits = [row for row in rows if len(row) == 9]  # (id, site, visitor, started, last seen, entry, exit, ...)
    yesterday = next(visit for visit in visits if visit[5] == "/old" and visit[2] == "today-a")
    assert yesterday[6:] == ("/next", 2, 3)  # exit page, pageviews, events: one visit went on


# Values PostgreSQL's COPY text format and array literals must carry unchanged (tabs, newlines,
# backslashes, quotes, braces, the word NULL, non-ASCII).
AWKWARD = "a\tb\nc\\d'e\"f{g}h,NULL é 日本"


def test_awkward_values_are_stored_as_given(tmp_path: Path) -> None:
    awkward = anonymous_event(
        START,
        "NULL",
        "/" + AWKWARD,
        props={"k\t1": AWKWARD, "NULL": "\\N"},
        utm_campaign=AWKWARD,
        referrer_host=None,
        previous_visitor_id=None,
    )
    unopened = open_test_store(tmp_path / "db.sqlite3")

    async def scenario() -> tuple[list[Any], list[Any]]:
        db = await unopened.open()
        try:
            await db.write(lambda c: insert_events(c, [awkward, _event("NULL", None, 1, "Signup", "/" + AWKWARD)]))
            events = await db.fetch_all(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY id"  # noqa: S608 - names from the record
            )
            visits = await db.fetch_all("SELECT visitor_id, entry_page, exit_page, pageviews, events FROM visits")
        finally:
            await db.close()
        return [tuple(row) for row in events], [tuple(row) for row in visits]

    events, visits = asyncio.run(scenario())
    visit_id = events[0][-1]
    assert events[0] == stored_row(awkward, START.isoformat(), visit_id)
    assert json.loads(str(events[0][EVENT_COLUMNS.index("props")])) == {"k\t1": AWKWARD, "NULL": "\\N"}
    assert visits == [("NULL", "/" + AWKWARD, "/" + AWKWARD, 1, 2)]


def _round_trips(raw: psycopg.Connection[Any], run: Callable[[], object]) -> int:
    """The round trips ``run`` makes on ``raw``, counted where libpq sees them: each ReadyForQuery
    the server sends ends one (a simple query, or a Sync of a pipeline's statements)."""
    with tempfile.TemporaryFile("w+") as trace:
        raw.pgconn.trace(trace.fileno())
        try:
            run()
        finally:
            raw.pgconn.untrace()
        trace.seek(0)
        return sum("\tB\t" in line and "\tReadyForQuery" in line for line in trace)


@pytest.fixture
def writer(postgres_server: PostgresServer | None) -> Iterator[tuple[PostgresStore, PgConnection]]:
    """A fresh PostgreSQL database and a writer connection to it, as the event writer process holds one."""
    server = postgres_server_or_skip(postgres_server)
    name = server.create_database()
    url = with_database(server.admin_url, name)
    try:
        with closing(psycopg.connect(url, autocommit=True)) as raw:
            yield PostgresStore(PostgresUrl(url)), PgConnection(raw)
    finally:
        server.drop_database(name)


def test_a_postgresql_batch_is_a_few_round_trips_whatever_its_size(writer: tuple[PostgresStore, PgConnection]) -> None:
    """A round trip costs ~0.7 ms against PostgreSQL: a batch of 1,000 events of 500 visitors (half of
    them new, half continuing yesterday's visits under a previous id) must not cost one per event.
    As the event writer process runs it (``run_batch``), BEGIN and COMMIT included."""
    store, connection = writer
    counted = []
    for size in (10, 1000):
        batch = [
            _event(f"v{n % (size // 2)}", f"y{n % (size // 4)}" if n % 2 else None, n / 100, "pageview", "/")
            for n in range(size)
        ]
        for visitor in {f"y{n}" for n in range(size // 4)}:  # yesterday's visits, continued today
            store.run_batch(connection, partial(insert_events, events=[_event(visitor, None, -10, "pageview", "/old")]))
        store_batch = partial(store.run_batch, connection, partial(insert_events, events=batch))
        counted.append(_round_trips(connection.raw, store_batch))
    stored = connection.raw.execute("SELECT count(*) FROM events WHERE pathname = '/'").fetchone()
    assert stored == (1010,)
    # BEGIN with the locks and lookups, then the one write statement with COMMIT; the 1,000 events
    # also draw a block of new visit ids (the 10 use ids left from the block the first batches drew)
    assert counted == [2, 3]


# A batch of the event writer (no event under yesterday's id, all within 30 minutes) goes to PostgreSQL
# as one statement that finds the open visits itself (gateway/storage/batch_visits.py). Its visits and
# rows must be those SQLite's lookups form, whatever the visits stored before: open or ended, seen
# before or after the batch's events (another node's clock), with pageviews or without.
earlier_strategy = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["shop", "blog"]),
        st.floats(min_value=-50, max_value=12),  # minutes from the batch's start
        st.sampled_from(["pageview", "Signup"]),
    ),
    max_size=5,
)
batch_strategy = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from(["shop", "blog"]),
        st.floats(min_value=0, max_value=29.9),  # in any order: arrival order is not time order
        st.sampled_from(["pageview", "pageview", "Signup"]),
        st.sampled_from(["/", "/pricing", "/blog"]),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=40, deadline=None)
@given(earlier=earlier_strategy, batch=batch_strategy, together=st.booleans())
def test_a_batch_in_one_statement_forms_the_visits_sqlites_lookups_form(
    postgres_server: PostgresServer | None, tmp_path_factory: Any, earlier: list, batch: list, together: bool
) -> None:  # type: ignore[type-arg]
    server = postgres_server_or_skip(postgres_server)
    before = [[_event(visitor, None, minutes, name, "/old", site)] for visitor, site, minutes, name in earlier]
    if together:  # all earlier events one batch (spanning over 30 minutes: the lookups' way), or each its own
        before = [[event for batch_ in before for event in batch_]] if before else []
    events = [_event(visitor, None, minutes, name, path, site) for visitor, site, minutes, name, path in batch]
    assert settled_in_one_statement(events, timedelta(minutes=30))
    batches = [*before, events]
    reference = _stored_by(open_store(tmp_path_factory.mktemp("one") / "db.sqlite3"), batches)
    name = server.create_database()
    try:
        stored = _stored_by(open_store(PostgresUrl(with_database(server.admin_url, name))), batches)
    finally:
        server.drop_database(name)
    assert stored == reference


def test_a_writer_batch_is_one_round_trip(writer: tuple[PostgresStore, PgConnection]) -> None:
    """The event writer's usual batch (events of a few milliseconds, none under yesterday's id) is one
    round trip with BEGIN and COMMIT, and its visitors' visits go on from batch to batch."""
    store, connection = writer
    # the first batch creates the month's partitions and draws a block of visit ids
    store.run_batch(connection, partial(insert_events, events=[_event("w", None, 0, "pageview", "/")]))
    counted = []
    for second in range(1, 4):
        batch = [_event(f"v{n % 5}", None, second + n / 1000, "pageview", f"/{n}") for n in range(12)]
        counted.append(
            _round_trips(connection.raw, partial(store.run_batch, connection, partial(insert_events, events=batch)))
        )
    stored = connection.raw.execute(
        "SELECT id, visitor_id, pageviews, events, exit_page FROM visits ORDER BY id"
    ).fetchall()
    assert counted == [1, 1, 1]
    first = stored[0][0]
    assert stored == [
        (first, "w", 1, 1, "/"),
        (first + 1, "v0", 9, 9, "/10"),
        (first + 2, "v1", 9, 9, "/11"),
        (first + 3, "v2", 6, 6, "/7"),
        (first + 4, "v3", 6, 6, "/8"),
        (first + 5, "v4", 6, 6, "/9"),
    ]
