"""The scan queue on both stores (gateway/storage/scans.py), the background worker that runs it
(gateway/scan/jobs.py) and the schedule that fills it (gateway/scan/schedule.py).

Each "node" is a store of its own on the same database, as two gateway nodes would have; the scanner
is a function the test controls (the worker takes it as a parameter), so nothing here needs Chromium.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.clock import FixedClock
from gateway.maintenance import Maintenance
from gateway.scan.jobs import (
    PLAYWRIGHT_MISSING,
    STOPPED,
    ProgressCallback,
    ScanJobs,
    ScanRequest,
    describe_failure,
    too_long,
)
from gateway.scan.schedule import due_sites, enqueue_scheduled
from gateway.settings import Settings, SettingsError
from gateway.storage.scans import (
    ABANDONED,
    ScanAlreadyActive,
    active_scan,
    claim_scan,
    done_before,
    enqueue_scan,
    fail_abandoned,
    finish_scan,
    get_scan,
    list_scans,
    record_finished_scan,
    record_progress,
    scan_report,
)
from gateway.storage.store import Store, open_store
from tests.conftest import make_settings, site_config
from tests.scan.test_diff import cookie, report, violation
from tests.waiting import eventually

T = TypeVar("T")
NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
URL = "https://shop.example.com/"
LEASE = timedelta(minutes=2)


def scan_settings(tmp_path: Path, **schedules: str) -> Settings:
    """Sites shop and blog (and any named in ``schedules``, each with that scan_schedule)."""
    sites: dict[str, Any] = {
        "shop": site_config(),
        "blog": site_config(name="Blog", origins=["https://blog.example.com"]),
    }
    for site_id, schedule in schedules.items():
        sites.setdefault(site_id, site_config(name=site_id, origins=[f"https://{site_id}.example.com"]))
        sites[site_id]["scan_schedule"] = schedule
    return make_settings(tmp_path, sites=sites)


def _run(settings: Settings, work: Callable[[AsyncExitStack, Callable[[], Awaitable[Store]]], Awaitable[T]]) -> T:
    """``work(exits, node)``: ``await node()`` opens another store on the test's database (closed at the end)."""

    async def scenario() -> T:
        async with AsyncExitStack() as exits:

            async def node() -> Store:
                store = await open_store(settings.database).open()
                exits.push_async_callback(store.close)
                return store

            return await work(exits, node)

    return asyncio.run(scenario())


def test_one_queued_or_running_scan_per_site(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path)

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> None:
        db = await node()
        first = await enqueue_scan(db, "shop", URL, trigger="manual", max_pages=5, now=NOW)
        with pytest.raises(ScanAlreadyActive, match="already running"):
            await enqueue_scan(db, "shop", URL, trigger="scheduled", max_pages=5, now=NOW)
        other = await enqueue_scan(db, "blog", "https://blog.example.com/", trigger="manual", max_pages=5, now=NOW)
        assert other != first
        claimed = await claim_scan(db, node="a", now=NOW, lease_until=NOW + LEASE)
        assert claimed is not None and claimed.id == first and claimed.status == "running"
        with pytest.raises(ScanAlreadyActive):  # running counts as much as queued
            await enqueue_scan(db, "shop", URL, trigger="manual", max_pages=5, now=NOW)
        assert await finish_scan(db, first, node="a", report=report(), now=NOW + timedelta(minutes=1))
        again = await enqueue_scan(db, "shop", URL, trigger="manual", max_pages=5, now=NOW + timedelta(minutes=2))
        assert [scan.id for scan in await list_scans(db, "shop")] == [again, first]  # newest first
        with pytest.raises(ValueError, match="trigger"):
            await enqueue_scan(db, "shop", URL, trigger="cron", max_pages=5, now=NOW)  # type: ignore[arg-type]

    _run(settings, work)


def test_two_owners_pressing_scan_now_at_once_on_two_nodes_queue_one_scan(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path)

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> list[object]:
        a, b = await node(), await node()
        results = await asyncio.gather(
            *(enqueue_scan(db, "shop", URL, trigger="manual", max_pages=5, now=NOW) for db in (a, b, a, b, a, b, a, b)),
            return_exceptions=True,
        )
        assert len(await list_scans(a, "shop")) == 1
        return results

    results = _run(settings, work)
    assert sum(isinstance(result, int) for result in results) == 1
    assert all(isinstance(result, (int, ScanAlreadyActive)) for result in results), results


