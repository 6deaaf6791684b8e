"""``create_app``: wiring and lifespan only — every dependency is passed in or built here."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from gateway.accounts.passwords import PasswordHasher
from gateway.clock import Clock, CorrectedClock, SystemClock
from gateway.clock_sync import ClockSync
from gateway.consent.impressions import ImpressionCounter
from gateway.consent.middleware import load_catalog
from gateway.consent.report import ScriptCookieSightings
from gateway.consent.token import ConsentTokenCodec
from gateway.context import GatewayContext
from gateway.cookies.catalog import CookieCatalog
from gateway.ingest.bots import IgnoreList
from gateway.ingest.buffer import WriteBuffer
from gateway.ingest.forward import OutboxSender
from gateway.ingest.geo import GeoLookup, open_geo
from gateway.ingest.visitor import SaltKeeper, visitor_key
from gateway.ingest.writer_process import ProcessWriteBuffer
from gateway.maintenance import Maintenance
from gateway.metrics import NODE_ENVIRONMENT, Metrics, MetricsPublisher
from gateway.scan.jobs import ScanJobs, Scanner, browser_scanner, this_node
from gateway.settings import Settings, load_settings
from gateway.storage.location import PostgresUrl
from gateway.storage.store import open_store
from gateway.web.admin import admin_routes
from gateway.web.compliance import CompliancePages
from gateway.web.consent_api import consent_routes
from gateway.web.consent_export_page import ConsentExportPage
from gateway.web.cookie_sightings import cookie_sighting_routes
from gateway.web.dashboard import DashboardPages
from gateway.web.dashboard_auth import DashboardAuth
from gateway.web.dashboard_reports import ReportPages
from gateway.web.errors import QuietDisconnects
from gateway.web.events_api import EventEndpoint, GatewayApp, event_routes, metrics_routes
from gateway.web.health import health_routes
from gateway.web.privacy_center import privacy_routes
from gateway.web.shared_dashboard import SharedDashboard
from gateway.web.site_settings import SiteSettingsPages
from gateway.web.snippets import Bundles, build_bundles, snippet_routes
from gateway.web.stats_api import stats_api_routes
from gateway.web.storage_errors import StorageErrors


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    catalog: CookieCatalog | None = None,
    geo: GeoLookup | None = None,
    freeze_heap: bool = False,
    bundles: Bundles | None = None,
    writer_process: bool = False,
    node: str | None = None,
    scanner: Scanner | None = None,
    scan_poll_seconds: float = 5.0,
) -> Starlette:
    """The gateway as an ASGI app.

    ``freeze_heap`` (for a server process of its own, as ``serve`` runs it): after start-up, move
    everything loaded so far (the cookie catalog, user-agent and referrer tables, settings) out of
    the garbage collector's sight with ``gc.freeze()``, so its collections stop re-scanning that
    long-lived data on every request burst.

    ``writer_process`` (``serve`` turns it on): events are written by a child process
    (gateway/ingest/writer_process.py) instead of a thread, so SQLite work stops taking the
    interpreter lock from the requests; tests keep the thread.

    ``node``: the node id this process's ``/metrics`` shares with its sibling workers
    (gateway/metrics.py); None is a node of its own.

    ``scanner``: what runs a compliance scan (gateway/scan/jobs.py; default Chromium through Playwright);
    ``scan_poll_seconds``: how often the scan worker looks at the queue.
    """
    # Several nodes on one PostgreSQL server read their clocks corrected to the server's (ClockSync).
    corrected = CorrectedClock() if clock is None and isinstance(settings.database, PostgresUrl) else None
    clock = clock or corrected or SystemClock()
    base_catalog = catalog or load_catalog(settings)
    database = open_store(settings.database)
    metrics = Metrics(node=node)
    # The one event writer: its batches carry the forwarders' outbox rows, committed by a child
    # process or on the store's writer thread.
    writer = ProcessWriteBuffer if writer_process else WriteBuffer
    buffer = writer(
        database, metrics, clock=clock, forwarders=settings.forwarders, on_commit=lambda events: sender.notify()
    )
    context = GatewayContext(
        settings=settings,
        clock=clock,
        database=database,
        codec=ConsentTokenCodec(settings.secret_keys, clock),
        catalogs={site_id: base_catalog.with_rules(site.cookie_rules) for site_id, site in settings.sites.items()},
        metrics=metrics,
        geo=geo or open_geo(settings.geoip_database),
        salts=SaltKeeper(database, key=visitor_key(settings.visitor_key, settings.secret_keys)),
        buffer=buffer,
        ignore_lists={site_id: IgnoreList.parse(site.ignore_ips) for site_id, site in settings.sites.items()},
        passwords=PasswordHasher(concurrency=settings.password_hash_concurrency),
    )

    maintenance = Maintenance(database, settings, clock, context.salts)
    publisher = MetricsPublisher(database, metrics, clock)
    sender = OutboxSender(database, settings.forwarders, clock)
    impressions = ImpressionCounter(database, clock)
    script_cookies = ScriptCookieSightings(database, clock)
    clock_sync = ClockSync(database, corrected) if corrected is not None else None
    scans = ScanJobs(
        database,
        settings,
        clock,
        scanner or browser_scanner(settings, clock),
        node=this_node(),
        poll_seconds=scan_poll_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await context.database.open()
        if clock_sync is not None:
            await clock_sync.start()  # before anything stamps a time
        await context.buffer.start()
        await maintenance.start()  # rollups and the daily purge
        await scans.start()  # the compliance scans queued by the dashboard or the schedule
        await publisher.start()  # this worker's metrics, for /metrics answered by any worker
        if settings.forwarders:
            await sender.start()
        if freeze_heap:
            gc.collect()
            gc.freeze()
            gc.set_threshold(*_GC_THRESHOLDS)
        try:
            yield
        finally:
            await publisher.stop()
            await scans.stop()  # a scan in progress is marked failed, not left to its lease
            await maintenance.stop()
            await context.buffer.stop()  # every queued event is written before the database closes
            await sender.stop()
            await impressions.close()  # the banner impressions counted since the last flush
            await script_cookies.close()  # the cookie names the snippet reported since the last flush
            if clock_sync is not None:
                await clock_sync.stop()
            await context.database.close()
            context.geo.close()
            context.passwords.close()

    auth = DashboardAuth(context)
    pages = DashboardPages(context, auth)  # one instance: the signed-in pages and the shared links serve it
    bundles = bundles or build_bundles()
    routes = [
        *event_routes(context),  # first: the route nearly every request takes
        *consent_routes(context),
        *metrics_routes(context, publisher),
        *health_routes(context, maintenance_leader=lambda: maintenance.leading),
        *snippet_routes(context, bundles, impressions),
        *cookie_sighting_routes(context, script_cookies),
        *privacy_routes(context),
        *auth.routes(),
        *admin_routes(context, auth),
        *pages.routes(),
        *ReportPages(
            context, auth, pages, impressions=impressions, script_cookies=script_cookies
        ).routes(),  # flushed before the reports read
        *SiteSettingsPages(context, auth, pages, bundles).routes(),
        *ConsentExportPage(context, auth, pages).routes(),
        *CompliancePages(context, auth, pages, wake=scans.wake).routes(),
        *SharedDashboard(context, auth, pages).routes(),
        *stats_api_routes(context),
    ]
    event_endpoint = next(
        route.endpoint for route in routes if isinstance(route, Route) and isinstance(route.endpoint, EventEndpoint)
    )
    app = GatewayApp(
        routes=routes,
        lifespan=lifespan,
        event_endpoint=StorageErrors(event_endpoint, metrics=metrics, answers_last=True),  # bypasses the middleware
        middleware=[
            Middleware(QuietDisconnects, metrics=metrics),  # a client gone mid-body is counted, not logged
            Middleware(StorageErrors, metrics=metrics),  # a full disk or read-only file: JSON 503, never a 500
        ],
    )
    app.state.context = context
    return app


#: Young-generation collections every 50,000 allocations instead of 700: a request allocates a few
#: hundred short-lived objects that reference counting frees anyway, and each collection costs.
_GC_THRESHOLDS = (50_000, 20, 20)


def app_from_environment() -> Starlette:
    """The uvicorn factory for ``serve --workers N``: each worker reads ``CONSENT_GATEWAY_CONFIG``."""
    return create_app(load_settings(), freeze_heap=True, writer_process=True, node=os.environ.get(NODE_ENVIRONMENT))
