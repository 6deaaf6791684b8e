"""Shared links on a real uvicorn: the read-only dashboard at /share/TOKEN, the 404 for every link
that does not open, and the password gate with its per-link cookie and throttle.

The traffic and site are those of tests/web/test_dashboard.py (k = 2, 3 visitors on 2026-03-10).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.accounts.shared_links import SharedLink, SharedLinks
from gateway.clock import FixedClock
from gateway.storage.store import Store
from gateway.web.shared_dashboard import NOT_VALID, WRONG_PASSWORD
from tests.storage.test_rollups import AFTER_MIDNIGHT, FIRST_DAY
from tests.web.test_dashboard import DAY1, SiteDashboard, text_of
from tests.web.test_dashboard_auth import field, on_database

pytestmark = pytest.mark.integration
SHARED_PAGES = ("", "/breakdown/page", "/export/page.csv", "/export.zip", "/realtime", "/goals")
HTML_PAGES = ("", "/breakdown/page", "/realtime", "/goals")
PASSWORD = "open sesame, please"


class Shared(SiteDashboard):
    def share(
        self, site_id: str = "shop", *, password: str | None = None, expires_at: datetime | None = None
    ) -> tuple[SharedLink, str]:
        """A link made as ``consent-gateway share create`` makes it, and its path."""

        async def work(db: Store) -> tuple[SharedLink, str]:
            links = SharedLinks(db, self.settings.secret_keys)
            return await links.create(site_id, label="", expires_at=expires_at, password=password, now=self.clock.now())

        link, token = on_database(self.settings, work)
        return link, f"/share/{token}"

    def revoke(self, link: SharedLink) -> None:
        async def work(db: Store) -> bool:
            return await SharedLinks(db, self.settings.secret_keys).revoke(link.site_id, link.id, now=self.clock.now())

        assert on_database(self.settings, work)


@pytest.fixture
def shared(tmp_path: Path, clock: FixedClock, live_server: Any) -> Iterator[tuple[Shared, httpx.Client]]:
    dashboard = Shared(tmp_path, clock, live_server)
    dashboard.store(*FIRST_DAY, *AFTER_MIDNIGHT)
    with dashboard.client() as anonymous:
        yield dashboard, anonymous


def unlock(client: httpx.Client, path: str, password: str, next_page: str = "") -> httpx.Response:
    return client.post(f"{path}/unlock", data={"password": password, "next": next_page})


def test_a_link_shows_the_overview_with_its_figures_and_nothing_of_an_account(
    shared: tuple[Shared, httpx.Client],
) -> None:
    dashboard, client = shared
    _, path = dashboard.share()
    page = client.get(path, params=DAY1)
    assert page.status_code == 200, page.text
    words = text_of(page.text)
    assert "Unique visitors 3" in words and "Pageviews 7" in words and "(other)" in words
    assert 'action="/logout"' not in page.text and "Log out" not in words
    assert 'href="/dashboard"' not in page.text  # the brand leads a reader without an account nowhere
    assert "site-switcher" not in page.text and "Blog" not in words
    tabs = re.findall(r'<nav class="site-tabs".*?</nav>', page.text, re.DOTALL)[0]
    assert "Overview" in tabs and "Goals" in tabs and "Realtime" in tabs
    assert "Consent" not in tabs and "Cookies" not in tabs and "Settings" not in tabs
    assert page.headers["x-frame-options"] == "DENY" and "nonce-" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"


def test_every_shared_page_opens_and_stays_under_the_link(shared: tuple[Shared, httpx.Client]) -> None:
    dashboard, client = shared
    _, path = dashboard.share()
    for page_path in SHARED_PAGES:
        response = client.get(f"{path}{page_path}", params=DAY1)
        assert response.status_code == 200, (page_path, response.text)
        assert response.headers["x-content-type-options"] == "nosniff"
    for page_path in HTML_PAGES:
        page = client.get(f"{path}{page_path}", params=DAY1).text
        targets = re.findall(r'(?:href|action)="([^"]*)"', page)
        assert any(target.startswith(f"{path}/") or target.startswith(f"{path}?") for target in targets)
        leaks = [t for t in targets if t.startswith("/dashboard/") and t != "/dashboard/static/dashboard.css"]
        assert not leaks, (page_path, leaks)
        assert not any(t.startswith(("/consent", "/cookies")) or "/settings" in t for t in targets)
    assert client.get(f"{path}/consent").status_code == 404
    assert client.get(f"{path}/settings").status_code == 404


def test_a_revoked_an_expired_or_a_tampered_link_is_404(shared: tuple[Shared, httpx.Client]) -> None:
    dashboard, client = shared
    revoked, revoked_path = dashboard.share()
    _, expiring_path = dashboard.share(expires_at=dashboard.clock.now() + timedelta(days=1))
    _, good_path = dashboard.share()
    _, gone_path = dashboard.share("removed-site")  # a site taken out of the config since
    dashboard.revoke(revoked)
    assert client.get(expiring_path).status_code == 200
    dashboard.clock.advance(timedelta(days=1))
    token = good_path.removeprefix("/share/")
    payload, signature = token.split(".")
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]  # not the last: padding bits
    tampered = [
        f"{payload}.{flipped}",
        f"{'X' if payload[0] != 'X' else 'Y'}{payload[1:]}.{signature}",
        f"{payload}.",
        "nonsense",
        "x" * 600,
    ]
    for bad in [revoked_path, expiring_path, gone_path, *(f"/share/{t}" for t in tampered)]:
        for page_path in ("", "/export.zip"):
            response = client.get(f"{bad}{page_path}")
            assert response.status_code == 404, bad
            assert NOT_VALID in response.text
            assert response.headers["x-frame-options"] == "DENY"
        assert unlock(client, bad, PASSWORD).status_code == 404
    assert client.get(good_path).status_code == 200


def test_a_password_opens_the_link_through_a_cookie(shared: tuple[Shared, httpx.Client]) -> None:
    dashboard, client = shared
    link, path = dashboard.share(password=PASSWORD)
    gate = client.get(f"{path}/goals", params={"period": "7d"})
    assert gate.status_code == 401 and 'type="password"' in gate.text
    assert "Unique visitors" not in gate.text and "Shop" not in gate.text  # not even the site's name
    assert field(gate.text, "next") == "/goals?period=7d"
    assert client.get(f"{path}/export.zip").status_code == 401

    wrong = unlock(client, path, "not the password", "/goals?period=7d")
    assert wrong.status_code == 401 and WRONG_PASSWORD in wrong.text
    assert "not the password" not in wrong.text and "set-cookie" not in wrong.headers
    assert field(wrong.text, "next") == "/goals?period=7d"

    right = unlock(client, path, PASSWORD, "/goals?period=7d")
    assert right.status_code == 303 and right.headers["location"] == f"{path}/goals?period=7d"
    cookie = right.headers["set-cookie"]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert attributes[0].startswith(f"cg_share_{link.id}=")
    assert {"httponly", "samesite=lax", "path=/share/", "max-age=43200"} <= set(attributes)
    assert "secure" not in attributes
    assert client.get(f"{path}/goals", params={"period": "7d"}).status_code == 200
    assert client.get(path, params=DAY1).status_code == 200

    dashboard.clock.advance(timedelta(hours=12, seconds=1))  # the unlock lasts 12 hours
    assert client.get(path).status_code == 401


@pytest.mark.parametrize("next_page", ["//evil.example", "https://evil.example/", "/\\evil", "/x\ny"])
def test_the_unlock_never_leaves_the_link(shared: tuple[Shared, httpx.Client], next_page: str) -> None:
    dashboard, client = shared
    _, path = dashboard.share(password=PASSWORD)
    response = unlock(client, path, PASSWORD, next_page)
    assert response.status_code == 303 and response.headers["location"] == path


def test_the_cookie_of_one_link_does_not_open_another(shared: tuple[Shared, httpx.Client]) -> None:
    dashboard, client = shared
    first, first_path = dashboard.share(password=PASSWORD)
    second, second_path = dashboard.share(password=PASSWORD)
    assert unlock(client, first_path, PASSWORD).status_code == 303
    assert client.get(first_path).status_code == 200
    assert client.get(second_path).status_code == 401
    value = client.cookies.get(f"cg_share_{first.id}")
    assert value
    with dashboard.client() as other:  # the first link's proof under the second link's name
        other.cookies.set(f"cg_share_{second.id}", value)
        assert other.get(second_path).status_code == 401


def test_the_unlock_cookie_is_secure_behind_tls(shared: tuple[Shared, httpx.Client]) -> None:
    dashboard, _ = shared
    _, path = dashboard.share(password=PASSWORD)
    with dashboard.client(**{"x-forwarded-proto": "https"}) as client:
        response = unlock(client, path, PASSWORD)
        assert response.status_code == 303 and "secure" in response.headers["set-cookie"].lower()


def test_repeated_wrong_passwords_are_throttled_per_link(shared: tuple[Shared, httpx.Client]) -> None:
    dashboard, client = shared
    _, path = dashboard.share(password=PASSWORD)
    _, other_path = dashboard.share(password=PASSWORD)
    for _ in range(5):
        assert unlock(client, path, "wrong password!").status_code == 401
    throttled = unlock(client, path, PASSWORD)  # even the right one waits
    assert throttled.status_code == 429 and "Too many wrong passwords" in throttled.text
    assert 1 <= int(throttled.headers["retry-after"]) <= 15 * 60 + 1
    assert "set-cookie" not in throttled.headers
    assert unlock(client, other_path, PASSWORD).status_code == 303  # another link is not locked
    dashboard.clock.advance(timedelta(minutes=16))
    assert unlock(client, path, PASSWORD).status_code == 303


def test_a_link_without_a_password_needs_no_unlock(shared: tuple[Shared, httpx.Client]) -> None:
    dashboard, client = shared
    _, path = dashboard.share()
    response = unlock(client, path, "anything", "/realtime")
    assert response.status_code == 303 and response.headers["location"] == f"{path}/realtime"
    assert "set-cookie" not in response.headers