def test_two_nodes_claiming_at_once_take_each_scan_once(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path, news="off", docs="off", wiki="off")

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> list[tuple[str, int]]:
        a, b = await node(), await node()
        for minute, site_id in enumerate(("shop", "blog", "news", "docs", "wiki")):
            await enqueue_scan(a, site_id, URL, trigger="manual", max_pages=5, now=NOW + timedelta(minutes=minute))
        claims: list[tuple[str, int]] = []

        async def claimer(name: str, db: Store) -> None:
            while (scan := await claim_scan(db, node=name, now=NOW, lease_until=NOW + LEASE)) is not None:
                claims.append((name, scan.id))

        await asyncio.gather(claimer("a", a), claimer("b", b), claimer("a", a), claimer("b", b))
        for name, scan_id in claims:
            scan = await get_scan(a, (await _site_of(a, scan_id)), scan_id)
            assert scan is not None and scan.status == "running" and scan.node == name
        return claims

    claims = _run(settings, work)
    ids = [scan_id for _, scan_id in claims]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 5  # every scan claimed, none twice


async def _site_of(db: Store, scan_id: int) -> str:
    rows = await db.fetch_all("SELECT site_id FROM scans WHERE id = ?", (scan_id,))
    return str(rows[0][0])


def test_the_oldest_queued_scan_is_claimed_first(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path)

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> list[str]:
        db = await node()
        await enqueue_scan(db, "blog", URL, trigger="manual", max_pages=5, now=NOW + timedelta(minutes=1))
        await enqueue_scan(db, "shop", URL, trigger="scheduled", max_pages=5, now=NOW)
        order = []
        while (scan := await claim_scan(db, node="a", now=NOW, lease_until=NOW + LEASE)) is not None:
            order.append(scan.site_id)
        return order

    assert _run(settings, work) == ["shop", "blog"]


def test_a_scan_whose_node_died_fails_when_its_lease_runs_out(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path)

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> None:
        db = await node()
        scan_id = await enqueue_scan(db, "shop", URL, trigger="manual", max_pages=5, now=NOW)
        assert await claim_scan(db, node="dead", now=NOW, lease_until=NOW + LEASE) is not None
        renewed = NOW + timedelta(minutes=1)
        assert await record_progress(db, scan_id, node="dead", pages_done=1, pages_total=5,
                                     current_url=URL, lease_until=renewed + LEASE)  # fmt: skip
        assert await fail_abandoned(db, now=renewed + LEASE - timedelta(seconds=1)) == 0  # renewed: still alive
        assert await fail_abandoned(db, now=renewed + LEASE + timedelta(seconds=1)) == 1
        scan = await get_scan(db, "shop", scan_id)
        assert scan is not None and scan.status == "failed" and scan.error == ABANDONED
        # the node, if it comes back, finds the scan is no longer its own and writes nothing
        assert not await record_progress(db, scan_id, node="dead", pages_done=2, pages_total=5,
                                         current_url=URL, lease_until=NOW + LEASE * 10)  # fmt: skip
        assert not await finish_scan(db, scan_id, node="dead", report=report(), now=NOW + LEASE * 2)
        assert await scan_report(db, "shop", scan_id) is None
        # a scan someone else claimed is not this node's either
        other = await enqueue_scan(db, "shop", URL, trigger="manual", max_pages=5, now=NOW + LEASE * 3)
        await claim_scan(db, node="alive", now=NOW + LEASE * 3, lease_until=NOW + LEASE * 4)
        assert not await finish_scan(db, other, node="dead", report=report(), now=NOW + LEASE * 3)

    _run(settings, work)


def test_an_expired_lease_does_not_block_the_next_start(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path)

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> None:
        db = await node()
        first = await enqueue_scan(db, "shop", URL, trigger="manual", max_pages=5, now=NOW)
        await claim_scan(db, node="dead", now=NOW, lease_until=NOW + LEASE)
        later = NOW + LEASE + timedelta(seconds=1)
        second = await enqueue_scan(db, "shop", URL, trigger="manual", max_pages=5, now=later)
        assert second != first
        scan = await get_scan(db, "shop", first)
        assert scan is not None and scan.status == "failed" and scan.error == ABANDONED

    _run(settings, work)


