"""The consent report, the cookie report and the classify helper of a site's dashboard.

The consent report reads the proof log and the banner impressions
(``gateway/storage/consent_report.py``) under the same privacy floor as the statistics, applied
per day cell (``gateway/stats/consent.py``): every count it shows stands for at least k distinct
consent ids, "(other)" included, and withheld reads like zero ("< k"). It first writes this
worker's buffered banner impressions, so the decision rate is not read against impressions still
in memory. The cookie report lists what the middleware and the snippet saw
(``gateway/storage/cookie_report.py``): cookie names say nothing about visitors, but a count does,
so a count under k (zero included) reads "< k", and a cookie seen fewer than k times shows no first
or last time. The classify page writes the TOML block an operator pastes into the site's config:
the config is a file, so the web page never changes anything.
"""

from __future__ import annotations

import json
import shlex
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from urllib.parse import quote_plus, urlencode

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.categories import CATEGORIES, CONSENT_CATEGORIES, Category
from gateway.consent.impressions import ImpressionCounter
from gateway.consent.report import ScriptCookieSightings
from gateway.context import GatewayContext
from gateway.cookies.catalog import CatalogError, CookieCatalog, CookieRule, rules_from_entries
from gateway.cookies.lifetimes import Lifetime, parse_lifetime, shorter
from gateway.settings import SiteSettings
from gateway.stats.consent import CATEGORY_COLOURS, ConsentReport, consent_buckets, percent, render_rate_chart
from gateway.stats.period import Interval
from gateway.storage.consent_report import ConsentFigures, consent_cells, impressions_by_day
from gateway.storage.cookie_report import CookieTally, SeenBy, cookie_report
from gateway.web.consent_export_page import export_form
from gateway.web.dashboard import Audience, DashboardPages
from gateway.web.dashboard_auth import DashboardAuth

OPEN_COOKIE_DATABASE = "https://github.com/jkwakman/Open-Cookie-Database"
_NAME_LIMIT = 256
_TEXT_LIMIT = 200
_HUMAN_UNITS = (("year", 31556952), ("month", 2629746), ("day", 86400), ("hour", 3600), ("minute", 60))


@dataclass(frozen=True, slots=True)
class CookieRow:
    tally: CookieTally
    category: Category | None
    vendor: str
    longest: str  # "2 years", "session"
    first_seen: str  # "2026-03-10 09:30" in the site's time zone; "–" for a cookie seen fewer than k times
    last_seen: str
    #: The counts as shown: "< k" under the floor, zero included.
    times_set: str
    times_blocked: str
    times_capped: str
    #: How it was seen ("header", "script" or "both") and the page loads whose snippet found it set.
    seen_by: SeenBy
    times_seen_by_script: str


