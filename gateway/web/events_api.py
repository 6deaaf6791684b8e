"""``POST /api/event``: validate, run the pipeline, and answer 202 only once the event is durable.

400 malformed (JSON, UTF-8, fields), 413 too large, 404 unknown site, 403 origin not
allowed, 503 with Retry-After when the writer is behind. Dropped events (bots, spam, no
consent) are answered 202 too — a client cannot tell, and has nothing to retry — with the
reason in ``x-consent-gateway-dropped`` when debug is on.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.context import GatewayContext
from gateway.ingest.buffer import QueueFull
from gateway.ingest.event import Dropped
from gateway.ingest.payload import PayloadError, parse_event
from gateway.ingest.pipeline import PipelineContext, run_pipeline
from gateway.web.cors import preflight_endpoint, require_cors
from gateway.web.errors import ClientError, decode_json_object, read_body

RETRY_AFTER_SECONDS = "2"


def event_routes(context: GatewayContext) -> list[Route]:
    async def record_event(request: Request) -> Response:
        try:
            return await _record(request, context)
        except ClientError as error:
            context.metrics.inc("consent_gateway_events_rejected_total", status=str(error.status))
            return error.response()

    return [
        Route("/api/event", record_event, methods=["POST"]),
        Route("/api/event", preflight_endpoint(context.settings.sites.values()), methods=["OPTIONS"]),
    ]


async def _record(request: Request, context: GatewayContext) -> Response:
    raw = decode_json_object(await read_body(request, limit=context.settings.max_body_bytes))
    now = context.clock.now()
    try:
        event = parse_event(
            raw,
            received_at=now,
            client_ip=request.client.host if request.client else None,  # in memory only
            user_agent=request.headers.get("user-agent", ""),
            headers=request.headers,
        )
    except PayloadError as error:
        raise ClientError(error.status, str(error)) from None
    site = context.site(event.site_id)
    if site is None:
        raise ClientError(404, f"unknown site {event.site_id[:64]!r}: 's' must name a configured site")
    cors = require_cors(request, site)
    pipeline = PipelineContext(
        site=site, geo=context.geo, salts=await context.salts.salts(now), ignore=context.ignore_lists[site.id]
    )
    result = run_pipeline(event, pipeline)
    if isinstance(result, Dropped):
        context.metrics.inc("consent_gateway_events_dropped_total", reason=result.reason.value)
        headers = {**cors, "x-consent-gateway-dropped": result.reason.value} if context.settings.debug else cors
        return Response(status_code=202, headers=headers)
    try:
        await context.buffer.write(result)
    except QueueFull as error:
        raise ClientError(
            503, f"busy, retry later ({error})", headers={**cors, "retry-after": RETRY_AFTER_SECONDS}
        ) from None
    context.metrics.inc("consent_gateway_events_accepted_total")
    return Response(status_code=202, headers=cors)


def metrics_routes(context: GatewayContext) -> list[Route]:
    async def metrics(request: Request) -> Response:
        return Response(context.metrics.render(), media_type="text/plain; version=0.0.4")

    return [Route("/metrics", metrics, methods=["GET"])]
