"""The proof-of-consent log on both stores (a real SQLite file, a real PostgreSQL database): append-only,
erasable, never half-written."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import psycopg
import pytest

from gateway.consent.records import ConsentRecord
from gateway.storage.consent_log import _INSERT, _parameters, append_record, erase_records, records_for
from gateway.storage.sql import Connection
from gateway.storage.store import Store
from tests.stores import database_location, open_test_store

T = TypeVar("T")
RECORDED = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
BANNER = "a" * 64
#: What a refused statement raises on either store (the trigger's error, a NOT NULL column).
INTEGRITY_ERRORS = (sqlite3.IntegrityError, psycopg.IntegrityError)


def make_record(**overrides: Any) -> ConsentRecord:
    values: dict[str, Any] = {
        "consent_id": "visitor-a",
        "site_id": "shop",
        "recorded_at": RECORDED,
        "method": "custom",
        "policy_revision": 1,
        "banner_hash": BANNER,
        "categories": {"functional": True, "analytics": False, "advertising": False},
        "services": {"hotjar": False},
        "gpc": False,
        "language": "de-CH",
        "page_path": "/checkout",
        "ip_network": "203.0.113.0/24",
        "ua_family": "Firefox",
        "expires_at": RECORDED + timedelta(days=182),
    }
    values.update(overrides)
    return ConsentRecord(**values)


@asynccontextmanager
async def opened(path: Path) -> AsyncIterator[Store]:
    db = await open_test_store(path).open()
    try:
        yield db
    finally:
        await db.close()


def with_db(path: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        async with opened(path) as db:
            return await work(db)

    return asyncio.run(run())


async def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every stored record as stored, read through a store of its own (another connection)."""
    async with opened(path) as db:
        found = await db.fetch_all("SELECT * FROM consent_records ORDER BY seq")
    return [dict(zip(row.keys(), row, strict=True)) for row in found]


def rows(path: Path) -> list[dict[str, Any]]:
    return asyncio.run(read_rows(path))


def update(path: Path, change: str) -> int:
    """Run ``UPDATE consent_records SET <change>`` in a write transaction of its own; the rows it changed."""
    statement = f"UPDATE consent_records SET {change}"  # noqa: S608 - fixed test text
    return with_db(path, lambda db: db.write(lambda connection: connection.execute(statement).rowcount))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "log.sqlite3"
    database_location(path)  # on PostgreSQL, its database is created now, outside any event loop
    return path


def test_appended_records_read_back_unchanged_in_order(db_path: Path) -> None:
    first = make_record()
    second = make_record(method="withdraw", recorded_at=RECORDED + timedelta(days=3), categories={}, services={})
    elsewhere = make_record(site_id="blog", method="accept_all", gpc=True, language=None, page_path=None)
    stranger = make_record(consent_id="visitor-b")

    async def work(db: Store) -> tuple[list[ConsentRecord], ...]:
        for record in (first, elsewhere, second, stranger):
            await append_record(db, record)
        return (
            await records_for(db, "visitor-a"),
            await records_for(db, "visitor-a", "shop"),
            await records_for(db, "visitor-a", "blog"),
            await records_for(db, "nobody"),
        )

    everything, shop, blog, nobody = with_db(db_path, work)
    assert everything == [first, elsewhere, second]
    assert shop == [first, second]
    assert blog == [elsewhere]
    assert nobody == []


def test_a_record_is_committed_when_append_returns(db_path: Path) -> None:
    async def work(db: Store) -> list[dict[str, Any]]:
        await append_record(db, make_record())
        return await read_rows(db_path)  # another connection, while ours is still open

    [row] = with_db(db_path, work)
    assert row["consent_id"] == "visitor-a"
    assert json.loads(row["categories"]) == {"functional": True, "analytics": False, "advertising": False}
    assert row["recorded_at"] == "2026-03-10T09:30:00+00:00"


# What erase_records writes for make_record(): a new id, the start of each day, nothing personal.
_ERASURE = (
    "consent_id = 'erased-1', erased = 1, recorded_at = '2026-03-10T00:00:00+00:00', "
    "expires_at = '2026-09-08T00:00:00+00:00', language = NULL, page_path = NULL, ip_network = NULL, "
    "ua_family = NULL, country = NULL, device = NULL"
)


def test_the_tombstone_update_itself_passes_the_trigger(db_path: Path) -> None:
    with_db(db_path, lambda db: append_record(db, make_record(country="FR", device="mobile")))
    assert update(db_path, _ERASURE) == 1
    [row] = rows(db_path)
    assert (row["erased"], row["recorded_at"]) == (1, "2026-03-10T00:00:00+00:00")


