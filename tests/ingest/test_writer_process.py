"""The writer process: stores batches exactly as the writer thread does, 202 only after its commit,
503 when it dies and a new one for later events, a flush at shutdown, the outbox in the same transaction."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pickle
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.ingest.bots import IgnoreList
from gateway.ingest.buffer import QueueFull, WriteBuffer
from gateway.ingest.event import AnonymousEvent, IncomingEvent
from gateway.ingest.forward import ForwarderSettings
from gateway.ingest.geo import NullGeo
from gateway.ingest.pipeline import PipelineContext, run_pipeline
from gateway.ingest.visitor import DailySalts
from gateway.ingest.writer_process import EVENT_FIELDS, ProcessWriteBuffer, encode_batch
from gateway.metrics import Metrics
from gateway.storage.location import DatabaseLocation, PostgresUrl
from tests.conftest import SITE_ORIGIN, LiveServer, make_settings
from tests.events import anonymous_event
from tests.stores import current_kind, database_location, open_test_store, query
from tests.waiting import DEADLINE_SECONDS, eventually, wait_until

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
IP = "198.51.100.23"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
TABLES = {
    "events": "SELECT * FROM events ORDER BY id",
    "visits": "SELECT * FROM visits ORDER BY id",
    "rollup_dirty": "SELECT site_id, day FROM rollup_dirty ORDER BY site_id, day",  # its generation counts batches
}


def varied_events() -> list[AnonymousEvent]:
    """Three visitors over two hours: visits that continue, end after 30 minutes, and carry over a salt change."""
    found = []
    for n in range(120):
        visitor = f"visitor-{n % 3}"
        found.append(
            anonymous_event(
                NOW + timedelta(minutes=n),
                visitor,
                f"/page/{n % 7}",
                name="pageview" if n % 4 else "Signup",
                props={"n": str(n), "plan": "pro"} if n % 4 == 0 else {},
                consent=frozenset({"analytics", "functional"}) if n % 5 == 0 else frozenset(),
                referrer_host="www.google.com" if n % 6 == 0 else None,
                previous_visitor_id=f"old-{visitor}" if n % 11 == 0 else None,
                country="FR" if n % 2 else None,
            )
        )
    return found


def forwarders(tmp_path: Path) -> tuple[ForwarderSettings, ...]:
    forward = [{"name": "warehouse", "url": "https://hooks.example.com/in", "secret": "a-webhook-secret-of-length"}]
    return make_settings(tmp_path, forward=forward).forwarders


def table(where: Path | DatabaseLocation, sql: str) -> list[tuple[Any, ...]]:
    """Rows read back from outside the gateway: ``where`` is a test's SQLite path or a settings location."""
    return list(query(database_location(where) if isinstance(where, Path) else where, sql))


def forwarded(path: Path) -> list[dict[str, Any]]:
    """Every event in the outbox, in order, whatever the batches were."""
    return [
        event for (payload,) in table(path, "SELECT payload FROM outbox ORDER BY id") for event in json.loads(payload)
    ]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too: it only waits to be collected
        return Path(f"/proc/{pid}/stat").read_text(encoding="ascii").split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


async def write_all(buffer: WriteBuffer, events: Sequence[AnonymousEvent]) -> None:
    await asyncio.gather(*(buffer.write(event) for event in events))


def test_batches_are_stored_exactly_as_the_writer_thread_stores_them(tmp_path: Path) -> None:
    events = varied_events()
    chosen = forwarders(tmp_path)
    clock = FixedClock(NOW)

    async def with_thread(path: Path) -> None:
        db = await open_test_store(path).open()
        buffer = WriteBuffer(db, Metrics(), clock=clock, forwarders=chosen)
        await buffer.start()
        try:
            for start in range(0, len(events), 40):  # several batches, and visits continued across them
                await write_all(buffer, events[start : start + 40])
        finally:
            await buffer.stop()
            await db.close()

    async def with_process(path: Path) -> None:
        db = await open_test_store(path).open()
        buffer = ProcessWriteBuffer(db, Metrics(), clock=clock, forwarders=chosen)
        await buffer.start()
        try:
            for start in range(0, len(events), 40):
                await write_all(buffer, events[start : start + 40])
        finally:
            await buffer.stop()
            await db.close()

    asyncio.run(with_thread(tmp_path / "thread.sqlite3"))
    asyncio.run(with_process(tmp_path / "process.sqlite3"))
    for name, sql in TABLES.items():
        by_thread, by_process = table(tmp_path / "thread.sqlite3", sql), table(tmp_path / "process.sqlite3", sql)
        assert by_process == by_thread, name
    assert len(table(tmp_path / "process.sqlite3", TABLES["events"])) == len(events)
    assert forwarded(tmp_path / "process.sqlite3") == forwarded(tmp_path / "thread.sqlite3")
    assert len(forwarded(tmp_path / "process.sqlite3")) == len(events)


