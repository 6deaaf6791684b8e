"""The consent log export over HTTP on a real uvicorn, on both stores: the API for keys with the
``consent_log`` permission, the owners' download on the consent page, and the key form's permission.

Decisions reach the log through the real ``POST /consent`` (so each points to the banner it answered);
bulk records are written beside the server, as another node would.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.accounts.api_keys import create_api_key, list_api_keys
from gateway.clock import FixedClock
from gateway.consent.export import CSV_COLUMNS, MAX_DAYS
from gateway.consent.records import ConsentRecord
from gateway.storage.consent_log import _INSERT, _parameters, append_record
from gateway.storage.store import Store
from tests.stores import database_setting
from tests.web.test_dashboard_auth import Dashboard, field, on_database

pytestmark = pytest.mark.integration
API = "/api/v1/sites/{site}/consent-log"
DAY = "2026-03-09"
#: Enough text (about 5 MB) that the socket's buffers cannot take it all before the client reads.
BULK = 20_000


def bulk_record(consent_id: str, at: datetime) -> ConsentRecord:
    return ConsentRecord(
        consent_id=consent_id,
        site_id="shop",
        recorded_at=at,
        method="reject_all",
        policy_revision=1,
        banner_hash="0" * 64,
        categories={"functional": False, "analytics": False, "advertising": False},
        services={},
        gpc=False,
        language="en",
        page_path="/",
        ip_network="203.0.113.0/24",
        ua_family="Firefox",
        expires_at=at + timedelta(days=182),
    )


class Gateway(Dashboard):
    """Two sites (shop, blog), a pinned clock (10 March 2026), decisions and keys of each kind."""

    def __init__(self, tmp_path: Path, clock: FixedClock, start: Any) -> None:
        super().__init__(tmp_path, clock, start)
        self.http = httpx.Client(base_url=self.server.url, timeout=30)
        for language, choices in (("fr", True), ("de", False)):
            body = {"site": "shop", "revision": 1, "language": language, "choices": {"analytics": choices}}
            assert self.http.post("/consent", json=body).status_code == 201
        now = clock.now()

        async def keys(db: Store) -> dict[str, str]:
            made = {}
            for name, site, permissions in (
                ("stats", "shop", frozenset[str]()),
                ("auditor", "shop", frozenset({"consent_log"})),
                ("blog-auditor", "blog", frozenset({"consent_log"})),
            ):
                made[name] = (await create_api_key(db, site, name, now=now, permissions=permissions))[1]
            return made

        self.keys = on_database(self.settings, keys)

    def api(self, key: str | None = "auditor", site: str = "shop", **params: str) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.keys.get(key or '', key)}"} if key else {}
        return self.http.get(API.format(site=site), params=params, headers=headers)

    def write(self, *records: ConsentRecord) -> None:
        async def work(db: Store) -> None:
            if len(records) == 1:
                await append_record(db, records[0])
            else:
                rows = [_parameters(record) for record in records]
                await db.write(lambda connection: connection.executemany(_INSERT, rows))

        on_database(self.settings, work)


@pytest.fixture
def gateway(tmp_path: Path, clock: FixedClock, live_server: Any) -> Iterator[Gateway]:
    shared = Gateway(tmp_path, clock, live_server)
    assert str(shared.settings.database) == database_setting(tmp_path / "gateway.sqlite3")  # each store in turn
    yield shared
    shared.http.close()


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message: str = response.json()["error"]
    return message


def test_the_log_is_read_only_with_a_key_of_the_site_that_has_the_permission(gateway: Gateway) -> None:
    days = {"from": "2026-03-10", "to": "2026-03-10"}
    assert "send the site's API key" in error_of(gateway.api(None, **days), 401)
    assert "unknown or revoked" in error_of(gateway.api("cg_" + "x" * 43, **days), 401)
    assert "may not read the consent log" in error_of(gateway.api("stats", **days), 403)
    assert "another site" in error_of(gateway.api("blog-auditor", **days), 403)
    assert "no site" in error_of(gateway.api(site="nowhere", **days), 404)
    assert error_of(gateway.api(site="%3Cscript%3E", **days), 404).startswith("there is no site '<script>'")
    assert gateway.api("blog-auditor", site="blog", **days).status_code == 200
    assert "use GET" in error_of(gateway.http.post(API.format(site="shop")), 405)


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"to": "2026-03-10"}, "'from' is required"),
        ({"from": "", "to": "2026-03-10"}, "'from' is empty"),
        ({"from": "2026-03-10", "to": "2026-03-09"}, "is before 'from'"),
        ({"from": "2025-01-01", "to": "2026-03-10"}, f"at most {MAX_DAYS} days"),
        ({"from": "2026-02-30", "to": "2026-03-10"}, "not a day of the calendar"),
        ({"from": "2026-03-10\x00", "to": "2026-03-10"}, "not a day as YYYY-MM-DD"),
        ({"from": "2026-03-10", "to": "2026-03-10", "format": "xml"}, "the format is csv or json"),
        ({"from": "2026-03-10", "to": "2026-03-10", "revisions": "yes"}, "'revisions' is 1 or 0"),
        ({"from": "2026-03-10", "to": "2026-03-10", "revisions": "1"}, "JSON export only"),
        ({"from": "2026-03-10", "to": "2026-03-10", "from_": "x" * 5000}, ""),
    ],
)
def test_bad_parameters_are_a_400_that_says_what_to_fix(gateway: Gateway, params: dict[str, str], error: str) -> None:
    if "from_" in params:  # an oversized unknown parameter changes nothing
        assert gateway.api(**params).status_code == 200
        return
    assert error in error_of(gateway.api(**params), 400)


def test_the_json_export_names_the_banner_each_visitor_answered(gateway: Gateway) -> None:
    answer = gateway.api(**{"from": "2026-03-10", "to": "2026-03-10", "format": "json", "revisions": "1"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-disposition"] == 'attachment; filename="consent-log-shop-2026-03-10-2026-03-10.json"'
    exported = answer.json()
    assert [record["language"] for record in exported["records"]] == ["fr", "de"]
    assert [record["categories"]["analytics"] for record in exported["records"]] == [True, False]
    for record in exported["records"]:
        revision = exported["revisions"][record["revision"]]
        assert record["revision"] == record["banner_hash"]
        assert hashlib.sha256(revision["content"].encode()).hexdigest() == record["banner_hash"]
        assert revision["language"] == record["language"] and revision["shown"]["texts"]  # the texts themselves
    assert len(exported["revisions"]) == 2


def test_the_csv_streams_from_the_store_as_the_client_reads(gateway: Gateway) -> None:
    """A record written after the first chunk arrived is in the file: the last page was read after it was sent."""
    start = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    gateway.write(*(bulk_record(f"bulk-{n:05d}", start + timedelta(seconds=n)) for n in range(BULK)))
    headers = {"authorization": f"Bearer {gateway.keys['auditor']}"}
    params = {"from": DAY, "to": DAY}
    with gateway.http.stream("GET", API.format(site="shop"), params=params, headers=headers) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/csv; charset=utf-8"
        chunks = answer.iter_bytes()
        first = next(chunks)
        assert first.startswith(",".join(CSV_COLUMNS).encode())
        gateway.write(bulk_record("written-meanwhile", datetime(2026, 3, 9, 22, 0, tzinfo=UTC)))
        text = (first + b"".join(chunks)).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == BULK + 1
    assert rows[0]["consent_id"] == "bulk-00000" and rows[-1]["consent_id"] == "written-meanwhile"


# --- the dashboard ---------------------------------------------------------------------------------


@pytest.fixture
def signed_in(gateway: Gateway) -> Iterator[tuple[Gateway, httpx.Client, httpx.Client]]:
    gateway.add_user("olga", roles={"shop": "owner"})
    gateway.add_user("vic", roles={"shop": "viewer"})
    with gateway.client() as owner, gateway.client() as viewer:
        assert gateway.login(owner, "olga").status_code == 303
        assert gateway.login(viewer, "vic").status_code == 303
        yield gateway, owner, viewer


def test_an_owner_downloads_the_log_from_the_consent_page(
    signed_in: tuple[Gateway, httpx.Client, httpx.Client],
) -> None:
    _, owner, viewer = signed_in
    page = owner.get("/dashboard/shop/consent")
    assert page.status_code == 200 and "Export the consent log" in page.text
    assert 'action="/dashboard/shop/consent/export"' in page.text
    assert field(page.text, "from") == "2026-02-09" and field(page.text, "to") == "2026-03-10"  # the last 30 days

    download = owner.get("/dashboard/shop/consent/export", params={"from": "2026-03-10", "to": "2026-03-10"})
    assert download.status_code == 200 and download.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="consent-log-shop-2026-03-10-2026-03-10.csv"' in download.headers["content-disposition"]
    assert [row["language"] for row in csv.DictReader(io.StringIO(download.text))] == ["fr", "de"]
    as_json = owner.get(
        "/dashboard/shop/consent/export",
        params={"from": "2026-03-10", "to": "2026-03-10", "format": "json", "revisions": "1"},
    )
    assert len(json.loads(as_json.text)["revisions"]) == 2

    refused = owner.get("/dashboard/shop/consent/export", params={"from": "2026-03-10", "to": "2026-03-01"})
    assert refused.status_code == 400 and "is before" in refused.text and "text/html" in refused.headers["content-type"]
    hostile = owner.get("/dashboard/shop/consent/export", params={"from": "<script>x</script>", "to": "2026-03-01"})
    assert hostile.status_code == 400 and "<script>x" not in hostile.text

    assert "Export the consent log" not in viewer.get("/dashboard/shop/consent").text
    forbidden = viewer.get("/dashboard/shop/consent/export", params={"from": "2026-03-10", "to": "2026-03-10"})
    assert forbidden.status_code == 403 and "fr," not in forbidden.text
    assert viewer.get("/dashboard/blog/consent/export", params={"from": DAY, "to": DAY}).status_code == 404
    with signed_in[0].client() as stranger:
        assert stranger.get("/dashboard/shop/consent/export").status_code in (302, 303)  # to the login page


def test_the_key_form_gives_the_consent_log_permission_only_when_ticked(
    signed_in: tuple[Gateway, httpx.Client, httpx.Client],
) -> None:
    gateway, owner, _ = signed_in
    settings_page = owner.get("/dashboard/shop/settings")
    assert "May also export the consent log" in settings_page.text
    for name, ticked in (("plain", {}), ("evidence", {"consent_log": "1"})):
        csrf = field(owner.get("/dashboard/shop/settings").text, "csrf")
        created = owner.post("/dashboard/shop/settings/keys", data={"csrf": csrf, "name": name, **ticked})
        assert created.status_code == 200, created.text
    listed = {key.name: key.permissions for key in on_database(gateway.settings, lambda db: list_api_keys(db, "shop"))}
    assert listed["plain"] == frozenset() and listed["evidence"] == frozenset({"consent_log"})
    assert "statistics, consent log" in owner.get("/dashboard/shop/settings").text
