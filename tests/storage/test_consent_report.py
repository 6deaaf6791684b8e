"""The consent report's queries on a real SQLite file, against figures counted by hand.

The fixture: seven proof records and seven impression rows on "shop", one record and one row
on "blog" (never counted for "shop"). Times are UTC unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from gateway.consent.records import ConsentRecord
from gateway.storage.consent_log import append_record, erase_records, records_for
from gateway.storage.consent_report import (
    _IMPRESSIONS,
    ConsentFigures,
    ImpressionCount,
    _cells,
    _decisions,
    add_impressions,
    consent_by,
    consent_figures,
    consent_over_time,
)
from gateway.storage.store import Store
from tests.stores import database_location, open_test_store

T = TypeVar("T")
MARCH_9, MARCH_10, MARCH_11, MARCH_12 = (datetime(2026, 3, day, tzinfo=UTC) for day in (9, 10, 11, 12))
ALL = {"functional": True, "analytics": True, "advertising": True}
NONE = {"functional": False, "analytics": False, "advertising": False}
FUNCTIONAL_ANALYTICS = {"functional": True, "analytics": True, "advertising": False}
FUNCTIONAL = {"functional": True, "analytics": False, "advertising": False}
NO_FIGURES = ConsentFigures(0, 0, 0, 0, 0, 0, 0, {"functional": 0.0, "analytics": 0.0, "advertising": 0.0})


def record(
    hour: float, method: str, categories: dict[str, bool], country: str | None, device: str | None, **more: Any
) -> ConsentRecord:
    return ConsentRecord(
        consent_id=more.pop("consent_id", f"visitor-{hour}"),
        site_id=more.pop("site_id", "shop"),
        recorded_at=MARCH_10 + timedelta(hours=hour),
        method=method,
        policy_revision=1,
        banner_hash="a" * 64,
        categories=categories,  # type: ignore[arg-type]
        services={},
        gpc=method == "gpc",
        ip_network="203.0.113.0/24",
        ua_family="Firefox",
        country=country,
        device=device,
    )


RECORDS = [
    record(8, "accept_all", ALL, "FR", "desktop"),
    record(9, "reject_all", NONE, "FR", "mobile"),
    record(10, "custom", FUNCTIONAL_ANALYTICS, "DE", "mobile"),
    record(11, "gpc", FUNCTIONAL, None, None),
    record(12, "withdraw", NONE, "FR", "desktop", consent_id="visitor-8"),
    record(13, "custom", FUNCTIONAL_ANALYTICS, "FR", "mobile", consent_id="erased-later"),
    record(24, "accept_all", ALL, "DE", "desktop"),  # 2026-03-11 00:00: the next day, not this one
    record(8, "accept_all", ALL, "FR", "desktop", site_id="blog"),
]
IMPRESSIONS = [
    ImpressionCount("shop", date(2026, 3, 9), "FR", "desktop", 100),
    ImpressionCount("shop", date(2026, 3, 10), "FR", "desktop", 4),
    ImpressionCount("shop", date(2026, 3, 10), "FR", "mobile", 3),
    ImpressionCount("shop", date(2026, 3, 10), "DE", "mobile", 2),
    ImpressionCount("shop", date(2026, 3, 10), "", "", 1),
    ImpressionCount("shop", date(2026, 3, 10), "US", "desktop", 5),  # shown, never answered
    ImpressionCount("shop", date(2026, 3, 11), "DE", "desktop", 7),
    ImpressionCount("blog", date(2026, 3, 10), "FR", "desktop", 50),
]


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.sqlite3"
    database_location(path)  # on PostgreSQL, its database is created now, outside any event loop

    async def fill(db: Store) -> None:
        for each in RECORDS:
            await append_record(db, each)
        await add_impressions(db, IMPRESSIONS)
        await erase_records(db, "erased-later", now=MARCH_10 + timedelta(hours=14))  # adds an "erase" tombstone

    with_db(path, fill)
    return path


def with_db(path: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        db = await open_test_store(path).open()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def test_one_day_counts_decisions_by_method_withdrawals_apart_and_the_opt_in_shares(database: Path) -> None:
    figures = with_db(database, lambda db: consent_figures(db, "shop", MARCH_10, MARCH_11))
    # Decisions: 8h accept_all, 9h reject_all, 10h custom, 11h gpc, 13h custom (erased: still an
    # anonymous decision). 12h is a withdrawal; the erase tombstone and 24h (next day) are not counted.
    # Functional allowed by 8h, 10h, 11h, 13h; analytics by 8h, 10h, 13h; advertising by 8h.
    assert figures == ConsentFigures(
        impressions=4 + 3 + 2 + 1 + 5,
        decisions=5,
        accept_all=1,
        reject_all=1,
        custom=2,
        gpc=1,
        withdrawals=1,
        opt_in={"functional": 4 / 5, "analytics": 3 / 5, "advertising": 1 / 5},
    )


def test_the_end_is_exclusive_and_the_start_inclusive(database: Path) -> None:
    next_day = with_db(database, lambda db: consent_figures(db, "shop", MARCH_11, MARCH_12))
    assert next_day == ConsentFigures(7, 1, 1, 0, 0, 0, 0, {"functional": 1.0, "analytics": 1.0, "advertising": 1.0})
    from_eight = with_db(
        database, lambda db: consent_figures(db, "shop", MARCH_10 + timedelta(hours=8), MARCH_10 + timedelta(hours=9))
    )
    assert (from_eight.decisions, from_eight.accept_all) == (1, 1)


def test_impressions_have_day_resolution(database: Path) -> None:
    """An hour counts its whole UTC day's impressions; a Paris day touches two UTC days."""
    ten_oclock = with_db(
        database, lambda db: consent_figures(db, "shop", MARCH_10 + timedelta(hours=10), MARCH_10 + timedelta(hours=11))
    )
    assert (ten_oclock.impressions, ten_oclock.decisions, ten_oclock.custom) == (15, 1, 1)
    paris = timezone(timedelta(hours=1))
    paris_day = with_db(
        database,
        lambda db: consent_figures(
            db, "shop", datetime(2026, 3, 10, tzinfo=paris), datetime(2026, 3, 11, tzinfo=paris)
        ),
    )
    # [09 23:00Z, 10 23:00Z): the decisions of the 10th; the impressions of the 9th and the 10th.
    assert (paris_day.impressions, paris_day.decisions) == (100 + 15, 5)


