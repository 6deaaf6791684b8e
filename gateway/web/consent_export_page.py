"""``/dashboard/{site_id}/consent/export``: the consent log download of the consent page, for owners.

The consent report shows counts under the privacy floor; the export is the log itself (consent
ids, networks, pages), so only the site's owners (and admins) download it. A GET with the form's
values (nothing changes, so no CSRF token is needed), answered with the streamed file or with
an error page that says what to fix.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway.consent.export import FORMATS, MAX_DAYS, MEDIA_TYPES, ExportError, export_consent_log, parse_export
from gateway.context import GatewayContext
from gateway.web.dashboard import Audience, DashboardPages
from gateway.web.dashboard_auth import DashboardAuth


def export_form(audience: Audience, today: date) -> dict[str, Any] | None:
    """What the consent page's export form shows (the last 30 days by default); None for a non-owner."""
    if audience.viewer is None or not audience.viewer.is_owner(audience.site.id):
        return None
    return {
        "action": f"{audience.base}/consent/export",
        "first": (today - timedelta(days=29)).isoformat(),
        "last": today.isoformat(),
        "formats": FORMATS,
        "max_days": MAX_DAYS,
    }


class ConsentExportPage:
    def __init__(self, context: GatewayContext, auth: DashboardAuth, pages: DashboardPages) -> None:
        self.context = context
        self.auth = auth
        self.pages = pages

    def routes(self) -> list[BaseRoute]:
        endpoint = self.auth.login_required(self.pages.signed_in(self.download))
        return [Route("/dashboard/{site_id}/consent/export", endpoint, methods=["GET"])]

    async def download(self, request: Request, audience: Audience) -> Response:
        viewer, site = audience.viewer, audience.site
        if viewer is None or not viewer.is_owner(site.id):
            return self.auth.error_page(
                request, 403, "Only an owner of this site exports its consent log.", viewer=viewer
            )
        params = request.query_params
        try:
            export = parse_export(
                site,
                params.get("from"),
                params.get("to"),
                params.get("format") or "csv",
                revisions=params.get("revisions") == "1",
            )
        except ExportError as error:
            message = f"The consent log was not exported: {error}."
            return self.auth.error_page(request, 400, message, viewer=viewer)
        return StreamingResponse(
            export_consent_log(self.context.database, export),
            media_type=MEDIA_TYPES[export.format],
            headers={
                "content-disposition": f'attachment; filename="{export.filename}"',
                "cache-control": "no-store",
            },
        )
