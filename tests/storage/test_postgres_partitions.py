"""Events on PostgreSQL live in monthly partitions: a batch creates the months it needs (two nodes at
once included), and retention drops the months wholly before its cut-off instead of deleting rows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from functools import partial

import psycopg
import pytest

from gateway.storage.events import insert_events
from gateway.storage.location import PostgresUrl
from gateway.storage.partitions import next_month, partition_name
from gateway.storage.postgres import PgConnection, PostgresStore
from gateway.storage.retention import purge
from tests.storage.test_rollups import event
from tests.stores import PostgresServer, postgres_server_or_skip, with_database

_PARTITIONS = """
SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
WHERE i.inhparent = 'events'::regclass ORDER BY 1
"""


@pytest.fixture
def url(postgres_server: PostgresServer | None) -> Iterator[PostgresUrl]:
    server = postgres_server_or_skip(postgres_server)
    name = server.create_database()
    yield PostgresUrl(with_database(server.admin_url, name))
    server.drop_database(name)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("month", "following", "name"),
    [("2025-01", "2025-02", "events_2025_01"), ("2025-12", "2026-01", "events_2025_12")],
    ids=["within a year", "across the new year"],
)
def test_month_names_and_bounds(month: str, following: str, name: str) -> None:
    assert next_month(month) == following
    assert partition_name(month) == name


@pytest.mark.parametrize("month", ["2025-13", "2025-01'; DROP TABLE events; --"], ids=["no such month", "sql"])
def test_a_name_that_is_not_a_month_never_reaches_the_ddl(month: str) -> None:
    with pytest.raises(ValueError):
        partition_name(month)


def test_a_batch_creates_its_months_and_the_next_one(url: PostgresUrl) -> None:
    async def work() -> list[str]:
        store = await PostgresStore(url).open()
        try:
            batch = [event(at("2025-07-31T23:59:59"), "a", "/"), event(at("2025-08-01T00:00:00"), "a", "/next")]
            await store.write(lambda c: insert_events(c, batch))
            return [row[0] for row in await store.fetch_all(_PARTITIONS)]
        finally:
            await store.close()

    assert asyncio.run(work()) == ["events_2025_07", "events_2025_08", "events_2025_09"]


def test_two_nodes_needing_a_new_month_at_once_both_store(url: PostgresUrl) -> None:
    """Each node's first batch of a month nobody created yet: one creates it, the other waits and uses it."""

    async def work() -> tuple[list[str], int]:
        nodes = [await PostgresStore(url).open() for _ in range(3)]
        try:
            batches = [[event(at("2026-05-02T10:00:00") + timedelta(seconds=n), f"v{n}", "/")] for n in range(3)]
            await asyncio.gather(
                *(
                    node.write(lambda c, b=batch: insert_events(c, b))
                    for node, batch in zip(nodes, batches, strict=True)
                )
            )
            (count,) = (await nodes[0].fetch_all("SELECT count(*) FROM events"))[0]
            return [row[0] for row in await nodes[0].fetch_all(_PARTITIONS)], int(count)
        finally:
            for node in nodes:
                await node.close()

    assert asyncio.run(work()) == (["events_2026_05", "events_2026_06"], 3)


def test_retention_drops_whole_months_and_deletes_the_rest_of_the_cut_off_month(url: PostgresUrl) -> None:
    times = ["2025-06-15T12:00:00", "2025-07-01T00:00:00", "2025-07-31T23:00:00", "2025-08-09T23:59:59",
             "2025-08-10T00:00:00", "2025-09-01T08:00:00"]  # fmt: skip

    async def work() -> tuple[int, list[str], list[str], list[str]]:
        store = await PostgresStore(url).open()
        try:
            batch = [event(at(text), f"v{n}", "/") for n, text in enumerate(times)]
            await store.write(lambda c: insert_events(c, batch))
            counts = await store.write(
                lambda c: purge(
                    c,  # type: ignore[arg-type]
                    events_before=at("2025-08-10T00:00:00"),
                    rollups_before="2000-01-01",
                    consent_before=at("2000-01-01T00:00:00"),
                )
            )
            partitions = [row[0] for row in await store.fetch_all(_PARTITIONS)]
            kept = [row[0][:19] for row in await store.fetch_all("SELECT ts FROM events ORDER BY ts")]
            # a late event of a dropped month finds its month again (this process forgot it had it)
            await store.write(lambda c: insert_events(c, [event(at("2025-06-20T10:00:00"), "late", "/")]))
            again = [row[0] for row in await store.fetch_all(_PARTITIONS)]
            return counts.events, partitions, kept, again
        finally:
            await store.close()

    deleted, partitions, kept, again = asyncio.run(work())
    assert deleted == 4
    assert partitions == ["events_2025_08", "events_2025_09", "events_2025_10"]
    assert kept == ["2025-08-10T00:00:00", "2025-09-01T08:00:00"]
    assert again[0] == "events_2025_06"


def test_a_failed_batch_that_created_a_month_does_not_leave_it_remembered(url: PostgresUrl) -> None:
    """The batch's statements fail at the sync ``run_batch`` reads, after ``insert_events`` has returned:
    the month it created is rolled back, and the writer must create it again for the next batch (it once
    remembered the month and every later batch of it failed: no partition for the row)."""
    store = PostgresStore(url)
    with closing(PgConnection(psycopg.connect(url.url, autocommit=True))) as writer:
        refused = event(at("2031-05-02T10:00:00"), "v1", "/", site=None)  # type: ignore[arg-type]
        with pytest.raises(psycopg.errors.NotNullViolation):
            store.run_batch(writer, partial(insert_events, events=[refused]))
        assert "events_2031_05" not in [row[0] for row in writer.raw.execute(_PARTITIONS).fetchall()]
        store.run_batch(writer, partial(insert_events, events=[event(at("2031-05-02T10:01:00"), "v1", "/")]))
        assert writer.raw.execute("SELECT count(*) FROM events").fetchone() == (1,)
