"""The purge on both stores: exactly what is past each cut-off goes, to the second, and nothing else."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.consent.records import ConsentRecord
from gateway.storage.consent_log import append_record
from gateway.storage.events import insert_events
from gateway.storage.retention import PurgeCounts, purge
from tests.storage.test_rollups import event
from tests.stores import open_test_store

EVENTS_BEFORE = datetime(2025, 9, 10, 0, 0, tzinfo=UTC)
ROLLUPS_BEFORE = "2024-02-10"
CONSENT_BEFORE = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
SALTS_BEFORE = "2026-03-09"
SECOND = timedelta(seconds=1)


def consent_record(consent_id: str, *, recorded_at: datetime, expires_at: datetime | None) -> ConsentRecord:
    return ConsentRecord(
        consent_id=consent_id,
        site_id="shop",
        recorded_at=recorded_at,
        method="accept_all",
        policy_revision=1,
        banner_hash="b" * 64,
        categories={"functional": True, "analytics": True, "advertising": False},
        services={},
        gpc=False,
        expires_at=expires_at,
    )


def fill(path: Path) -> None:
    """Rows one second (or one day) either side of each cut-off, and on it, for two sites."""
    events = [
        event(EVENTS_BEFORE + offset, f"{site}-{label}", f"/{label}", site=site)
        for site in ("blog", "shop")
        for label, offset in (("before", -SECOND), ("at", timedelta()), ("after", SECOND))
    ]
    given = CONSENT_BEFORE - timedelta(days=180)
    records = [
        consent_record("ended-before", recorded_at=given, expires_at=CONSENT_BEFORE - SECOND),
        consent_record("ended-at", recorded_at=given, expires_at=CONSENT_BEFORE),
        consent_record("ended-after", recorded_at=given, expires_at=CONSENT_BEFORE + SECOND),
        consent_record("no-expiry-before", recorded_at=CONSENT_BEFORE - SECOND, expires_at=None),
        consent_record("no-expiry-after", recorded_at=CONSENT_BEFORE + SECOND, expires_at=None),
    ]  # fmt: skip

    store = open_test_store(path)  # outside the loop: a PostgreSQL run may build its template first

    async def work() -> None:
        db = await store.open()
        try:
            await db.write(lambda connection: insert_events(connection, events))
            for record in records:
                await append_record(db, record)
            rollup_days = ["2024-02-09", ROLLUPS_BEFORE, "2024-02-11"]
            salt_days = ["2026-03-07", "2026-03-08", SALTS_BEFORE, "2026-03-10"]
            await db.execute_many(
                [
                    *(
                        ("INSERT INTO rollups VALUES (?, ?, 'all', '', 1, 1, 1, 1, 1, 0)", (site, day))
                        for site in ("blog", "shop")
                        for day in rollup_days
                    ),
                    *(
                        ("INSERT INTO salts VALUES (?, ?, ?)", (day, b"s" * 32, f"{day}T00:00:00+00:00"))
                        for day in salt_days
                    ),
                    *(
                        ("INSERT INTO rollup_dirty (site_id, day) VALUES (?, ?) ON CONFLICT DO NOTHING", ("shop", day))
                        for day in ("2025-09-09", "2025-09-11")
                    ),
                ]
            )
        finally:
            await db.close()

    asyncio.run(work())


def run_purge(path: Path, **cutoffs: Any) -> PurgeCounts:
    store = open_test_store(path)

    async def work() -> PurgeCounts:
        db = await store.open()
        try:
            return await db.write(lambda connection: purge(connection, **cutoffs))
        finally:
            await db.close()

    return asyncio.run(work())


CUTOFFS: dict[str, Any] = {
    "events_before": EVENTS_BEFORE,
    "rollups_before": ROLLUPS_BEFORE,
    "consent_before": CONSENT_BEFORE,
    "salts_before": SALTS_BEFORE,
}


def remaining(path: Path, sql: str) -> list[Any]:
    store = open_test_store(path)

    async def work() -> list[Any]:
        db = await store.open()
        try:
            return [row[0] if len(row) == 1 else tuple(row) for row in await db.fetch_all(sql)]
        finally:
            await db.close()

    return asyncio.run(work())


@pytest.fixture
def purged(tmp_path: Path) -> tuple[Path, PurgeCounts]:
    path = tmp_path / "gateway.sqlite3"
    fill(path)
    return path, run_purge(path, **CUTOFFS)


@pytest.mark.parametrize(
    ("sql", "kept"),
    [
        pytest.param("SELECT site_id, pathname FROM events ORDER BY 1, 2",
                     [("blog", "/after"), ("blog", "/at"), ("shop", "/after"), ("shop", "/at")],
                     id="events before the cut-off go, at and after it stay, for every site"),
        pytest.param("SELECT site_id, entry_page FROM visits ORDER BY 1, 2",
                     [("blog", "/after"), ("blog", "/at"), ("shop", "/after"), ("shop", "/at")],
                     id="visits that ended before the cut-off go"),
        pytest.param("SELECT site_id, day FROM rollups ORDER BY 1, 2",
                     [("blog", "2024-02-10"), ("blog", "2024-02-11"), ("shop", "2024-02-10"), ("shop", "2024-02-11")],
                     id="rollups of days before the cut-off day go, the cut-off day stays"),
        pytest.param("SELECT consent_id FROM consent_records ORDER BY 1",
                     ["ended-after", "ended-at", "no-expiry-after"],
                     id="consent records that ended before the cut-off go; no expiry means ended when recorded"),
        pytest.param("SELECT day FROM salts ORDER BY 1", ["2026-03-09", "2026-03-10"],
                     id="salts older than yesterday go"),
        pytest.param("SELECT site_id, day FROM rollup_dirty ORDER BY 1, 2",
                     [("blog", "2025-09-10"), ("shop", "2025-09-10"), ("shop", "2025-09-11")],
                     id="a dirty day whose events are gone is forgotten, not rebuilt empty"),
    ],
)  # fmt: skip
def test_purge_deletes_exactly_what_is_past_each_cut_off(
    purged: tuple[Path, PurgeCounts], sql: str, kept: list[Any]
) -> None:
    path, _ = purged
    assert remaining(path, sql) == kept


def test_purge_counts_what_it_deleted(purged: tuple[Path, PurgeCounts]) -> None:
    _, counts = purged
    assert counts == PurgeCounts(events=2, visits=2, rollups=2, consent_records=2, salts=2)
    assert counts.describe() == "deleted 2 event(s), 2 visit(s), 2 rollup row(s), 2 consent record(s), 2 salt(s)"


def test_a_second_purge_finds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    fill(path)
    run_purge(path, **CUTOFFS)
    assert run_purge(path, **CUTOFFS) == PurgeCounts(0, 0, 0, 0, 0)


def test_without_a_salt_cut_off_no_salt_is_deleted(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    fill(path)
    counts = run_purge(path, **{**CUTOFFS, "salts_before": None})
    assert counts.salts == 0
    assert len(remaining(path, "SELECT day FROM salts")) == 4


def test_a_cut_off_in_another_time_zone_means_the_same_instant(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    fill(path)
    paris = EVENTS_BEFORE.astimezone(datetime.fromisoformat("2025-01-01T00:00:00+02:00").tzinfo)
    assert run_purge(path, **{**CUTOFFS, "events_before": paris}).events == 2


def test_a_naive_cut_off_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    fill(path)
    with pytest.raises(ValueError, match="timezone-aware"):
        run_purge(path, **{**CUTOFFS, "events_before": EVENTS_BEFORE.replace(tzinfo=None)})
    assert len(remaining(path, "SELECT id FROM events")) == 6  # the transaction rolled back whole


def test_an_empty_database_purges_nothing(tmp_path: Path) -> None:
    assert run_purge(tmp_path / "gateway.sqlite3", **CUTOFFS) == PurgeCounts(0, 0, 0, 0, 0)
