"""``/consent``: record a decision, read it back, withdraw it.

Every decision is appended to the proof log before the token is returned, so a visitor
never holds a token without a record behind it. Cross-origin callers get the token in
JSON (the snippet stores it as a first-party cookie on the site); a same-origin caller
also gets the ``cg_consent`` cookie directly. When the proof log cannot be written (a full disk,
a read-only file) the answer is a JSON 503 with ``Retry-After`` and the site's CORS headers, and
no token: a decision without its record is never handed out.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.anonymise import truncate_ip
from gateway.categories import CONSENT_CATEGORIES
from gateway.consent.choices import ChoiceError, parse_choice, parse_page_path
from gateway.consent.middleware import CONSENT_COOKIE
from gateway.consent.model import ConsentMethod, ConsentState
from gateway.consent.records import ConsentRecord, category_choices, policy_revision
from gateway.consent.texts import pick_language, texts_for
from gateway.consent.token import expires_at, new_consent_id
from gateway.context import GatewayContext
from gateway.ingest.useragent import parse_user_agent
from gateway.settings import SiteSettings
from gateway.storage.consent_log import append_record
from gateway.web.cors import cors_headers, preflight_endpoint, require_cors
from gateway.web.errors import ClientError, read_json_object
from gateway.web.storage_errors import storage_guard


def consent_routes(context: GatewayContext) -> list[Route]:
    endpoints = _ConsentEndpoints(context)
    preflight = preflight_endpoint(context.settings.sites.values())
    return [
        Route("/consent", endpoints.record, methods=["POST"]),
        Route("/consent", endpoints.show, methods=["GET"]),
        Route("/consent/withdraw", endpoints.withdraw, methods=["POST"]),
        Route("/consent", preflight, methods=["OPTIONS"]),
        Route("/consent/withdraw", preflight, methods=["OPTIONS"]),
    ]


class _ConsentEndpoints:
    def __init__(self, context: GatewayContext) -> None:
        self.context = context

    async def record(self, request: Request) -> Response:
        try:
            body = await read_json_object(request, limit=self.context.settings.max_body_bytes)
            site = self._site(body.get("site"))
            cors = require_cors(request, site)
            try:
                choice = parse_choice(body, site, gpc_header=request.headers.get("sec-gpc", "").strip() == "1")
            except ChoiceError as error:
                raise ClientError(400, str(error), headers=cors) from None
            if choice.revision != site.policy_revision:
                raise ClientError(
                    409,
                    f"policy revision {choice.revision} is outdated; the current revision is "
                    f"{site.policy_revision}: show the banner again",
                    headers=cors,
                )
            consent_id = self._existing_consent_id(request, body, site) or new_consent_id()
            token, state = self.context.codec.issue(
                consent_id=consent_id,
                site=site,
                allowed=choice.allowed,
                services=choice.services,
                method=choice.method,
                gpc=choice.gpc,
            )
            with storage_guard(headers=cors):  # a 503 the site's script can read: the decision was not recorded
                await append_proof(
                    self.context, request, site, state, language=choice.language, page_path=choice.page_path
                )
            return self._answer(request, site, token, state, cors, status=201)
        except ClientError as error:
            return error.response()

    async def show(self, request: Request) -> Response:
        site = self.context.site(request.query_params.get("site"))
        if site is None:
            return ClientError(404, "unknown site: pass ?site=ID of a configured site").response()
        cors = cors_headers(request, site)
        if cors is None:
            return ClientError(403, "this origin is not allowed for the site").response()
        token = request.query_params.get("token") or request.cookies.get(CONSENT_COOKIE)
        if not token:
            return JSONResponse({"decision": False, "reason": "missing", "state": None}, headers=cors)
        verified = self.context.codec.verify(token, site)
        if verified.state is None:
            return JSONResponse({"decision": False, "reason": verified.reason, "state": None}, headers=cors)
        return JSONResponse(
            {"decision": True, "reason": "valid", "state": state_json(verified.state, site)}, headers=cors
        )

    async def withdraw(self, request: Request) -> Response:
        try:
            body = await read_json_object(request, limit=self.context.settings.max_body_bytes)
            site = self._site(body.get("site"))
            cors = require_cors(request, site)
            consent_id = self._existing_consent_id(request, body, site)
            if consent_id is None:
                raise ClientError(400, "no valid consent token was presented: nothing to withdraw", headers=cors)
            method: ConsentMethod = "withdraw"
            token, state = self.context.codec.issue(
                consent_id=consent_id, site=site, allowed=frozenset(), services={}, method=method, gpc=False
            )
            try:  # the same rules as a decision's page: a query string can carry personal data
                page_path = parse_page_path(body.get("page"))
            except ChoiceError as error:
                raise ClientError(400, str(error), headers=cors) from None
            with storage_guard(headers=cors):
                await append_proof(self.context, request, site, state, language=None, page_path=page_path)
            return self._answer(request, site, token, state, cors, status=200)
        except ClientError as error:
            return error.response()

    def _site(self, site_id: object) -> SiteSettings:
        site = self.context.site(site_id)
        if site is None:
            raise ClientError(404, f"unknown site {site_id!r}: 'site' must name a configured site")
        return site

    def _existing_consent_id(self, request: Request, body: dict[str, Any], site: SiteSettings) -> str | None:
        """Keep one consent id per visitor so the proof log holds their whole history."""
        token = body.get("token") if isinstance(body.get("token"), str) else request.cookies.get(CONSENT_COOKIE)
        return self.context.codec.consent_id_of(token, site) if token else None

    def _answer(
        self,
        request: Request,
        site: SiteSettings,
        token: str,
        state: ConsentState,
        cors: dict[str, str],
        *,
        status: int,
    ) -> Response:
        expiry = expires_at(state, site)
        response = JSONResponse(
            {"token": token, "expires_at": expiry.isoformat(), "state": state_json(state, site)},
            status_code=status,
            headers=cors,
        )
        if not cors:  # same origin: the gateway's host is the site's host, set the cookie ourselves
            set_consent_cookie(response, request, site, token, state)
        return response


def set_consent_cookie(
    response: Response, request: Request, site: SiteSettings, token: str, state: ConsentState
) -> None:
    """The first-party ``cg_consent`` cookie, for a gateway answering on the site's own origin."""
    response.set_cookie(
        CONSENT_COOKIE,
        token,
        max_age=int((expires_at(state, site) - state.issued_at).total_seconds()),
        path="/",
        domain=site.consent_cookie_domain,
        secure=request.url.scheme == "https",
        httponly=False,  # the snippet reads it to know the decision without a request
        samesite="lax",
    )


