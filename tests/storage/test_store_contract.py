"""The store contract both stores keep (gateway/storage/store.py): the same ``?`` SQL, rows by name
and position, whole-transaction rollback, group commit, health checks — run on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.clock import CorrectedClock
from gateway.clock_sync import ClockSync
from gateway.settings import SettingsError
from gateway.storage.location import PostgresUrl, parse_database
from gateway.storage.postgres import translate
from gateway.storage.sql import Connection, is_postgres
from gateway.storage.store import Store
from tests.conftest import make_settings
from tests.waiting import eventually

T = TypeVar("T")


def run(test: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async test body on a fresh event loop (the suite has no async plugin)."""

    @functools.wraps(test)
    def sync(*args: Any, **kwargs: Any) -> T:
        return asyncio.run(test(*args, **kwargs))

    return sync


def _scratch(connection: Connection) -> None:
    connection.execute("CREATE TABLE scratch (id INTEGER PRIMARY KEY, note TEXT)")


@run
async def test_rows_read_by_name_and_position(store: Store) -> None:
    db = await store.open()
    try:
        await db.prove_write("2026-12-01T00:00:00+00:00")
        rows = await db.fetch_all(
            "SELECT checked_at, 1 + ? AS n, '50%' AS share, 'a?b' AS literal FROM health WHERE id = ?", (2, 1)
        )
        row = rows[0]
        assert (row["checked_at"], row["n"], row["share"], row["literal"]) == (
            "2026-12-01T00:00:00+00:00",
            3,
            "50%",
            "a?b",
        )
        assert row[1] == 3 and dict(row)["n"] == 3
    finally:
        await db.close()


@run
async def test_large_values_read_as_the_same_bytes_and_text(store: Store) -> None:
    """``fetch_large`` (day packs; binary results on PostgreSQL) gives the rows ``fetch_all`` gives."""
    db = await store.open()
    try:
        data = bytes(range(256)) * 5000 + b"\x00'\\x"  # every byte value, a NUL, a quote, a backslash
        await db.write(
            lambda c: c.execute(
                "INSERT INTO visit_day_packs (site_id, day, pack) VALUES (?, ?, ?)", ("sé", "2026-03-01", data)
            )
        )
        sql = "SELECT site_id, day, pack FROM visit_day_packs WHERE day IN (?, ?)"
        large = await db.fetch_large(sql, ("2026-03-01", "2026-03-02"))
        plain = await db.fetch_all(sql, ("2026-03-01", "2026-03-02"))
        assert [(row[0], row["day"], bytes(row["pack"])) for row in large] == [("sé", "2026-03-01", data)]
        assert [tuple(row) for row in large] == [(row[0], row[1], bytes(row[2])) for row in plain]
    finally:
        await db.close()


@run
async def test_integer_sums_are_ints_and_bools_are_stored_as_integers(store: Store) -> None:
    db = await store.open()
    try:

        def fill(connection: Connection) -> None:
            connection.execute("INSERT INTO health (id, checked_at) VALUES (?, ?)", (True, "t"))

        await db.write(fill)
        (row,) = await db.fetch_all("SELECT sum(id) AS total, avg(id) AS mean FROM health")
        assert row["total"] == 1 and isinstance(row["total"], int)
        assert row["mean"] == 1.0
    finally:
        await db.close()


@run
async def test_a_failing_transaction_leaves_nothing(store: Store) -> None:
    db = await store.open()
    try:
        await db.write(_scratch)

        def half(connection: Connection) -> None:
            connection.execute("INSERT INTO scratch (id, note) VALUES (7, 'first')")
            connection.execute("INSERT INTO no_such_table VALUES (1)")

        with pytest.raises(Exception, match=r"(?i)no_such_table|no such table"):
            await db.write(half)
        assert await db.fetch_all("SELECT id FROM scratch WHERE id = 7") == []
        await db.prove_write("after")  # the writer connection is usable after the rollback
    finally:
        await db.close()


@run
async def test_the_dialect_is_known_inside_a_transaction(store: Store, store_kind: str) -> None:
    db = await store.open()
    try:
        assert db.dialect == store_kind
        assert await db.write(is_postgres) is (store_kind == "postgresql")
    finally:
        await db.close()


@run
async def test_a_writer_connection_of_its_own_commits_what_the_store_reads(store: Store) -> None:
    """The event writer process's way in: ``connect_writer``, each transaction by ``run_batch``. A
    batch that fails, at a statement or in Python, leaves nothing and the next one commits (on
    PostgreSQL BEGIN and COMMIT ride the batch's pipeline, and a failed statement skips COMMIT)."""

    def insert(note: str, ids: range) -> Callable[[Connection], int]:
        def fn(connection: Connection) -> int:
            connection.executemany("INSERT INTO scratch (id, note) VALUES (?, ?)", [(n, note) for n in ids])
            return len(ids)

        return fn

    def then_fail_in_sql(connection: Connection) -> None:
        insert("lost", range(100, 103))(connection)
        connection.execute("INSERT INTO scratch (id, note) VALUES (1, 'a duplicate id')")

    def then_fail_in_python(connection: Connection) -> None:
        insert("lost", range(200, 203))(connection)
        raise RuntimeError("the batch's own code failed")

    db = await store.open()
    try:
        await db.write(_scratch)
        connection = await asyncio.to_thread(db.connect_writer)
        try:
            assert db.run_batch(connection, insert("own", range(5))) == 5
            with pytest.raises(Exception, match="UNIQUE|unique|duplicate"):
                db.run_batch(connection, then_fail_in_sql)
            with pytest.raises(RuntimeError, match="own code"):
                db.run_batch(connection, then_fail_in_python)
            assert db.run_batch(connection, insert("after", range(10, 12))) == 2
        finally:
            connection.close()
        rows = await db.fetch_all("SELECT note, count(*) AS n FROM scratch GROUP BY note ORDER BY note")
        assert [(row["note"], row["n"]) for row in rows] == [("after", 2), ("own", 5)]
    finally:
        await db.close()