def test_an_empty_or_backward_range_has_no_figures(database: Path) -> None:
    assert with_db(database, lambda db: consent_figures(db, "shop", MARCH_12, MARCH_12)) == NO_FIGURES
    assert with_db(database, lambda db: consent_figures(db, "shop", MARCH_11, MARCH_10)) == NO_FIGURES
    assert with_db(database, lambda db: consent_figures(db, "nowhere", MARCH_9, MARCH_12)) == NO_FIGURES


def test_naive_datetimes_are_refused(database: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        with_db(database, lambda db: consent_figures(db, "shop", datetime(2026, 3, 10), MARCH_11))  # noqa: DTZ001


def test_over_time_gives_one_figure_per_bucket_in_order(database: Path) -> None:
    buckets = [("Mar 11", MARCH_11, MARCH_12), ("Mar 9", MARCH_9, MARCH_10), ("Mar 10", MARCH_10, MARCH_11)]
    over_time = with_db(database, lambda db: consent_over_time(db, "shop", buckets))
    assert [(label, figures.impressions, figures.decisions, figures.withdrawals) for label, figures in over_time] == [
        ("Mar 11", 7, 1, 0),
        ("Mar 9", 100, 0, 0),
        ("Mar 10", 15, 5, 1),
    ]
    assert with_db(database, lambda db: consent_over_time(db, "shop", [])) == []


def test_by_country_most_decisions_first_unknown_as_empty_and_impressions_without_decisions(database: Path) -> None:
    by_country = with_db(database, lambda db: consent_by(db, "shop", "country", MARCH_10, MARCH_11))
    assert by_country == [
        # 8h accept_all, 9h reject_all; the 12h withdrawal; FR desktop 4 + mobile 3.
        ("FR", ConsentFigures(7, 2, 1, 1, 0, 0, 1, {"functional": 1 / 2, "analytics": 1 / 2, "advertising": 1 / 2})),
        # 11h gpc and the erased 13h custom: an erasure keeps no country
        ("", ConsentFigures(1, 2, 0, 0, 1, 1, 0, {"functional": 1.0, "analytics": 1 / 2, "advertising": 0.0})),
        ("DE", ConsentFigures(2, 1, 0, 0, 1, 0, 0, {"functional": 1.0, "analytics": 1.0, "advertising": 0.0})),
        ("US", ConsentFigures(5, 0, 0, 0, 0, 0, 0, {"functional": 0.0, "analytics": 0.0, "advertising": 0.0})),
    ]


def test_by_device(database: Path) -> None:
    by_device = with_db(database, lambda db: consent_by(db, "shop", "device", MARCH_10, MARCH_11))
    assert [
        (device, f.impressions, f.decisions, f.accept_all, f.reject_all, f.custom, f.gpc, f.withdrawals)
        for device, f in by_device
    ] == [
        ("mobile", 3 + 2, 2, 0, 1, 1, 0, 0),  # 9h, 10h
        ("", 1, 2, 0, 0, 1, 1, 0),  # 11h and the erased 13h: an erasure keeps no device
        ("desktop", 4 + 5, 1, 1, 0, 0, 0, 1),  # 8h and the 12h withdrawal
    ]


def test_an_erasure_keeps_neither_country_nor_device_and_the_trigger_guards_that(database: Path) -> None:
    kept = with_db(database, lambda db: records_for(db, "visitor-9"))
    assert [(r.country, r.device) for r in kept] == [("FR", "mobile")]
    [erased] = with_db(
        database, lambda db: db.fetch_all("SELECT * FROM consent_records WHERE erased = 1 AND method != 'erase'")
    )
    assert (erased["country"], erased["device"]) == (None, None)  # the 13h record keeps its decision only
    erase = (
        "UPDATE consent_records SET consent_id = 'erased-9', erased = 1, language = NULL, page_path = NULL, "
        "ip_network = NULL, ua_family = NULL, recorded_at = '2026-03-10T00:00:00+00:00', expires_at = NULL"
    )

    def run(statement: str) -> int:
        return with_db(database, lambda db: db.write(lambda connection: connection.execute(statement).rowcount))

    for change in (erase + ", device = NULL", erase + ", country = NULL"):
        with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError), match="append-only"):
            run(change + " WHERE consent_id = 'visitor-9'")
    assert run(erase + ", country = NULL, device = NULL WHERE consent_id = 'visitor-9'") == 1  # the erasure passes


@pytest.mark.sqlite_only(reason="reads SQLite's query plan")
def test_the_queries_read_through_the_indexes(database: Path) -> None:
    with closing(sqlite3.connect(database)) as connection:
        categories = ("$.functional", "$.analytics", "$.advertising")
        decisions = " ".join(
            row[3]
            for row in connection.execute(
                "EXPLAIN QUERY PLAN " + _decisions("sqlite"), ("country", *categories, "shop", "a", "b")
            )
        )
        cells = " ".join(
            row[3]
            for row in connection.execute(
                "EXPLAIN QUERY PLAN " + _cells("sqlite", 2), ("d1", "a", "b", "d2", "b", "c", "", *categories, "shop")
            )
        )
        impressions = " ".join(
            row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + _IMPRESSIONS, ("country", "shop", "a", "b"))
        )
    assert "consent_records_by_site_time" in decisions
    assert "consent_records_by_site_time" in cells
    assert "PRIMARY KEY" in impressions and "day>? AND day<?" in impressions.replace("=", "")
