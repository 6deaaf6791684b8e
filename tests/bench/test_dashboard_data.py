"""The dashboard benchmark's synthetic traffic reads as ingest would have written it.

A generator that breaks a rule of ``insert_events`` (a visit's counts, its 30-minute timeout, daily
salts) would time the dashboard on data the gateway can never hold, so each rule is checked here on
a small file: 5,000 events over 3 days.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest

from bench.dashboard_data import HOSTNAME, GeneratedData, cached_database, generate
from gateway.ingest.referrer import DIRECT, Channel

END = date(2026, 3, 11)
DAYS = ("2026-03-09", "2026-03-10", "2026-03-11")
EVENTS = 5_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    return generate(tmp_path_factory.mktemp("bench") / "bench.sqlite3", events=EVENTS, days=3, end=END)


@pytest.fixture
def db(generated: GeneratedData) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(f"{generated.path.as_uri()}?mode=ro", uri=True)) as connection:
        connection.row_factory = sqlite3.Row
        yield connection


def rows(db: sqlite3.Connection, sql: str, *parameters: Any) -> list[sqlite3.Row]:
    return db.execute(sql, parameters).fetchall()


def test_report_matches_the_file(generated: GeneratedData, db: sqlite3.Connection) -> None:
    assert rows(db, "SELECT count(*) FROM events")[0][0] == generated.events == EVENTS
    assert rows(db, "SELECT count(*) FROM visits")[0][0] == generated.visits
    assert generated.days == 3
    assert generated.file_bytes == generated.path.stat().st_size > 0
    assert generated.generate_seconds > 0 and generated.rollup_seconds > 0
    assert rows(db, "PRAGMA journal_mode")[0][0] == "wal"  # left as the gateway keeps it
    assert rows(db, "SELECT count(*) FROM sqlite_stat1")[0][0] > 0  # ANALYZE ran


def test_every_event_belongs_to_a_visit_of_the_same_site_and_visitor(db: sqlite3.Connection) -> None:
    orphans = rows(
        db,
        "SELECT count(*) FROM events AS e LEFT JOIN visits AS v ON v.id = e.visit_id "
        "WHERE v.id IS NULL OR v.site_id != e.site_id OR v.visitor_id != e.visitor_id",
    )
    assert orphans[0][0] == 0
    assert {row[0] for row in rows(db, "SELECT DISTINCT site_id FROM events")} == {"bench"}
    assert {row[0] for row in rows(db, "SELECT DISTINCT hostname FROM events")} == {HOSTNAME}


def test_visit_rows_say_what_their_events_say(db: sqlite3.Connection) -> None:
    """As insert_events keeps them: entry page from the first event, exit page from the last pageview."""
    by_visit: dict[int, list[sqlite3.Row]] = defaultdict(list)
    for event in rows(db, "SELECT * FROM events ORDER BY id"):
        by_visit[event["visit_id"]].append(event)
    for visit in rows(db, "SELECT * FROM visits"):
        events = by_visit[visit["id"]]
        pageviews = [event["pathname"] for event in events if event["name"] == "pageview"]
        assert (visit["pageviews"], visit["events"]) == (len(pageviews), len(events))
        assert visit["entry_page"] == events[0]["pathname"]
        assert visit["exit_page"] == (pageviews[-1] if pageviews else events[0]["pathname"])
        assert (visit["started_at"], visit["last_seen"]) == (events[0]["ts"], max(event["ts"] for event in events))


def test_visits_follow_the_30_minute_timeout(db: sqlite3.Connection) -> None:
    """Inside a visit no gap reaches 30 minutes; between a visitor's visits every gap exceeds it."""
    timeout = timedelta(minutes=30)
    gaps = rows(
        db,
        "SELECT ts, lag(ts) OVER (PARTITION BY visit_id ORDER BY ts) AS previous FROM events",
    )
    assert all(
        datetime.fromisoformat(row["ts"]) - datetime.fromisoformat(row["previous"]) < timeout
        for row in gaps
        if row["previous"] is not None
    )
    pauses = rows(
        db,
        "SELECT started_at, lag(last_seen) OVER (PARTITION BY visitor_id ORDER BY started_at) AS previous FROM visits",
    )
    between = [row for row in pauses if row["previous"] is not None]
    assert between, "some visitors should come back the same day"
    assert all(
        datetime.fromisoformat(row["started_at"]) - datetime.fromisoformat(row["previous"]) > timeout for row in between
    )


def test_ids_follow_time_as_ingest_assigns_them(db: sqlite3.Connection) -> None:
    """The dashboard's visit dimensions take a visit's lowest event id as its first event."""
    timestamps = [row[0] for row in rows(db, "SELECT ts FROM events ORDER BY id")]
    assert timestamps == sorted(timestamps)
    starts = [row[0] for row in rows(db, "SELECT started_at FROM visits ORDER BY id")]
    assert starts == sorted(starts)
    assert all(re.fullmatch(r"2026-03-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", ts) for ts in timestamps)


def test_visitor_ids_are_new_every_day(db: sqlite3.Connection) -> None:
    per_day: dict[str, set[str]] = defaultdict(set)
    for row in rows(db, "SELECT DISTINCT substr(ts, 1, 10), visitor_id FROM events"):
        per_day[row[0]].add(row[1])
    assert sorted(per_day) == list(DAYS)
    assert all(re.fullmatch(r"[0-9a-f]{32}", visitor) for visitors in per_day.values() for visitor in visitors)
    assert not per_day[DAYS[0]] & per_day[DAYS[1]] and not per_day[DAYS[1]] & per_day[DAYS[2]]
    assert not per_day[DAYS[0]] & per_day[DAYS[2]]


