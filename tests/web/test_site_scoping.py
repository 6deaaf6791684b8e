"""Every read and write is scoped to the sites the user may see: each route is tried with another site's id.

The routes are not listed by hand: they are read from ``app.routes``, so a ``/dashboard/{site_id}/...``
route added later is tried too, and fails here if it forgets the check. The gateway serves two
sites, ``shop`` and ``blog``; ``olga`` owns shop, ``vic`` views shop, neither has a role on blog.
Blog's traffic has a page no other site has (``BLOG_SECRET``) and blog has its own API key and
shared link, so a leak or a cross-site write shows. Blog's pages each hold k = 2 visitors or more (its
/ has z of tests/storage/test_rollups.py and one more), so blog's own link names ``BLOG_SECRET``: a page
of one visitor would leave "(other)" under k, and the floor would withhold the smallest named page with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from gateway import create_app
from gateway.accounts.api_keys import create_api_key
from gateway.accounts.shared_links import SharedLinks
from gateway.clock import FixedClock
from gateway.scan.jobs import ProgressCallback, ScanRequest
from gateway.storage.scans import record_finished_scan
from gateway.storage.store import Store
from gateway.web.openapi import OPENAPI_PATH, STATS_PREFIX, openapi_document
from tests.conftest import LiveServer, make_settings, site_config
from tests.module_stores import store_kind_per_module  # noqa: F401 - the world is built once per store
from tests.storage.test_rollups import FIRST_DAY, at, event
from tests.stores import query
from tests.web.test_dashboard import SiteDashboard
from tests.web.test_dashboard_auth import on_database

pytestmark = pytest.mark.integration
DAY1 = {"period": "custom", "from": "2026-03-10", "to": "2026-03-10"}
BLOG_SECRET = "/only-on-the-blog"
BLOG_NAME = "Secret Blog"
FOREIGN = ("blog", "does-not-exist")
#: The site-scoped routes there are today, as (path, method). The enumeration must find at least
#: these: if it found fewer, it would have stopped looking (a routing refactor), not proved anything.
KNOWN_SITE_ROUTES = {
    ("/dashboard/{site_id}", "GET"),
    ("/dashboard/{site_id}/breakdown/{dimension}", "GET"),
    ("/dashboard/{site_id}/export/{name}.csv", "GET"),
    ("/dashboard/{site_id}/export.zip", "GET"),
    ("/dashboard/{site_id}/realtime", "GET"),
    ("/dashboard/{site_id}/goals", "GET"),
    ("/dashboard/{site_id}/consent", "GET"),
    ("/dashboard/{site_id}/cookies", "GET"),
    ("/dashboard/{site_id}/cookies/classify", "GET"),
    ("/dashboard/{site_id}/settings", "GET"),
    ("/dashboard/{site_id}/settings/keys", "POST"),
    ("/dashboard/{site_id}/settings/keys/revoke", "POST"),
    ("/dashboard/{site_id}/settings/links", "POST"),
    ("/dashboard/{site_id}/settings/links/revoke", "POST"),
    ("/dashboard/{site_id}/consent/export", "GET"),
    ("/dashboard/{site_id}/compliance", "GET"),
    ("/dashboard/{site_id}/compliance/scan", "POST"),
    ("/dashboard/{site_id}/compliance/progress.json", "GET"),
    ("/dashboard/{site_id}/compliance/scans/{scan_id}.json", "GET"),
    ("/dashboard/{site_id}/compliance/scans/{scan_id}.html", "GET"),
}
KNOWN_API_ROUTES = {f"{STATS_PREFIX}/aggregate", f"{STATS_PREFIX}/timeseries", f"{STATS_PREFIX}/breakdown"}
#: Valid values for the other path parameters of site routes.
PATH_VALUES = {"dimension": "page", "name": "page", "scan_id": "1"}  # scan 1: shop's (``Gateway.blog_rows``)
#: Query parameters a GET route needs to answer 200 on the user's own site (besides the period).
GET_QUERIES = {
    "/dashboard/{site_id}/cookies/classify": {"name": "_ga"},
    "/dashboard/{site_id}/consent/export": {"from": "2026-03-10", "to": "2026-03-10", "format": "json"},
}
#: Routes whose path names a site in another way, and why that is not a user's read: the snippet's
#: consent configuration is public by design (every visitor of the site's pages fetches it).
PUBLIC_SITE_ROUTES = {"/api/config/{site}"}
#: The API's routes that name their site in the path (an API key reads them, not a session).
API_SITES = "/api/v1/sites/{site_id}/"
KNOWN_API_SITE_ROUTES = {API_SITES + "consent-log"}
#: What each of them needs besides the site to answer 200.
API_SITE_PARAMS = {API_SITES + "consent-log": {"from": "2026-03-10", "to": "2026-03-10", "format": "json"}}
#: The parameters each stats API endpoint needs besides ``site_id``.
API_PARAMS = {f"{STATS_PREFIX}/breakdown": {"property": "page"}}


@dataclass(frozen=True, slots=True)
class BlogRows:
    """Blog's own API key and shared link: the ids a cross-site write would try to revoke."""

    key_id: int
    link_id: int
    link_token: str


