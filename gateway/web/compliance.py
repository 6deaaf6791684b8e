"""``/dashboard/{site_id}/compliance``: a site owner's scans — start one, watch it, read its report,
see what changed since the scan before, and go from an unknown cookie to its rule in one click.

For owners (and admins) only: a report names every cookie and tracker of the site, which is the
owner's to act on. A scan runs in the background (gateway/scan/jobs.py): "Scan now" queues it and
answers with a 303 back to the page (post/redirect/get), which refreshes itself while the scan is
queued or running; ``progress.json`` says the same to a script. Every string of a report is the
scanned site's (cookie names, hosts, URLs): the template escapes them like any other input.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.context import GatewayContext
from gateway.scan.diff import diff_reports
from gateway.scan.report import ScanReport
from gateway.scan.report_html import render_html
from gateway.settings import SiteSettings
from gateway.storage.scans import (
    Scan,
    ScanAlreadyActive,
    active_scan,
    count_scans,
    done_before,
    enqueue_scan,
    list_scans,
    scan_report,
)
from gateway.web.dashboard import Audience, DashboardPages, SiteEndpoint, owners_only
from gateway.web.dashboard_auth import DashboardAuth, Viewer
from gateway.web.dashboard_view import parse_view
from gateway.web.security import apply_security_headers

#: Scans per page of the history.
HISTORY_ROWS = 20
#: Seconds between the page's own reloads while a scan is queued or running.
REFRESH_SECONDS = 3
_DONE = {"queued": "The scan is queued: this page follows its progress and shows the report when it is done."}
#: How the page names the states a page was visited in.
STATE_LABELS = {"none": "before a decision", "rejected": "after Reject all", "accepted": "after Accept all"}
#: The stand-alone HTML report is the scanner's own page: its inline styles and nothing else.
_REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; sandbox"


class CompliancePages:
    """The Compliance page of each site, its "Scan now" form, its progress and its stored reports."""

    def __init__(
        self,
        context: GatewayContext,
        auth: DashboardAuth,
        pages: DashboardPages,
        *,
        wake: Callable[[], None] | None = None,
    ) -> None:
        """``wake``: tells this process's scan worker that a scan was queued (it starts now, not at its next poll)."""
        self.context = context
        self.auth = auth
        self.pages = pages
        self.wake = wake

    def routes(self) -> list[BaseRoute]:
        base = "/dashboard/{site_id}/compliance"
        return [
            Route(base, self._guard(self.show), methods=["GET"]),
            Route(f"{base}/scan", self._guard(self.start), methods=["POST"]),
            Route(f"{base}/progress.json", self._guard(self.progress), methods=["GET"]),
            Route(f"{base}/scans/{{scan_id}}.json", self._guard(self.download), methods=["GET"]),
            Route(f"{base}/scans/{{scan_id}}.html", self._guard(self.report_page), methods=["GET"]),
        ]

    # Endpoints.

    async def show(self, request: Request, viewer: Viewer, site: SiteSettings) -> Response:
        db = self.context.database
        params = request.query_params
        chosen = _number(params.get("scan"))
        page = _number(params.get("page")) or 1
        active = await active_scan(db, site.id)
        # The report shown: the one asked for, else the newest done scan; compared with the done scan before it.
        done = await done_before(db, site.id, chosen)
        if chosen is not None and (not done or done[0].id != chosen):
            return self.auth.error_page(request, 404, "This site has no finished scan with that number.", viewer=viewer)
        report = await scan_report(db, site.id, done[0].id) if done else None
        previous = await scan_report(db, site.id, done[1].id) if len(done) > 1 else None
        total = await count_scans(db, site.id)
        history = await list_scans(db, site.id, limit=HISTORY_ROWS, offset=(page - 1) * HISTORY_ROWS)
        base = f"/dashboard/{site.id}"
        context = {
            **self._site_header(site, viewer),
            "active": _scan_row(active, site) if active else None,
            "refresh": REFRESH_SECONDS if active else None,
            "failed": _last_failure(history),
            "scan": _scan_row(done[0], site) if done else None,
            "previous": _scan_row(done[1], site) if len(done) > 1 else None,
            "report": _report_view(report, base) if report else None,
            "diff": diff_reports(previous, report) if report and previous else None,
            "history": [_scan_row(scan, site) for scan in history],
            "pages": _pages(total, page, f"{base}/compliance"),
            "scan_url": site.scan_url,
            "scan_pages": site.scan_pages,
            "schedule": site.scan_schedule,
            "state_labels": STATE_LABELS,
            "message": _DONE.get(params.get("done", "")),
            "error": None,
        }
        return self.auth.render(request, "compliance.html", context, viewer=viewer)

    async def start(self, request: Request, viewer: Viewer, site: SiteSettings) -> Response:
        if not site.scan_url:
            message = f"This site has no origins and no scan_url: set one in [sites.{site.id}] to scan it."
            return self.auth.error_page(request, 400, message, viewer=viewer)
        try:
            await enqueue_scan(
                self.context.database,
                site.id,
                site.scan_url,
                trigger="manual",
                max_pages=site.scan_pages,
                now=self.context.clock.now(),
            )
        except ScanAlreadyActive:
            message = "A scan of this site is already running: its progress is on the Compliance page."
            return self.auth.error_page(request, 409, message, viewer=viewer)
        if self.wake is not None:
            self.wake()
        location = f"/dashboard/{site.id}/compliance?{urlencode({'done': 'queued'})}"
        return apply_security_headers(RedirectResponse(location, status_code=303))

    async def progress(self, request: Request, viewer: Viewer, site: SiteSettings) -> Response:
        """The active scan (or the newest one) as JSON, for a script or the page's own polling."""
        scan = await active_scan(self.context.database, site.id)
        if scan is None:
            newest = await list_scans(self.context.database, site.id, limit=1)
            scan = newest[0] if newest else None
        body: dict[str, Any] = {"scan": None if scan is None else _scan_json(scan)}
        return JSONResponse(body, headers={"cache-control": "no-store"})

    async def download(self, request: Request, viewer: Viewer, site: SiteSettings) -> Response:
        """A done scan's report as the JSON file the scanner writes (``consent-gateway scan --json``)."""
        scan_id = _number(request.path_params["scan_id"])
        report = await scan_report(self.context.database, site.id, scan_id) if scan_id else None
        if scan_id is None or report is None:
            return self.auth.error_page(request, 404, "This site has no finished scan with that number.", viewer=viewer)
        body = json.dumps(report, ensure_ascii=False, indent=2, sort_keys=False).encode()
        name = f"scan-{site.id}-{scan_id}.json"
        return Response(
            body,
            media_type="application/json",
            headers={"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"},
        )

    async def report_page(self, request: Request, viewer: Viewer, site: SiteSettings) -> Response:
        """The scanner's self-contained HTML report of a done scan (what a DPO hands an auditor)."""
        scan_id = _number(request.path_params["scan_id"])
        report = await scan_report(self.context.database, site.id, scan_id) if scan_id else None
        if scan_id is None or report is None:
            return self.auth.error_page(request, 404, "This site has no finished scan with that number.", viewer=viewer)
        page = str(render_html(ScanReport.from_json(report)))
        response = HTMLResponse(page, headers={"cache-control": "no-store"})
        response.headers["content-security-policy"] = _REPORT_CSP
        return response

    # Helpers.

    def _guard(self, endpoint: SiteEndpoint) -> Callable[[Request], Awaitable[Response]]:
        refusal = "Only an owner of this site scans it and reads its scan reports."
        return owners_only(self.auth, self.pages, endpoint, refusal)

    def _site_header(self, site: SiteSettings, viewer: Viewer) -> dict[str, Any]:
        """The site's tabs as on its other pages (``DashboardPages``), with Compliance current."""
        today = self.context.clock.now().astimezone(site.zone).date()
        view = parse_view(f"/dashboard/{site.id}", site, QueryParams(""), today)
        common = self.pages.common(view, Audience(site, f"/dashboard/{site.id}", viewer), "compliance")
        return {key: common[key] for key in ("site", "site_tabs", "page", "k")}


