"""The demo's first start: labelled sample data the dashboard shows, written once, and an empty start on request.

Seeded through ``gateway.demo.prepare_sample_data`` as ``consent-gateway demo`` runs it, on each store,
then read through a real gateway on uvicorn, logged in as the demo's admin.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from gateway import create_app
from gateway.clock import FixedClock
from gateway.demo import DEMO_SITE, demo_login_notice, demo_settings, prepare_sample_data
from gateway.sample_data import SAMPLE_DAYS
from gateway.settings import Settings
from gateway.storage.scans import Scan, claim_scan, fail_scan, list_scans
from gateway.storage.store import open_store
from tests.conftest import LiveServer
from tests.stores import database_setting

Start = Callable[[Any], LiveServer]
_SITE_URL = "http://127.0.0.1:8001"


def _settings(tmp_path: Path) -> Settings:
    database = database_setting(tmp_path / "demo.sqlite3")
    return demo_settings(tmp_path, gateway_url="http://127.0.0.1:8000", site_url=_SITE_URL, database=database)


_COUNTED = (
    "SELECT count(*) FROM events WHERE site_id = ?",
    "SELECT count(*) FROM consent_records WHERE site_id = ?",
    "SELECT count(*) FROM banner_impressions WHERE site_id = ?",
    "SELECT count(*) FROM cookie_report WHERE site_id = ?",
    "SELECT count(*) FROM cookie_report WHERE site_id = ? AND times_seen_by_script > 0",
    "SELECT count(*) FROM policy_revisions WHERE site_id = ?",
    # every record points to the banner it answered, stored
    "SELECT count(*) FROM consent_records r WHERE site_id = ?"
    " AND (revision_hash IS NULL OR revision_hash <> banner_hash"
    " OR NOT EXISTS (SELECT 1 FROM policy_revisions p WHERE p.content_hash = r.revision_hash))",
)


def _counts(settings: Settings) -> tuple[int, ...]:
    """What the demo site holds: events, consent records, banner-impression rows, cookie-report rows,
    of which seen by script, banners stored, and records without their stored banner."""

    async def read() -> tuple[int, ...]:
        store = open_store(settings.database)
        await store.open()
        try:
            return tuple([int((await store.fetch_all(sql, (DEMO_SITE,)))[0][0]) for sql in _COUNTED])
        finally:
            await store.close()

    return asyncio.run(read())


def _first_start(settings: Settings, clock: FixedClock, *, seed: bool = True) -> tuple[Settings, str, str]:
    """What ``run_demo`` does before serving: the sample data, then the admin; returns the password too."""
    labelled, line = asyncio.run(prepare_sample_data(settings, now=clock.now(), seed=seed, scan_url=f"{_SITE_URL}/"))
    login = asyncio.run(demo_login_notice(labelled, gateway_url="http://127.0.0.1:8000", now=clock.now()))
    found = re.search(r"password: (\S+)", login)
    assert found, login
    return labelled, line, found.group(1)


@contextmanager
def _logged_in(server: LiveServer, password: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60, follow_redirects=True) as client:
        form = client.get("/login")
        csrf = re.search(r'name="login_csrf" value="([^"]*)"', form.text)
        assert csrf, form.text
        answer = client.post("/login", data={"name": "admin", "password": password, "login_csrf": csrf.group(1)})
        assert answer.status_code == 200, answer.text
        yield client


def _take_the_demo_scan(settings: Settings, clock: FixedClock) -> Scan:
    """The scan the first start queued, claimed and failed here: this test runs no browser, so the
    gateway's scan worker must not find it (tests/scan covers the scans themselves)."""

    async def take() -> Scan:
        store = open_store(settings.database)
        await store.open()
        try:
            queued = await list_scans(store, DEMO_SITE)
            lease = clock.now() + timedelta(minutes=5)
            claimed = await claim_scan(store, node="test", now=clock.now(), lease_until=lease)
            assert claimed is not None
            await fail_scan(store, claimed.id, node="test", error="not run by this test", now=clock.now())
            assert len(queued) == 1
            return queued[0]
        finally:
            await store.close()

    return asyncio.run(take())


def _figure(page: str, label: str) -> int:
    """The top line's figure under ``label`` ("Unique visitors"), as an integer."""
    found = re.search(rf"{label}</[^>]+>\s*<[^>]+>([\d,]+)<", page)
    assert found, f"no figure for {label}"
    return int(found.group(1).replace(",", ""))


