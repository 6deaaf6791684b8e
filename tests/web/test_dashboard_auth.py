"""Dashboard login on a real uvicorn: sessions, timeouts, throttling, CSRF, redirects, security headers.

The throttle tests play the attacker: parallel guesses that must not all reach scrypt, and a
stranger who must not lock the owner out.

The server runs behind uvicorn's proxy-header handling (trusted from 127.0.0.1), so a test can
play a visitor from another network (``X-Forwarded-For``) or behind TLS (``X-Forwarded-Proto``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from gateway import create_app
from gateway.accounts.passwords import hash_password
from gateway.accounts.sessions import SESSION_COOKIE
from gateway.accounts.shared_links import SharedLinks
from gateway.accounts.throttle import LoginThrottle, Refused, Reservation, ThrottlePolicy
from gateway.clock import FixedClock
from gateway.demo import demo_login_notice
from gateway.settings import Settings
from gateway.storage.store import Store, open_store
from gateway.storage.users import Role, add_user, count_users, grant, set_password
from gateway.web.dashboard_auth import LOGIN_COOKIE, WRONG_LOGIN
from tests.conftest import LiveServer, make_settings, site_config

pytestmark = pytest.mark.integration
Start = Callable[[Any], LiveServer]
T = TypeVar("T")

PASSWORD = "correct horse battery"
PASSWORD_HASH = hash_password(PASSWORD)  # once: scrypt costs ~0.2 s a hash
EXPECTED_CSP = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def on_database(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run storage functions on the gateway's store (SQLite file or PostgreSQL database) from the test's thread."""

    async def run() -> T:
        database = open_store(settings.database)
        await database.open()
        try:
            return await work(database)
        finally:
            await database.close()

    return asyncio.run(run())


class Dashboard:
    """A gateway with two sites, a pinned clock, and helpers to log in through the real form."""

    def __init__(self, tmp_path: Path, clock: FixedClock, start: Start) -> None:
        sites = {"shop": site_config(), "blog": site_config(name="Blog", origins=["https://blog.example.com"])}
        self.settings = make_settings(tmp_path, sites=sites)
        self.clock = clock
        self.server = start(create_app(self.settings, clock=clock))

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=30, follow_redirects=False, headers=headers)

    def add_user(self, name: str, *, admin: bool = False, roles: dict[str, Role] | None = None) -> None:
        async def work(db: Store) -> None:
            await add_user(db, name, PASSWORD_HASH, is_admin=admin, now=self.clock.now())
            for site_id, role in (roles or {}).items():
                await grant(db, name, site_id, role)

        on_database(self.settings, work)

    def login(self, client: httpx.Client, name: str, password: str = PASSWORD, *, next: str = "") -> httpx.Response:
        form = client.get("/login", params={"next": next} if next else {})
        assert form.status_code == 200, form.text
        return client.post(
            "/login",
            data={"name": name, "password": password, "login_csrf": field(form.text, "login_csrf"), "next": next},
        )

    def csrf(self, client: httpx.Client, path: str = "/dashboard") -> str:
        page = client.get(path)
        assert page.status_code == 200, page.text
        return field(page.text, "csrf")


def field(html: str, name: str) -> str:
    found = re.search(rf'<input[^>]*\bname="{name}"[^>]*\bvalue="([^"]*)"', html)
    assert found, f"no {name} field in the page"
    return found.group(1)


def nonce_of(response: httpx.Response) -> str:
    found = re.search(r"'nonce-([^']+)'", response.headers["content-security-policy"])
    assert found
    return found.group(1)


@pytest.fixture
def dashboard(tmp_path: Path, clock: FixedClock, live_server: Start) -> Iterator[Dashboard]:
    dashboard = Dashboard(tmp_path, clock, live_server)
    dashboard.add_user("ann", admin=True)
    dashboard.add_user("vic", roles={"blog": "viewer"})
    yield dashboard


def test_a_good_login_redirects_to_the_dashboard_with_a_session_cookie(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        response = dashboard.login(client, "ann")
        assert response.status_code == 303 and response.headers["location"] == "/dashboard"
        cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(f"{SESSION_COOKIE}="))
        attributes = [part.strip().lower() for part in cookie.split(";")[1:]]
        assert "httponly" in attributes and "samesite=lax" in attributes and "path=/" in attributes
        assert "secure" not in attributes and not any(a.startswith(("max-age", "expires")) for a in attributes)
        page = client.get("/dashboard")
        assert page.status_code == 200 and "ann" in page.text and "/dashboard/shop" in page.text


