"""``consent-gateway demo``: the gateway plus a small site that mounts ``ConsentMiddleware``.

Both run in one process on the embedded defaults (SQLite under ./data, the bundled
catalog). The site sets one cookie of each category on every page so a visitor can watch
the middleware drop and cap them as consent changes. On the first start (no user yet) the
database gets labelled sample data (gateway/sample_data.py), so the dashboard shows what the
product does before any real traffic; ``--no-sample-data`` starts empty.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gateway.accounts.passwords import hash_password
from gateway.app import create_app
from gateway.categories import CATEGORIES
from gateway.clock import SystemClock
from gateway.consent.middleware import SCOPE_KEY, ConsentMiddleware, load_catalog
from gateway.resources import resource_dir
from gateway.sample_data import seed_sample_data
from gateway.settings import Settings, load_settings
from gateway.storage.sample_data import sites_with_sample_data
from gateway.storage.scans import enqueue_scan
from gateway.storage.store import open_store
from gateway.storage.users import add_user, count_users
from gateway.templating import template_environment

DEMO_SITE = "demo"
DEMO_ADMIN = "admin"
#: (name, category, Max-Age asked) — one of each category, some asking more than allowed.
DEMO_COOKIES: tuple[tuple[str, str, int], ...] = (
    ("PHPSESSID", "essential", 0),
    ("demo_theme", "functional", 400 * 86400),
    ("_ga", "analytics", 2 * 365 * 86400),
    ("_trk", "analytics", 90 * 86400),
    ("_fbp", "advertising", 90 * 86400),
    ("_ar_v4", "advertising", 6 * 365 * 86400),
    ("mystery_tracker", "unknown", 10 * 365 * 86400),
)


#: The cookies the demo page's scripts set (consent_ui/demo_site.html, ``_ADS_JS``) that its config does not
#: declare: what the snippet reports as seen by script.
DEMO_SCRIPT_COOKIES = ("_ga", "_ga_DEMO", "_hjSessionUser_42", "_fbp")

_DEMO_PAGES = ("/", "/page-2", "/privacy")
_SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"

_ADS_JS = """document.cookie = "_fbp=fb.1.1767225600.42; Max-Age=7776000; Path=/; SameSite=Lax";
document.getElementById("ran-advertising").textContent = "ran " + (window.cgOrder = (window.cgOrder || "") + "x");
"""


def demo_settings(data: Path, *, gateway_url: str, site_url: str, database: str | None = None) -> Settings:
    """The demo config with a secret key kept under ``data`` (so restarts keep consent valid).

    ``database``: where the demo keeps its data; ``data/demo.sqlite3`` unless given (``make
    demo-postgres`` gives a PostgreSQL URL through ``CONSENT_GATEWAY_DATABASE``)."""
    data.mkdir(parents=True, exist_ok=True)
    key_file = data / "demo-secret.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(32), encoding="utf-8")
        key_file.chmod(0o600)
    environ = {
        "CONSENT_GATEWAY_SECRET_KEYS": f'["{key_file.read_text(encoding="utf-8").strip()}"]',
        "CONSENT_GATEWAY_DATABASE": json.dumps(database or (data / "demo.sqlite3").as_posix()),
        # The demo's own address: the settings page shows full shared links and a complete snippet tag.
        "CONSENT_GATEWAY_PUBLIC_URL": f'"{gateway_url}"',
        "CONSENT_GATEWAY_SITES__DEMO__ORIGINS": f'["{site_url}"]',
        "CONSENT_GATEWAY_SITES__DEMO__POLICY_URL": f'"{site_url}/privacy"',
    }
    return load_settings(resource_dir("config") / "demo.toml", environ=environ)


def demo_site(settings: Settings, *, gateway_url: str) -> ConsentMiddleware:
    """A tiny site behind the middleware; its page shows the decision and offers choices."""
    template = template_environment().get_template("demo_site.html")
    site = settings.sites[DEMO_SITE]

    async def page(request: Request) -> Response:
        html = template.render(
            decision=request.scope[SCOPE_KEY],
            categories=CATEGORIES,
            demo_cookies=[(n, c, f"{age // 86400} days" if age else "session") for n, c, age in DEMO_COOKIES],
            gateway_url=gateway_url,
            site_id=site.id,
            revision=site.policy_revision,
        )
        response = HTMLResponse(html)
        for name, _, max_age in DEMO_COOKIES:
            response.set_cookie(name, secrets.token_hex(8), max_age=max_age or None, samesite="lax")
        return response

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    async def ads_script(request: Request) -> Response:
        """A third-party-like tag: it sets an advertising cookie the moment it runs."""
        return Response(_ADS_JS, media_type="text/javascript")

    async def embed(request: Request) -> Response:
        return HTMLResponse("<!doctype html><title>video</title><p>The embedded video would play here.</p>")

    async def sitemap(request: Request) -> Response:
        """The demo's pages, for the scanner: no plain link leads to all of them (one is reached by a button,
        one from the banner)."""
        base = str(request.base_url).rstrip("/")
        urls = "".join(f"<url><loc>{base}{path}</loc></url>" for path in _DEMO_PAGES)
        xml = f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="{_SITEMAP_NS}">{urls}</urlset>'
        return Response(xml, media_type="application/xml")

    app = Starlette(
        routes=[
            *(Route(path, page) for path in _DEMO_PAGES),
            Route("/sitemap.xml", sitemap),
            Route("/static/ads.js", ads_script),
            Route("/embed", embed),
            Route("/favicon.ico", no_icon),
        ]
    )
    return ConsentMiddleware(app, settings=settings, site=DEMO_SITE)


async def demo_login_notice(settings: Settings, *, gateway_url: str, now: datetime) -> str:
    """How to log in to the demo's dashboard; on the first run this creates the admin it names.

    The password is random and shown once, on the terminal that started the demo (it is
    stored only as its scrypt hash); later runs say how to set a new one instead.
    """
    database = open_store(settings.database)
    await database.open()
    try:
        if await count_users(database) == 0:
            password = secrets.token_urlsafe(12)
            password_hash = await asyncio.to_thread(hash_password, password)
            await add_user(database, DEMO_ADMIN, password_hash, is_admin=True, now=now)
            return f"Dashboard: {gateway_url}/login  user: {DEMO_ADMIN}  password: {password}"
    finally:
        await database.close()
    config = resource_dir("config") / "demo.toml"
    location = settings.database
    shown = location.as_posix() if isinstance(location, Path) else location.redacted
    database_env = f"CONSENT_GATEWAY_DATABASE='\"{shown}\"' "
    default_database = settings.database == Path("data/demo.sqlite3")
    return (
        f"Dashboard: {gateway_url}/login  (the user {DEMO_ADMIN} exists; to set a new password: "
        f"{'' if default_database else database_env}consent-gateway user passwd {DEMO_ADMIN} --config {config})"
    )


async def prepare_sample_data(
    settings: Settings, *, now: datetime, seed: bool, scan_url: str | None = None
) -> tuple[Settings, str]:
    """On the demo's first start (no user yet) and when ``seed``, write the sample data; returns the
    settings, with the demo site labelled "Sample data" when its database holds it, and a line saying so.

    ``scan_url``: the demo site's address, queued for a compliance scan with the sample (the Compliance
    page then shows a scan of the demo site; the gateway's scan worker runs it once the servers are up).
    Runs before ``demo_login_notice``, which creates the first user: from then on it is not a first start.
    """
    database = open_store(settings.database)
    await database.open()
    try:
        summary = None
        if seed and await count_users(database) == 0:
            site = settings.sites[DEMO_SITE]
            catalog = load_catalog(settings).with_rules(site.cookie_rules)
            cookies = [(name, max_age) for name, _, max_age in DEMO_COOKIES]
            print(
                "consent-gateway demo: first start, writing 60 days of sample data for the demo site "
                "(seconds on SQLite, a minute or more on PostgreSQL, which rolls each day up on its own)...",
                file=sys.stderr,
            )
            summary = await seed_sample_data(
                database,
                settings,
                DEMO_SITE,
                now=now,
                catalog=catalog,
                cookies=cookies,
                script_cookies=DEMO_SCRIPT_COOKIES,
            )
            if summary is not None and scan_url:
                await enqueue_scan(database, DEMO_SITE, scan_url, trigger="demo", max_pages=site.scan_pages, now=now)
        labelled = DEMO_SITE in await sites_with_sample_data(database)
    finally:
        await database.close()
    if not labelled:
        return settings, ""
    site = replace(settings.sites[DEMO_SITE], sample_data=True)
    settings = replace(settings, sites={**settings.sites, DEMO_SITE: site})
    done = (
        f"{summary.days} days, {summary.events:,} events, {summary.consent_records:,} consent records "
        f"(written in {summary.seconds:.1f} s)"
        if summary
        else "written on the first start"
    )
    return settings, (
        f"  sample:    {done}, labelled 'Sample data' on the dashboard; for an empty demo delete the data "
        "folder and start with --no-sample-data (make demo SAMPLE=0)"
    )


async def run_demo(
    *,
    host: str,
    gateway_port: int,
    site_port: int,
    data: Path,
    database: str | None = None,
    sample_data: bool = True,
) -> None:
    gateway_url = f"http://{host}:{gateway_port}"
    site_url = f"http://{host}:{site_port}"
    settings = demo_settings(data, gateway_url=gateway_url, site_url=site_url, database=database)
    settings, sample_line = await prepare_sample_data(
        settings, now=SystemClock().now(), seed=sample_data, scan_url=f"{site_url}/"
    )
    servers = [
        uvicorn.Server(
            uvicorn.Config(create_app(settings), host=host, port=gateway_port, log_level="warning", access_log=False)
        ),
        uvicorn.Server(
            uvicorn.Config(
                demo_site(settings, gateway_url=gateway_url),
                host=host,
                port=site_port,
                log_level="warning",
                access_log=False,
            )
        ),
    ]
    login = await demo_login_notice(settings, gateway_url=gateway_url, now=SystemClock().now())
    print(
        f"consent-gateway demo\n  demo site: {site_url}/\n  gateway:   {gateway_url}/healthz\n"
        f"  privacy:   {gateway_url}/privacy?site={DEMO_SITE}\n"
        f"  database:  {settings.database}\n{sample_line + chr(10) if sample_line else ''}{login}\n"
        "Press Ctrl+C to stop.",
        file=sys.stderr,
    )
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:  # Ctrl+C reaches one server's handler: stop both
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
