"""Several gateway nodes on one PostgreSQL database: each ``PostgresStore`` here is one node (its own
writer connection and read pool), and they write at the same moment. Each test fails on the code
before issue 12, which relied on SQLite's one writer: two visits for one visitor, a rollup mark lost
to a batch that committed late, an outbox row delivered twice, two salts for one day."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from gateway.storage.events import insert_events
from gateway.storage.location import PostgresUrl
from gateway.storage.outbox import claim_outbox, enqueue_outbox
from gateway.storage.postgres import PgConnection, PostgresStore
from gateway.storage.records import OutboxBatch
from gateway.storage.rollups import RollupPlan, apply_plan
from gateway.storage.salts import salts_for
from tests.storage.test_rollups import event
from tests.stores import PostgresServer, postgres_server_or_skip, with_database
from tests.waiting import eventually

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def url(postgres_server: PostgresServer | None) -> Iterator[PostgresUrl]:
    """A fresh migrated database of its own on the test cluster."""
    server = postgres_server_or_skip(postgres_server)
    name = server.create_database()
    yield PostgresUrl(with_database(server.admin_url, name))
    server.drop_database(name)


async def _nodes(url: PostgresUrl, count: int = 2) -> list[PostgresStore]:
    return [await PostgresStore(url, max_readers=2).open() for _ in range(count)]


async def _close(nodes: list[PostgresStore]) -> None:
    for node in nodes:
        await node.close()


def test_two_nodes_storing_one_visitor_at_once_open_one_visit(url: PostgresUrl) -> None:
    """Both nodes get events of the same 40 new visitors in every round, at the same moment: each
    visitor still has one visit, holding every event (each batch locks its visitors first)."""
    rounds, visitors = 10, 40

    async def work() -> list[Any]:
        nodes = await _nodes(url)
        try:
            for number in range(rounds):
                moment = START + timedelta(minutes=number)
                batches = [
                    [event(moment, f"r{number}-v{v}", f"/node{n}") for v in range(visitors)] for n in range(len(nodes))
                ]
                await asyncio.gather(
                    *(
                        node.write(lambda c, b=batch: insert_events(c, b))
                        for node, batch in zip(nodes, batches, strict=True)
                    )
                )
            return await nodes[0].fetch_all(
                "SELECT visitor_id, count(*) AS visits, sum(events) AS events FROM visits GROUP BY visitor_id"
            )
        finally:
            await _close(nodes)

    rows = asyncio.run(work())
    assert len(rows) == rounds * visitors
    assert {(row["visits"], row["events"]) for row in rows} == {(1, 2)}


def test_a_mark_set_by_a_batch_committing_after_the_rollup_read_stays(url: PostgresUrl) -> None:
    """Node A's rollup read the day's mark; node B's batch then marks the day again and commits while A
    clears the marks it answered (A waits on B's row, then finds it changed). The mark must survive,
    or B's event is never counted: the old rule ("no event with a higher id than the snapshot's")
    cannot tell, since B's ids may be lower than those A saw."""

    async def work() -> tuple[list[Any], list[Any]]:
        (node_a,) = await _nodes(url, 1)
        late = psycopg.connect(url.url, autocommit=True)
        try:
            await node_a.write(lambda c: insert_events(c, [event(START, "early", "/")]))
            read = await node_a.fetch_all("SELECT site_id, day, generation FROM rollup_dirty")
            plan = RollupPlan(dirty=tuple((str(s), str(d), int(g)) for s, d, g in read), days={})
            late.execute("BEGIN")
            late_writer = PgConnection(late)
            insert_events(late_writer, [event(START + timedelta(minutes=1), "late", "/")])  # type: ignore[arg-type]
            late_writer.settle()  # its statements sent and run: the mark's row is locked, not committed
            clearing = asyncio.ensure_future(node_a.write(lambda c: apply_plan(c, plan)))  # type: ignore[arg-type]
            await eventually(lambda: _waiting_on_a_lock(url) > 0, timeout=30, message="A never reached the mark")
            late.execute("COMMIT")
            await clearing
            after = await node_a.fetch_all("SELECT site_id, day, generation FROM rollup_dirty")
            # a plan that read the new generation clears it
            plan = RollupPlan(dirty=tuple((str(s), str(d), int(g)) for s, d, g in after), days={})
            await node_a.write(lambda c: apply_plan(c, plan))  # type: ignore[arg-type]
            return [tuple(row) for row in after], await node_a.fetch_all("SELECT * FROM rollup_dirty")
        finally:
            late.close()
            await node_a.close()

    after, finally_left = asyncio.run(work())
    assert [(site, day) for site, day, _ in after] == [("shop", "2026-03-10")]
    assert finally_left == []


def _waiting_on_a_lock(url: PostgresUrl) -> int:
    with psycopg.connect(url.url, autocommit=True) as watcher:
        row = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
        return int(row[0]) if row else 0


def test_two_nodes_claiming_the_outbox_at_once_claim_each_row_once(url: PostgresUrl) -> None:
    """Three nodes claim the same forwarder's due rows in a loop until none is left: every row is
    claimed by exactly one of them (FOR UPDATE SKIP LOCKED), none twice."""
    rows = 300

    async def work() -> list[list[int]]:
        nodes = await _nodes(url, 3)
        try:
            batches = [OutboxBatch("hook", f'[{{"n": {n}}}]', 1) for n in range(rows)]
            await nodes[0].write(lambda c: enqueue_outbox(c, batches, now=START))

            async def drain(node: PostgresStore) -> list[int]:
                claimed: list[int] = []
                while True:
                    entries = await node.write(
                        lambda c: claim_outbox(
                            c, "hook", now=START, lease_until=START + timedelta(hours=1), max_events=7
                        )
                    )
                    if not entries:
                        return claimed
                    claimed.extend(entry.id for entry in entries)

            return list(await asyncio.gather(*(drain(node) for node in nodes)))
        finally:
            await _close(nodes)

    claims = asyncio.run(work())
    every = [row_id for claimed in claims for row_id in claimed]
    assert len(every) == rows
    assert len(set(every)) == rows


def test_nodes_asking_for_a_new_day_salt_at_once_share_one(url: PostgresUrl) -> None:
    async def work() -> list[tuple[bytes, bytes | None]]:
        nodes = await _nodes(url, 4)
        try:
            return list(await asyncio.gather(*(salts_for(node, "2026-03-10", None, now=START) for node in nodes)))
        finally:
            await _close(nodes)

    salts = asyncio.run(work())
    assert len({salt for salt, _ in salts}) == 1
    assert len(salts[0][0]) == 32