# The worker.


class ScriptedScanner:
    """A scanner the test drives: reports two pages, then waits for ``release`` (or fails with ``error``)."""

    def __init__(self, result: dict[str, Any] | None = None, *, error: BaseException | None = None) -> None:
        self.result = result or report()
        self.error = error
        self.release = asyncio.Event()
        self.requests: list[ScanRequest] = []
        self.cancelled = False

    async def __call__(self, request: ScanRequest, progress: ProgressCallback) -> dict[str, Any]:
        self.requests.append(request)
        progress(1, 3, f"{request.url}a")
        progress(2, 3, f"{request.url}b")
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error
        return self.result


def _jobs(db: Store, settings: Settings, scanner: ScriptedScanner, clock: FixedClock, node: str = "n1") -> ScanJobs:
    return ScanJobs(db, settings, clock, scanner, node=node, poll_seconds=0.05, lease_seconds=60, progress_seconds=0.02)


def test_the_worker_runs_a_queued_scan_shows_its_progress_and_stores_its_report(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path)
    result = report(cookies=(cookie("_ga"),), violations=(violation("before_decision", name="_ga"),))

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> None:
        db, page = await node(), await node()  # the page reads through another node's store
        clock = FixedClock(NOW)
        scanner = ScriptedScanner(result)
        jobs = _jobs(db, settings, scanner, clock)
        await jobs.start()
        exits.push_async_callback(jobs.stop)
        scan_id = await enqueue_scan(page, "shop", URL, trigger="manual", max_pages=7, now=NOW)

        async def progressed() -> bool:
            scan = await active_scan(page, "shop")
            return scan is not None and scan.status == "running" and scan.pages_done == 2

        await eventually(progressed, message="the running scan's progress never reached the database")
        scan = await active_scan(page, "shop")
        assert scan is not None and (scan.pages_total, scan.current_url, scan.node) == (3, f"{URL}b", "n1")
        request = scanner.requests[0]
        assert (request.scan_id, request.site.id, request.url, request.max_pages) == (scan_id, "shop", URL, 7)
        clock.advance(timedelta(minutes=3))
        scanner.release.set()

        async def finished() -> bool:
            return await active_scan(page, "shop") is None

        await eventually(finished, message="the scan never finished")
        done = await get_scan(page, "shop", scan_id)
        assert done is not None and done.status == "done" and done.violations == 1 and done.error is None
        assert done.finished_at == NOW + timedelta(minutes=3) and done.pages_done == 1
        assert await scan_report(page, "shop", scan_id) == result
        assert [s.id for s in await done_before(page, "shop")] == [scan_id]

    _run(settings, work)


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (ModuleNotFoundError("No module named 'playwright'", name="playwright"), PLAYWRIGHT_MISSING),
        (RuntimeError("ERR_NAME_NOT_RESOLVED\n  at page.goto"), "The scan failed: ERR_NAME_NOT_RESOLVED at page.goto"),
    ],
    ids=["no-playwright", "browser-error"],
)  # fmt: skip
def test_a_failing_scan_is_marked_failed_with_a_readable_reason(
    tmp_path: Path, error: BaseException, shown: str
) -> None:
    settings = scan_settings(tmp_path)
    assert describe_failure(error) == shown

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> None:
        db = await node()
        scanner = ScriptedScanner(error=error)
        scanner.release.set()
        scan_id = await enqueue_scan(db, "shop", URL, trigger="manual", max_pages=5, now=NOW)
        claimed = await _jobs(db, settings, scanner, FixedClock(NOW)).run_once()
        assert claimed is not None and claimed.id == scan_id
        scan = await get_scan(db, "shop", scan_id)
        assert scan is not None and scan.status == "failed" and scan.error == shown
        assert await scan_report(db, "shop", scan_id) is None
        assert await _jobs(db, settings, scanner, FixedClock(NOW)).run_once() is None  # nothing left

    _run(settings, work)


def test_a_scan_of_a_site_removed_from_the_config_fails_and_says_so(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path)

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> None:
        db = await node()
        scan_id = await enqueue_scan(db, "gone", URL, trigger="scheduled", max_pages=5, now=NOW)
        scanner = ScriptedScanner()
        await _jobs(db, settings, scanner, FixedClock(NOW)).run_once()
        scan = await get_scan(db, "gone", scan_id)
        assert scan is not None and scan.status == "failed" and "no longer in the configuration" in (scan.error or "")
        assert scanner.requests == []

    _run(settings, work)


