"""``GET /api/v1/sites/{site_id}/consent-log``: a site's proof-of-consent log as evidence, streamed.

For API keys given the ``consent_log`` permission only: the log names pseudonymous visitors and
their networks, which a stats key handed to a reporting script must not read. Checks in the
stats API's order (401 without a valid key, then 404, 403 for another site's key or a key
without the permission, then 400 for the parameters), all before the first byte is sent; the
body then comes page by page from the store (``gateway/consent/export.py``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.consent.export import MEDIA_TYPES, ExportError, export_consent_log, parse_export
from gateway.context import GatewayContext
from gateway.web.api_auth import presented_key
from gateway.web.errors import ClientError

PERMISSION = "consent_log"
_FLAGS = {"0": False, "1": True, "false": False, "true": True}


async def consent_log_export(context: GatewayContext, request: Request) -> Response:
    key = await presented_key(context, request)
    site_id = request.path_params["site_id"]
    site = context.site(site_id)
    if site is None:
        raise ClientError(404, f"there is no site {site_id[:80]!r}")
    if key.site_id != site.id:
        raise ClientError(403, f"this API key belongs to another site than {site.id!r}")
    if PERMISSION not in key.permissions:
        raise ClientError(
            403,
            "this API key may not read the consent log: create one with the consent_log permission "
            f"(consent-gateway apikey create --site {site.id} --name NAME --permission consent_log)",
        )
    params = request.query_params
    for name in ("from", "to", "format", "revisions"):
        if "" in params.getlist(name):
            raise ClientError(400, f"'{name}' is empty: give a value, or leave it out for the default")
    revisions = _FLAGS.get(params.get("revisions", "0"))
    if revisions is None:
        raise ClientError(400, f"'revisions' is 1 or 0, found {params['revisions'][:40]!r}")
    try:
        export = parse_export(site, params.get("from"), params.get("to"), params.get("format"), revisions=revisions)
    except ExportError as error:
        raise ClientError(400, str(error)) from None
    return StreamingResponse(
        export_consent_log(context.database, export),
        media_type=MEDIA_TYPES[export.format],
        headers={"content-disposition": f'attachment; filename="{export.filename}"', "cache-control": "no-store"},
    )
