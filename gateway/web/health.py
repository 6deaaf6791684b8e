"""Operational endpoints: ``/healthz`` for load balancers and Docker, and the GPC support resource."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.context import GatewayContext

#: When this gateway's GPC handling last changed (the GPC spec's ``lastUpdate``, ISO date).
GPC_LAST_UPDATE = "2026-11-24"


def health_routes(context: GatewayContext) -> list[Route]:
    async def healthz(request: Request) -> Response:
        database_ok = await context.database.ping()
        body = {"status": "ok" if database_ok else "failing", "database": "ok" if database_ok else "unreachable"}
        return JSONResponse(body, status_code=200 if database_ok else 503)

    async def gpc(request: Request) -> Response:
        # https://privacycg.github.io/gpc-spec/#gpc-support-resource
        return JSONResponse({"gpc": True, "lastUpdate": GPC_LAST_UPDATE})

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/.well-known/gpc.json", gpc, methods=["GET"]),
    ]