def post_forms(blog: BlogRows) -> dict[str, dict[str, str]]:
    """Plausible form fields of every POST route under ``/dashboard/{site_id}`` (the CSRF token is added).

    A new POST route fails ``test_every_site_route_refuses_another_sites_id`` until it has a row here:
    give it the fields its form in the template sends, filled so that the request would succeed on the
    user's own site, and any id naming a row of blog (so a missing site check would touch blog's data).
    """
    return {
        "/dashboard/{site_id}/settings/keys": {"name": "scoping test"},
        "/dashboard/{site_id}/settings/keys/revoke": {"id": str(blog.key_id)},
        "/dashboard/{site_id}/settings/links": {"label": "scoping test", "expires": "7d", "password": ""},
        "/dashboard/{site_id}/settings/links/revoke": {"id": str(blog.link_id)},
        "/dashboard/{site_id}/compliance/scan": {},  # the form sends its CSRF token only
    }


#: A finished scan's report (format consent-gateway-scan/1): nothing found.
SCAN_REPORT: dict[str, Any] = {
    "format": "consent-gateway-scan/1",
    "url": "https://shop.example.com/",
    "site": None,
    "started_at": "2026-03-10T23:59:00+00:00",
    "finished_at": "2026-03-10T23:59:00+00:00",
    "banner": False,
    "states_scanned": ["none"],
    "notes": [],
    "pages": [],
    "cookies": [],
    "storage": [],
    "third_parties": [],
    "violations": [],
    "summary": {"pages": 0, "cookies": 0, "unknown_cookies": 0, "third_parties": 0, "violations": 0},
}


async def finished_at_once(request: ScanRequest, progress: ProgressCallback) -> dict[str, Any]:
    """The scanner of this test's gateway: a scan started through a site's URL ends at once, with no browser."""
    return {**SCAN_REPORT, "url": request.url, "site": request.site.id}


class Gateway(SiteDashboard):
    """``SiteDashboard``'s helpers (users, login through the form, events) over two sites, keeping the app
    so its routes can be read."""

    def __init__(self, tmp_path: Path, clock: FixedClock) -> None:
        sites = {
            "shop": site_config(min_visitors=2),
            "blog": site_config(name=BLOG_NAME, origins=["https://blog.example.com"], min_visitors=2),
        }
        self.settings = make_settings(tmp_path, sites=sites)
        self.clock = clock
        self.app: Starlette = create_app(self.settings, clock=clock, scanner=finished_at_once)
        self.server = LiveServer(self.app)

    def blog_rows(self) -> tuple[str, BlogRows]:
        """A key of shop (the plaintext) and blog's key and link."""

        async def work(db: Store) -> tuple[str, BlogRows]:
            now = self.clock.now()
            _, shop_key = await create_api_key(db, "shop", "report", now=now, permissions=frozenset({"consent_log"}))
            blog_key, _ = await create_api_key(db, "blog", "blog report", now=now)
            link, token = await SharedLinks(db, self.settings.secret_keys).create(
                "blog", label="blog board", expires_at=None, password=None, now=now
            )
            for site_id in ("shop", "blog"):  # scan 1 is shop's (PATH_VALUES), 2 blog's
                url = f"https://{site_id}.example.com/"
                report = {**SCAN_REPORT, "url": url}
                await record_finished_scan(db, site_id, url, trigger="manual", report=report, started=now, now=now)
            return shop_key, BlogRows(blog_key.id, link.id, token)

        return on_database(self.settings, work)


@dataclass(frozen=True, slots=True)
class World:
    gateway: Gateway
    shop_key: str
    blog: BlogRows


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> Iterator[World]:
    clock = FixedClock(datetime(2026, 3, 10, 23, 59, tzinfo=UTC))
    gateway = Gateway(tmp_path_factory.mktemp("scoping"), clock)
    with gateway.server:
        gateway.add_user("olga", roles={"shop": "owner"})
        gateway.add_user("vic", roles={"shop": "viewer"})
        blog_traffic = [event(at("2026-03-10", f"1{n}:00"), f"b{n}", BLOG_SECRET, site="blog") for n in range(3)]
        blog_traffic.append(event(at("2026-03-10", "12:30"), "y", "/", site="blog"))  # z's page holds k
        gateway.store(*FIRST_DAY, *blog_traffic)
        shop_key, blog = gateway.blog_rows()
        yield World(gateway, shop_key, blog)


