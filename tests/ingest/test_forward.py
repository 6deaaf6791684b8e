"""Forwarders: queued in the events' transaction, signed, delivered to a real receiver, retried with backoff."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.categories import Category
from gateway.clock import FixedClock
from gateway.ingest.bots import IgnoreList
from gateway.ingest.event import AnonymousEvent, IncomingEvent
from gateway.ingest.forward import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ForwarderSettings,
    OutboxSender,
    event_payload,
    outbox_batches,
    parse_forwarders,
    retry_delay,
    sign_body,
    verify_signature,
)
from gateway.ingest.geo import NullGeo
from gateway.ingest.pipeline import PipelineContext, run_pipeline
from gateway.ingest.visitor import DailySalts
from gateway.settings import Secret, SettingsError
from gateway.storage.events import store_events, write_events
from gateway.storage.location import DatabaseLocation
from gateway.storage.sql import Connection
from gateway.storage.store import Store, open_store
from tests.conftest import LiveServer, make_settings
from tests.events import anonymous_event
from tests.stores import database_location, query
from tests.waiting import eventually

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 10, 0, 10, tzinfo=UTC)
SECRET = "s3cr3t-forwarding-key-0123"
TEST_IP = "203.0.113.77"
TEST_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 "
    "CanaryToken/4242"
)


class Receiver:
    """A webhook receiver: records each request; answers ``status`` (set 500 to make it fail),
    or 413 to a body containing ``refuse``."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.refuse: bytes | None = None

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            self.requests.append((dict(request.headers), body))
            return Response(status_code=413 if self.refuse and self.refuse in body else self.status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    @property
    def batches(self) -> list[list[dict[str, Any]]]:
        return [json.loads(body)["events"] for _, body in self.requests]


def serve(app: Starlette, *, port: int | None = None) -> LiveServer:
    """A LiveServer, on ``port`` when given (to bring a stopped receiver back at the same address)."""
    server = LiveServer(app)
    if port is not None:
        server.socket.close()
        server.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.socket.bind(("127.0.0.1", port))
        server.port, server.url = port, f"http://127.0.0.1:{port}"
    return server.__enter__()


@pytest.fixture
def receiver(live_server: Callable[[Any], LiveServer]) -> Iterator[tuple[Receiver, str]]:
    hook = Receiver()
    server = live_server(hook.app())
    yield hook, f"{server.url}/hook"


def event(
    n: int, *, site: str = "shop", consent: frozenset[Category] = frozenset(), path: str | None = None
) -> AnonymousEvent:
    return anonymous_event(
        NOW + timedelta(seconds=n),
        f"visitor-{n}",
        path or f"/page/{n}",
        site_id=site,
        hostname=f"{site}.example.com",
        country="FR",
        props={"n": str(n)},
        consent=consent,
    )


class ReadCountingClock:
    """A clock pinned at NOW that counts its readings: a sender reads it as each round begins to drain."""

    def __init__(self) -> None:
        self.reads = 0

    def now(self) -> datetime:
        self.reads += 1
        return NOW


def forwarder(url: str, **changes: Any) -> ForwarderSettings:
    return dataclasses.replace(ForwarderSettings(name="hook", url=url, secret=Secret(SECRET)), **changes)


async def store(db: Store, forwarders: tuple[ForwarderSettings, ...], events: list[AnonymousEvent]) -> int:
    """What the WriteBuffer does: the events and their outbox rows in one transaction."""
    outbox = outbox_batches(forwarders, events)
    await write_events(db, events, outbox, now=NOW)
    return len(outbox)


@asynccontextmanager
async def opened(database: DatabaseLocation) -> AsyncIterator[Store]:
    """The test's real store, closed even when the test fails (an open reader thread would hang pytest)."""
    db = await open_store(database).open()
    try:
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def sending(db: Store, forwarders: tuple[ForwarderSettings, ...], **options: Any) -> AsyncIterator[OutboxSender]:
    options.setdefault("clock", FixedClock(NOW))
    sender = OutboxSender(db, forwarders, options.pop("clock"), **options)
    try:
        yield sender
    finally:
        await sender.stop()


def outbox(database: DatabaseLocation) -> list[dict[str, Any]]:
    return [dict(row) for row in query(database, "SELECT * FROM outbox ORDER BY id")]


def test_events_queued_in_their_transaction_are_delivered_signed(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    path = database_location(tmp_path / "gateway.sqlite3")  # created here, before any event loop
    clock = FixedClock(NOW)

    async def scenario() -> int:
        async with opened(path) as db, sending(db, (forwarder(url),), clock=clock) as sender:
            assert await store(db, (forwarder(url),), [event(1), event(2), event(3)]) == 1
            assert [row["event_count"] for row in outbox(path)] == [3]
            delivered = await sender.send_due()
            assert await sender.send_due() == 0  # nothing left: sent once
            return delivered

    assert asyncio.run(scenario()) == 3
    assert outbox(path) == []
    [(headers, body)] = hook.requests
    assert headers["content-type"] == "application/json"
    assert headers[TIMESTAMP_HEADER] == str(int(NOW.timestamp()))
    assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])
    sent = json.loads(body)
    assert sent["forwarder"] == "hook"
    assert sent["events"] == [event_payload(event(n)) for n in (1, 2, 3)]


