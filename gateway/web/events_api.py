"""``POST /api/event``: validate, run the pipeline, and answer 202 only once the event is durable.

400 malformed (JSON, UTF-8, fields), 413 too large, 404 unknown site, 403 origin not
allowed, 503 with Retry-After when the writer is behind. Dropped events (bots, spam, no
consent) are answered 202 too — a client cannot tell, and has nothing to retry — with the
reason in ``x-consent-gateway-dropped`` when debug is on.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.context import GatewayContext
from gateway.ingest.buffer import QueueFull
from gateway.ingest.event import Dropped
from gateway.ingest.payload import PayloadError, parse_event
from gateway.ingest.pipeline import PipelineContext, run_pipeline
from gateway.metrics import MetricsAccess, MetricsPublisher
from gateway.web.cors import cors_for, preflight_endpoint
from gateway.web.errors import ClientError, decode_json_object, read_asgi_body
from gateway.web.storage_errors import storage_failure

RETRY_AFTER_SECONDS = "2"


EVENT_PATH = "/api/event"


def event_routes(context: GatewayContext) -> list[Route]:
    return [
        Route(EVENT_PATH, EventEndpoint(context), methods=["POST"]),
        Route(EVENT_PATH, preflight_endpoint(context.settings.sites.values()), methods=["OPTIONS"]),
    ]


class GatewayApp(Starlette):
    """Starlette, except that ``POST /api/event`` goes straight to its endpoint.

    Nearly every request is that one; Starlette's error and exception middleware and the router
    would cost it some 10-20 µs each time. The endpoint answers every client error itself;
    ``event_endpoint`` comes wrapped in ``StorageErrors`` (create_app), so a storage failure (the salt
    store on a full disk) is a JSON 503 here too, and only a bug still reaches uvicorn's 500. The route stays in
    ``app.routes`` (for listings, docs and the OPTIONS preflight), unused by POSTs.
    """

    def __init__(self, *, event_endpoint: ASGIApp, **options: Any) -> None:
        super().__init__(**options)
        self._event_endpoint = event_endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == EVENT_PATH and scope["method"] == "POST":
            scope["app"] = self
            await self._event_endpoint(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class EventEndpoint:
    """``POST /api/event`` as a plain ASGI app.

    It is the hottest path of the gateway, so it reads the headers once into a dict and answers
    with two ASGI messages instead of building Starlette request and response objects.
    """

    def __init__(self, context: GatewayContext) -> None:
        self.context = context
        self._pipelines: dict[str, PipelineContext] = {}  # each site's, for the salts it was built with

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        body = b""
        try:
            status, extra = await self._record(scope, receive, headers)
        except ClientError as error:
            self.context.metrics.inc("consent_gateway_events_rejected_total", status=str(error.status))
            status, extra = error.status, error.headers
            body = json.dumps({"error": error.message}).encode()
        except ClientDisconnect:  # no one to answer
            self.context.metrics.inc("consent_gateway_client_disconnects_total")
            return
        if extra or body:
            raw_headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in extra.items()]
            raw_headers.append((b"content-length", str(len(body)).encode()))
            if body:
                raw_headers.append((b"content-type", b"application/json"))
        else:  # the usual answer: a same-origin 202 (the snippet's fetch from the site itself, or a server)
            raw_headers = [(b"content-length", b"0")]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})

    async def _record(self, scope: Scope, receive: Receive, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        context = self.context
        raw = decode_json_object(
            await read_asgi_body(receive, headers.get("content-length"), limit=context.settings.max_body_bytes)
        )
        now = context.clock.now()
        client = scope.get("client")
        try:
            event = parse_event(
                raw,
                received_at=now,
                client_ip=client[0] if client else None,  # in memory only
                user_agent=headers.get("user-agent", ""),
                headers=headers,
            )
        except PayloadError as error:
            raise ClientError(error.status, str(error)) from None
        site = context.site(event.site_id)
        if site is None:
            raise ClientError(404, f"unknown site {event.site_id[:64]!r}: 's' must name a configured site")
        cors = cors_for(headers.get("origin"), f"{scope.get('scheme', 'http')}://{headers.get('host', '')}", site)
        if cors is None:
            raise ClientError(403, f"origin {headers.get('origin')!r} is not allowed for site {site.id!r}")
        salts = context.salts.cached(now) or await context.salts.salts(now)
        pipeline = self._pipelines.get(site.id)
        if pipeline is None or pipeline.salts is not salts:  # built once a day per site, not per event
            pipeline = self._pipelines[site.id] = PipelineContext(
                site=site, geo=context.geo, salts=salts, ignore=context.ignore_lists[site.id]
            )
        result = run_pipeline(event, pipeline)
        if isinstance(result, Dropped):
            context.metrics.inc("consent_gateway_events_dropped_total", reason=result.reason.value)
            return 202, {**cors, "x-consent-gateway-dropped": result.reason.value} if context.settings.debug else cors
        try:
            await context.buffer.write(result)
        except QueueFull as error:
            if storage_failure(error) is not None:
                raise  # a full disk or a read-only file, not a burst: StorageErrors answers (storage_errors.py)
            raise ClientError(
                503, f"busy, retry later ({error})", headers={**cors, "retry-after": RETRY_AFTER_SECONDS}
            ) from None
        context.metrics.inc("consent_gateway_events_accepted_total")
        return 202, cors


def metrics_routes(context: GatewayContext, publisher: MetricsPublisher) -> list[Route]:
    """``GET /metrics`` for a bearer token or a client in ``metrics_networks`` (settings); others get no numbers."""
    settings = context.settings
    access = MetricsAccess(settings.metrics_token.value if settings.metrics_token else None, settings.metrics_networks)

    async def metrics(request: Request) -> Response:
        verdict = access.check(request.headers.get("authorization"), request.client.host if request.client else None)
        if verdict == "unauthorized":
            return PlainTextResponse(
                "a metrics token is required: Authorization: Bearer <metrics_token>\n",
                status_code=401,
                headers={"www-authenticate": 'Bearer realm="metrics"', "cache-control": "no-store"},
            )
        if verdict == "forbidden":
            return PlainTextResponse(
                "/metrics is open to the networks in metrics_networks only\n",
                status_code=403,
                headers={"cache-control": "no-store"},
            )
        return Response(
            await publisher.render(), media_type="text/plain; version=0.0.4", headers={"cache-control": "no-store"}
        )

    return [Route("/metrics", metrics, methods=["GET"])]