async def append_proof(
    context: GatewayContext,
    request: Request,
    site: SiteSettings,
    state: ConsentState,
    *,
    language: str | None,
    page_path: str | None,
) -> None:
    """Append the proof-of-consent record behind ``state`` (before its token is handed out)."""
    user_agent = request.headers.get("user-agent", "")
    agent = parse_user_agent(user_agent) if user_agent else None
    address = request.client.host if request.client else None
    shown = texts_for(pick_language(language), site.banner.texts)
    revision = policy_revision(site, context.catalogs[site.id], language or "", shown)
    record = ConsentRecord(
        consent_id=state.consent_id,
        site_id=site.id,
        recorded_at=state.issued_at,
        method=state.method,
        policy_revision=state.revision,
        banner_hash=revision.content_hash,
        categories=category_choices(state.allowed),
        services=dict(state.services),
        gpc=state.gpc,
        language=language,
        page_path=page_path,
        ip_network=truncate_ip(address),
        ua_family=agent.browser if agent else None,
        expires_at=expires_at(state, site),
        # For the consent report; the full address is used for the lookup in memory only, as ingest does.
        country=context.geo.lookup(address).country if address else None,
        device=agent.device if agent else None,
    )
    await append_record(context.database, record, revision)  # what was shown, kept once per distinct banner
    context.metrics.inc("consent_gateway_consent_decisions_total", method=state.method)


def state_json(state: ConsentState, site: SiteSettings) -> dict[str, Any]:
    return {
        "consent_id": state.consent_id,
        "site": state.site_id,
        "revision": state.revision,
        "categories": {"essential": True, **{c: c in state.allowed for c in CONSENT_CATEGORIES}},
        "services": dict(state.services),
        "method": state.method,
        "gpc": state.gpc,
        "issued_at": state.issued_at.isoformat(),
        "expires_at": expires_at(state, site).isoformat(),
    }
