"""Operational endpoints: ``/healthz`` for load balancers and Docker, and the GPC support resource."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.context import GatewayContext
from gateway.ingest.bot_data import shipped_bot_patterns
from gateway.ingest.referrer_data import shipped_referrer_data

#: When this gateway's GPC handling last changed (the GPC spec's ``lastUpdate``, ISO date).
GPC_LAST_UPDATE = "2026-11-24"


def health_routes(context: GatewayContext) -> list[Route]:
    # Read (and compiled) here, when the app is built, so a broken data file stops start-up and the
    # first event does not pay for it; shown so an operator can tell how old the lists are.
    data = {
        "bots": [source.describe() for source in shipped_bot_patterns().sources],
        "referrers": [source.describe() for source in shipped_referrer_data().sources],
    }

    async def healthz(request: Request) -> Response:
        database_ok = await context.database.ping()
        writer_ok = context.buffer.running
        healthy = database_ok and writer_ok
        body = {
            "status": "ok" if healthy else "failing",
            "database": "ok" if database_ok else "unreachable",
            "writer": "ok" if writer_ok else "stopped",
            "queue": context.buffer.depth,
            "geo": context.geo.describe(),
            "data": data,
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    async def gpc(request: Request) -> Response:
        # https://privacycg.github.io/gpc-spec/#gpc-support-resource
        return JSONResponse({"gpc": True, "lastUpdate": GPC_LAST_UPDATE})

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/.well-known/gpc.json", gpc, methods=["GET"]),
    ]
