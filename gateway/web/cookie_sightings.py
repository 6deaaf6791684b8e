"""``POST /api/cookies``: the names of cookies the snippet found set by scripts, for the cookie report.

The snippet reads the names (never a value) of the first-party cookies in ``document.cookie`` that
the site does not declare, and posts each name once per page load: ``{"s": site, "c": [names]}``,
as ``text/plain`` without credentials, like events. Each name is classified with the site's
catalog, as the middleware classifies a ``Set-Cookie``, and counted in the cookie report as seen
by script (``gateway.consent.report.ScriptCookieSightings``).

Answers: 202 counted; 400 malformed (JSON, fields, a name outside RFC 6265's token grammar or
longer than ``MAX_NAME_LENGTH``, more than ``MAX_NAMES`` names); 413 too large; 404 unknown site;
403 origin not allowed; 429 with ``Retry-After`` when one network posts more than
``REPORTS_PER_MINUTE`` (anyone can post, so a flood is slowed, and the report caps its rows).
"""

from __future__ import annotations

import re
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.anonymise import truncate_ip
from gateway.consent.report import ScriptCookieSightings
from gateway.context import GatewayContext
from gateway.web.cors import preflight_endpoint, require_cors
from gateway.web.errors import ClientError, read_json_object
from gateway.web.rate_limit import FilteredQueryLimit

COOKIES_PATH = "/api/cookies"
#: Names per report; the snippet sends at most this many at once and the rest in a later report.
MAX_NAMES = 20
MAX_NAME_LENGTH = 128
#: Reports one network (an IPv4 /24, an IPv6 /48) may post per minute, after a burst of 20: a visitor
#: sends at most a few per page load, and a report lost to the limit is a count, not a decision.
REPORTS_PER_MINUTE = 120
#: RFC 6265 section 4.1.1: cookie-name is an RFC 2616 token (no controls, spaces or separators).
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def cookie_sighting_routes(context: GatewayContext, sightings: ScriptCookieSightings) -> list[Route]:
    limit = FilteredQueryLimit(limit=REPORTS_PER_MINUTE, clock=context.clock, window=timedelta(minutes=1))

    async def report(request: Request) -> Response:
        try:
            body = await read_json_object(request, limit=context.settings.max_body_bytes)
            site_id = body.get("s")
            site = context.site(site_id)
            if site is None:
                raise ClientError(404, f"unknown site {str(site_id)[:64]!r}: 's' must name a configured site")
            cors = require_cors(request, site)
            names = parse_names(body.get("c"), cors)
            # The network, not the address, keys the limit: nothing finer than ingest keeps is held.
            network = truncate_ip(request.client.host if request.client else None) or "unknown"
            wait = limit.reserve(f"{site.id} {network}")
            if wait:
                raise ClientError(
                    429, f"too many cookie reports: retry in {wait} s", headers={**cors, "retry-after": str(wait)}
                )
            catalog = context.catalogs[site.id]
            sightings.count(site.id, {name: catalog.classify(name).category for name in names})
            return Response(status_code=202, headers=cors)
        except ClientError as error:
            return error.response()

    return [
        Route(COOKIES_PATH, report, methods=["POST"]),
        Route(COOKIES_PATH, preflight_endpoint(context.settings.sites.values()), methods=["OPTIONS"]),
    ]


def parse_names(value: object, cors: dict[str, str]) -> list[str]:
    """The reported names, each once, or a 400 naming the first bad one (by position: its text is not echoed)."""
    if not isinstance(value, list) or not value:
        raise ClientError(400, "'c' must be a non-empty list of cookie names", headers=cors)
    if len(value) > MAX_NAMES:
        raise ClientError(400, f"'c' holds {len(value)} names; at most {MAX_NAMES} per report", headers=cors)
    names: dict[str, None] = {}
    for index, name in enumerate(value):
        problem = _name_problem(name)
        if problem:
            raise ClientError(
                400,
                f"c[{index}] is not a cookie name: expected 1 to {MAX_NAME_LENGTH} characters of RFC 6265's token "
                f"grammar (letters, digits and !#$%&'*+-.^_`|~); {problem}",
                headers=cors,
            )
        names[name] = None
    return list(names)


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"found {type(name).__name__}"
    if not name or len(name) > MAX_NAME_LENGTH:
        return f"found {len(name)} characters"
    bad = next((position for position, char in enumerate(name) if not _TOKEN.fullmatch(char)), None)
    return None if bad is None else f"character {bad + 1} (U+{ord(name[bad]):04X}) is not allowed"