def _number(text: str | None) -> int | None:
    return int(text) if text and text.isdecimal() and len(text) <= 18 and int(text) > 0 else None


def _when(moment: datetime | None, site: SiteSettings) -> str:
    """A time in the site's time zone, to the minute."""
    return moment.astimezone(site.zone).strftime("%Y-%m-%d %H:%M") if moment else ""


def _scan_row(scan: Scan, site: SiteSettings) -> dict[str, Any]:
    base = f"/dashboard/{site.id}/compliance"
    return {
        "id": scan.id,
        "url": scan.url,
        "trigger": scan.trigger,
        "status": scan.status,
        "queued": _when(scan.queued_at, site),
        "started": _when(scan.started_at, site),
        "finished": _when(scan.finished_at, site),
        "pages_done": scan.pages_done,
        "pages_total": max(scan.pages_total, scan.pages_done),
        "current_url": scan.current_url,
        "violations": scan.violations,
        "error": scan.error,
        "link": f"{base}?scan={scan.id}" if scan.status == "done" else None,
        "json": f"{base}/scans/{scan.id}.json" if scan.status == "done" else None,
        "html": f"{base}/scans/{scan.id}.html" if scan.status == "done" else None,
    }


def _scan_json(scan: Scan) -> dict[str, Any]:
    return {
        "id": scan.id,
        "url": scan.url,
        "trigger": scan.trigger,
        "status": scan.status,
        "queued_at": scan.queued_at.isoformat(),
        "started_at": scan.started_at.isoformat() if scan.started_at else None,
        "finished_at": scan.finished_at.isoformat() if scan.finished_at else None,
        "pages_done": scan.pages_done,
        "pages_total": max(scan.pages_total, scan.pages_done),
        "current_url": scan.current_url,
        "violations": scan.violations,
        "error": scan.error,
    }


