"""The consent log as evidence on both stores: stored policy revisions, and the streamed CSV/JSON export.

Real SQLite files and real PostgreSQL databases; the banner texts come from the real ``policy_revision``.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import sqlite3
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from gateway.consent.export import (
    CSV_COLUMNS,
    MAX_DAYS,
    NO_REVISION_NOTE,
    ExportError,
    ExportRequest,
    export_consent_log,
    parse_export,
    safe_cell,
)
from gateway.consent.records import ConsentRecord, banner_fingerprint, policy_revision
from gateway.cookies.catalog import CookieCatalog
from gateway.settings import SiteSettings
from gateway.storage.consent_log import _INSERT, _parameters, append_record, erase_records
from gateway.storage.store import Store
from tests.conftest import make_settings, site_config

T = TypeVar("T")
DAY = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
INTEGRITY_ERRORS = (sqlite3.IntegrityError, psycopg.IntegrityError)


@pytest.fixture
def site(tmp_path: Path) -> SiteSettings:
    return make_settings(tmp_path, site=site_config(timezone="Europe/Paris")).sites["shop"]


def on(store: Store, work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        db = await store.open()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def record(consent_id: str, at: datetime, **overrides: Any) -> ConsentRecord:
    values: dict[str, Any] = {
        "consent_id": consent_id,
        "site_id": "shop",
        "recorded_at": at,
        "method": "custom",
        "policy_revision": 1,
        "banner_hash": "b" * 64,
        "categories": {"functional": True, "analytics": False, "advertising": False},
        "services": {"hotjar": False},
        "gpc": False,
        "language": "fr",
        "page_path": "/checkout",
        "ip_network": "203.0.113.0/24",
        "ua_family": "Firefox",
        "expires_at": at + timedelta(days=182),
        "country": "FR",
        "device": "desktop",
    }
    values.update(overrides)
    return ConsentRecord(**values)


async def collect(db: Store, request: ExportRequest, **options: Any) -> str:
    return "".join([chunk async for chunk in export_consent_log(db, request, **options)])


# --- parsing what is asked -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "fmt", "revisions", "error"),
    [
        (None, "2026-03-10", None, False, "'from' is required"),
        ("2026-03-10", "", None, False, "'to' is required"),
        ("10/03/2026", "2026-03-10", None, False, "'from' is not a day as YYYY-MM-DD"),
        ("20260310", "2026-03-10", None, False, "'from' is not a day as YYYY-MM-DD"),
        ("2026-02-30", "2026-03-10", None, False, "'from' is not a day of the calendar"),
        ("２０２６-03-10", "2026-03-10", None, False, "not a day as YYYY-MM-DD"),
        ("2026-03-10", "2026-03-09", None, False, "'to' (2026-03-09) is before 'from' (2026-03-10)"),
        ("2025-01-01", "2026-03-10", None, False, f"at most {MAX_DAYS} days"),
        ("0001-01-01", "0001-01-02", None, False, "too close to the ends of the calendar"),
        ("2026-03-01", "2026-03-10", "xlsx", False, "the format is csv or json"),
        ("2026-03-01", "2026-03-10", "<script>", False, "the format is csv or json, found '<script>'"),
        ("2026-03-01", "2026-03-10", "csv", True, "JSON export only"),
    ],
)
def test_a_bad_request_is_refused_with_one_clear_line(
    site: SiteSettings, first: str | None, last: str | None, fmt: str | None, revisions: bool, error: str
) -> None:
    with pytest.raises(ExportError, match=r".*") as refused:
        parse_export(site, first, last, fmt, revisions=revisions)
    assert error in str(refused.value) and "\n" not in str(refused.value)


def test_the_days_are_the_site_s_and_both_are_included(site: SiteSettings) -> None:
    asked = parse_export(site, "2026-03-10", "2026-03-10")
    assert asked.format == "csv" and not asked.revisions
    assert asked.start == datetime(2026, 3, 9, 23, 0, tzinfo=UTC)  # midnight in Paris (UTC+1 in March)
    assert asked.end == datetime(2026, 3, 10, 23, 0, tzinfo=UTC)
    assert asked.filename == "consent-log-shop-2026-03-10-2026-03-10.csv"
    longest = parse_export(site, "2026-01-01", (date(2026, 1, 1) + timedelta(days=MAX_DAYS - 1)).isoformat(), "json")
    assert longest.format == "json"


@pytest.mark.parametrize("value", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_a_cell_a_spreadsheet_would_run_is_prefixed(value: str) -> None:
    assert safe_cell(value) == "'" + value
    assert safe_cell("/checkout") == "/checkout" and safe_cell(3) == 3


# --- stored revisions ------------------------------------------------------------------------------


def test_a_revision_is_stored_once_and_proves_the_hash(
    store: Store, site: SiteSettings, catalog: CookieCatalog
) -> None:
    shown = {"title": "Cookies?", "accept_all": "Oui"}
    revision = policy_revision(site, catalog, "fr", shown)
    assert revision.content_hash == banner_fingerprint(site, catalog, "fr", shown)  # the hash records already hold
    assert hashlib.sha256(revision.content.encode()).hexdigest() == revision.content_hash
    first = record("a", DAY, banner_hash=revision.content_hash)
    second = record("b", DAY + timedelta(minutes=1), banner_hash=revision.content_hash)

    async def work(db: Store) -> list[Any]:
        await append_record(db, first, revision)
        await asyncio.gather(*(append_record(db, replace(second, consent_id=f"b{n}"), revision) for n in range(5)))
        return [
            await db.fetch_all("SELECT content_hash, site_id, revision, language, content FROM policy_revisions"),
            await db.fetch_all("SELECT DISTINCT revision_hash FROM consent_records"),
        ]

    revisions, pointers = on(store, work)
    assert [tuple(row) for row in revisions] == [(revision.content_hash, "shop", 1, "fr", revision.content)]
    assert [row[0] for row in pointers] == [revision.content_hash]
    assert json.loads(revisions[0][4])["texts"] == shown


def test_the_pointer_and_the_revision_cannot_be_changed(
    store: Store, site: SiteSettings, catalog: CookieCatalog
) -> None:
    revision = policy_revision(site, catalog, "en", {"title": "Cookies"})

    async def work(db: Store) -> list[str]:
        await append_record(db, record("a", DAY, banner_hash=revision.content_hash), revision)
        refused = []
        for statement in (
            "UPDATE consent_records SET revision_hash = NULL",
            "UPDATE policy_revisions SET content = '{}'",
        ):
            try:
                await db.write(lambda connection, sql=statement: connection.execute(sql))
            except INTEGRITY_ERRORS as error:
                refused.append(str(error))
        # An erasure is still the one change allowed, and its tombstone keeps the pointer.
        assert await erase_records(db, "a", now=DAY + timedelta(days=1)) == 1
        rows = await db.fetch_all("SELECT revision_hash, erased FROM consent_records ORDER BY seq")
        assert [(row[0], row[1]) for row in rows] == [(revision.content_hash, 1)] * 2
        return refused

    refused = on(store, work)
    assert len(refused) == 2
    assert "append-only" in refused[0] and "immutable" in refused[1]


# --- the export ------------------------------------------------------------------------------------


def _fill(db: Store, site: SiteSettings, catalog: CookieCatalog) -> Awaitable[None]:
    revision = policy_revision(site, catalog, "fr", {"title": "Cookies ?"})

    async def fill() -> None:
        # Before the range (23:30 in Paris the day before), an old record (no revision), hostile values,
        # another site's record, the last instant of the range, and the first after it.
        await append_record(db, record("early", datetime(2026, 3, 9, 22, 30, tzinfo=UTC)))
        await append_record(db, record("old", datetime(2026, 3, 9, 23, 0, tzinfo=UTC), method="accept_all"))
        hostile = record(
            "=cmd|' /C calc'!A0",
            DAY,
            language="+fr",
            ua_family="@Firefox",
            page_path="/<script>alert(1)</script>",
            services={"=x": True},
            banner_hash=revision.content_hash,
        )
        await append_record(db, hostile, revision)
        await append_record(db, record("blog-visitor", DAY, site_id="blog"))
        last = datetime(2026, 3, 10, 22, 59, 59, 999999, tzinfo=UTC)
        await append_record(db, record("late", last, banner_hash=revision.content_hash), revision)
        await append_record(db, record("after", datetime(2026, 3, 10, 23, 0, tzinfo=UTC)))

    return fill()


def test_the_csv_holds_the_site_s_records_of_the_range_with_formulas_defused(
    store: Store, site: SiteSettings, catalog: CookieCatalog
) -> None:
    asked = parse_export(site, "2026-03-10", "2026-03-10", "csv")

    async def work(db: Store) -> str:
        await _fill(db, site, catalog)
        return await collect(db, asked, page_size=2)  # several pages

    text = on(store, work)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [row["consent_id"] for row in rows] == ["old", "'=cmd|' /C calc'!A0", "late"]
    old, hostile, late = rows
    assert old["revision"] == "" and old["method"] == "accept_all" and old["functional"] == "true"
    assert old["analytics"] == "false" and old["gpc"] == "false" and old["erased"] == "false"
    assert hostile["language"] == "'+fr" and hostile["ua_family"] == "'@Firefox"
    assert hostile["page_path"] == "/<script>alert(1)</script>"  # data, not markup: a CSV is not rendered
    assert hostile["services"] == '{"=x": true}' and hostile["revision"] == hostile["banner_hash"]
    assert late["recorded_at"] == "2026-03-10T22:59:59.999999+00:00"
    assert text.endswith("\r\n") and text.count("\r\n") == 4


def test_the_json_is_one_object_with_the_revisions_when_asked(
    store: Store, site: SiteSettings, catalog: CookieCatalog
) -> None:
    plain = parse_export(site, "2026-03-10", "2026-03-10", "json")
    with_revisions = parse_export(site, "2026-03-10", "2026-03-10", "json", revisions=True)

    async def work(db: Store) -> tuple[str, str, str]:
        await _fill(db, site, catalog)
        empty = parse_export(site, "2026-01-01", "2026-01-02", "json", revisions=True)
        return await collect(db, plain), await collect(db, with_revisions, page_size=1), await collect(db, empty)

    plain_text, revisions_text, empty_text = on(store, work)
    exported = json.loads(plain_text)
    assert exported["site"] == "shop" and exported["from"] == exported["to"] == "2026-03-10"
    assert exported["timezone"] == "Europe/Paris" and exported["note"] == NO_REVISION_NOTE
    assert [r["consent_id"] for r in exported["records"]] == ["old", "=cmd|' /C calc'!A0", "late"]  # JSON: as stored
    assert exported["records"][0]["revision"] is None and "revisions" not in exported
    full = json.loads(revisions_text)
    assert full["records"] == exported["records"]
    (content_hash, revision), *others = full["revisions"].items()
    assert not others and content_hash == exported["records"][2]["revision"] == exported["records"][2]["banner_hash"]
    assert hashlib.sha256(revision["content"].encode()).hexdigest() == content_hash
    assert revision["shown"]["texts"] == {"title": "Cookies ?"} and revision["language"] == "fr"
    assert json.loads(empty_text)["records"] == [] and json.loads(empty_text)["revisions"] == {}


def test_the_export_streams_page_by_page(store: Store, site: SiteSettings) -> None:
    """A record written after the first page was sent is in the export: the last page is read after it."""
    asked = parse_export(site, "2026-03-10", "2026-03-10", "json")

    async def work(db: Store) -> list[str]:
        for number in range(5):
            await append_record(db, record(f"v{number}", DAY + timedelta(seconds=number)))
        chunks = []
        async for chunk in export_consent_log(db, asked, page_size=2):
            chunks.append(chunk)
            if len(chunks) == 2:  # the head and the first page are out
                await append_record(db, record("written-meanwhile", DAY + timedelta(minutes=5)))
        return chunks

    chunks = on(store, work)
    assert len(chunks) == 5  # head, three pages, end
    ids = [r["consent_id"] for r in json.loads("".join(chunks))["records"]]
    assert ids == ["v0", "v1", "v2", "v3", "v4", "written-meanwhile"]


#: Records of a small day and of a day four times larger: many pages of the export's 2,000 rows each, few
#: enough to keep the suite quick (tracemalloc slows every allocation).
SMALL, LARGE = 10_000, 40_000


def test_the_exports_memory_does_not_grow_with_the_records(store: Store, site: SiteSettings) -> None:
    """Streamed: exporting four times the records peaks at about the same memory, far below holding them."""
    one = _parameters(record("visitor", DAY))
    next_day = (DAY + timedelta(days=1)).isoformat()
    rows = [(f"visitor-{n:06d}", *one[1:]) for n in range(SMALL)]
    rows += [(f"visitor-{n:06d}", one[1], next_day, *one[3:]) for n in range(SMALL, SMALL + LARGE)]
    assert _INSERT.count("?") == len(one) and one[2] == DAY.isoformat()  # the time is the third value

    async def work(db: Store) -> list[tuple[int, int, int]]:
        await db.write(lambda connection: connection.executemany(_INSERT, rows))
        rows.clear()
        measured = []
        for day in ("2026-03-10", "2026-03-11"):
            tracemalloc.start()
            try:
                size = lines = 0
                async for chunk in export_consent_log(db, parse_export(site, day, day, "csv")):
                    size += len(chunk)
                    lines += chunk.count("\r\n")
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            measured.append((size, lines, peak))
        return measured

    (small_size, small_lines, small_peak), (size, lines, peak) = on(store, work)
    assert (small_lines, lines) == (SMALL + 1, LARGE + 1) and size > 3 * small_size
    # What holding them would take: a tenth of the large day's records, as read, measured the same way.
    tracemalloc.start()
    try:
        held = [record(f"visitor-{n:06d}", DAY + timedelta(microseconds=n)) for n in range(LARGE // 10)]
        holding = 10 * tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(held) == LARGE // 10
    assert peak < small_peak * 1.5, f"peak {peak:,} bytes for {LARGE:,} records, {small_peak:,} for {SMALL:,}"
    assert peak < holding / 3, f"peak {peak:,} bytes; holding the records: {holding:,} bytes"