_SLOW_COUNT = (
    "WITH RECURSIVE c (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3000000) SELECT count(*) FROM c"
)


@run
async def test_a_slow_read_does_not_hold_up_the_reads_after_it(store: Store) -> None:
    """Reads share several connections on both stores (SQLite: ``READERS`` read-only ones), so a slow
    statement — a filtered view of a busy month — leaves the others answering meanwhile."""
    db = await store.open()
    try:
        slow = asyncio.create_task(db.fetch_all(_SLOW_COUNT))

        async def started() -> bool:
            return slow.done() or await _busy(db)

        await eventually(started, message="the slow count never started")
        for _ in range(3):
            (row,) = await db.fetch_all("SELECT 1 AS one")
            assert row["one"] == 1
        assert not slow.done()  # three reads answered while it was still running
        (count,) = await slow
        assert count[0] == 3000000
    finally:
        await db.close()


async def _busy(db: Store) -> bool:
    """Whether another statement than this one is running (SQLite: a reader is out of the pool)."""
    if db.dialect == "postgresql":
        rows = await db.fetch_all(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'WITH RECURSIVE c %'"
        )
        return bool(rows[0]["n"])
    return bool(db._idle is not None and db._idle.qsize() < db._reader_count)  # type: ignore[attr-defined]


@run
async def test_health_checks(store: Store) -> None:
    db = await store.open()
    assert await db.ping()
    assert await db.scrub()
    await db.close()
    assert not await db.ping()


def test_placeholders_are_rewritten_outside_string_literals() -> None:
    assert translate("SELECT '?', ? WHERE a LIKE '%x' AND b = ?") == "SELECT '?', %s WHERE a LIKE '%%x' AND b = %s"
    assert translate("SELECT 'it''s ?' , ?") == "SELECT 'it''s ?' , %s"


@given(st.lists(st.sampled_from(["?", "%", "a", " ", "'x'", "'%?'", "''"]), max_size=30))
def test_translation_keeps_every_placeholder_and_percent(pieces: list[str]) -> None:
    sql = "".join(pieces)
    out = translate(sql)
    outside = "".join(piece for piece in pieces if not piece.startswith("'"))
    assert out.count("%s") >= outside.count("?")
    assert out.replace("%s", "").replace("%%", "").count("%") == 0  # no lone % reaches psycopg


# Where the data lives.


def test_database_locations() -> None:
    assert parse_database("data/gateway.sqlite3") == Path("data/gateway.sqlite3")
    assert parse_database("sqlite:///data/g.sqlite3") == Path("data/g.sqlite3")
    assert parse_database("sqlite:////var/lib/g.sqlite3") == Path("/var/lib/g.sqlite3")
    url = parse_database("postgresql://gw:s3cret@db.internal:5432/gateway")
    assert isinstance(url, PostgresUrl) and url.database_name == "gateway"
    assert "s3cret" not in repr(url) and "s3cret" not in str(url)
    for bad in ("", "mysql://x/y", "postgresql:///nohost", "postgresql://h:port/db", "sqlite://rel"):
        with pytest.raises(ValueError):
            parse_database(bad)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"), min_size=1))
def test_a_password_never_shows(password: str) -> None:
    url = PostgresUrl(f"postgresql://user:{password}@host:5432/db")
    assert url.redacted == "postgresql://user:***@host:5432/db"


def test_a_bad_database_setting_is_one_line_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings(tmp_path, database="postgresql://gw:hunter2@:notaport/db")
    message = str(raised.value)
    assert "\n" not in message and "hunter2" not in message and "database" in message


# One clock for several nodes.


def test_a_corrected_clock_takes_the_reference_at_the_round_trip_midpoint() -> None:
    clock = CorrectedClock()
    sent = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    clock.correct(sent + timedelta(seconds=30), sent=sent, received=sent + timedelta(milliseconds=20))
    assert clock.offset == timedelta(seconds=30) - timedelta(milliseconds=10)


@run
async def test_clock_sync_agrees_with_the_database_server(store: Store, store_kind: str) -> None:
    db = await store.open()
    try:
        clock = CorrectedClock()
        clock.offset = timedelta(hours=3)  # a node far off
        synced = await ClockSync(db, clock).measure()
        if store_kind == "sqlite":
            assert not synced and clock.offset == timedelta(hours=3)  # one file, one machine: nothing to agree on
            return
        server = await db.server_time()
        assert server is not None and abs(clock.now() - server) < timedelta(seconds=1)
    finally:
        await db.close()


def test_comments_casts_and_named_parameters() -> None:
    assert translate("SELECT ? -- don't\n, ?") == "SELECT %s  \n, %s"
    assert translate("SELECT x::text, :a FROM t WHERE y = :b", True) == "SELECT x::text, %(a)s FROM t WHERE y = %(b)s"
    assert translate('SELECT "odd?name" FROM t WHERE a = ?') == 'SELECT "odd?name" FROM t WHERE a = %s'


@run
async def test_named_parameters_read_and_write(store: Store) -> None:
    db = await store.open()
    try:
        await db.write(_scratch)

        def put(connection: Connection) -> None:
            connection.execute("INSERT INTO scratch (id, note) VALUES (:id, :note)", {"id": 3, "note": "it's 100%"})

        await db.write(put)
        rows = await db.fetch_all("SELECT note FROM scratch WHERE id = :id -- a comment's apostrophe", {"id": 3})
        assert [row["note"] for row in rows] == ["it's 100%"]
    finally:
        await db.close()
