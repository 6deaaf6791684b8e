"""The embeddable scripts and the per-site configuration they load.

``/c.js`` is consent + UI + tracker with the CSS and English texts inlined; ``/t.js`` is the
tracker alone. Each is also served at a versioned, immutable URL (``/c.<version>.js``) so a
site can pin it with Subresource Integrity; the unversioned URL is cached briefly so updates
reach visitors. Bodies are built once at start-up from ``snippets/`` and ``consent_ui/``:
whole-line ``//`` comments are dropped and the whitespace the code does not need goes
(``gateway/web/js_compact.py``; the sources stay readable), and a gzip copy is kept for clients
that accept it.

``/api/config/<site>?lang=xx`` tells the script what the site needs: its categories with their
services, the cookies listed in the dialog (the site's rules, its services' cookies and every
cookie the middleware has seen on it), the cookie names to clear on withdrawal, the texts for
the visitor's language and the banner's look, and ``known``: a pattern of the cookie names the site
declares (its ``[[sites.ID.cookies]]`` rules) and the gateway's own, which the snippet does not
report as set by scripts (``gateway/web/cookie_sightings.py``). With ``&b=1`` (the browser holds no decision, so
the banner will show) the request also counts one banner impression per site, UTC day, country
and device; the answer is the same, and a 304 counts too.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.categories import CATEGORIES, Category
from gateway.consent.impressions import ImpressionCounter
from gateway.consent.middleware import CONSENT_COOKIE
from gateway.consent.texts import pick_language, texts_for
from gateway.context import GatewayContext
from gateway.cookies.catalog import CookieCatalog, CookieRule
from gateway.ingest.useragent import parse_user_agent
from gateway.resources import resource_dir
from gateway.settings import SiteSettings
from gateway.storage.cookie_report import CookieTally, cookie_report
from gateway.web.cors import cors_headers
from gateway.web.errors import ClientError
from gateway.web.js_compact import compact_js

SHORT_CACHE = "public, max-age=300, stale-while-revalidate=86400"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
#: How long a site's configuration is served from memory before the cookie report is read again.
CONFIG_REBUILD = timedelta(minutes=1)
_JS_TYPE = "text/javascript; charset=utf-8"
_CONSENT_SOURCES = ("consent.js", "ui.js", "tracker.js")
_TRACKER_SOURCES = ("tracker.js",)
_PAGE_ONLY_TEXTS = ("privacy.", "method.", "choice.")
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_REGEX_SPECIAL = re.compile(r"[\\^$.*+?()[\]{}|/-]")


@dataclass(frozen=True, slots=True)
class Script:
    """One served script: its bytes, a gzip copy, its version and its SRI hash."""

    name: str  # "c" or "t"
    body: bytes
    gzipped: bytes
    version: str
    integrity: str

    @property
    def versioned_path(self) -> str:
        return f"/{self.name}.{self.version}.js"


@dataclass(frozen=True, slots=True)
class Bundles:
    consent: Script
    tracker: Script

    @property
    def consent_bundle(self) -> bytes:
        return self.consent.body

    @property
    def tracker_bundle(self) -> bytes:
        return self.tracker.body


def strip_js(source: str) -> str:
    """Drop whole-line ``//`` comments, blank lines and indentation; keep ``/*!`` headers.

    The sources are written for this (no trailing comments, every statement ends with ``;``),
    so this is safe where a general minifier would need a parser.
    """
    kept = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("//"):
            kept.append(stripped)
    return "\n".join(kept)


def strip_css(source: str) -> str:
    return " ".join(line.strip() for line in _CSS_COMMENT.sub("", source).splitlines() if line.strip())


def build_bundles(snippets: Path | None = None, consent_ui: Path | None = None) -> Bundles:
    """Build ``c.js`` and ``t.js`` from the shipped sources (or the given folders, for tests)."""
    snippets = snippets or resource_dir("snippets")
    consent_ui = consent_ui or resource_dir("consent_ui")
    css = strip_css((consent_ui / "banner.css").read_text(encoding="utf-8"))
    english = {
        key: text
        for key, text in json.loads((consent_ui / "i18n" / "en.json").read_text(encoding="utf-8")).items()
        if not key.startswith(_PAGE_ONLY_TEXTS)  # the privacy center's texts stay on the server
    }
    return Bundles(
        consent=_script("c", snippets, _CONSENT_SOURCES, css=css, texts=english),
        tracker=_script("t", snippets, _TRACKER_SOURCES, css="", texts={}),
    )


def _script(name: str, folder: Path, sources: tuple[str, ...], *, css: str, texts: dict[str, str]) -> Script:
    code = compact_js("\n".join(strip_js((folder / source).read_text(encoding="utf-8")) for source in sources))
    version = hashlib.sha256(f"{code}\0{css}\0{json.dumps(texts, sort_keys=True)}".encode()).hexdigest()[:12]
    code = (
        code.replace("__CG_CSS__", json.dumps(css))
        .replace("__CG_TEXTS__", json.dumps(texts, ensure_ascii=False, separators=(",", ":")))
        .replace("__CG_VERSION__", json.dumps(version))
    )
    header = ""
    if code.startswith("/*!"):  # the header that lists what is sent stays on top, outside the wrapper
        end = code.index("*/") + 2
        header, code = code[:end] + "\n", code[end:].strip()
    body = f'{header}(function(){{"use strict";\n{code}\n}})();\n'.encode()
    digest = base64.b64encode(hashlib.sha384(body).digest()).decode("ascii")
    return Script(name, body, gzip.compress(body, compresslevel=9, mtime=0), version, f"sha384-{digest}")


def script_tag(bundles: Bundles, base_url: str, site_id: str) -> str:
    """The tag a site owner pastes, pinned to this version with Subresource Integrity."""
    script = bundles.consent
    return (
        f'<script src="{base_url.rstrip("/")}{script.versioned_path}" data-site="{site_id}" '
        f'integrity="{script.integrity}" crossorigin="anonymous" defer></script>'
    )


def snippet_routes(context: GatewayContext, bundles: Bundles, impressions: ImpressionCounter) -> list[Route]:
    def serve(script: Script, *, versioned: bool) -> Any:
        etag = f'"{script.version}"'

        async def endpoint(request: Request) -> Response:
            if versioned and request.path_params.get("version") != script.version:
                return Response(
                    f"unknown version; the current script is {script.versioned_path}\n",
                    status_code=404,
                    media_type="text/plain",
                )
            headers = {
                "cache-control": IMMUTABLE_CACHE if versioned else SHORT_CACHE,
                "etag": etag,
                "vary": "Accept-Encoding",
                "access-control-allow-origin": "*",  # public, and needed for SRI with crossorigin
                "cross-origin-resource-policy": "cross-origin",
                "x-content-type-options": "nosniff",
            }
            if request.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers=headers)
            if "gzip" in request.headers.get("accept-encoding", ""):
                return Response(script.gzipped, media_type=_JS_TYPE, headers={**headers, "content-encoding": "gzip"})
            return Response(script.body, media_type=_JS_TYPE, headers=headers)

        return endpoint

    configs: dict[tuple[str, str], tuple[datetime, bytes, str]] = {}

    async def site_config(request: Request) -> Response:
        site = context.site(request.path_params["site"])
        if site is None:
            return ClientError(404, f"unknown site {request.path_params['site'][:64]!r}").response()
        cors = cors_headers(request, site)
        if cors is None:
            return ClientError(
                403, f"origin {request.headers.get('origin')!r} is not allowed for site {site.id!r}"
            ).response()
        if request.query_params.get("b") == "1":
            count_impression(context, impressions, request, site)
        language = pick_language(request.query_params.get("lang"))
        now = context.clock.now()
        cached = configs.get((site.id, language))
        if cached is None or now >= cached[0]:  # built at most once a minute per site and language
            seen = listed_sightings(await cookie_report(context.database, site.id), site.min_visitors)
            body = json.dumps(site_config_json(site, context.catalogs[site.id], language, seen)).encode()
            etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
            cached = configs[(site.id, language)] = (now + CONFIG_REBUILD, body, etag)
        _, body, etag = cached
        headers = {**cors, "cache-control": "public, max-age=300", "etag": etag}
        if request.headers.get("if-none-match") == etag:  # the snippet revalidates on every page
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    routes = [Route("/api/config/{site}", site_config, methods=["GET"])]
    for script in (bundles.consent, bundles.tracker):
        routes.append(Route(f"/{script.name}.js", serve(script, versioned=False), methods=["GET", "HEAD"]))
        routes.append(Route(f"/{script.name}.{{version}}.js", serve(script, versioned=True), methods=["GET", "HEAD"]))
    return routes


def count_impression(
    context: GatewayContext, impressions: ImpressionCounter, request: Request, site: SiteSettings
) -> None:
    """One banner shown. Bots are not counted: crawlers that run scripts would show the banner on
    every page they render and sink the consent rate (the analytics pipeline drops them too).

    Country and device are looked up in memory, as ingest does; the address is not kept.
    """
    user_agent = request.headers.get("user-agent", "")
    device = parse_user_agent(user_agent).device if user_agent else None
    if device == "bot":
        return
    address = request.client.host if request.client else None
    country = context.geo.lookup(address).country if address else None
    impressions.count(site.id, country=country, device=device)


def listed_sightings(report: Iterable[CookieTally], k: int) -> set[str]:
    """The observed names the banner lists: every name the middleware saw in a ``Set-Cookie``, and a name
    only scripts were seen setting once ``k`` page loads reported it. Anyone can post a name to
    ``/api/cookies``; one post must not put a cookie on the site's public banner."""
    return {tally.name for tally in report if tally.times_set + tally.times_blocked or tally.times_seen_by_script >= k}