def test_only_anonymous_fields_cross_to_the_child(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    incoming = IncomingEvent(
        site_id="shop",
        name="pageview",
        hostname="shop.example.com",
        pathname="/pricing",
        page_url="https://shop.example.com/pricing",
        referrer=None,
        screen_width=1280,
        props={"plan": "pro"},
        consent=None,
        received_at=NOW,
        client_ip=IP,
        user_agent=USER_AGENT,
    )
    salts = DailySalts("2026-03-10", b"s" * 32, None, NOW + timedelta(hours=1))
    pipeline = PipelineContext(settings.sites["shop"], NullGeo(), salts, IgnoreList.parse(()))
    event = run_pipeline(incoming, pipeline)
    assert isinstance(event, AnonymousEvent)

    assert EVENT_FIELDS == tuple(field.name for field in dataclasses.fields(AnonymousEvent))
    assert not {"client_ip", "user_agent"} & set(EVENT_FIELDS)
    message = encode_batch(7, NOW, [event])
    assert IP.encode() not in message and USER_AGENT.encode() not in message
    assert b"198.51.100" not in message and b"X11; Linux" not in message
    batch_id, now, rows, outbox = pickle.loads(message[4:])  # noqa: S301 - bytes this test just made
    assert (batch_id, now, outbox) == (7, NOW, [])
    assert rows == [tuple(getattr(event, name) for name in EVENT_FIELDS)]
    assert AnonymousEvent(*rows[0]) == event


@pytest.mark.parametrize("in_flight", [1, 2], ids=["one-batch-in-flight", "two-batches-in-flight"])
def test_concurrent_writes_share_transactions_and_each_returns_after_commit(tmp_path: Path, in_flight: int) -> None:
    path = tmp_path / "db.sqlite3"

    async def scenario() -> Metrics:
        db = await open_test_store(path).open()
        metrics = Metrics()
        buffer = ProcessWriteBuffer(db, metrics, clock=FixedClock(NOW), max_batch=50, max_in_flight=in_flight)
        await buffer.start()

        async def write_and_check(n: int) -> None:
            await buffer.write(anonymous_event(NOW, f"v{n}", props={"n": str(n)}))
            rows = await db.fetch_all("SELECT count(*) AS c FROM events WHERE props = ?", (f'{{"n": "{n}"}}',))
            assert rows[0]["c"] == 1  # committed and visible to another connection when write returns

        try:
            await asyncio.gather(*(write_and_check(n) for n in range(500)))
        finally:
            await buffer.stop()
            await db.close()
        return metrics

    metrics = asyncio.run(scenario())
    assert len(table(path, TABLES["events"])) == 500
    assert metrics.value("consent_gateway_write_batches_total") < 500  # grouped: far fewer commits than events
    assert metrics.value("consent_gateway_write_batch_events_total") == 500
    assert metrics.value("consent_gateway_commit_seconds_total") > 0


def test_stop_writes_everything_queued_and_the_child_exits(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def scenario() -> int:
        db = await open_test_store(path).open()
        buffer = ProcessWriteBuffer(db, Metrics(), clock=FixedClock(NOW))
        await buffer.start()
        pid = buffer.pid
        assert pid is not None and alive(pid)
        writes = [asyncio.create_task(buffer.write(anonymous_event(NOW, f"v{n}"))) for n in range(300)]
        # Every write has started (queued, or already written): none can arrive after stop() and be refused.
        await eventually(lambda: buffer.depth + sum(write.done() for write in writes) == 300)
        await buffer.stop()
        await asyncio.gather(*writes)
        with pytest.raises(QueueFull):  # stopped: refused
            await buffer.write(anonymous_event(NOW, "late"))
        await db.close()
        return pid

    pid = asyncio.run(scenario())
    assert len(table(path, TABLES["events"])) == 300
    assert not alive(pid)


def test_a_full_queue_is_refused_at_once_not_dropped_silently(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def scenario() -> list[object]:
        db = await open_test_store(path).open()
        buffer = ProcessWriteBuffer(db, Metrics(), clock=FixedClock(NOW), max_queue=5, max_batch=5)
        await buffer.start()
        try:
            return await asyncio.gather(
                *(buffer.write(anonymous_event(NOW, f"v{n}")) for n in range(50)), return_exceptions=True
            )
        finally:
            await buffer.stop()
            await db.close()

    results = asyncio.run(scenario())
    refused, stored = sum(isinstance(r, QueueFull) for r in results), sum(r is None for r in results)
    assert refused > 0 and stored + refused == 50
    assert len(table(path, TABLES["events"])) == stored


@contextmanager
def held_write_lock(where: Path | DatabaseLocation) -> Iterator[Callable[[], None]]:
    """Another connection holding up the child's next batch; yields ``release`` (also called at the end).

    SQLite: another writer (``BEGIN IMMEDIATE``): the child's transaction waits (busy timeout) meanwhile.
    PostgreSQL has no database-wide write lock: ``LOCK TABLE events IN ACCESS EXCLUSIVE MODE`` stops the
    batch at its events (a killed child's backend waits there too, and rolls back once it can go on).
    Taking either lock waits as long as a busy machine may need for another writer (the app's upkeep) to finish.
    """
    location = database_location(where) if isinstance(where, Path) else where
    if isinstance(location, PostgresUrl):
        import psycopg

        with psycopg.connect(location.url) as blocker:  # a transaction from the first statement on
            blocker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            yield blocker.rollback
            blocker.rollback()
        return
    with closing(sqlite3.connect(location, timeout=DEADLINE_SECONDS, isolation_level=None)) as connection:
        connection.execute("BEGIN IMMEDIATE")

        def release() -> None:
            if connection.in_transaction:
                connection.execute("ROLLBACK")

        yield release
        release()


def test_when_the_child_dies_its_batch_fails_and_a_new_child_takes_the_queued_and_later_events(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"

    async def scenario() -> tuple[object, list[object], int, int | None]:
        db = await open_test_store(path).open()
        buffer = ProcessWriteBuffer(db, Metrics(), clock=FixedClock(NOW))
        await buffer.start()
        first = buffer.pid
        assert first is not None
        try:
            with held_write_lock(path) as release:
                # The first write goes to the idle child alone; the other 19 wait for its answer.
                writes = [asyncio.create_task(buffer.write(anonymous_event(NOW, f"queued{n}"))) for n in range(20)]
                # Every write has run up to its wait: the first one went to the idle child at once (a batch of
                # one, now waiting for the lock), the other 19 are queued behind it.
                await eventually(lambda: buffer.depth == 20, message=lambda: f"{buffer.depth} of 20 queued")
                assert not any(write.done() for write in writes)
                os.kill(first, signal.SIGKILL)
                [in_flight] = await asyncio.gather(writes[0], return_exceptions=True)
                release()
            queued = await asyncio.gather(*writes[1:], return_exceptions=True)
            await buffer.write(anonymous_event(NOW, "after"))
            return in_flight, queued, first, buffer.pid
        finally:
            await buffer.stop()
            await db.close()

    in_flight, queued, first, second = asyncio.run(scenario())
    assert isinstance(in_flight, QueueFull) and "writer process exited" in str(in_flight)  # -> 503
    assert queued == [None] * 19  # accepted, not yet sent: the new child stored them
    assert second is not None and second != first and not alive(first)
    stored = [row[0] for row in table(path, "SELECT visitor_id FROM events ORDER BY id")]
    assert stored == [f"queued{n}" for n in range(1, 20)] + ["after"]


def test_the_outbox_rows_are_written_in_the_events_transaction(tmp_path: Path) -> None:
    async def scenario(path: Path, *, break_outbox: bool) -> list[object]:
        db = await open_test_store(path).open()
        if break_outbox:  # the outbox insert fails: the events of its batch must not be stored either
            await db.write(lambda c: c.execute("ALTER TABLE outbox RENAME TO outbox_gone"))
        buffer = ProcessWriteBuffer(db, Metrics(), clock=FixedClock(NOW), forwarders=forwarders(tmp_path))
        await buffer.start()
        try:
            return await asyncio.gather(
                *(buffer.write(anonymous_event(NOW, f"v{n}", props={"n": str(n)})) for n in range(30)),
                return_exceptions=True,
            )
        finally:
            await buffer.stop()
            await db.close()

    path = tmp_path / "forwarded.sqlite3"
    assert asyncio.run(scenario(path, break_outbox=False)) == [None] * 30
    assert [event["props"]["n"] for event in forwarded(path)] == [str(n) for n in range(30)]
    assert table(path, "SELECT DISTINCT created_at FROM outbox") == [(NOW.isoformat(timespec="microseconds"),)]

    path = tmp_path / "broken.sqlite3"
    results = asyncio.run(scenario(path, break_outbox=True))
    assert all(isinstance(result, QueueFull) for result in results)
    refusal = {"sqlite": "OperationalError", "postgresql": "UndefinedTable"}[current_kind()]
    assert f"the database refused the batch: {refusal}" in str(results[0])
    assert table(path, "SELECT count(*) FROM events") == [(0,)]


def test_the_endpoint_answers_503_while_the_child_is_lost_then_202_again(
    tmp_path: Path, live_server: Callable[[Any], LiveServer]
) -> None:
    settings = make_settings(tmp_path)
    app = create_app(settings, geo=NullGeo(), writer_process=True)
    server = live_server(app)
    buffer = app.state.context.buffer
    assert isinstance(buffer, ProcessWriteBuffer)
    body = {"s": "shop", "n": "pageview", "u": f"{SITE_ORIGIN}/pricing"}
    headers = {"user-agent": USER_AGENT, "origin": SITE_ORIGIN}
    answers: list[httpx.Response] = []

    def post() -> None:
        answers.append(httpx.post(f"{server.url}/api/event", json=body, headers=headers, timeout=DEADLINE_SECONDS))

    first = buffer.pid
    assert first is not None
    # A first event makes today's salt (a write of the app's own) and proves the path works: after it, the
    # request path writes nothing but through the child, so the lock below holds up the child alone.
    post()
    assert answers.pop().status_code == 202
    with held_write_lock(settings.database) as release:
        waiting = threading.Thread(target=post)
        waiting.start()
        # The event is in the buffer: write() sent it to the idle child at once, which now waits for the lock.
        wait_until(lambda: buffer.depth == 1, message="the event never reached the writer")
        assert not answers
        os.kill(first, signal.SIGKILL)
        # Lost is observable: the parent read end of file and dropped the child (a new one may already run).
        wait_until(lambda: buffer.pid != first, message="the parent never noticed its child died")
        wait_until(lambda: answers, message="the request in flight was never answered")
        waiting.join(timeout=DEADLINE_SECONDS)
        release()
    [refused] = answers
    assert refused.status_code == 503 and "retry-after" in refused.headers
    assert "the event writer process" in refused.text  # it died (exited, or closed its socket), no lock timeout

    def accepted() -> bool:  # the next child starts in about a second; until then requests wait for it
        post()
        return answers[-1].status_code == 202

    wait_until(accepted, interval=0.1, message=lambda: answers[-1].text)
    assert buffer.pid not in (None, first)
    assert table(settings.database, "SELECT count(*) FROM events")[0][0] >= 1


def test_a_child_held_up_by_another_connection_fails_healthz_until_it_catches_up(
    tmp_path: Path, live_server: Callable[[Any], LiveServer]
) -> None:
    """The writer process lagging (another connection holds what its batch needs) is seen by /healthz,
    and nothing is refused: the event waits, is stored when the other connection lets go, and /healthz recovers."""
    settings = make_settings(tmp_path, max_writer_lag_seconds=1)
    server = live_server(create_app(settings, geo=NullGeo(), writer_process=True))
    body = {"s": "shop", "n": "pageview", "u": f"{SITE_ORIGIN}/pricing"}
    headers = {"user-agent": USER_AGENT, "origin": SITE_ORIGIN}

    with httpx.Client(base_url=server.url, timeout=DEADLINE_SECONDS, headers=headers) as http:

        def health() -> tuple[int, dict[str, Any]]:
            answer = http.get("/healthz")
            return answer.status_code, answer.json()

        assert http.post("/api/event", json=body).status_code == 202  # the day's salt exists: only the child writes
        assert health()[0] == 200, health()
        answers: list[int] = []
        with held_write_lock(settings.database) as release:
            sender = threading.Thread(
                target=lambda: answers.append(http.post("/api/event", json=body).status_code), daemon=True
            )
            sender.start()
            _, lagging = wait_until(
                lambda: (answer := health())[0] == 503 and "writer" in answer[1]["failing"] and answer,
                message=lambda: f"/healthz never noticed the held-up writer process: {health()}",
            )
            assert "waited" in lagging["checks"]["writer"]["detail"], lagging["checks"]
            release()
        sender.join(timeout=DEADLINE_SECONDS)
        assert answers == [202]  # the event waited, then was written: nothing refused, nothing lost
        wait_until(lambda: health()[0] == 200, message=lambda: f"/healthz stayed failing: {health()[1]}")
    assert table(settings.database, "SELECT count(*) FROM events") == [(2,)]