@pytest.mark.parametrize(("name", "password"), [("ann", "wrong password!"), ("nobody", PASSWORD)])
def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
    dashboard: Dashboard, name: str, password: str
) -> None:
    with dashboard.client() as client:
        response = dashboard.login(client, name, password)
        assert response.status_code == 401 and WRONG_LOGIN in response.text
        assert field(response.text, "name") == name  # kept for the next try
        assert password not in response.text
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
        assert client.get("/dashboard").status_code == 303


def test_five_failures_refuse_the_account_from_that_network_even_with_the_right_password(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        for _ in range(5):
            assert dashboard.login(client, "ann", "wrong password!").status_code == 401
        refused = dashboard.login(client, "ann")
        assert refused.status_code == 429 and "Too many failed logins" in refused.text
        assert 0 < int(refused.headers["retry-after"]) <= 15 * 60
    with dashboard.client(**{"x-forwarded-for": "127.0.0.99"}) as same_network:  # another address of the /24
        assert dashboard.login(same_network, "ann").status_code == 429
    dashboard.clock.advance(timedelta(minutes=16))
    with dashboard.client() as client:
        assert dashboard.login(client, "ann").status_code == 303


def test_a_stranger_failing_fifty_times_does_not_lock_the_owner_out(dashboard: Dashboard) -> None:
    with dashboard.client(**{"x-forwarded-for": "203.0.113.66"}) as stranger:
        answers = [dashboard.login(stranger, "ann", f"guess number {i}").status_code for i in range(50)]
    assert answers.count(401) == 5 and answers.count(429) == 45  # five guesses reached scrypt
    with dashboard.client(**{"x-forwarded-for": "198.51.100.7"}) as owner:
        assert dashboard.login(owner, "ann").status_code == 303
        assert owner.get("/dashboard").status_code == 200


def test_strangers_on_many_networks_slow_the_account_but_never_lock_it(dashboard: Dashboard) -> None:
    policy = ThrottlePolicy()

    async def fail(db: Store) -> None:  # 5 guesses from each of 4 networks, as fast as they are let in
        throttle = LoginThrottle(db)
        for network in range(4):
            for _ in range(policy.per_pair):
                while isinstance(
                    reserved := await throttle.reserve("ann", f"192.0.{network}.9", dashboard.clock.now()), Refused
                ):
                    dashboard.clock.advance(timedelta(seconds=reserved.retry_after))

    on_database(dashboard.settings, fail)
    with dashboard.client(**{"x-forwarded-for": "198.51.100.7"}) as owner:
        slowed = dashboard.login(owner, "ann")
        assert slowed.status_code == 429  # slowed: 20 failures on the account within the window
        wait = int(slowed.headers["retry-after"])
        assert 0 < wait <= policy.max_delay.total_seconds()  # for at most a minute, then in
        dashboard.clock.advance(timedelta(seconds=wait))
        assert dashboard.login(owner, "ann").status_code == 303


def test_a_network_is_slowed_after_twenty_failures_across_accounts(dashboard: Dashboard) -> None:
    async def fail(db: Store) -> None:
        throttle = LoginThrottle(db)
        for i in range(20):
            assert isinstance(await throttle.reserve(f"guess{i}", "203.0.113.9", dashboard.clock.now()), Reservation)

    on_database(dashboard.settings, fail)
    with dashboard.client(**{"x-forwarded-for": "203.0.113.200"}) as same_network:
        refused = dashboard.login(same_network, "ann")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) == 1  # slowed, not locked
        assert "Try again in 1 second." in refused.text
        dashboard.clock.advance(timedelta(seconds=1))
        assert dashboard.login(same_network, "ann").status_code == 303
    with dashboard.client(**{"x-forwarded-for": "198.51.100.7"}) as other_network:
        assert dashboard.login(other_network, "ann").status_code == 303