def test_an_erased_record_keeps_the_start_of_its_day_in_the_sites_time_zone(db_path: Path) -> None:
    late = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)  # already the 11th in Paris, still the 10th in New York
    records = [make_record(recorded_at=late), make_record(site_id="blog", recorded_at=late, expires_at=None)]
    zones = {"shop": ZoneInfo("Europe/Paris"), "blog": ZoneInfo("America/New_York")}

    async def work(db: Store) -> None:
        for record in records:
            await append_record(db, record)
        assert await erase_records(db, "visitor-a", now=late, zones=zones) == 2

    with_db(db_path, work)
    shop, blog, tombstone = rows(db_path)
    assert shop["recorded_at"] == "2026-03-10T23:00:00+00:00"  # 11 March 00:00 in Paris
    assert blog["recorded_at"] == "2026-03-10T04:00:00+00:00"  # 10 March 00:00 in New York
    assert blog["expires_at"] is None
    assert (tombstone["site_id"], tombstone["recorded_at"]) == ("blog", "2026-03-10T04:00:00+00:00")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param("categories = '{\"analytics\": true}'", id="the choices cannot change"),
        pytest.param("services = '{\"hotjar\": true}'", id="the service choices cannot change"),
        pytest.param("method = 'accept_all'", id="the method cannot change"),
        pytest.param("recorded_at = '2020-01-01T00:00:00+00:00'", id="the time cannot change"),
        pytest.param("policy_revision = 7", id="the policy revision cannot change"),
        pytest.param("banner_hash = 'forged'", id="the banner hash cannot change"),
        pytest.param("gpc = 1", id="the GPC flag cannot change"),
        pytest.param("site_id = 'blog'", id="the site cannot change"),
        pytest.param("consent_id = 'visitor-b'", id="the record cannot move to another visitor"),
        pytest.param("language = 'fr'", id="the language cannot change"),
        pytest.param("page_path = NULL", id="personal parts cannot be blanked without erasing"),
        pytest.param("erased = 1", id="erasing without blanking is refused"),
        pytest.param(
            "erased = 1, language = NULL, page_path = NULL, ip_network = NULL, ua_family = NULL, method = 'reject_all'",
            id="an erasure cannot change the decision",
        ),
        pytest.param(
            "erased = 1, language = NULL, page_path = NULL, ip_network = NULL, ua_family = NULL, expires_at = NULL",
            id="an erasure cannot change when the consent ends",
        ),
        # One assignment per column: PostgreSQL refuses a column set twice, SQLite keeps the last.
        pytest.param(_ERASURE.replace("country = NULL", "country = 'FR'"), id="an erasure cannot keep the country"),
        pytest.param(_ERASURE.replace("device = NULL", "device = 'mobile'"), id="an erasure cannot keep the device"),
        pytest.param(_ERASURE.replace("consent_id = 'erased-1'", "consent_id = consent_id"), id="an erasure unlinks"),
        pytest.param(
            _ERASURE.replace("T00:00:00+00:00', expires", "T09:29:59+00:00', expires"),
            id="an erasure cannot keep a time to the second",
        ),
        pytest.param(
            _ERASURE.replace("2026-03-10T00:00:00+00:00", "2026-03-09T00:00:00+00:00"),
            id="an erasure cannot move the record to another day",
        ),
        pytest.param(
            _ERASURE.replace("2026-09-08T00:00:00+00:00", "2026-09-08T09:29:59+00:00"),
            id="an erasure cannot keep the end to the second",
        ),
    ],
)
def test_records_cannot_be_updated(db_path: Path, change: str) -> None:
    with_db(db_path, lambda db: append_record(db, make_record()))
    before = rows(db_path)
    with pytest.raises(INTEGRITY_ERRORS, match="consent_records is append-only"):
        update(db_path, change)
    assert rows(db_path) == before


def test_an_erased_record_cannot_be_unerased(db_path: Path) -> None:
    with_db(db_path, lambda db: append_record(db, make_record()))
    with_db(db_path, lambda db: erase_records(db, "visitor-a", now=RECORDED + timedelta(days=30)))
    before = rows(db_path)
    with pytest.raises(INTEGRITY_ERRORS, match="append-only"):
        update(db_path, "erased = 0, consent_id = 'visitor-a'")
    assert rows(db_path) == before


