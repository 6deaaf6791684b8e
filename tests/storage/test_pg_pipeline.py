"""The event writer's own libpq pipeline (gateway/storage/pg_pipeline.py), against a real server:
statements wait for a sync, errors come out of it whole, and the connection is usable after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.storage.pg_pipeline import as_text, numbered
from gateway.storage.postgres import PgConnection
from tests.stores import PostgresServer, postgres_server_or_skip, with_database
from tests.waiting import wait_until


@pytest.fixture
def connection(postgres_server: PostgresServer | None) -> Iterator[PgConnection]:
    server = postgres_server_or_skip(postgres_server)
    name = server.create_database()
    try:
        with closing(PgConnection(psycopg.connect(with_database(server.admin_url, name), autocommit=True))) as writer:
            writer.raw.execute("CREATE TABLE notes (id integer PRIMARY KEY, body text)")
            yield writer
    finally:
        server.drop_database(name)


def _backend_count(connection: PgConnection) -> int:
    return int(connection.raw.execute("SELECT count(*) FROM notes").fetchone()[0])  # type: ignore[index]


def test_statements_wait_for_a_sync_and_run_in_order(connection: PgConnection) -> None:
    first = connection.execute_prepared("INSERT INTO notes VALUES (CAST(%s AS integer), %s)", (1, "one"))
    connection.execute_prepared("INSERT INTO notes VALUES (CAST(%s AS integer), %s)", (2, "two"))
    assert connection.pipeline.pending
    with closing(psycopg.connect(connection.raw.info.dsn, autocommit=True)) as other:
        assert other.execute("SELECT count(*) FROM notes").fetchone() == (0,)  # nothing sent yet
    read = connection.execute_prepared("SELECT id, body FROM notes ORDER BY id DESC")
    assert read.fetchall() == [("2", "two"), ("1", "one")]  # one sync: every statement queued before it ran
    assert first.fetchall() == []
    assert not connection.pipeline.pending
    assert connection.execute("SELECT count(*) FROM notes").fetchone() == (2,)  # psycopg's own calls work after


def test_a_high_level_statement_sends_the_queued_ones_first(connection: PgConnection) -> None:
    connection.execute_prepared("INSERT INTO notes VALUES (CAST(%s AS integer), %s)", (7, "seven"))
    assert connection.execute("SELECT body FROM notes WHERE id = 7").fetchone() == ("seven",)


def test_an_error_comes_out_of_the_sync_and_skips_what_follows(connection: PgConnection) -> None:
    connection.raw.execute("BEGIN")
    connection.execute_prepared("INSERT INTO notes VALUES (CAST(%s AS integer), %s)", (1, "one"))
    connection.execute_prepared("INSERT INTO notes VALUES (CAST(%s AS integer), %s)", (1, "again"))
    after = connection.execute_prepared("INSERT INTO notes VALUES (CAST(%s AS integer), %s)", (3, "three"))
    with pytest.raises(psycopg.errors.UniqueViolation):
        connection.settle()
    with pytest.raises(psycopg.errors.PipelineAborted):
        after.fetchall()
    connection.raw.execute("ROLLBACK")
    # the same statements prepared before still run; nothing of the failed transaction stayed
    connection.execute_prepared("INSERT INTO notes VALUES (CAST(%s AS integer), %s)", (3, "three"))
    connection.settle()
    assert connection.execute("SELECT id FROM notes").fetchall() == [(3,)]


def test_a_statement_skipped_before_its_preparation_is_prepared_again(connection: PgConnection) -> None:
    connection.raw.execute("BEGIN")
    connection.execute_prepared("SELECT CAST(%s AS integer)", ("not a number",))
    skipped = connection.execute_prepared("SELECT %s || '!'", ("late",))  # its Parse is skipped too
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        connection.settle()
    connection.raw.execute("ROLLBACK")
    with pytest.raises(psycopg.errors.PipelineAborted):
        skipped.fetchall()
    assert connection.execute_prepared("SELECT %s || '!'", ("now",)).fetchall() == [("now!",)]


def test_a_statement_that_does_not_parse_says_so_every_time(connection: PgConnection) -> None:
    for _ in range(2):
        with pytest.raises(psycopg.errors.SyntaxError):
            connection.execute_prepared("SELEC %s", (1,)).fetchall()
    assert connection.execute_prepared("SELECT CAST(%s AS integer) + 1", (1,)).fetchall() == [("2",)]


def test_a_document_larger_than_the_socket_buffers_goes_whole(connection: PgConnection) -> None:
    """Several megabytes queued with other statements: libpq must flush while the server answers."""
    rows = [[n, "é" * 200 + "<script>'; DROP TABLE notes; --\x01"] for n in range(20_000)]
    connection.execute_prepared("SELECT 1")
    inserted = connection.execute_prepared(
        "INSERT INTO notes SELECT CAST(r->>0 AS integer), r->>1 FROM jsonb_array_elements(CAST(%s AS jsonb)) AS e (r)",
        (rows,),
    )
    inserted.fetchall()
    assert _backend_count(connection) == 20_000
    assert connection.execute("SELECT body FROM notes WHERE id = 19999").fetchone() == (rows[-1][1],)


def test_values_keep_their_meaning(connection: PgConnection) -> None:
    got = connection.execute_prepared(
        "SELECT CAST(%s AS text) IS NULL, CAST(%s AS integer), CAST(%s AS integer), CAST(%s AS jsonb)->>1, %s",
        (None, True, -12, ["a", "ü\0x".replace("\0", ""), 3], "50%"),
    ).fetchall()
    assert got == [("t", "1", "-12", "üx", "50%")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["%s", "%%", " x ", "'%%'", "$1"]), max_size=12))
def test_numbered_placeholders_are_the_values_in_order(pieces: list[str]) -> None:
    expected, position = [], 0
    for piece in pieces:
        if piece == "%s":
            position += 1
            expected.append(f"${position}")
        else:
            expected.append(piece.replace("%%", "%"))
    assert numbered("".join(pieces)) == "".join(expected)


def test_as_text_refuses_what_it_cannot_say() -> None:
    assert as_text(None) is None
    assert as_text(False) == b"0"
    assert as_text([1, "é"]) == '[1,"é"]'.encode()
    with pytest.raises(TypeError, match="dict"):
        as_text({"a": 1})


def test_the_last_command_is_known_skipped_only_when_the_server_refused_an_earlier_one(
    connection: PgConnection,
) -> None:
    """What ``run_batch`` reads to run a batch again on a new connection: COMMIT last, never run."""
    insert = "INSERT INTO notes VALUES (CAST(%s AS integer), %s)"
    pipeline = connection.pipeline
    connection.raw.execute("INSERT INTO notes VALUES (1, 'one')")
    for values, skipped in (([(2, "two"), (3, "three")], False), ([(1, "again"), (4, "four")], True)):
        pipeline.send_unprepared("BEGIN")
        for value in values:
            connection.execute_prepared(insert, value)
        pipeline.send_unprepared("COMMIT")
        try:
            pipeline.sync()
        except psycopg.errors.UniqueViolation:
            connection.raw.execute("ROLLBACK")
        assert pipeline.skipped_last is skipped
    pipeline.send_unprepared("BEGIN")
    connection.execute_prepared(insert, (5, "five"))
    pipeline.send_unprepared("INSERT INTO notes VALUES (5, 'last')")  # the last command itself fails
    with pytest.raises(psycopg.errors.UniqueViolation):
        pipeline.sync()
    connection.raw.execute("ROLLBACK")
    assert not pipeline.skipped_last


def test_a_connection_the_server_closed_while_idle_is_noticed_before_use(
    connection: PgConnection, postgres_server: PostgresServer | None
) -> None:
    server = postgres_server_or_skip(postgres_server)
    assert not connection.pipeline.closed_by_server()  # idle and alive: nothing to read
    backend = connection.raw.info.backend_pid
    with closing(psycopg.connect(server.admin_url, autocommit=True)) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (backend,)).fetchone() == (True,)
        wait_until(
            lambda: (
                admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (backend,)).fetchone() == (0,)
            ),
            message="the backend never exited",
        )
    assert connection.pipeline.closed_by_server()
    assert connection.broken
