"""Group commit: one transaction per batch, 202 only after commit, a full queue refused, shutdown flushes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.ingest.buffer import QueueFull, WriteBuffer
from gateway.ingest.event import AnonymousEvent
from gateway.metrics import Metrics
from tests.events import anonymous_event
from tests.stores import database_location, open_test_store, query
from tests.waiting import eventually

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


def event(
    n: int, *, visitor: str = "v1", minutes: float = 0, path: str = "/", name: str = "pageview"
) -> AnonymousEvent:
    return anonymous_event(NOW + timedelta(minutes=minutes), visitor, path, name=name, screen=None, props={"n": str(n)})


def count(path: Path, table: str = "events") -> int:
    return int(query(database_location(path), f"SELECT count(*) FROM {table}")[0][0])  # noqa: S608


def test_concurrent_writes_share_transactions_and_each_returns_after_commit(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def scenario() -> Metrics:
        db = await open_test_store(path).open()
        metrics = Metrics()
        buffer = WriteBuffer(db, metrics, max_batch=50)
        await buffer.start()

        async def write_and_check(n: int) -> None:
            await buffer.write(event(n, visitor=f"v{n}"))
            rows = await db.fetch_all("SELECT count(*) AS c FROM events WHERE props = ?", (f'{{"n": "{n}"}}',))
            assert rows[0]["c"] == 1  # committed and visible to another connection when write returns

        try:
            await asyncio.gather(*(write_and_check(n) for n in range(200)))
        finally:  # a failed check must not leave the writer thread running (pytest would hang)
            await buffer.stop()
            await db.close()
        return metrics

    metrics = asyncio.run(scenario())
    assert count(path) == 200
    batches = metrics.value("consent_gateway_write_batches_total")
    assert batches < 200  # grouped: far fewer commits than events
    assert metrics.value("consent_gateway_write_batch_events_total") == 200


def test_a_full_queue_is_refused_at_once_not_dropped_silently(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int]:
        db = await open_test_store(tmp_path / "db.sqlite3").open()
        buffer = WriteBuffer(db, Metrics(), max_queue=5, max_batch=5)
        await buffer.start()
        results = await asyncio.gather(*(buffer.write(event(n)) for n in range(50)), return_exceptions=True)
        await buffer.stop()
        await db.close()
        refused = sum(isinstance(r, QueueFull) for r in results)
        return refused, sum(r is None for r in results)

    refused, stored = asyncio.run(scenario())
    assert refused > 0 and stored + refused == 50
    assert count(tmp_path / "db.sqlite3") == stored  # every accepted write is there, nothing else


def test_stop_writes_everything_queued(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await open_test_store(tmp_path / "db.sqlite3").open()
        buffer = WriteBuffer(db, Metrics())
        await buffer.start()
        writes = [asyncio.create_task(buffer.write(event(n))) for n in range(30)]
        # Every write has started (queued, or already written): none can arrive after stop() and be refused.
        await eventually(lambda: buffer.depth + sum(write.done() for write in writes) == 30)
        await buffer.stop()
        await asyncio.gather(*writes)
        await db.close()

    asyncio.run(scenario())
    assert count(tmp_path / "db.sqlite3") == 30


def test_a_stopped_writer_refuses(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await open_test_store(tmp_path / "db.sqlite3").open()
        buffer = WriteBuffer(db, Metrics())
        with pytest.raises(QueueFull):
            await buffer.write(event(1))
        await db.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("minutes", "visits", "pageviews_first"),
    [
        pytest.param([0, 10, 25], 1, 3, id="events-within-30-minutes-are-one-visit"),
        pytest.param([0, 29, 58], 1, 3, id="the-timeout-counts-from-the-last-event"),
        pytest.param([0, 31], 2, 1, id="31-minutes-of-silence-start-a-new-visit"),
    ],
)
def test_visits_end_after_30_minutes_of_inactivity(
    tmp_path: Path, minutes: list[float], visits: int, pageviews_first: int
) -> None:
    path = tmp_path / "db.sqlite3"

    async def scenario() -> None:
        db = await open_test_store(path).open()
        buffer = WriteBuffer(db, Metrics())
        await buffer.start()
        for i, at in enumerate(minutes):
            await buffer.write(event(i, minutes=at, path=f"/p{i}"))
        await buffer.stop()
        await db.close()

    asyncio.run(scenario())
    rows = query(database_location(path), "SELECT entry_page, exit_page, pageviews FROM visits ORDER BY id")
    assert len(rows) == visits
    assert rows[0][0] == "/p0" and rows[0][2] == pageviews_first
    assert rows[-1][1] == f"/p{len(minutes) - 1}"