def test_the_first_start_seeds_labelled_data_every_panel_shows(
    tmp_path: Path, clock: FixedClock, live_server: Start
) -> None:
    settings = _settings(tmp_path)
    labelled, line, password = _first_start(settings, clock)
    assert labelled.sites[DEMO_SITE].sample_data and not settings.sites[DEMO_SITE].sample_data
    assert f"{SAMPLE_DAYS} days" in line and "consent records" in line and "--no-sample-data" in line
    counts = _counts(settings)
    events, records, impressions, cookies, by_script, banners, unproven = counts
    assert events > 10_000 and records > 1_000 and impressions > SAMPLE_DAYS
    assert (cookies, by_script) == (9, 4)  # the 7 the page's headers set, _ga_DEMO and _hjSessionUser_42 by script
    assert banners >= 2 and unproven == 0  # English and German banners at least, each stored once
    scan = _take_the_demo_scan(settings, clock)
    assert (scan.url, scan.trigger, scan.status) == (f"{_SITE_URL}/", "demo", "queued")

    server = live_server(create_app(labelled, clock=clock))
    with _logged_in(server, password) as client:
        overview = client.get(f"/dashboard/{DEMO_SITE}", params={"period": "30d"})
        assert overview.status_code == 200
        assert "Sample data." in overview.text
        assert _figure(overview.text, "Unique visitors") > 1_000
        for shown in ("DE", "GB", "FR", "Google", "Direct / None", "LinkedIn", "Chrome", "Mobile Safari", "/pricing"):
            assert re.search(rf">\s*{re.escape(shown)}\s*<", overview.text), shown
        assert re.search(r">\s*Outbound Link: Click\s*<", overview.text), "no custom event in the Events panel"
        campaigns = client.get(f"/dashboard/{DEMO_SITE}/breakdown/utm_campaign", params={"period": "30d"})
        assert "monthly-digest" in campaigns.text and "Sample data." in campaigns.text
        terms = client.get(f"/dashboard/{DEMO_SITE}/breakdown/utm_term", params={"period": "30d"})
        assert "cookie consent" in terms.text
        consent = client.get(f"/dashboard/{DEMO_SITE}/consent", params={"period": "30d"})
        assert consent.status_code == 200 and "Sample data." in consent.text
        assert re.search(r"\b[1-9]\d?(\.\d)?%", consent.text), "no opt-in rate on the consent report"
        report = client.get(f"/dashboard/{DEMO_SITE}/cookies")
        for name in ("_ga", "_ga_DEMO", "_hjSessionUser_42", "_fbp", "mystery_tracker", "demo_theme"):
            assert f">{name}<" in report.text, name
        assert "Sample data." in report.text

    # The second start: nothing is written again, the label stays.
    again, line, _ = asyncio.run(_second_start(settings, clock))
    assert again.sites[DEMO_SITE].sample_data and "first start" in line
    assert _counts(settings) == counts
    assert len(asyncio.run(_scans(settings))) == 1  # no second demo scan either


async def _scans(settings: Settings) -> list[Scan]:
    store = open_store(settings.database)
    await store.open()
    try:
        return await list_scans(store, DEMO_SITE)
    finally:
        await store.close()


async def _second_start(settings: Settings, clock: FixedClock) -> tuple[Settings, str, str]:
    later = clock.now() + timedelta(days=1)
    labelled, line = await prepare_sample_data(settings, now=later, seed=True, scan_url=f"{_SITE_URL}/")
    login = await demo_login_notice(labelled, gateway_url="http://127.0.0.1:8000", now=later)
    return labelled, line, login


def test_no_sample_data_starts_empty_and_unlabelled(tmp_path: Path, clock: FixedClock, live_server: Start) -> None:
    settings = _settings(tmp_path)
    unlabelled, line, password = _first_start(settings, clock, seed=False)
    assert not unlabelled.sites[DEMO_SITE].sample_data and line == ""
    assert _counts(settings) == (0,) * len(_COUNTED)
    # A later start with sample data on is no first start (the admin exists): still nothing is seeded.
    assert asyncio.run(prepare_sample_data(settings, now=clock.now(), seed=True)) == (settings, "")
    assert _counts(settings) == (0,) * len(_COUNTED) and asyncio.run(_scans(settings)) == []
    server = live_server(create_app(unlabelled, clock=clock))
    with _logged_in(server, password) as client:
        overview = client.get(f"/dashboard/{DEMO_SITE}")
        assert overview.status_code == 200 and "Sample data." not in overview.text