def _last_failure(history: list[Scan]) -> str | None:
    """The newest scan's error, when the newest finished scan failed (the reason belongs on top of the page)."""
    finished = next((scan for scan in history if not scan.active), None)
    return finished.error if finished is not None and finished.status == "failed" else None


def _list(report: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
    entries = report.get(field)
    return [entry for entry in entries if isinstance(entry, Mapping)] if isinstance(entries, list) else []


def _classify_link(base: str, cookie: Mapping[str, Any]) -> str:
    """The classify page of ``cookie``, its category prefilled with the report's suggestion."""
    query = {"name": str(cookie.get("name", ""))}
    suggestion = cookie.get("suggestion")
    if isinstance(suggestion, Mapping) and isinstance(suggestion.get("category"), str):
        query["category"] = suggestion["category"]
    return f"{base}/cookies/classify?{urlencode(query)}"


def _report_view(report: Mapping[str, Any], base: str) -> dict[str, Any]:
    """What the template reads of a report: its lists (entries that are not objects dropped) and links."""
    cookies = []
    for cookie in _list(report, "cookies"):
        unknown = cookie.get("category") is None
        cookies.append({"cookie": cookie, "classify": _classify_link(base, cookie) if unknown else None})
    summary = report.get("summary")
    return {
        "url": report.get("url"),
        "banner": bool(report.get("banner")),
        "states": report.get("states_scanned") if isinstance(report.get("states_scanned"), list) else [],
        "notes": [note for note in report.get("notes") or () if isinstance(note, str)],
        "pages": [page for page in report.get("pages") or () if isinstance(page, str)],
        "cookies": cookies,
        "unknown": [row for row in cookies if row["classify"]],
        "storage": _list(report, "storage"),
        "third_parties": _list(report, "third_parties"),
        "violations": _list(report, "violations"),
        "summary": summary if isinstance(summary, Mapping) else {},
    }


def _pages(total: int, page: int, base: str) -> dict[str, str | int | None]:
    last = max(1, -(-total // HISTORY_ROWS))
    return {
        "page": page,
        "last": last,
        "newer": f"{base}?page={page - 1}" if page > 1 else None,
        "older": f"{base}?page={page + 1}" if page < last else None,
    }
