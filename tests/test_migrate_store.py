"""``consent-gateway migrate-store``: a SQLite gateway's data moved to a fresh PostgreSQL database.

Real parts only: a SQLite file filled through the storage functions the gateway uses and through
the real app on uvicorn (a login, a failed login), a real PostgreSQL database per test (from the
cluster in ``TEST_POSTGRES_URL``), the real CLI. After the copy the gateway runs on
PostgreSQL and is used the way a person would: the old session cookie still opens the dashboard,
the password still logs in, a shared link still opens, new rows get fresh ids.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import create_app
from gateway.accounts.api_keys import create_api_key, verify_api_key
from gateway.accounts.passwords import hash_password
from gateway.accounts.sessions import SESSION_COOKIE
from gateway.accounts.shared_links import SharedLinks
from gateway.cli import main
from gateway.clock import FixedClock
from gateway.consent.records import ConsentRecord
from gateway.maintenance import roll_up
from gateway.migrate_check import compare_dashboards
from gateway.settings import Settings, settings_from_dict
from gateway.storage.consent_log import append_record, erase_records
from gateway.storage.consent_report import ImpressionCount, add_impressions
from gateway.storage.cookie_report import CookieTally, add_cookie_tallies
from gateway.storage.db import Database
from gateway.storage.events import write_events
from gateway.storage.location import PostgresUrl
from gateway.storage.migrate import PLAN, copy_store
from gateway.storage.records import OutboxBatch
from gateway.storage.salts import salts_for
from gateway.storage.store import Store
from gateway.storage.users import add_user, grant
from tests.conftest import SITE_ORIGIN, LiveServer, site_config
from tests.events import anonymous_event

pytestmark = [
    pytest.mark.integration,
    pytest.mark.sqlite_only(reason="copies a SQLite file into PostgreSQL: both stores are named by the test itself"),
]

ADMIN_URL_ENV = "TEST_POSTGRES_URL"
REQUIRE_ENV = "TEST_REQUIRE_POSTGRES"
NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
PASSWORD = "correct horse battery"
SECRET_KEYS = ["migrate-test-key-one", "migrate-test-key-two"]
_numbers = itertools.count()


# The two stores.


@pytest.fixture
def postgres_url() -> Iterator[PostgresUrl]:
    """A fresh, empty PostgreSQL database of its own, dropped at the end."""
    admin = os.environ.get(ADMIN_URL_ENV)
    if not admin:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {ADMIN_URL_ENV} is not set")
        pytest.skip(f"migrate-store needs a PostgreSQL server: set {ADMIN_URL_ENV}=postgresql://... (make test does)")
    import psycopg

    name = f"migrate_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PostgresUrl(_with_database(admin, name))
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def gateway_settings(database: Path | PostgresUrl) -> Settings:
    sites = {
        "shop": site_config(min_visitors=2),
        "blog": site_config(name="Blog", origins=["https://blog.example.com"], min_visitors=2),
    }
    location = database.url if isinstance(database, PostgresUrl) else str(database)
    return settings_from_dict({"secret_keys": SECRET_KEYS, "database": location, "sites": sites}, source="test")


def config_file(tmp_path: Path) -> Path:
    """The same sites as a TOML file, for the CLI (its database setting is not used by migrate-store)."""
    path = tmp_path / "gateway.toml"
    lines = [f"secret_keys = {json.dumps(SECRET_KEYS)}"]
    for site_id, name, origin in (("shop", "Shop", SITE_ORIGIN), ("blog", "Blog", "https://blog.example.com")):
        lines += [f"[sites.{site_id}]", f'name = "{name}"', f'origins = ["{origin}"]', "min_visitors = 2"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def on_store(store: Store, work: Any) -> Any:
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


# Filling the SQLite store: what a gateway holds after a few days.


def _events() -> list[Any]:
    """Five days of two sites: pages, sources, countries, browsers, custom events, several visits a visitor."""
    events = []
    pages = ("/", "/pricing", "/blog/hello", "/docs")
    browsers = (("Chrome", "desktop"), ("Firefox", "desktop"), ("Mobile Safari", "mobile"))
    for day in range(5):
        start = NOW - timedelta(days=4 - day, hours=3)
        for visitor in range(12):
            browser, device = browsers[visitor % 3]
            site = "shop" if visitor % 4 else "blog"
            for step in range(1 + visitor % 3):
                moment = start + timedelta(minutes=visitor * 7 + step * 2)
                events.append(
                    anonymous_event(
                        moment,
                        f"v{day}-{visitor}",
                        pages[(visitor + step) % 4],
                        site_id=site,
                        hostname="shop.example.com" if site == "shop" else "blog.example.com",
                        country=("DE", "FR", "US")[visitor % 3],
                        browser=browser,
                        device=device,
                        source="Google" if visitor % 2 else "Direct / None",
                        channel="organic" if visitor % 2 else "direct",
                        referrer_host="google.com" if visitor % 2 else None,
                        props={"plan": "pro"} if step else {},
                    )
                )
            if visitor % 5 == 0:
                events.append(
                    anonymous_event(start + timedelta(minutes=visitor * 7 + 9), f"v{day}-{visitor}", name="Signup")
                )
    return sorted(events, key=lambda event: event.ts)


def _consent(consent_id: str, site: str, method: str, minutes: int) -> ConsentRecord:
    return ConsentRecord(
        consent_id=consent_id,
        site_id=site,
        recorded_at=NOW - timedelta(minutes=minutes),
        method=method,  # type: ignore[arg-type]
        policy_revision=1,
        banner_hash="abc123",
        categories={"functional": True, "analytics": method == "accept_all", "advertising": False},
        services={"hotjar": False},
        gpc=False,
        language="en",
        page_path="/",
        ip_network="203.0.113.0/24",
        ua_family="Firefox",
        expires_at=NOW + timedelta(days=180),
        country="DE",
        device="desktop",
    )


async def fill(store: Store, settings: Settings) -> dict[str, Any]:
    """Every kind of row a gateway writes; returns what the test needs to find again."""
    events = _events()
    half = len(events) // 2
    outbox = [OutboxBatch("webhook", json.dumps([{"name": "pageview"}]), 1)]
    await write_events(store, events[:half], outbox, now=NOW)
    await roll_up(store, settings.zones, floors={site: 2 for site in settings.sites})
    await write_events(store, events[half:], (), now=NOW)  # the newest days stay dirty: marks are copied too
    await salts_for(store, NOW.date().isoformat(), (NOW.date() - timedelta(days=1)).isoformat(), now=NOW)
    for number, method in enumerate(("accept_all", "reject_all", "custom", "accept_all", "reject_all")):
        await append_record(store, _consent(f"c{number}", "shop", method, 60 * number))
    await erase_records(store, "c4", now=NOW, zones=settings.zones)
    await add_impressions(
        store, [ImpressionCount("shop", (NOW - timedelta(days=d)).date(), "DE", "desktop", 10 + d) for d in range(3)]
    )
    await add_cookie_tallies(
        store, [CookieTally("shop", "_ga", "analytics", 5, 2, 1, 63072000, NOW - timedelta(days=2), NOW)]
    )
    user = await add_user(store, "ann", hash_password(PASSWORD), is_admin=False, now=NOW - timedelta(days=30))
    await grant(store, "ann", "shop", "owner")
    _, api_key = await create_api_key(store, "shop", "ci", now=NOW)
    link, token = await SharedLinks(store, settings.secret_keys).create(
        "shop", label="board", expires_at=None, password=None, now=NOW
    )
    return {"user": user, "api_key": api_key, "link": link, "token": token}


def login(client: httpx.Client) -> httpx.Response:
    form = client.get("/login")
    assert form.status_code == 200, form.text
    field = form.text.split('name="login_csrf"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    return client.post("/login", data={"name": "ann", "password": PASSWORD, "login_csrf": field, "next": ""})


@pytest.fixture
def filled(tmp_path: Path) -> dict[str, Any]:
    """A SQLite gateway after a few days: storage rows, plus a failed and a good login through the real app."""
    source = tmp_path / "gateway.sqlite3"
    settings = gateway_settings(source)
    found = run(on_store(Database(source), lambda store: fill(store, settings)))
    with LiveServer(create_app(settings, clock=FixedClock(NOW))) as server:
        with httpx.Client(base_url=server.url, timeout=30, follow_redirects=False) as client:
            form = client.get("/login")
            wrong = form.text.split('name="login_csrf"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
            refused = client.post("/login", data={"name": "ann", "password": "wrong", "login_csrf": wrong, "next": ""})
            assert refused.status_code == 401
            assert login(client).status_code == 303
            found["cookie"] = client.cookies[SESSION_COOKIE]
    return {**found, "source": source, "settings": settings}


def cli(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> int:
    """The real command line. The test cluster's variables are CONSENT_GATEWAY_* too, and settings would
    take them for unknown settings: the command runs without them, as it would for an operator."""
    monkeypatch.delenv(ADMIN_URL_ENV, raising=False)
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    return main(argv)


def sqlite_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as connection:
        return [tuple(row) for row in connection.execute(sql)]


def postgres_rows(url: PostgresUrl, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url.url) as connection:
        return [tuple(row) for row in connection.execute(sql)]


COPIED = [plan.table for plan in PLAN if plan.mode in ("copy", "upsert")]
#: Tables compared row by row (the rest by count and a sample).
WHOLE = ("users", "site_roles", "sessions", "login_attempts", "api_keys", "shared_links", "consent_records")
WHOLE += ("banner_impressions", "cookie_report", "salts", "rollup_generations", "rollup_dirty", "outbox")


# The tests.


def test_everything_is_copied_with_its_ids_and_the_dashboards_agree(
    monkeypatch: pytest.MonkeyPatch,
    filled: dict[str, Any],
    postgres_url: PostgresUrl,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = filled["source"]
    status = cli(
        monkeypatch,
        ["migrate-store", "--config", str(config_file(tmp_path)), "--from", str(source), "--to", postgres_url.url],
    )
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "  events: " in out and "copied " in out, out

    for table in COPIED:
        (count,) = sqlite_rows(source, f"SELECT count(*) FROM {table}")[0]  # noqa: S608 - names from PLAN
        assert postgres_rows(postgres_url, f"SELECT count(*) FROM {table}")[0][0] == count, table  # noqa: S608
        assert f"  {table}: {count:,} rows in " in out
    assert sqlite_rows(source, "SELECT count(*) FROM login_attempts")[0][0] > 0  # the failed login was counted
    for table in WHOLE:
        columns = ", ".join(row[1] for row in sqlite_rows(source, f"PRAGMA table_info({table})"))
        order = ", ".join(str(n + 1) for n in range(len(columns.split(", "))))
        query = f"SELECT {columns} FROM {table} ORDER BY {order}"  # noqa: S608 - names from the schema
        assert postgres_rows(postgres_url, query) == sqlite_rows(source, query), table
    for table, key in (("events", "id"), ("visits", "id"), ("rollups", "site_id, day, dimension, value")):
        query = f"SELECT * FROM {table} ORDER BY {key} LIMIT 40"  # noqa: S608 - our own names
        assert postgres_rows(postgres_url, query) == sqlite_rows(source, query), table
    assert "figures agree on both stores" in out and status == 0, out


def test_the_gateway_runs_on_the_copy_sessions_logins_links_and_fresh_ids(
    filled: dict[str, Any], postgres_url: PostgresUrl
) -> None:
    copy_store(filled["source"], postgres_url)
    settings = gateway_settings(postgres_url)
    clock = FixedClock(NOW + timedelta(minutes=5))
    with LiveServer(create_app(settings, clock=clock)) as server:
        with httpx.Client(base_url=server.url, timeout=30, follow_redirects=False) as client:
            client.cookies.set(SESSION_COOKIE, filled["cookie"])
            listing = client.get("/dashboard")  # the session made on SQLite is still open
            assert listing.status_code == 200 and "/dashboard/shop" in listing.text
        with httpx.Client(base_url=server.url, timeout=30, follow_redirects=False) as client:
            assert login(client).status_code == 303  # the password hash came along
            overview = client.get("/dashboard/shop")

    highest = {
        table: sqlite_rows(filled["source"], f"SELECT max({key}) FROM {table}")[0][0]  # noqa: S608 - our own names
        for table, key in (("users", "id"), ("api_keys", "id"), ("consent_records", "seq"), ("events", "id"))
    }

    async def new_rows(store: Store) -> dict[str, int]:
        assert await verify_api_key(store, filled["api_key"], now=NOW) is not None
        user = await add_user(store, "bob", hash_password("another password!"), is_admin=False, now=NOW)
        key, _ = await create_api_key(store, "shop", "new", now=NOW)
        await append_record(store, _consent("c-new", "shop", "accept_all", 0))
        await write_events(store, [anonymous_event(NOW, "new-visitor", "/new")], (), now=NOW)
        seq = await store.fetch_all("SELECT max(seq) FROM consent_records")
        event = await store.fetch_all("SELECT max(id) FROM events")
        return {"users": user, "api_keys": key.id, "consent_records": seq[0][0], "events": event[0][0]}

    async def link_opens(store: Store) -> bool:
        return await SharedLinks(store, settings.secret_keys).open(filled["token"], now=NOW) is not None

    assert run(on_store(open_store_for(postgres_url), link_opens))
    fresh = run(on_store(open_store_for(postgres_url), new_rows))
    for table, value in fresh.items():
        assert value == highest[table] + 1, table  # the sequences continue after the copied ids
    assert overview.status_code == 200 and "/pricing" in overview.text, overview.text[-500:]


def open_store_for(url: PostgresUrl) -> Store:
    from gateway.storage.postgres import PostgresStore

    return PostgresStore(url)


def test_the_figures_compared_cover_every_site_and_agree_at_the_data_s_time(
    filled: dict[str, Any], postgres_url: PostgresUrl
) -> None:
    copy_store(filled["source"], postgres_url)
    settings = filled["settings"]

    async def compare() -> Any:
        sqlite = await Database(filled["source"]).open()
        postgres = await open_store_for(postgres_url).open()
        try:
            return await compare_dashboards(sqlite, postgres, FixedClock(NOW), settings.sites)
        finally:
            await postgres.close()
            await sqlite.close()

    report = run(compare())
    assert report.sites == ("blog", "shop")
    assert report.figures >= 2 * 10  # ten figures a period, the last 30 days at least, both sites
    assert not report.differences, "\n".join(difference.describe() for difference in report.differences)


def test_a_target_that_holds_data_is_refused_and_left_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
    filled: dict[str, Any],
    postgres_url: PostgresUrl,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    copy_store(filled["source"], postgres_url)
    before = postgres_rows(postgres_url, "SELECT count(*) FROM events")
    argv = ["migrate-store", "--config", str(config_file(tmp_path)), "--from", str(filled["source"])]
    assert cli(monkeypatch, [*argv, "--to", postgres_url.url]) == 2
    error = capsys.readouterr().err
    assert "already holds data" in error and error.count("\n") == 1, error
    assert postgres_rows(postgres_url, "SELECT count(*) FROM events") == before


def test_a_table_it_does_not_know_stops_the_copy_before_anything_is_written(
    filled: dict[str, Any], postgres_url: PostgresUrl
) -> None:
    with closing(sqlite3.connect(filled["source"])) as connection:
        connection.execute("CREATE TABLE mystery (id INTEGER PRIMARY KEY)")
        connection.commit()
    with pytest.raises(Exception, match="mystery"):
        copy_store(filled["source"], postgres_url)
    assert postgres_rows(postgres_url, "SELECT count(*) FROM users") == [(0,)]


def test_an_unreachable_server_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, filled: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://gateway:s3cret-pass@127.0.0.1:{port}/gateway"
    status = cli(monkeypatch, ["migrate-store", "--from", str(filled["source"]), "--to", url])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.count("\n") == 1 and "s3cret-pass" not in captured.err + captured.out, captured.err
    assert "cannot be reached" in captured.err and "Traceback" not in captured.err


def test_a_missing_source_is_refused_without_creating_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.sqlite3"
    assert (
        cli(monkeypatch, ["migrate-store", "--from", str(missing), "--to", "postgresql://gateway@127.0.0.1:1/gateway"])
        == 2
    )
    assert "does not exist" in capsys.readouterr().err and not missing.exists()
