"""A batch of events forms exactly the visits the same events would form one by one (on both stores)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ingest.event import AnonymousEvent
from gateway.storage.events import insert_events
from tests.events import anonymous_event
from tests.stores import open_test_store

START = datetime(2026, 3, 10, 23, 0, tzinfo=UTC)


def _event(visitor: str, previous: str | None, minutes: float, name: str, path: str) -> AnonymousEvent:
    return anonymous_event(
        START + timedelta(minutes=minutes),
        visitor,
        path,
        name=name,
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


def _store(path: Path, batches: Sequence[Sequence[AnonymousEvent]]) -> list[tuple[object, ...]]:
    """Store yesterday's visits, then ``batches`` one transaction each; the visits and each event's visit."""
    unopened = open_test_store(path)  # outside the loop: a first PostgreSQL database is migrated with asyncio.run

    async def scenario() -> list[tuple[object, ...]]:
        db = await unopened.open()
        try:
            # Yesterday's visits, as an earlier batch (or another node) left them.
            for visitor in ("yesterday-a", "yesterday-b"):
                await db.write(lambda c, v=visitor: insert_events(c, [_event(v, None, -10, "pageview", "/old")]))
            for batch in batches:
                await db.write(lambda c, b=batch: insert_events(c, b))
            visits = await db.fetch_all(
                "SELECT id, visitor_id, started_at, last_seen, entry_page, exit_page, pageviews, events "
                "FROM visits ORDER BY id"
            )
            links = await db.fetch_all("SELECT id, visitor_id, visit_id FROM events ORDER BY id")
        finally:
            await db.close()
        return [tuple(row) for row in (*visits, *links)]

    return asyncio.run(scenario())


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
    visits = [row for row in rows if len(row) == 8]
    yesterday = next(visit for visit in visits if visit[4] == "/old" and visit[1] == "today-a")
    assert yesterday[5:] == ("/next", 2, 3)  # exit page, pageviews, events: one visit went on
