"""CORS for the browser-facing endpoints: only the site's configured origins may call.

Same-origin requests (and requests without an Origin, from servers) need no CORS headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from starlette.requests import Request
from starlette.responses import Response

from gateway.settings import SiteSettings
from gateway.web.errors import ClientError


def cors_headers(request: Request, site: SiteSettings) -> dict[str, str] | None:
    """The headers for an allowed caller, ``{}`` for same-origin or server callers, None when refused."""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return cors_for(request.headers.get("origin"), own, site)


def cors_for(origin: str | None, own_origin: str, site: SiteSettings) -> dict[str, str] | None:
    """``cors_headers`` from the Origin header and the gateway's own origin."""
    if origin is None or origin == own_origin:
        return {}
    if origin.lower() not in site.origins:
        return None
    return {"access-control-allow-origin": origin, "vary": "Origin"}


def require_cors(request: Request, site: SiteSettings) -> dict[str, str]:
    cors = cors_headers(request, site)
    if cors is None:
        raise ClientError(403, f"origin {request.headers.get('origin')!r} is not allowed for site {site.id!r}")
    return cors


def preflight_endpoint(sites: Iterable[SiteSettings]) -> Callable[[Request], Awaitable[Response]]:
    """An OPTIONS endpoint that admits the origins of every configured site."""
    origins = frozenset(origin for site in sites for origin in site.origins)

    async def preflight(request: Request) -> Response:
        origin = request.headers.get("origin", "")
        if origin.lower() not in origins:
            return Response(status_code=403)
        return Response(
            status_code=204,
            headers={
                "access-control-allow-origin": origin,
                "access-control-allow-methods": "GET, POST",
                "access-control-allow-headers": "content-type",
                "access-control-max-age": "86400",
                "vary": "Origin",
            },
        )

    return preflight