def site_config_json(
    site: SiteSettings, catalog: CookieCatalog, language: str, seen_cookies: set[str]
) -> dict[str, Any]:
    """The configuration the snippet loads. Endpoints are relative to the script's own URL, so they
    follow wherever the site serves the gateway from (another host, a path, a reverse proxy)."""
    service_ids = {service.id for service in site.services}
    listed: dict[Category, dict[str, CookieRule]] = {category: {} for category in CATEGORIES}
    clear: dict[Category, set[str]] = {category: set() for category in CATEGORIES}
    for rule in catalog.rules:
        if rule.domain is None:  # a first-party cookie a script on the site could set: clear it on withdrawal
            clear[rule.category].add(rule.name)
        if rule in site.cookie_rules or (rule.service and rule.service in service_ids):
            listed[rule.category].setdefault(rule.name, rule)
    for name in sorted(seen_cookies):
        matched = catalog.classify(name, None).rule
        if matched is not None:
            listed[matched.category].setdefault(matched.name, matched)
    categories = []
    for category in CATEGORIES:
        cookies = [
            {"name": rule.name, "vendor": rule.vendor, "purpose": rule.purpose, "lifetime": str(rule.lifetime)}
            for rule in sorted(listed[category].values(), key=lambda rule: rule.name.lower())
        ]
        entry: dict[str, Any] = {
            "id": category,
            "required": category == "essential",
            "cookies": cookies,
            "clear": sorted(clear[category] - {"cg_consent"}) if category != "essential" else [],
            "storage": list(site.storage_keys.get(category, ())),
            "services": [
                {"id": s.id, "name": s.name, "description": s.description}
                for s in site.services
                if s.category == category
            ],
        }
        categories.append(entry)
    return {
        "site": site.id,
        "name": site.name,
        "revision": site.policy_revision,
        "policy_url": site.policy_url or None,
        "lang": language,
        "texts": texts_for(language, site.banner.texts),
        "categories": categories,
        "consent_max_age": {
            "accept": site.consent_lifetime_accept.seconds,
            "reject": site.consent_lifetime_reject.seconds,
        },
        "cookie_domain": f".{site.consent_cookie_domain}" if site.consent_cookie_domain else None,
        "banner": {"position": site.banner.position, "theme": dict(site.banner.theme)},
        "endpoints": {
            "consent": "consent",
            "event": "api/event",
            "privacy": f"privacy?site={site.id}",
            "cookies": "api/cookies",
        },
        "known": known_cookies_pattern(site, catalog),
        "analytics_consent": site.analytics_consent,
    }


def known_cookies_pattern(site: SiteSettings, catalog: CookieCatalog) -> str:
    """A JavaScript regular expression matching the names the snippet leaves out of its cookie reports.

    They are the cookies the site declares (its own rules, patterns included: ``*`` matches any run
    of characters, as ``CookieRule`` matches) and the gateway's own. Any other cookie in
    ``document.cookie`` is reported, also one the shipped catalog knows: the site has not said it sets it.
    """
    names = {rule.name for rule in site.cookie_rules}
    names |= {rule.name for rule in catalog.rules if rule.service == "consent-gateway"}
    names.add(CONSENT_COOKIE)
    choices = (
        ".*".join(_REGEX_SPECIAL.sub(lambda m: "\\" + m.group(), part) for part in name.split("*"))
        for name in sorted(names)
    )
    return f"^(?:{'|'.join(choices)})$"