def site_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Route]]:
    """Every ``Route`` of the app with its full path, through ``Mount``s."""
    for route in routes:
        if isinstance(route, Mount):
            yield from site_routes(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            yield prefix + route.path, route


def scoped_routes(app: Starlette) -> list[tuple[str, str]]:
    """(path, method) of every dashboard route whose path carries ``{site_id}``; HEAD goes with GET. (The API's
    site routes take a key, not a session: ``test_a_keys_site_route_reads_only_its_own_site``.)"""
    found = []
    for path, route in site_routes(list(app.routes)):
        if "{site_id}" in path and not path.startswith(API_SITES):
            methods = route.methods or {"GET"}
            found += [(path, method) for method in sorted(methods) if method != "HEAD"]
    return found


def url_for(path: str, site_id: str) -> str:
    filled = path.replace("{site_id}", site_id)
    for name, value in PATH_VALUES.items():
        filled = filled.replace(f"{{{name}}}", value)
    assert "{" not in filled, f"{path}: add its path parameter to PATH_VALUES"
    return filled


def table_rows(gateway: Gateway) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables the site routes write, read beside the server (on SQLite, WAL allows it).
    Of the scans, which exist (their status and progress move in the background on their own)."""
    return {
        table: list(query(gateway.settings.database, f"SELECT {columns} FROM {table} ORDER BY id"))  # noqa: S608
        for table, columns in (("api_keys", "*"), ("shared_links", "*"), ("scans", "id, site_id"))
    }


def of_site(rows: dict[str, list[tuple[Any, ...]]], site_id: str) -> dict[str, list[tuple[Any, ...]]]:
    return {table: [row for row in found if row[1] == site_id] for table, found in rows.items()}


def test_the_enumeration_finds_every_site_route_known_today(world: World) -> None:
    found = set(scoped_routes(world.gateway.app))
    assert KNOWN_SITE_ROUTES <= found, KNOWN_SITE_ROUTES - found
    posts = {path for path, method in found if method not in ("GET", "HEAD")}
    assert posts <= set(post_forms(world.blog)), f"add the form fields of {posts - set(post_forms(world.blog))}"
    # A path naming a site by any other parameter is public by design, or it is a route this test misses.
    other = {
        path for path, _ in site_routes(list(world.gateway.app.routes)) if "{site" in path and "{site_id}" not in path
    }
    assert other == PUBLIC_SITE_ROUTES


@pytest.mark.parametrize("user", ["olga", "vic"])
def test_every_site_route_refuses_another_sites_id(world: World, user: str) -> None:
    gateway = world.gateway
    forms = post_forms(world.blog)
    problems: list[str] = []
    with gateway.client() as client:
        assert gateway.login(client, user).status_code == 303
        csrf = gateway.csrf(client, "/dashboard/shop")
        for path, method in scoped_routes(gateway.app):
            data = {**forms[path], "csrf": csrf} if method == "POST" else None
            params = {**DAY1, **GET_QUERIES.get(path, {})}
            for site_id in FOREIGN:
                before = table_rows(gateway)
                response = client.request(method, url_for(path, site_id), params=params, data=data)
                allowed = (404,) if method == "GET" else (403, 404)
                where = f"{user} {method} {url_for(path, site_id)}"
                if response.status_code not in allowed:
                    problems.append(f"{where}: {response.status_code}, expected {allowed}")
                if BLOG_NAME in response.text or BLOG_SECRET in response.text:
                    problems.append(f"{where}: the body shows blog's name or figures")
                if table_rows(gateway) != before:
                    problems.append(f"{where}: the database changed")
            blog_before = of_site(table_rows(gateway), "blog")
            response = client.request(method, url_for(path, "shop"), params=params, data=data)
            where = f"{user} {method} {url_for(path, 'shop')}"
            if response.status_code == 404 or response.status_code >= 500:
                problems.append(f"{where}: {response.status_code} on the user's own site")
            if user == "olga" and method == "GET" and response.status_code != 200:
                # The owner reads every page of her site: else the values filled in above are wrong
                # (extend PATH_VALUES or GET_QUERIES) and the 404s above would prove nothing.
                problems.append(f"{where}: {response.status_code}, the owner should read it")
            if of_site(table_rows(gateway), "blog") != blog_before:
                problems.append(f"{where}: blog's keys or links changed through shop's URL")
            if BLOG_SECRET in response.text:
                problems.append(f"{where}: the body shows blog's figures")
    assert problems == []


def test_the_owners_forms_work_on_their_own_site(world: World) -> None:
    """The other test's "not 404" on shop is not a vacuous pass: the forms it posts do act on shop."""
    gateway = world.gateway
    with gateway.client() as client:
        assert gateway.login(client, "olga").status_code == 303
        csrf = gateway.csrf(client, "/dashboard/shop")
        before = len(of_site(table_rows(gateway), "shop")["api_keys"])
        forms = post_forms(world.blog)
        created = client.post(
            "/dashboard/shop/settings/keys", data={**forms["/dashboard/{site_id}/settings/keys"], "csrf": csrf}
        )
        assert created.status_code == 200 and "Your new API key" in created.text
        assert len(of_site(table_rows(gateway), "shop")["api_keys"]) == before + 1
        # Blog's key through shop's URL: the site's settings do not hold it, so nothing is revoked.
        revoke = client.post("/dashboard/shop/settings/keys/revoke", data={"id": str(world.blog.key_id), "csrf": csrf})
        assert revoke.status_code == 400 and "no such API key" in revoke.text


def api_routes(app: Starlette) -> list[str]:
    """The stats API endpoints: every route under the prefix but the catch-all and the document."""
    return [
        path
        for path, route in site_routes(list(app.routes))
        if path.startswith(STATS_PREFIX + "/") and path != OPENAPI_PATH
    ]


def test_an_api_key_reads_only_its_own_site(world: World) -> None:
    gateway = world.gateway
    found = set(api_routes(gateway.app))
    assert KNOWN_API_ROUTES <= found, KNOWN_API_ROUTES - found
    documented = openapi_document()["paths"]
    headers = {"authorization": f"Bearer {world.shop_key}"}
    with gateway.client() as client:
        for path in sorted(found):
            operation = documented[path]["get"]
            assert "site_id" in {p.get("name") for p in operation["parameters"]}, f"{path} takes site_id"
            params = {**DAY1, **API_PARAMS.get(path, {})}
            own = client.get(path, params={**params, "site_id": "shop"}, headers=headers)
            assert own.status_code == 200, (path, own.text)
            other = client.get(path, params={**params, "site_id": "blog"}, headers=headers)
            assert other.status_code == 403, (path, other.text)
            assert set(other.json()) == {"error"} and BLOG_SECRET not in other.text
            missing = client.get(path, params={**params, "site_id": "does-not-exist"}, headers=headers)
            assert missing.status_code == 404 and set(missing.json()) == {"error"}


def test_a_keys_site_route_reads_only_its_own_site(world: World) -> None:
    """Every ``/api/v1/sites/{site_id}/...`` route: shop's key (with every permission) reads shop, gets 403 for
    blog and 404 for a site that does not exist, and no answer shows blog's data."""
    gateway = world.gateway
    found = {path for path, _ in site_routes(list(gateway.app.routes)) if path.startswith(API_SITES)}
    assert KNOWN_API_SITE_ROUTES <= found, KNOWN_API_SITE_ROUTES - found
    headers = {"authorization": f"Bearer {world.shop_key}"}
    with gateway.client() as client:
        for path in sorted(found):
            params = API_SITE_PARAMS.get(path, {})
            own = client.get(path.replace("{site_id}", "shop"), params=params, headers=headers)
            assert own.status_code == 200, (path, own.text[:300])
            other = client.get(path.replace("{site_id}", "blog"), params=params, headers=headers)
            assert other.status_code == 403 and BLOG_SECRET not in other.text and BLOG_NAME not in other.text, path
            missing = client.get(path.replace("{site_id}", "does-not-exist"), params=params, headers=headers)
            assert missing.status_code == 404, (path, missing.text[:300])


def test_a_shared_link_opens_its_own_site_only(world: World) -> None:
    gateway = world.gateway
    share = [(path, route) for path, route in site_routes(list(gateway.app.routes)) if path.startswith("/share/")]
    assert share, "the shared-link routes are found"
    for path, route in share:
        # The link's token alone chooses the site: there is no site id to swap.
        assert set(route.param_convertors) <= {"token"} | set(PATH_VALUES), path
    shop_link = on_database(
        gateway.settings,
        lambda db: SharedLinks(db, gateway.settings.secret_keys).create(
            "shop", label="", expires_at=None, password=None, now=gateway.clock.now()
        ),
    )
    _, shop_token = shop_link
    with gateway.client() as anonymous:
        for path, route in share:
            if "GET" not in (route.methods or set()):
                continue
            target = url_for(path.replace("{token}", shop_token), "shop")
            response = anonymous.get(target, params={**DAY1, "site_id": "blog"})
            assert response.status_code == 200, (target, response.status_code)
            assert BLOG_SECRET not in response.text and BLOG_NAME not in response.text, target
        blog_page = anonymous.get(f"/share/{world.blog.link_token}/breakdown/page", params=DAY1)
        assert blog_page.status_code == 200 and BLOG_SECRET in blog_page.text  # blog's own link shows it