def test_stopping_the_gateway_mid_scan_cancels_it_and_marks_it_failed(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path)

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> tuple[ScriptedScanner, Any]:
        db = await node()
        scanner = ScriptedScanner()
        jobs = _jobs(db, settings, scanner, FixedClock(NOW))
        scan_id = await enqueue_scan(db, "shop", URL, trigger="manual", max_pages=5, now=NOW)
        await jobs.start()
        await eventually(lambda: scanner.requests, message="the worker never started the scan")
        await jobs.stop()
        return scanner, await get_scan(db, "shop", scan_id)

    scanner, scan = _run(settings, work)
    assert scanner.cancelled
    assert scan is not None and scan.status == "failed" and scan.error == STOPPED


def test_a_scan_that_hangs_is_stopped_at_its_time_limit(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path)

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> tuple[ScriptedScanner, Any]:
        db = await node()
        scanner = ScriptedScanner()  # never released: a browser that stopped answering
        jobs = ScanJobs(db, settings, FixedClock(NOW), scanner, node="n1", progress_seconds=0.02,
                        time_limit_seconds=0.3)  # fmt: skip
        scan_id = await enqueue_scan(db, "shop", URL, trigger="manual", max_pages=5, now=NOW)
        assert await jobs.run_once() is not None
        return scanner, await get_scan(db, "shop", scan_id)

    scanner, scan = _run(settings, work)
    assert scanner.cancelled
    assert scan is not None and scan.status == "failed" and scan.error == too_long(0.3, 2)
    assert scan.error.startswith("The scan was stopped after 0.3 seconds (2 pages done)")
    assert too_long(1800, 7).startswith("The scan was stopped after 30 minutes (7 pages done)")


def test_one_process_of_a_machine_scans_at_a_time_another_machine_may_too(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path, news="off")

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> None:
        first, second, elsewhere = await node(), await node(), await node()
        for site_id in ("shop", "blog", "news"):
            await enqueue_scan(first, site_id, URL, trigger="manual", max_pages=5, now=NOW)
        held = ScriptedScanner()
        busy = ScanJobs(first, settings, FixedClock(NOW), held, node="w1", machine="scans-a")
        running = asyncio.ensure_future(busy.run_once())
        await eventually(lambda: held.requests, message="the first worker never started its scan")
        quick = ScriptedScanner()
        quick.release.set()
        sibling = ScanJobs(second, settings, FixedClock(NOW), quick, node="w2", machine="scans-a")
        assert await sibling.run_once() is None and quick.requests == []  # its machine is busy: it waits
        other = ScanJobs(elsewhere, settings, FixedClock(NOW), quick, node="m2", machine="scans-b")
        ran = await other.run_once()  # another machine runs the next scan meanwhile
        assert ran is not None and ran.site_id == "blog"
        held.release.set()
        done = await running
        assert done is not None and done.site_id == "shop"
        after = await sibling.run_once()  # the machine is free again
        assert after is not None and after.site_id == "news" and after.node == "w2"

    _run(settings, work)


# The schedule.


@pytest.mark.parametrize(
    ("schedule", "last", "due"),
    [
        ("off", None, False),
        ("weekly", None, True),  # never scanned
        ("weekly", NOW - timedelta(days=6, hours=23), False),
        ("weekly", NOW - timedelta(days=7), True),
        ("daily", NOW - timedelta(hours=23), False),
        ("daily", NOW - timedelta(days=1), True),
        ("monthly", NOW - timedelta(days=29), False),
        ("monthly", NOW - timedelta(days=30), True),
    ],
)
def test_which_sites_are_due(tmp_path: Path, schedule: str, last: datetime | None, due: bool) -> None:
    settings = scan_settings(tmp_path, news=schedule)
    last_scans = {"news": last} if last else {}
    assert due_sites(settings.sites, last_scans, NOW) == (["news"] if due else [])