def cookie_rows(tallies: Iterable[CookieTally], catalog: CookieCatalog, zone: tzinfo, k: int) -> list[CookieRow]:
    """Every cookie seen, unknown ones first, then the most often set.

    The category is the catalog's today (a rule added since is shown at once), else the one the
    middleware recorded (a rule bound to a domain the report does not keep). Counts under ``k``
    read "< k"; the order among those does not depend on their exact counts.
    """
    rows = []
    for tally in tallies:
        rule = catalog.classify(tally.name).rule
        category = rule.category if rule else _category_or_none(tally.category)
        longest = "session" if tally.longest_asked is None else human_duration(tally.longest_asked)
        observed = tally.times_set + tally.times_blocked + tally.times_seen_by_script
        first_seen, last_seen = (
            [moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") for moment in (tally.first_seen, tally.last_seen)]
            if observed >= k
            else ["–", "–"]
        )
        rows.append(
            CookieRow(
                tally,
                category,
                rule.vendor if rule else "",
                longest,
                first_seen,
                last_seen,
                times_set=_floored(tally.times_set, k),
                times_blocked=_floored(tally.times_blocked, k),
                times_capped=_floored(tally.times_capped, k),
                seen_by=tally.seen_by,
                times_seen_by_script=_floored(tally.times_seen_by_script, k),
            )
        )
    return sorted(
        rows,
        key=lambda row: (
            row.category is not None,
            -sum(count for count in (row.tally.times_set, row.tally.times_seen_by_script) if count >= k),
            row.tally.name,
        ),
    )


def _floored(count: int, k: int) -> str:
    return f"{count:,}" if count >= k else f"< {k}"


def human_duration(seconds: int) -> str:
    """A lifetime as people say it: 63072000 s is "2 years", 13 months stays "13 months".

    The largest unit that gives a whole number within 2% wins; minutes, then seconds, catch the rest.
    """
    for unit, size in _HUMAN_UNITS:
        amount = seconds / size
        whole = round(amount)
        if whole >= 1 and (abs(amount - whole) <= 0.02 * amount or (unit == "minute" and amount >= 1)):
            return f"{whole} {unit}{'' if whole == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that DEL must be escaped too."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def rule_toml(site_id: str, entry: Mapping[str, str]) -> str:
    """The ``[[sites.ID.cookies]]`` block of one rule; empty values are left out."""
    lines = [f"[[sites.{site_id}.cookies]]"]  # site ids are [a-z0-9_-]: a bare TOML key
    lines += [f"{key} = {toml_string(value)}" for key, value in entry.items() if value]
    return "\n".join(lines) + "\n"


class ReportPages:
    """``/dashboard/{site_id}/consent``, ``/cookies`` and ``/cookies/classify``, for signed-in users."""

    def __init__(
        self,
        context: GatewayContext,
        auth: DashboardAuth,
        pages: DashboardPages,
        *,
        impressions: ImpressionCounter | None = None,
        script_cookies: ScriptCookieSightings | None = None,
    ) -> None:
        self.context = context
        self.auth = auth
        self.pages = pages
        #: This worker's banner impression counter, flushed before the report reads (None in tests of the page only).
        self.impressions = impressions
        #: This worker's count of cookie names reported by the snippet, flushed before the cookie report reads.
        self.script_cookies = script_cookies

    def routes(self) -> list[BaseRoute]:
        return [
            Route(
                f"/dashboard/{{site_id}}{path}",
                self.auth.login_required(self.pages.signed_in(page)),
                methods=["GET"],
            )
            for path, page in (
                ("/consent", self.consent),
                ("/cookies", self.cookies),
                ("/cookies/classify", self.classify),
            )
        ]

    async def consent(self, request: Request, audience: Audience) -> Response:
        view = self.pages.view(request, audience)
        if isinstance(view, Response):
            return view
        db, site, k = self.context.database, audience.site, audience.site.min_visitors
        if self.impressions is not None:
            # Impressions are counted in memory and written in batches; decisions are written at once.
            # Reading before this worker's batch is written would put decisions over impressions.
            await self.impressions.flush()
        start, end = view.period.bounds(site.zone)
        interval: Interval = "month" if view.interval == "month" else "day"
        days = consent_buckets(view.period, "day", site.zone)
        report = ConsentReport.build(
            days=[label for label, _, _ in days],
            totals=await consent_cells(db, site.id, "", days),
            by={
                "country": await consent_cells(db, site.id, "country", days),
                "device": await consent_cells(db, site.id, "device", days),
            },
            impressions=await impressions_by_day(db, site.id, start, end),
            interval=interval,
            k=k,
        )
        chart = render_rate_chart(report.series, k=k)
        tables = [
            {"title": "Country", "rows": report.tables["country"]},
            {"title": "Device", "rows": report.tables["device"]},
        ]
        context = {
            **self.pages.common(view, audience, "consent"),
            "top": report.top,
            "report": report,
            "withheld": report.top is None,
            "shares": _shares(report.top) if report.top is not None else [],
            "categories": CONSENT_CATEGORIES,
            "colours": CATEGORY_COLOURS,
            "chart": Markup(chart.svg),  # noqa: S704 - built by render_rate_chart, every text in it escaped
            "chart_summary": chart.summary,
            "interval_links": [
                (name, view.url("/consent", interval=name), name == interval) for name in ("day", "month")
            ],
            "tables": tables,
            "percent": percent,
            "filtered": bool(view.filters),
            "export": export_form(audience, self.context.clock.now().astimezone(site.zone).date()),
        }
        return self.pages._render(request, audience, "consent.html", context)

    async def cookies(self, request: Request, audience: Audience) -> Response:
        view = self.pages.view(request, audience)
        if isinstance(view, Response):
            return view
        site = audience.site
        if self.script_cookies is not None:  # what this worker counted since its last flush, shown at once
            await self.script_cookies.flushes_done()
            await self.script_cookies.flush()
        rows = cookie_rows(
            await cookie_report(self.context.database, site.id), self._catalog(site), site.zone, site.min_visitors
        )
        classify = f"{audience.base}/cookies/classify"
        context = {
            **self.pages.common(view, audience, "cookies"),
            "rows": [
                (row, None if row.category else f"{classify}?{urlencode({'name': row.tally.name})}") for row in rows
            ],
            "unknown": sum(row.category is None for row in rows),
            "filtered": bool(view.filters),
        }
        return self.pages._render(request, audience, "cookies.html", context)

    async def classify(self, request: Request, audience: Audience) -> Response:
        view = self.pages.view(request, audience)
        if isinstance(view, Response):
            return view
        site, params = audience.site, request.query_params
        name = params.get("name", "")
        if not name or len(name) > _NAME_LIMIT:
            message = f"Which cookie? Give its name as ?name=... (at most {_NAME_LIMIT} characters)."
            return self.pages._error(request, audience, 400, message)
        found = self._catalog(site).classify(name)
        rule = found.rule
        seen = next((t for t in await cookie_report(self.context.database, site.id) if t.name == name), None)
        suggested = str(Lifetime(seen.longest_asked)) if seen and seen.longest_asked else "session"
        form = {
            "category": params.get("category", rule.category if rule else ""),
            "lifetime": params.get("lifetime", str(rule.lifetime) if rule else suggested),
            "vendor": params.get("vendor", rule.vendor if rule else ""),
            "purpose": params.get("purpose", rule.purpose if rule else ""),
        }
        errors: list[str] = []
        block = None
        if "category" in params:  # the form was sent
            block, errors = _classification_block(site, name, form)
        allowed = None
        if rule is not None:
            cap = site.cap_for(rule.category)
            allowed = rule.lifetime if cap is None else shorter(rule.lifetime, cap)
        context = {
            **self.pages.common(view, audience, "cookies"),
            "name": name,
            "rule": rule,
            "matched": _matched(found.rule, site) if found.rule else found.explain(),
            "allowed": allowed,
            "seen": seen,
            "seen_longest": human_duration(seen.longest_asked) if seen and seen.longest_asked else "session",
            "form": form,
            "categories": CATEGORIES,
            "errors": errors,
            "block": block,
            "check_command": f"consent-gateway classify --site {site.id} -- {shlex.quote(name)}",
            "search_url": "https://github.com/search?type=code&q="
            + quote_plus(f"repo:jkwakman/Open-Cookie-Database {name}"),
            "database_url": OPEN_COOKIE_DATABASE,
            "back": view.url("/cookies"),
        }
        return self.pages._render(request, audience, "classify.html", context)

    def _catalog(self, site: SiteSettings) -> CookieCatalog:
        return self.context.catalogs[site.id]


def _classification_block(site: SiteSettings, name: str, form: Mapping[str, str]) -> tuple[str | None, list[str]]:
    """The TOML block for ``form``, proved by reading it back as the settings would, or the mistakes."""
    errors = []
    category = form["category"]
    if category not in CATEGORIES:
        errors.append(f"Choose a category: {', '.join(CATEGORIES)}.")
    try:
        lifetime = str(parse_lifetime(form["lifetime"]))
    except ValueError as error:
        errors.append(f"Lifetime: {error}.")
        lifetime = ""
    for key in ("vendor", "purpose"):
        if len(form[key]) > _TEXT_LIMIT:
            errors.append(f"The {key} is longer than {_TEXT_LIMIT} characters.")
    if errors:
        return None, errors
    entry = {
        "name": name,
        "category": category,
        "lifetime": lifetime,
        "vendor": form["vendor"].strip(),
        "purpose": form["purpose"].strip(),
    }
    block = rule_toml(site.id, entry)
    try:
        parsed = tomllib.loads(block)["sites"][site.id]["cookies"]
        rules_from_entries(parsed, source="the block")
    except (tomllib.TOMLDecodeError, CatalogError, KeyError) as error:
        return None, [f"This cookie cannot be written as a rule: {error}."]
    return block, []


def _matched(rule: CookieRule, site: SiteSettings) -> str:
    kind = "the pattern" if rule.is_pattern else "the exact name"
    where = f" for domain {rule.domain}" if rule.domain else ""
    origin = "this site's rules" if rule.source.endswith(f"(site {site.id})") else "the cookie catalog"
    return f"{kind} {rule.name!r}{where} in {origin}"


def _shares(top: ConsentFigures) -> list[tuple[str, str]]:
    decided = top.decisions or 1
    return [
        ("Accept all", percent(top.accept_all / decided)),
        ("Reject all", percent(top.reject_all / decided)),
        ("Custom", percent(top.custom / decided)),
        ("GPC", percent(top.gpc / decided)),
    ]


def _category_or_none(text: str | None) -> Category | None:
    return next((c for c in CATEGORIES if c == text), None)