def parallel_posts(url: str, path: str, count: int, data: dict[str, str], cookies: dict[str, str]) -> list[int]:
    """``count`` POSTs sent at once (each on its own connection), their statuses."""

    async def run() -> list[int]:
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, cookies=cookies) as client:
            responses = await asyncio.gather(*[client.post(path, data=data) for _ in range(count)])
        return [response.status_code for response in responses]

    return asyncio.run(run())


def test_forty_parallel_wrong_passwords_reach_scrypt_at_most_five_times(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        form = client.get("/login")
        data = {"name": "ann", "password": "wrong password!", "login_csrf": field(form.text, "login_csrf")}
        statuses = parallel_posts(
            dashboard.server.url, "/login", 40, data, {LOGIN_COOKIE: client.cookies[LOGIN_COOKIE]}
        )
    assert statuses.count(401) == ThrottlePolicy().per_pair and statuses.count(429) == 40 - ThrottlePolicy().per_pair
    counted = on_database(
        dashboard.settings, lambda db: db.fetch_all("SELECT count(*) AS n FROM login_attempts WHERE key LIKE 'pair:%'")
    )
    assert counted[0]["n"] == ThrottlePolicy().per_pair  # the reservations: one per password check


def test_twenty_parallel_wrong_link_passwords_reach_scrypt_at_most_five_times(dashboard: Dashboard) -> None:
    async def create(db: Store) -> str:
        links = SharedLinks(db, dashboard.settings.secret_keys)
        _, token = await links.create(
            "shop", label="board", expires_at=None, password="the link password", now=dashboard.clock.now()
        )
        return token

    token = on_database(dashboard.settings, create)
    statuses = parallel_posts(dashboard.server.url, f"/share/{token}/unlock", 20, {"password": "not it at all"}, {})
    assert statuses.count(401) <= ThrottlePolicy().per_pair and statuses.count(429) >= 20 - ThrottlePolicy().per_pair
    assert statuses.count(401) + statuses.count(429) == 20


def test_a_session_cookie_planted_before_login_is_replaced(dashboard: Dashboard) -> None:
    with dashboard.client(**{"x-forwarded-for": "203.0.113.5"}) as attacker:  # the attacker's own session
        assert dashboard.login(attacker, "vic").status_code == 303
        planted = attacker.cookies[SESSION_COOKIE]
    with dashboard.client() as client:
        client.cookies.set(SESSION_COOKIE, planted)
        response = dashboard.login(client, "ann")
        issued = response.cookies.get(SESSION_COOKIE)
        assert issued and issued != planted
        assert "/admin/users" in client.get("/dashboard").text  # signed in as ann, not as vic
    with dashboard.client() as attacker:
        attacker.cookies.set(SESSION_COOKIE, planted)
        assert "/admin/users" not in attacker.get("/dashboard").text  # the planted one is still only vic's

    async def rows(db: Store) -> list[str]:
        return [row["network"] for row in await db.fetch_all("SELECT network FROM sessions ORDER BY id")]

    assert on_database(dashboard.settings, rows) == ["203.0.113.0/24", "127.0.0.0/24"]  # networks, never addresses


def test_the_session_ends_after_thirty_idle_minutes(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        dashboard.login(client, "ann")
        dashboard.clock.advance(timedelta(minutes=29))
        assert client.get("/dashboard").status_code == 200  # and the idle clock starts again
        dashboard.clock.advance(timedelta(minutes=29))
        assert client.get("/dashboard").status_code == 200
        dashboard.clock.advance(timedelta(minutes=31))
        response = client.get("/dashboard?from=idle")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fdashboard%3Ffrom%3Didle"


def test_the_session_ends_twelve_hours_after_login_however_active(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        dashboard.login(client, "ann")
        for _ in range(12 * 60 // 25):
            dashboard.clock.advance(timedelta(minutes=25))
            assert client.get("/dashboard").status_code == 200
        dashboard.clock.advance(timedelta(minutes=25))
        assert client.get("/dashboard").status_code == 303


def test_a_password_change_ends_older_sessions(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        dashboard.login(client, "ann")
        dashboard.clock.advance(timedelta(seconds=30))
        now = dashboard.clock.now()
        on_database(dashboard.settings, lambda db: set_password(db, "ann", PASSWORD_HASH, now=now))
        assert client.get("/dashboard").status_code == 303
        assert dashboard.login(client, "ann").status_code == 303  # a new login after the change is fine
        assert client.get("/dashboard").status_code == 200


def test_logout_clears_the_session(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        dashboard.login(client, "ann")
        response = client.post("/logout", data={"csrf": dashboard.csrf(client)})
        assert response.status_code == 303 and response.headers["location"] == "/login"
        assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]
        assert client.get("/dashboard").status_code == 303


def test_a_cookie_saved_before_logout_opens_nothing_after_it(dashboard: Dashboard) -> None:
    """The attacker copied the cookie (a shared computer, a proxy log); the owner then logged out."""
    with dashboard.client() as owner:
        dashboard.login(owner, "ann")
        saved = owner.cookies[SESSION_COOKIE]
        csrf = dashboard.csrf(owner, "/dashboard/shop/settings")
        assert owner.post("/logout", data={"csrf": csrf}).status_code == 303
    with dashboard.client() as attacker:
        attacker.cookies.set(SESSION_COOKIE, saved)
        settings_page = attacker.get("/dashboard/shop/settings")
        assert settings_page.status_code == 303 and settings_page.headers["location"].startswith("/login")
        created = attacker.post("/dashboard/shop/settings/keys", data={"csrf": csrf, "name": "stolen"})
        assert created.status_code == 403 and "cg_" not in created.text
    keys = on_database(dashboard.settings, lambda db: db.fetch_all("SELECT count(*) AS n FROM api_keys"))
    assert keys[0]["n"] == 0


@pytest.mark.parametrize("csrf", [None, "", "forged-token"], ids=["missing", "empty", "wrong"])
def test_logout_without_the_csrf_token_is_refused(dashboard: Dashboard, csrf: str | None) -> None:
    with dashboard.client() as client:
        dashboard.login(client, "ann")
        response = client.post("/logout", data={} if csrf is None else {"csrf": csrf})
        assert response.status_code == 403 and "CSRF check failed" in response.text
        assert client.get("/dashboard").status_code == 200  # still signed in


def test_the_csrf_token_may_come_as_a_header(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        dashboard.login(client, "ann")
        response = client.post("/logout", headers={"x-csrf-token": dashboard.csrf(client)})
        assert response.status_code == 303


def test_a_post_without_a_session_is_refused_not_redirected(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        response = client.post("/logout", data={"csrf": "anything"})
        assert response.status_code == 403 and "log in again" in response.text


def test_the_login_form_needs_its_own_token_and_cookie(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        no_cookie = client.post("/login", data={"name": "ann", "password": PASSWORD, "login_csrf": "x"})
        assert no_cookie.status_code == 403 and SESSION_COOKIE not in no_cookie.headers.get("set-cookie", "")
        form = client.get("/login")
        assert client.cookies.get(LOGIN_COOKIE)
        wrong = client.post("/login", data={"name": "ann", "password": PASSWORD, "login_csrf": "forged"})
        assert wrong.status_code == 403 and "expired or was not opened" in wrong.text
        assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")
        fresh = client.post(
            "/login", data={"name": "ann", "password": PASSWORD, "login_csrf": field(wrong.text, "login_csrf")}
        )
        assert fresh.status_code == 303  # the refused page carries a working form
        assert field(form.text, "login_csrf") != "forged"


def test_the_login_form_expires_after_an_hour(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        form = client.get("/login")
        dashboard.clock.advance(timedelta(minutes=61))
        stale = client.post(
            "/login", data={"name": "ann", "password": PASSWORD, "login_csrf": field(form.text, "login_csrf")}
        )
        assert stale.status_code == 403


@pytest.mark.parametrize(
    "next_path",
    ["//evil.com", "https://evil.com", "/\\evil.com", "/\t/evil.com", "evil.com", "javascript:alert(1)"],
    ids=["scheme-relative", "absolute", "backslash", "tab", "relative", "javascript"],
)
def test_login_never_redirects_off_site(dashboard: Dashboard, next_path: str) -> None:
    with dashboard.client() as client:
        response = dashboard.login(client, "ann", next=next_path)
        assert response.status_code == 303 and response.headers["location"] == "/dashboard"


def test_login_returns_to_the_page_that_asked_for_it(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        asked = client.get("/dashboard?tab=sites")
        assert asked.status_code == 303
        form = client.get(asked.headers["location"])
        assert field(form.text, "next") == "/dashboard?tab=sites"
        response = client.post(
            "/login",
            data={
                "name": "ann",
                "password": PASSWORD,
                "login_csrf": field(form.text, "login_csrf"),
                "next": field(form.text, "next"),
            },
        )
        assert response.headers["location"] == "/dashboard?tab=sites"


def test_every_page_carries_the_security_headers_with_a_fresh_nonce(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        pages = [client.get("/login"), client.get("/login")]
        dashboard.login(client, "ann")
        pages += [client.get("/dashboard"), client.get("/admin/users"), client.get("/dashboard")]
        for page in pages:
            assert page.headers["content-security-policy"] == EXPECTED_CSP.format(nonce=nonce_of(page))
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["referrer-policy"] == "no-referrer"
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["cache-control"] == "no-store"
            assert "style=" not in page.text  # the CSP allows no inline style
            assert not re.search(r'(src|href)="(https?:)?//', page.text)  # nothing from another host
        nonces = {nonce_of(page) for page in pages}
        assert len(nonces) == len(pages)


def test_the_stylesheet_is_served_from_the_gateway_and_cached_briefly(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        css = client.get("/dashboard/static/dashboard.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert css.headers["cache-control"] == "public, max-age=300" and "font-family" in css.text
        assert "url(" not in css.text and "@import" not in css.text  # nothing from another host


def test_behind_tls_the_cookies_are_secure(dashboard: Dashboard) -> None:
    def attributes(response: httpx.Response, name: str) -> list[str]:
        cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}="))
        return [part.strip().lower() for part in cookie.split(";")]

    with dashboard.client(**{"x-forwarded-proto": "https"}) as client:
        form = client.get("/login")
        assert "secure" in attributes(form, LOGIN_COOKIE)
        # httpx keeps Secure cookies for https URLs: hand the login cookie back as a browser would.
        login_cookie = form.headers["set-cookie"].split(";", 1)[0]
        response = client.post(
            "/login",
            data={"name": "ann", "password": PASSWORD, "login_csrf": field(form.text, "login_csrf")},
            headers={"cookie": login_cookie},
        )
        assert response.status_code == 303 and "secure" in attributes(response, SESSION_COOKIE)


def test_a_viewer_sees_only_their_sites(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        dashboard.login(client, "vic")
        page = client.get("/dashboard")  # one site: still the list, no redirect
        assert page.status_code == 200
        assert 'href="/dashboard/blog"' in page.text and "/dashboard/shop" not in page.text
        assert "/admin/users" not in page.text


def test_a_user_without_a_role_sees_an_empty_list(dashboard: Dashboard) -> None:
    dashboard.add_user("nora")
    with dashboard.client() as client:
        dashboard.login(client, "nora")
        page = client.get("/dashboard")
        assert page.status_code == 200 and "No site to show yet" in page.text
        assert "/dashboard/shop" not in page.text and "/dashboard/blog" not in page.text


def test_the_demo_creates_its_admin_once_and_the_password_works(
    tmp_path: Path, clock: FixedClock, live_server: Start
) -> None:
    settings = make_settings(tmp_path / "demo")
    first = asyncio.run(demo_login_notice(settings, gateway_url="http://127.0.0.1:8000", now=clock.now()))
    found = re.fullmatch(r"Dashboard: http://127\.0\.0\.1:8000/login  user: admin  password: (\S+)", first)
    assert found, first
    second = asyncio.run(demo_login_notice(settings, gateway_url="http://127.0.0.1:8000", now=clock.now()))
    assert "user: admin  password:" not in second and "consent-gateway user passwd admin --config" in second
    assert found.group(1) not in second
    assert on_database(settings, count_users) == 1
    server = live_server(create_app(settings, clock=clock))
    with httpx.Client(base_url=server.url, timeout=30, follow_redirects=True) as client:
        form = client.get("/login")
        response = client.post(
            "/login",
            data={"name": "admin", "password": found.group(1), "login_csrf": field(form.text, "login_csrf")},
        )
        assert response.status_code == 200 and "/admin/users" in response.text  # followed to /dashboard