def test_the_schedule_queues_a_scan_each_interval_and_never_two_at_once(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path, news="weekly", docs="daily")

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> None:
        db = await node()
        queued = await enqueue_scheduled(db, settings, NOW)
        assert len(queued) == 2 and await enqueue_scheduled(db, settings, NOW + timedelta(days=8)) == []  # active
        news = await get_scan(db, "news", queued[0]) or await get_scan(db, "news", queued[1])
        assert news is not None and news.trigger == "scheduled" and news.url == "https://news.example.com/"
        assert news.max_pages == 50
        for _ in queued:
            scan = await claim_scan(db, node="n", now=NOW, lease_until=NOW + LEASE)
            assert scan is not None
            await finish_scan(db, scan.id, node="n", report=report(), now=NOW + timedelta(minutes=5))
        assert await enqueue_scheduled(db, settings, NOW + timedelta(hours=23)) == []
        daily = await enqueue_scheduled(db, settings, NOW + timedelta(days=1))
        assert [(await _site_of(db, scan_id)) for scan_id in daily] == ["docs"]
        assert await enqueue_scheduled(db, settings, NOW + timedelta(days=6)) == []  # docs is queued, news not due
        weekly = await enqueue_scheduled(db, settings, NOW + timedelta(days=7))
        assert [(await _site_of(db, scan_id)) for scan_id in weekly] == ["news"]

    _run(settings, work)


def test_the_maintenance_leader_queues_the_scheduled_scans(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path, news="weekly")

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> list[str]:
        db = await node()
        maintenance = Maintenance(db, settings, FixedClock(NOW))
        exits.push_async_callback(maintenance.stop)
        run = await maintenance.run_once()
        assert run.leading
        return [f"{scan.site_id}:{scan.trigger}" for scan in await list_scans(db, "news")]

    assert _run(settings, work) == ["news:scheduled"]


def test_a_demo_scan_is_stored_as_done(tmp_path: Path) -> None:
    settings = scan_settings(tmp_path)

    async def work(exits: AsyncExitStack, node: Callable[[], Awaitable[Store]]) -> None:
        db = await node()
        result = report(violations=(violation("undeclared", name="x"),))
        scan_id = await record_finished_scan(db, "shop", URL, trigger="demo", report=result,
                                             started=NOW, now=NOW + timedelta(minutes=1))  # fmt: skip
        scan = await get_scan(db, "shop", scan_id)
        assert scan is not None and (scan.status, scan.trigger, scan.violations) == ("done", "demo", 1)
        assert await scan_report(db, "shop", scan_id) == result
        assert await get_scan(db, "blog", scan_id) is None  # never across sites

    _run(settings, work)


# The settings.


def test_scan_settings_default_to_the_first_origin_and_off(tmp_path: Path) -> None:
    site = scan_settings(tmp_path).sites["blog"]
    assert (site.scan_schedule, site.scan_url, site.scan_pages) == ("off", "https://blog.example.com/", 50)
    bare = make_settings(tmp_path, site=site_config(origins=[])).sites["shop"]
    assert bare.scan_url == ""


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scan_schedule": "hourly"}, "sites.shop.scan_schedule: expected 'off', 'daily', 'weekly' or 'monthly'"),
        ({"scan_schedule": 7}, "sites.shop.scan_schedule: expected a string"),
        ({"scan_url": "ftp://shop.example.com/"}, "sites.shop.scan_url: expected an http(s) URL"),
        ({"scan_url": "https://"}, "sites.shop.scan_url: expected an http(s) URL"),
        ({"scan_url": "http://[::1"}, "sites.shop.scan_url: expected an http(s) URL"),
        ({"scan_url": "https://shop.example.com/\n<script>"}, "sites.shop.scan_url: expected an http(s) URL"),
        ({"scan_url": "https://shop.example.com/" + "a" * 2000}, "sites.shop.scan_url: expected an http(s) URL"),
        ({"scan_pages": 0}, "sites.shop.scan_pages: expected a whole number from 1 to 1000"),
        ({"scan_pages": True}, "sites.shop.scan_pages: expected a whole number from 1 to 1000"),
        ({"origins": [], "scan_schedule": "weekly"}, "sites.shop.scan_schedule: expected 'off' for a site without"),
    ],
    ids=[
        "schedule",
        "schedule-type",
        "scheme",
        "no-host",
        "bad-host",
        "control",
        "too-long",
        "pages",
        "bool",
        "nothing-to-scan",
    ],  # fmt: skip
)
def test_bad_scan_settings_are_refused_with_a_clear_error(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        make_settings(tmp_path, site=site_config(**overrides))