def test_a_rolled_back_event_transaction_queues_nothing(tmp_path: Path) -> None:
    path = database_location(tmp_path / "gateway.sqlite3")

    async def scenario() -> None:
        def transaction(connection: Connection) -> None:
            outbox = outbox_batches((forwarder("https://hooks.example.com/in"),), [event(1)])
            store_events(connection, [event(1)], outbox, now=NOW)
            raise RuntimeError("the batch fails after enqueueing")

        async with opened(path) as db:
            with pytest.raises(RuntimeError):
                await db.write(transaction)

    asyncio.run(scenario())
    assert outbox(path) == []


@pytest.mark.parametrize(
    ("body", "secret", "header", "valid"),
    [
        (b'{"events":[]}', SECRET, sign_body(SECRET, b'{"events":[]}'), True),
        (b'{"events":[]}', SECRET, " " + sign_body(SECRET, b'{"events":[]}') + " ", True),
        (b'{"events":[] }', SECRET, sign_body(SECRET, b'{"events":[]}'), False),
        (b'{"events":[]}', "another-secret-of-length", sign_body(SECRET, b'{"events":[]}'), False),
        (b'{"events":[]}', SECRET, sign_body(SECRET, b'{"events":[]}').removeprefix("sha256="), False),
        (b'{"events":[]}', SECRET, "sha256=é", False),
        (b'{"events":[]}', SECRET, "", False),
    ],
    ids=["valid", "surrounding-spaces", "body-changed", "wrong-secret", "no-prefix", "non-ascii", "empty"],
)
def test_verify_signature(body: bytes, secret: str, header: str, valid: bool) -> None:
    assert verify_signature(secret, body, header) is valid