def test_erasure_blanks_unlinks_and_leaves_a_tombstone(db_path: Path) -> None:
    erased_at = RECORDED + timedelta(days=40)
    decisions = [make_record(), make_record(method="withdraw", categories={}, recorded_at=RECORDED + timedelta(1))]
    bystander = make_record(consent_id="visitor-b", language="en")

    async def work(db: Store) -> tuple[int, list[ConsentRecord], list[ConsentRecord]]:
        for record in (*decisions, bystander):
            await append_record(db, record)
        count = await erase_records(db, "visitor-a", now=erased_at)
        return count, await records_for(db, "visitor-a"), await records_for(db, "visitor-b")

    count, left, others = with_db(db_path, work)
    assert count == 2
    assert left == []  # the old id leads nowhere
    assert others == [bystander]
    erased = [row for row in rows(db_path) if row["erased"]]
    assert [row["method"] for row in erased] == ["custom", "withdraw", "erase"]
    new_ids = {row["consent_id"] for row in erased}
    assert len(new_ids) == 3 and all(new_id.startswith("erased-") for new_id in new_ids)  # not linked to each other
    for row, original in zip(erased, decisions, strict=False):
        personal = ("language", "page_path", "ip_network", "ua_family", "country", "device")
        assert [row[column] for column in personal] == [None] * 6
        assert json.loads(row["categories"]) == dict(original.categories)  # the anonymous decision stays
        assert row["recorded_at"] == f"{original.recorded_at.date()}T00:00:00+00:00"  # the day, not the instant
        assert row["expires_at"] == "2026-09-08T00:00:00+00:00"  # RECORDED + 182 days, to the day
    tombstone = erased[-1]
    assert tombstone["recorded_at"] == "2026-04-19T00:00:00+00:00"
    assert (tombstone["site_id"], tombstone["policy_revision"], tombstone["banner_hash"]) == ("shop", 1, BANNER)
    assert json.loads(tombstone["categories"]) == {}


def test_each_erasure_gets_its_own_unlinkable_id(db_path: Path) -> None:
    async def work(db: Store) -> None:
        await append_record(db, make_record(consent_id="visitor-a"))
        await append_record(db, make_record(consent_id="visitor-b"))
        assert await erase_records(db, "visitor-a", now=RECORDED) == 1
        assert await erase_records(db, "visitor-b", now=RECORDED) == 1

    with_db(db_path, work)
    ids = {row["consent_id"] for row in rows(db_path)}
    assert len(ids) == 4 and not ids & {"visitor-a", "visitor-b"}  # two records, two tombstones


@pytest.mark.parametrize(
    "consent_id",
    [
        pytest.param("nobody", id="an unknown id"),
        pytest.param("visitor-a", id="an id erased before"),
        pytest.param("%", id="a LIKE wildcard matches nothing"),
        pytest.param("' OR '1'='1", id="sql in the id matches nothing"),
    ],
)
def test_erasing_what_is_not_there_writes_nothing(db_path: Path, consent_id: str) -> None:
    async def setup(db: Store) -> None:
        await append_record(db, make_record())
        await append_record(db, make_record(consent_id="visitor-b"))
        await erase_records(db, "visitor-a", now=RECORDED)

    with_db(db_path, setup)
    before = rows(db_path)
    assert with_db(db_path, lambda db: erase_records(db, consent_id, now=RECORDED + timedelta(days=1))) == 0
    assert rows(db_path) == before


def test_a_failed_transaction_leaves_nothing_half_written(db_path: Path) -> None:
    class Interrupted(Exception):
        pass

    async def work(db: Store) -> list[ConsentRecord]:
        def interrupted(connection: Connection) -> None:
            connection.execute(_INSERT, _parameters(make_record(consent_id="half")))
            connection.execute(_INSERT, _parameters(make_record(consent_id="half", method="withdraw")))
            raise Interrupted

        with pytest.raises(Interrupted):
            await db.write(interrupted)
        await append_record(db, make_record())  # the writer is usable again afterwards
        return await records_for(db, "half")

    assert with_db(db_path, work) == []
    assert [row["consent_id"] for row in rows(db_path)] == ["visitor-a"]


def test_a_failing_statement_rolls_back_the_batch(db_path: Path) -> None:
    async def work(db: Store) -> None:
        with pytest.raises(INTEGRITY_ERRORS):
            await db.execute_many(
                [
                    (_INSERT, _parameters(make_record(consent_id="first"))),
                    (_INSERT, _parameters(replace(make_record(), banner_hash=None))),  # type: ignore[arg-type]
                ]
            )

    with_db(db_path, work)
    assert rows(db_path) == []


def test_migrations_apply_once_when_the_file_is_reopened(db_path: Path) -> None:
    with_db(db_path, lambda db: append_record(db, make_record()))
    with_db(db_path, lambda db: append_record(db, make_record(consent_id="visitor-b")))
    assert [row["consent_id"] for row in rows(db_path)] == ["visitor-a", "visitor-b"]
    applied = [row[0] for row in with_db(db_path, lambda db: db.fetch_all("SELECT number FROM schema_migrations"))]
    assert applied == sorted(set(applied))