def test_only_a_visits_first_event_has_a_source(db: sqlite3.Connection) -> None:
    """Later events are internal navigation, stored as the classifier names it."""
    later = rows(
        db,
        "SELECT DISTINCT referrer_host, source, channel, utm_source, utm_medium, utm_campaign, utm_content, utm_term "
        "FROM events AS e WHERE e.id > (SELECT min(id) FROM events WHERE visit_id = e.visit_id)",
    )
    assert [tuple(row) for row in later] == [(None, DIRECT, "internal", None, None, None, None, None)]
    first = rows(db, "SELECT * FROM events WHERE id IN (SELECT min(id) FROM events GROUP BY visit_id)")
    channels = {row["channel"] for row in first}
    assert channels == set(get_args(Channel)) - {"internal"}
    assert all(row["name"] == "pageview" for row in first)
    tagged = sum(row["utm_source"] is not None for row in first) / len(first)
    assert 0.05 < tagged < 0.2


def test_traffic_has_the_shape_of_a_busy_site(db: sqlite3.Connection) -> None:
    visits = rows(db, "SELECT avg(pageviews) AS pageviews, avg(pageviews <= 1) AS bounces FROM visits")[0]
    assert 2.2 < visits["pageviews"] < 3.0 and 0.38 < visits["bounces"] < 0.52
    custom = rows(db, "SELECT avg(name != 'pageview') FROM events")[0][0]
    assert 0.02 < custom < 0.06
    assert rows(db, "SELECT count(DISTINCT pathname) FROM events")[0][0] > 500
    assert rows(db, "SELECT count(DISTINCT country) FROM events")[0][0] > 60
    night, afternoon = (
        rows(db, "SELECT count(*) FROM events WHERE substr(ts, 12, 2) = ?", hour)[0][0] for hour in ("03", "15")
    )
    assert afternoon > 2 * night
    devices = {
        row[0]: row[1] for row in rows(db, "SELECT device, group_concat(DISTINCT screen) FROM events GROUP BY 1")
    }
    assert set(devices) == {"desktop", "mobile", "tablet"}
    assert "desktop" not in devices["mobile"] and "mobile" not in devices["desktop"]


def test_props_and_consent_are_written_as_ingest_writes_them(db: sqlite3.Connection) -> None:
    assert {row[0] for row in rows(db, "SELECT DISTINCT props FROM events WHERE name = 'pageview'")} == {"{}"}
    for (props,) in rows(db, "SELECT DISTINCT props FROM events WHERE name != 'pageview'"):
        decoded = json.loads(props)
        assert isinstance(decoded, dict) and all(isinstance(value, str) for value in decoded.values())
    consents = {row[0] for row in rows(db, "SELECT DISTINCT consent FROM events")}
    assert consents <= {"", "analytics", "analytics,functional", "advertising,analytics,functional"}
    assert rows(db, "SELECT count(DISTINCT consent) FROM events GROUP BY visitor_id ORDER BY 1 DESC")[0][0] == 1


def test_rollups_cover_every_day(db: sqlite3.Connection) -> None:
    totals = rows(
        db,
        "SELECT day, pageviews, events, visits FROM rollups WHERE site_id = 'bench' AND dimension = 'all' ORDER BY day",
    )
    counted = rows(
        db,
        "SELECT substr(ts, 1, 10) AS day, sum(name = 'pageview'), count(*), count(DISTINCT visit_id) FROM events "
        "GROUP BY 1 ORDER BY 1",
    )
    assert [tuple(row) for row in totals] == [tuple(row) for row in counted]
    assert [row["day"] for row in totals] == list(DAYS)
    assert (
        sum(row["pageviews"] for row in totals) == rows(db, "SELECT count(*) FROM events WHERE name = 'pageview'")[0][0]
    )
    dimensions = rows(db, "SELECT day, count(DISTINCT dimension) FROM rollups GROUP BY day")
    assert all(row[1] > 20 for row in dimensions)
    assert rows(db, "SELECT count(*) FROM rollup_dirty")[0][0] == 0


def test_same_seed_same_rows(tmp_path: Path, generated: GeneratedData) -> None:
    again = generate(tmp_path / "again.sqlite3", events=EVENTS, days=3, end=END)
    other = generate(tmp_path / "other.sqlite3", events=EVENTS, days=3, end=END, seed=2)
    assert _dump(again.path) == _dump(generated.path)
    assert _dump(other.path) != _dump(generated.path)


def test_cached_database_is_made_once(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    path = cached_database(300, days=2, end=END, folder=folder)
    made = path.stat().st_mtime_ns
    assert cached_database(300, days=2, end=END, folder=folder) == path
    assert path.stat().st_mtime_ns == made
    assert cached_database(300, days=2, end=END, seed=2, folder=folder) != path
    assert sorted(entry.name for entry in folder.iterdir() if not entry.name.startswith("dashboard-")) == []
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as connection:
        assert connection.execute("SELECT count(*) FROM events").fetchone()[0] == 300


def _dump(path: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as connection:
        return [
            *connection.execute("SELECT * FROM events ORDER BY id"),
            *connection.execute("SELECT * FROM visits ORDER BY id"),
        ]
