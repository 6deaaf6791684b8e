"""The attacker holds a copy of the database files (main, ``-wal``, ``-shm``) and nothing else (issue 10).

Traffic goes through a real uvicorn from distinct loopback addresses (127.0.0.0/8 is local on
Linux), so the gateway reads each address from ``scope["client"]`` as it would a visitor's. The
attacker then does what the issue did: guess the /24 around the true address (stored geo gives
it away) and the user agents (stored browser and OS give them away), hash every guess with every
salt found in the file, and compare with the stored visitor ids. Each attack is also run with
what the attacker must not have (the visitor key) or at a moment it must still work (before a
deletion), so a test fails if the attack succeeds and cannot pass by searching wrongly.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import create_app
from gateway.clock import FixedClock
from gateway.ingest.geo import NO_GEO, Geo
from gateway.ingest.visitor import SaltKeeper, day_key, visitor_id, visitor_key
from gateway.maintenance import Maintenance
from gateway.settings import Settings
from gateway.storage.db import Database, connect_writer, truncate_wal
from tests.conftest import SITE_ORIGIN, LiveServer, make_settings
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    # What the attacker walks away with here is SQLite's own files: their bytes (a deleted salt left in a free
    # page, the -wal and -shm beside them), secure_delete and the WAL's checkpoints. PostgreSQL keeps its
    # data in a server's cluster that a copy of the gateway's folder does not hold; what an attacker who reads
    # that database sees is searched by tests/privacy/test_nothing_personal.py on both stores.
    pytest.mark.sqlite_only(reason="reads the SQLite file, its -wal and -shm byte by byte"),
]
Start = Callable[[Any], LiveServer]

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
)
VISITORS = {f"127.0.0.{host}": USER_AGENTS[host % len(USER_AGENTS)] for host in range(2, 10)}
#: What the stored geo tells the attacker: the visitor's network. A /24 is 256 guesses per user agent.
CANDIDATE_ADDRESSES = [f"127.0.0.{host}" for host in range(256)]


class TableGeo:
    """Countries by address, so consent records get one (the MaxMind adapter has its own tests)."""

    def __init__(self, countries: dict[str, str]) -> None:
        self.countries = countries

    def lookup(self, address: str) -> Geo:
        return Geo(self.countries[address], None, None) if address in self.countries else NO_GEO

    def describe(self) -> str:
        return "table"

    def close(self) -> None:
        return None


def client_from(address: str, base_url: str, user_agent: str) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        transport=httpx.HTTPTransport(local_address=address),
        timeout=10,
        headers={"user-agent": user_agent},
    )


def pageview(base_url: str, address: str, path: str = "/") -> None:
    with client_from(address, base_url, VISITORS[address]) as http:
        page = {"s": "shop", "n": "pageview", "u": f"{SITE_ORIGIN}{path}"}
        assert http.post("/api/event", json=page).status_code == 202


def database_files(database: Path) -> dict[str, bytes]:
    """The raw bytes of the main file, its ``-wal`` and its ``-shm`` (an absent file reads empty)."""
    return {
        suffix or "main": path.read_bytes() if path.exists() else b""
        for suffix in ("", "-wal", "-shm")
        for path in [database.with_name(database.name + suffix)]
    }


def found_in(files: dict[str, bytes], needles: dict[str, bytes]) -> list[str]:
    return [f"{label} in {name}" for name, data in files.items() for label, needle in needles.items() if needle in data]


def copy_database(database: Path, folder: Path) -> Path:
    """What the attacker walks away with: the three files, copied while the gateway runs."""
    folder.mkdir()
    for suffix in ("", "-wal", "-shm"):
        source = database.with_name(database.name + suffix)
        if source.exists():
            shutil.copyfile(source, folder / (database.name + suffix))
    return folder / database.name


def read(database: Path, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(database)) as connection:
        return connection.execute(sql, parameters).fetchall()


def brute_force(stored_ids: set[str], hash_keys: list[bytes]) -> dict[str, str]:
    """Stored visitor id -> the address it was computed from, for every id a guess reproduces."""
    recovered = {}
    for hash_key in hash_keys:
        for address in CANDIDATE_ADDRESSES:
            for user_agent in USER_AGENTS:
                guess = visitor_id(hash_key, "shop", address, user_agent)
                if guess in stored_ids:
                    recovered[guess] = address
    return recovered


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, rollup_interval="10s")


def test_a_copy_of_the_database_recomputes_no_visitor_id(
    settings: Settings, clock: FixedClock, live_server: Start, tmp_path: Path
) -> None:
    server = live_server(create_app(settings, clock=clock))
    for address in VISITORS:
        pageview(server.url, address)
    stolen = copy_database(settings.database, tmp_path / "stolen")

    stored_ids = {row[0] for row in read(stolen, "SELECT DISTINCT visitor_id FROM events")}
    salts = [bytes(row[0]) for row in read(stolen, "SELECT salt FROM salts")]
    assert len(stored_ids) == len(VISITORS) and salts  # the attacker has the ids and today's salt
    # Every way to key the hash that the files offer: the salt itself (the old scheme), and the
    # day key under an empty key or under any salt found.
    guesses = [*salts, *(day_key(b"", salt) for salt in salts), *(day_key(a, b) for a in salts for b in salts)]
    assert brute_force(stored_ids, guesses) == {}

    # The same attack with the visitor key finds every visitor, at the true address: the search works.
    key = visitor_key(settings.visitor_key, settings.secret_keys)
    with_key = brute_force(stored_ids, [day_key(key, salt) for salt in salts])
    assert sorted(with_key.values()) == sorted(VISITORS)
    # And the key is nowhere in the files, in any form the gateway holds it.
    secrets_ = {"visitor key": key, "visitor key (hex)": key.hex().encode()}
    secrets_ |= {f"secret key {n}": secret.value.encode() for n, secret in enumerate(settings.secret_keys)}
    assert found_in(database_files(settings.database), secrets_) == []


def test_the_deleted_salt_leaves_no_byte_in_the_database_its_wal_or_its_shm(
    settings: Settings, live_server: Start
) -> None:
    clock = FixedClock(datetime(2026, 3, 10, 23, 50, tzinfo=UTC))
    server = live_server(create_app(settings, clock=clock))
    for address in VISITORS:
        pageview(server.url, address)
    [(old_salt,)] = read(settings.database, "SELECT salt FROM salts WHERE day = '2026-03-10'")
    needles = {"the salt": bytes(old_salt), "the salt (hex)": bytes(old_salt).hex().encode()}
    needles["the salt (HEX)"] = needles["the salt (hex)"].upper()
    assert found_in(database_files(settings.database), needles), "the search must find the salt before it goes"

    clock.current = datetime(2026, 3, 11, 0, 10, tzinfo=UTC)  # the grace period: visits begun yesterday go on
    pageview(server.url, "127.0.0.2", "/pricing")
    assert found_in(database_files(settings.database), needles)
    clock.current = datetime(2026, 3, 11, 0, 31, tzinfo=UTC)  # past midnight + 30 minutes: yesterday's salt goes
    pageview(server.url, "127.0.0.3", "/pricing")

    wait_until(
        lambda: not found_in(database_files(settings.database), needles),
        message=lambda: f"still in the files: {found_in(database_files(settings.database), needles)}",
    )
    assert read(settings.database, "SELECT day FROM salts") == [("2026-03-11",)]


@pytest.mark.parametrize("secure", [True, False], ids=["the writer's connection", "secure_delete off"])
def test_the_writer_zeroes_what_it_deletes(tmp_path: Path, secure: bool) -> None:
    """Some SQLite builds delete securely by default, others do not: the writer asks for it (control: off)."""
    path = tmp_path / f"{secure}.sqlite3"
    salt = bytes(range(200, 232))
    with closing(connect_writer(path)) as connection:
        if not secure:
            connection.execute("PRAGMA secure_delete=OFF")
        connection.execute("CREATE TABLE salts (day TEXT PRIMARY KEY, salt BLOB NOT NULL)")
        connection.executemany("INSERT INTO salts VALUES (?, ?)", [("2026-03-10", salt), ("2026-03-11", b"x" * 32)])
        assert truncate_wal(connection)
        connection.execute("DELETE FROM salts WHERE day = '2026-03-10'")
        assert truncate_wal(connection)
        left = found_in(database_files(path), {"the salt": salt})
    assert left == ([] if secure else ["the salt in main"])


def test_a_reader_holding_the_log_delays_the_scrub_only_until_the_next_maintenance_poll(
    settings: Settings,
) -> None:
    """A quiet night: no event after midnight, and a dashboard query holds a snapshot at 00:31."""
    clock = FixedClock(datetime(2026, 3, 10, 23, 50, tzinfo=UTC))
    seen: list[list[str]] = []

    async def scenario() -> None:
        database = await Database(settings.database).open()
        try:
            keeper = SaltKeeper(database, key=visitor_key(settings.visitor_key, settings.secret_keys))
            maintenance = Maintenance(database, settings, clock, keeper)
            await keeper.salts(clock.now())
            [(old_salt,)] = read(settings.database, "SELECT salt FROM salts")
            needles = {"the salt": bytes(old_salt), "the salt (hex)": bytes(old_salt).hex().encode()}
            seen.append(found_in(database_files(settings.database), needles))
            clock.current = datetime(2026, 3, 11, 0, 10, tzinfo=UTC)
            await maintenance.run_once()
            reader = sqlite3.connect(settings.database, isolation_level=None)
            try:
                reader.execute("BEGIN")
                reader.execute("SELECT count(*) FROM salts").fetchone()  # a snapshot from before the deletion
                clock.current = datetime(2026, 3, 11, 0, 31, tzinfo=UTC)
                await maintenance.run_once()  # deletes the salt; the checkpoint cannot finish yet
                seen.append([str(database.scrub_due)])
                reader.execute("COMMIT")
            finally:
                reader.close()
            clock.current += timedelta(seconds=10)  # the next poll
            await maintenance.run_once()
            seen.append([str(database.scrub_due)])
            seen.append(found_in(database_files(settings.database), needles))
        finally:
            await database.close()

    asyncio.run(scenario())
    before, busy, after_retry, left = seen
    assert before, "the search must find the salt before it goes"
    assert busy == ["True"]  # the reader kept the old frames in -wal: the scrub stayed due
    assert after_retry == ["False"]
    assert left == []


def test_an_erased_consent_record_leaves_only_a_tombstone_in_every_file(settings: Settings, live_server: Start) -> None:
    decided_at = datetime(2026, 3, 10, 9, 41, 17, 654321, tzinfo=UTC)
    erased_at = datetime(2026, 3, 12, 15, 7, 41, 246813, tzinfo=UTC)
    clock = FixedClock(decided_at)
    geo = TableGeo({"127.0.0.5": "NZ", "127.0.0.6": "FR"})
    server = live_server(create_app(settings, clock=clock, geo=geo))

    def decide(address: str, user_agent: str) -> str:
        with client_from(address, server.url, user_agent) as http:
            response = http.post("/consent", json={"site": "shop", "revision": 1, "choices": {"analytics": True}})
            assert response.status_code == 201, response.text
            return str(response.json()["token"])

    token = decide("127.0.0.5", USER_AGENTS[1])  # an iPhone in New Zealand
    clock.current = decided_at + timedelta(minutes=3)
    decide("127.0.0.6", USER_AGENTS[0])  # a bystander
    with httpx.Client(base_url=server.url, timeout=10) as http:
        consent_id = http.get("/consent", params={"site": "shop", "token": token}).json()["state"]["consent_id"]
    [(recorded_at, expires_at)] = read(
        settings.database, "SELECT recorded_at, expires_at FROM consent_records WHERE consent_id = ?", (consent_id,)
    )
    assert recorded_at == "2026-03-10T09:41:17+00:00"  # records keep the second
    assert expires_at[10:] != "T00:00:00+00:00"  # an exact instant, until the erasure
    needles = {
        "the consent id": consent_id.encode(),
        # as the record and its (site, time) index hold it
        "the exact time": b"shop" + recorded_at.encode(),
        "the exact end": expires_at.encode(),
        "the country and device": b"NZmobile",  # adjacent in the record: the last two columns
    }
    assert set(needles) == {label.split(" in ")[0] for label in found_in(database_files(settings.database), needles)}

    clock.current = erased_at
    with httpx.Client(base_url=server.url, timeout=10) as http:
        erased = http.post("/privacy", data={"site": "shop", "token": token, "action": "erase"})
    assert erased.status_code == 200 and "erased" in erased.text
    # The withdrawal the erasure appends, as a record holds it.
    needles["the time of the erasure"] = b"shop" + erased_at.replace(microsecond=0).isoformat().encode()

    wait_until(
        lambda: not found_in(database_files(settings.database), needles),
        message=lambda: f"still in the files: {found_in(database_files(settings.database), needles)}",
    )
    rows = read(
        settings.database,
        "SELECT method, recorded_at, expires_at, country, device, consent_id FROM consent_records WHERE erased = 1",
    )
    # The decision, the withdrawal and the erasure itself: each on its day, none with a time, country or device.
    assert sorted((method, recorded[:10]) for method, recorded, *_ in rows) == [
        ("custom", "2026-03-10"),
        ("erase", "2026-03-12"),
        ("withdraw", "2026-03-12"),
    ]
    for method, recorded, expires, country, device, _ in rows:
        assert recorded.endswith("T00:00:00+00:00") and (expires is None or expires.endswith("T00:00:00+00:00"))
        assert (country, device) == (None, None), method
    assert len({row[-1] for row in rows}) == 3  # three unlinked ids
    bystander = read(settings.database, "SELECT country, device FROM consent_records WHERE erased = 0")
    assert bystander == [("FR", "desktop")]  # erasing one visitor leaves the others' records whole