def test_the_payload_is_the_stored_fields_never_the_ip_or_user_agent(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    settings = make_settings(tmp_path)
    # in the minutes after midnight the event also carries yesterday's visitor id: it must not leave either
    salts = DailySalts("2026-03-10", b"s" * 32, b"p" * 32, NOW + timedelta(minutes=20))
    context = PipelineContext(settings.sites["shop"], NullGeo(), salts, IgnoreList.parse(()))
    incoming = IncomingEvent(
        site_id="shop",
        name="signup",
        hostname="shop.example.com",
        pathname="/pricing",
        page_url="https://shop.example.com/pricing",
        referrer="https://news.example.org/article",
        screen_width=1280,
        props={"plan": "pro"},
        consent=frozenset({"analytics"}),
        received_at=NOW,
        client_ip=TEST_IP,
        user_agent=TEST_UA,
    )
    anonymous = run_pipeline(incoming, context)
    assert isinstance(anonymous, AnonymousEvent) and anonymous.previous_visitor_id is not None

    async def scenario() -> None:
        async with opened(settings.database) as db, sending(db, (forwarder(url),)) as sender:
            await store(db, (forwarder(url),), [anonymous])
            assert await sender.send_due() == 1

    asyncio.run(scenario())
    [(headers, body)] = hook.requests
    [sent] = json.loads(body)["events"]
    narrowing = {"previous_visitor_id", "visitor_id", "region", "city"}  # by default: no id, country only
    stored_fields = {field.name for field in dataclasses.fields(AnonymousEvent)} - narrowing
    assert set(sent) == stored_fields
    assert sent["consent"] == ["analytics"] and sent["props"] == {"plan": "pro"} and sent["ts"] == NOW.isoformat()
    for private in (TEST_IP, "203.0.113", TEST_UA, "CanaryToken", anonymous.previous_visitor_id, anonymous.visitor_id):
        assert private.encode() not in body
        assert private not in str(headers)


@pytest.mark.parametrize("failure", ["receiver answers 500", "receiver stopped"])
def test_a_failing_receiver_keeps_the_batch_and_backs_off_until_it_is_back(tmp_path: Path, failure: str) -> None:
    path = database_location(tmp_path / "gateway.sqlite3")
    clock = FixedClock(NOW)
    hook = Receiver()
    server = serve(hook.app())
    servers = [server]
    url = f"{server.url}/hook"
    if failure == "receiver answers 500":
        hook.status = 500
    else:
        server.__exit__()

    async def scenario() -> None:
        async with opened(path) as db, sending(db, (forwarder(url),), clock=clock) as sender:
            await store(db, (forwarder(url),), [event(1), event(2)])
            expected_error = "HTTP 500" if failure == "receiver answers 500" else "ConnectError"
            for attempts, wait in ((1, 5), (2, 10), (3, 20)):
                assert await sender.send_due() == 0
                [row] = outbox(path)
                assert row["attempts"] == attempts
                assert datetime.fromisoformat(row["next_attempt_at"]) == clock.now() + timedelta(seconds=wait)
                assert row["last_error"].startswith(expected_error) and "visitor" not in row["last_error"]
                clock.advance(wait - 0.5)
                assert await sender.send_due() == 0
                assert outbox(path)[0]["attempts"] == attempts  # not resent before next_attempt_at
                clock.advance(0.5)
            if failure == "receiver answers 500":
                hook.status = 200
                assert len(hook.requests) == 3
            else:
                servers.append(serve(hook.app(), port=server.port))
            assert await sender.send_due() == 2

    try:
        asyncio.run(scenario())
    finally:
        for running in servers:
            running.__exit__()
    assert outbox(path) == []
    assert [e["pathname"] for e in hook.batches[-1]] == ["/page/1", "/page/2"]
    assert len({body for _, body in hook.requests}) == 1  # every attempt sent the same signed body


def test_a_receiver_that_is_down_gets_one_request_per_backoff_not_one_per_batch(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.status = 503
    path = database_location(tmp_path / "gateway.sqlite3")
    clock = FixedClock(NOW)
    chosen = forwarder(url, batch_size=1)

    async def scenario() -> list[int]:
        requests = []
        async with opened(path) as db, sending(db, (chosen,), clock=clock) as sender:
            await store(db, (chosen,), [event(n) for n in range(10)])
            for _ in range(36):  # polled every second; failures 1, 2, 3 pause it 5, 10, 20 seconds
                await sender.send_due()
                requests.append(len(hook.requests))
                clock.advance(1)
            hook.status = 200
            clock.advance(40)
            assert await sender.send_due() == 10
        return requests

    assert asyncio.run(scenario()) == [1] * 5 + [2] * 10 + [3] * 20 + [4]
    assert outbox(path) == []


def test_a_batch_the_receiver_keeps_refusing_does_not_hold_back_the_others(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.refuse = b"/too-large"
    path = database_location(tmp_path / "gateway.sqlite3")
    clock = FixedClock(NOW)
    chosen = forwarder(url, batch_size=1)

    async def scenario() -> None:
        async with opened(path) as db, sending(db, (chosen,), clock=clock) as sender:
            await store(db, (chosen,), [event(0, path="/too-large"), event(1), event(2)])
            assert await sender.send_due() == 0  # the first batch is refused, the forwarder pauses
            clock.advance(5)
            assert await sender.send_due() == 2  # the others go first; the refused one is retried last
            clock.advance(3600)
            assert await sender.send_due() == 0

    asyncio.run(scenario())
    [row] = outbox(path)
    assert (row["attempts"], row["last_error"]) == (3, "HTTP 413")
    assert [e["pathname"] for batch in hook.batches for e in batch] == [
        "/too-large",
        "/page/1",
        "/page/2",
        "/too-large",
        "/too-large",
    ]


@pytest.mark.parametrize(
    ("attempts", "most", "seconds"),
    [(1, 3600, 5), (2, 3600, 10), (3, 3600, 20), (10, 3600, 2560), (11, 3600, 3600), (10_000, 3600, 3600), (3, 12, 12)],
    ids=["first", "doubles", "doubles-again", "tenth", "capped-at-an-hour", "no-overflow", "custom-cap"],
)
def test_retry_delay_doubles_up_to_the_cap(attempts: int, most: float, seconds: float) -> None:
    assert retry_delay(attempts, most=most) == timedelta(seconds=seconds)


EVENTS = [
    event(1, site="shop", consent=frozenset({"analytics"}), path="/a"),
    event(2, site="shop", consent=frozenset(), path="/b"),
    event(3, site="blog", consent=frozenset({"analytics", "advertising"}), path="/c"),
    event(4, site="blog", consent=frozenset({"functional"}), path="/d"),
]


@pytest.mark.parametrize(
    ("sites", "require_category", "forwarded"),
    [
        ((), None, ["/a", "/b", "/c", "/d"]),
        (("shop",), None, ["/a", "/b"]),
        ((), "analytics", ["/a", "/c"]),
        (("blog",), "advertising", ["/c"]),
        (("news",), "analytics", []),
    ],
    ids=["every-site", "one-site", "analytics-consent-only", "site-and-category", "nothing-matches"],
)
def test_sites_and_require_category_choose_what_is_forwarded(
    tmp_path: Path,
    receiver: tuple[Receiver, str],
    sites: tuple[str, ...],
    require_category: Category | None,
    forwarded: list[str],
) -> None:
    hook, url = receiver
    path = database_location(tmp_path / "gateway.sqlite3")
    chosen = forwarder(url, sites=sites, require_category=require_category)

    async def scenario() -> int:
        async with opened(path) as db, sending(db, (chosen,)) as sender:
            rows = await store(db, (chosen,), EVENTS)
            await sender.send_due()
            return rows

    assert asyncio.run(scenario()) == (1 if forwarded else 0)
    assert [e["pathname"] for batch in hook.batches for e in batch] == forwarded


@pytest.mark.parametrize(
    ("batch_size", "transactions", "posts"),
    [
        (100, [250], [100, 100, 50]),
        (100, [2, 2, 2], [6]),
        (5, [3, 3, 3], [3, 3, 3]),
        (4, [2, 2, 3], [4, 3]),
    ],
    ids=["a-large-commit-is-split", "small-commits-are-merged", "merged-only-up-to-batch-size", "mixed"],
)
def test_batch_size_bounds_every_post(
    tmp_path: Path, receiver: tuple[Receiver, str], batch_size: int, transactions: list[int], posts: list[int]
) -> None:
    hook, url = receiver
    path = database_location(tmp_path / "gateway.sqlite3")
    chosen = forwarder(url, batch_size=batch_size)

    async def scenario() -> int:
        async with opened(path) as db, sending(db, (chosen,)) as sender:
            n = 0
            for size in transactions:
                await store(db, (chosen,), [event(i) for i in range(n, n + size)])
                n += size
            return await sender.send_due()

    assert asyncio.run(scenario()) == sum(transactions)
    assert [len(batch) for batch in hook.batches] == posts
    assert [int(e["props"]["n"]) for batch in hook.batches for e in batch] == list(range(sum(transactions)))
    assert outbox(path) == []


def test_two_gateway_processes_never_send_the_same_batch(tmp_path: Path, receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    path = database_location(tmp_path / "gateway.sqlite3")
    chosen = forwarder(url, batch_size=1)

    async def scenario() -> int:
        async with (
            opened(path) as first,
            opened(path) as second,
            sending(first, (chosen,)) as one,
            sending(second, (chosen,)) as other,
        ):
            for n in range(20):
                await store(first, (chosen,), [event(n)])
            return sum(await asyncio.gather(one.send_due(), other.send_due()))

    assert asyncio.run(scenario()) == 20
    assert sorted(int(e["props"]["n"]) for batch in hook.batches for e in batch) == list(range(20))


def test_the_running_sender_delivers_when_notified(tmp_path: Path, receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    path = database_location(tmp_path / "gateway.sqlite3")

    clock = ReadCountingClock()

    async def scenario() -> None:
        async with opened(path) as db, sending(db, (forwarder(url),), poll_interval=600, clock=clock) as sender:
            await sender.start()
            # The first round has read the clock, so its claim is queued on the one writer ahead of the store
            # below: it finds nothing, and the next poll is ten minutes away. Only notify() can deliver.
            await eventually(lambda: clock.reads, message="the sender never started a round")
            await store(db, (forwarder(url),), [event(1)])
            sender.notify()  # what WriteBuffer's on_commit does
            # Delivered means answered and deleted, not just received.
            await eventually(lambda: not outbox(path), message="the notified sender never delivered")

    asyncio.run(scenario())
    assert len(hook.batches) == 1
    assert outbox(path) == []


def test_parse_forwarders_reads_every_key_and_fills_defaults() -> None:
    entries = [
        {
            "name": "warehouse",
            "url": "https://hooks.example.com/in",
            "secret": SECRET,
            "sites": ["shop"],
            "require_category": "analytics",
            "batch_size": 50,
            "timeout_seconds": 2.5,
        },
        {"name": "archive", "url": "http://10.0.0.5:8080/events", "secret": SECRET},
    ]
    assert parse_forwarders(entries, source="gateway.toml", known_sites={"shop"}) == (
        ForwarderSettings("warehouse", "https://hooks.example.com/in", Secret(SECRET), ("shop",), "analytics", 50, 2.5),
        ForwarderSettings("archive", "http://10.0.0.5:8080/events", Secret(SECRET), (), None, 100, 10.0),
    )
    assert SECRET not in repr(parse_forwarders(entries, source="gateway.toml"))


GOOD = {"name": "warehouse", "url": "https://hooks.example.com/T0KEN-abc", "secret": SECRET}
KEYS = "batch_size, geo, name, require_category, secret, sites, time, timeout_seconds, url, visitor_id"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (GOOD, "forward: expected an array of tables ([[forward]]), found a table"),
        (["warehouse"], "forward[0]: expected a table with name, url and secret, found a string"),
        (
            [GOOD | {"url": "ftp://hooks.example.com/T0KEN-abc"}],
            "forward[0].url: expected an http:// or https:// URL with a host, found a URL with scheme 'ftp'",
        ),
        (
            [GOOD | {"url": "https:///T0KEN-abc"}],
            "forward[0].url: expected an http:// or https:// URL with a host, found a URL without a host",
        ),
        (
            [{k: v for k, v in GOOD.items() if k != "url"}],
            "forward[0].url: expected an http:// or https:// URL, found nothing (the key is missing)",
        ),
        (
            [{k: v for k, v in GOOD.items() if k != "secret"}],
            "forward[0].secret: expected a string of at least 16 characters, found nothing (the key is missing)",
        ),
        (
            [GOOD | {"secret": SECRET[:10]}],
            "forward[0].secret: expected a string of at least 16 characters, "
            "found a value that is not shown (it is a secret)",
        ),
        (
            [GOOD | {"secret": [SECRET]}],
            "forward[0].secret: expected a string of at least 16 characters, "
            "found a value that is not shown (it is a secret)",
        ),
        (
            [{k: v for k, v in GOOD.items() if k != "secret"} | {"secrte": SECRET}],
            f"forward[0].secrte: expected one of the known keys ({KEYS}), found an unknown key",
        ),
        (
            [GOOD | {"require_category": "marketing"}],
            "forward[0].require_category: expected one of essential, functional, analytics, advertising, "
            "found 'marketing'",
        ),
        (
            [GOOD | {"sites": ["shpo"]}],
            "forward[0].sites: expected site ids configured under [sites] (shop), found 'shpo'",
        ),
        ([GOOD | {"sites": "shop"}], "forward[0].sites: expected a list of site ids (empty: every site), found 'shop'"),
        ([GOOD, GOOD], "forward[1].name: expected a name no other forwarder uses, found 'warehouse'"),
        (
            [GOOD | {"name": "Ware House"}],
            "forward[0].name: expected a name of lowercase letters, digits, '-' or '_', found 'Ware House'",
        ),
        ([GOOD | {"batch_size": 0}], "forward[0].batch_size: expected a whole number from 1 to 10000, found 0"),
        ([GOOD | {"batch_size": True}], "forward[0].batch_size: expected a whole number from 1 to 10000, found True"),
        (
            [GOOD | {"timeout_seconds": 0}],
            "forward[0].timeout_seconds: expected a number of seconds above 0, at most 300, found 0",
        ),
        (
            [GOOD | {"timeout_seconds": "10s"}],
            "forward[0].timeout_seconds: expected a number of seconds above 0, at most 300, found '10s'",
        ),
    ],
    ids=[
        "a-table-not-an-array",
        "entry-not-a-table",
        "url-scheme-not-http",
        "url-without-host",
        "url-missing",
        "secret-missing",
        "secret-too-short",
        "secret-not-a-string",
        "unknown-key-misspelt-secret",
        "unknown-category",
        "unknown-site",
        "sites-not-a-list",
        "duplicate-name",
        "name-not-an-id",
        "batch-size-zero",
        "batch-size-boolean",
        "timeout-zero",
        "timeout-not-a-number",
    ],
)
def test_parse_forwarders_errors_name_the_key_and_never_show_a_secret(entries: object, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        parse_forwarders(entries, source="gateway.toml", known_sites={"shop"})
    assert str(error.value) == f"config error in gateway.toml: {message}"
    for secret in (SECRET, SECRET[:10], "T0KEN"):
        assert secret not in str(error.value)
