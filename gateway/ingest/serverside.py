"""``PageviewMiddleware``: statistics for a site with no JavaScript at all.

Mounted in the site's own ASGI app, it records a pageview for every ``GET`` answered with a
``2xx`` HTML response whose path matches the site's ``pageview_paths`` and not its
``pageview_exclude``, through the same pipeline as ``POST /api/event`` (bots, referrer,
enrichment, anonymisation) into the gateway's database. The response is never delayed: the
event is queued after the response has started. Mount it inside ``ConsentMiddleware`` so a
site that requires consent for analytics sees the visitor's decision. Its events go through the
same writer as the endpoint's (``WriteBuffer``), forwarders' outbox rows included, and it runs an
``OutboxSender`` of its own when forwarders are configured (two senders on one database claim
disjoint rows), so server-side pageviews reach the webhooks too.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.clock import Clock, SystemClock
from gateway.consent.model import ConsentDecision
from gateway.ingest.bots import IgnoreList
from gateway.ingest.buffer import QueueFull, WriteBuffer
from gateway.ingest.event import Dropped, IncomingEvent
from gateway.ingest.forward import OutboxSender
from gateway.ingest.geo import GeoLookup, open_geo
from gateway.ingest.pipeline import PipelineContext, run_pipeline
from gateway.ingest.scrub import scrub_text, scrub_url
from gateway.ingest.visitor import SaltKeeper, visitor_key
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.storage.store import Store, open_store

log = logging.getLogger("gateway.pageviews")
_HEADERS_KEPT = {
    b"user-agent",
    b"referer",
    b"host",
    b"sec-gpc",
    b"dnt",
    b"purpose",
    b"sec-purpose",
    b"x-moz",
    b"x-purpose",
}


def compile_paths(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """``/blog/*`` style patterns (``*`` matches any run of characters) as one regex."""
    parts = [".*".join(re.escape(piece) for piece in pattern.split("*")) for pattern in patterns]
    return re.compile("|".join(f"(?:{part})" for part in parts)) if parts else None


class PageviewMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        site: str,
        clock: Clock | None = None,
        geo: GeoLookup | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        site_settings = settings.site(site)
        if site_settings is None:
            known = ", ".join(sorted(settings.sites)) or "none"
            raise ValueError(f"PageviewMiddleware: unknown site {site!r} (configured sites: {known})")
        self.app = app
        self.site = site_settings
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self._geo = geo
        self._owns_geo = geo is None
        self._include = compile_paths(site_settings.pageview_paths)
        self._exclude = compile_paths(site_settings.pageview_exclude)
        self._ignore = IgnoreList.parse(site_settings.ignore_ips)
        self._database: Store | None = None
        self._buffer: WriteBuffer | None = None
        self._sender: OutboxSender | None = None
        self._salts: SaltKeeper | None = None
        self._opening = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def counts(self, path: str) -> bool:
        if self._include is None or not self._include.fullmatch(path):
            return False
        return self._exclude is None or not self._exclude.fullmatch(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if scope["type"] != "http" or scope["method"] != "GET" or not self.counts(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_and_count(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300 and _is_html(message):
                task = asyncio.get_running_loop().create_task(self._record(scope))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await send(message)

        await self.app(scope, receive, send_and_count)

    async def _record(self, scope: Scope) -> None:
        try:
            buffer, salts, geo = await self._open()
            event = self._incoming(scope)
            context = PipelineContext(self.site, geo, await salts.salts(event.received_at), self._ignore)
            result = run_pipeline(event, context)
            if isinstance(result, Dropped):
                self.metrics.inc("consent_gateway_events_dropped_total", reason=result.reason.value)
                return
            await buffer.write(result)
            self.metrics.inc("consent_gateway_events_accepted_total")
        except QueueFull:
            self.metrics.inc("consent_gateway_events_rejected_total", status="503")
        except Exception:  # counting must never break the site
            log.exception("server-side pageview not recorded")

    def _incoming(self, scope: Scope) -> IncomingEvent:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _HEADERS_KEPT}
        host = headers.get("host", "")
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope["path"]
        decision: ConsentDecision | None = scope.get("gateway.consent")
        return IncomingEvent(
            site_id=self.site.id,
            name="pageview",
            hostname=host.rsplit(":", 1)[0] if host.count(":") == 1 else host,
            pathname=scrub_text(path)[:1024],  # scrubbed, then cut: no half email
            page_url=f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else ""),
            referrer=scrub_url(referer) if (referer := headers.get("referer")) else None,
            screen_width=None,
            props={},
            consent=decision.allowed if decision is not None and decision.has_decision else None,
            received_at=self.clock.now(),
            client_ip=scope["client"][0] if scope.get("client") else None,  # in memory only
            user_agent=headers.get("user-agent", ""),
            gpc=headers.get("sec-gpc", "").strip() == "1",
            dnt=headers.get("dnt", "").strip() == "1",
            prefetch_headers={
                k: v for k, v in headers.items() if k in ("purpose", "sec-purpose", "x-moz", "x-purpose")
            },
        )

    async def _open(self) -> tuple[WriteBuffer, SaltKeeper, GeoLookup]:
        """Open the database, writer and geo database on first use (the site may not run a lifespan)."""
        async with self._opening:
            if self._geo is None:
                self._geo = open_geo(self.settings.geoip_database)
            if self._buffer is None or self._salts is None:
                self._database = await open_store(self.settings.database).open()
                # The same writer as POST /api/event: its batches carry the forwarders' outbox rows.
                forwarders = self.settings.forwarders
                sender = self._sender = OutboxSender(self._database, forwarders, self.clock) if forwarders else None
                self._buffer = WriteBuffer(
                    self._database,
                    self.metrics,
                    clock=self.clock,
                    forwarders=forwarders,
                    on_commit=(lambda events: sender.notify()) if sender is not None else None,
                )
                await self._buffer.start()
                if sender is not None:
                    await sender.start()
                key = visitor_key(self.settings.visitor_key, self.settings.secret_keys)
                self._salts = SaltKeeper(self._database, key=key)
            return self._buffer, self._salts, self._geo

    async def close(self) -> None:
        """Record what is in flight, write what is queued, close the database."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._buffer is not None:
            await self._buffer.stop()
        if self._sender is not None:
            await self._sender.stop()  # what it has not delivered stays in the outbox for the next sender
            self._sender = None
        if self._database is not None:
            await self._database.close()
        self._buffer = self._salts = self._database = None
        if self._geo is not None and self._owns_geo:
            self._geo.close()
            self._geo = None

    def _lifespan_send(self, send: Send) -> Send:
        async def send_and_close(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.close()
            await send(message)

        return send_and_close


def _is_html(message: Message) -> bool:
    for key, value in message.get("headers", []):
        if key.lower() == b"content-type":
            return bool(value.lower().startswith(b"text/html"))
    return False
