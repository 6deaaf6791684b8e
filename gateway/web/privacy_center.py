"""``/privacy?site=S``: the visitor's own consent history, with change, withdraw, download and erase.

No account: the signed token of the visitor's ``cg_consent`` cookie is the key, so a visitor
only ever reaches the records of their own consent id. The site's cookie lives on the site's
domain, so the snippet opens this page with the token in the URL fragment (never sent to a
server, nor in a Referer); a nonce'd script moves it into a POST form. On a gateway that shares
the site's origin the cookie itself is read. Forms carry the token, which an attacker cannot
know, and cross-site posts are refused by their Origin: that is the CSRF defence.
After a change the page links back to the site with the new token in the fragment, which the
snippet adopts as the site's cookie.
"""

from __future__ import annotations

import json
import secrets
from urllib.parse import parse_qs

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gateway.categories import CONSENT_CATEGORIES, Category
from gateway.consent.middleware import CONSENT_COOKIE
from gateway.consent.model import ConsentMethod, ConsentState
from gateway.consent.records import ConsentRecord
from gateway.consent.texts import pick_language, texts_for
from gateway.context import GatewayContext
from gateway.settings import SiteSettings
from gateway.storage.consent_log import erase_records, records_for
from gateway.templating import template_environment
from gateway.web.consent_api import append_proof, set_consent_cookie
from gateway.web.errors import ClientError, read_body

_FORM_LIMIT = 4096
_ACTIONS = {"view", "save", "withdraw", "export", "erase"}


def privacy_routes(context: GatewayContext, templates: Environment | None = None) -> list[Route]:
    center = _PrivacyCenter(context, templates or template_environment())
    return [
        Route("/privacy", center.show, methods=["GET"]),
        Route("/privacy", center.act, methods=["POST"]),
    ]


class _PrivacyCenter:
    def __init__(self, context: GatewayContext, templates: Environment) -> None:
        self.context = context
        self.template = templates.get_template("privacy.html")

    async def show(self, request: Request) -> Response:
        site = self.context.site(request.query_params.get("site"))
        language = pick_language(request.query_params.get("lang") or _accept_language(request))
        if site is None:
            return self._page(request, None, language, status=404, error="unknown site: pass ?site=ID")
        token = request.cookies.get(CONSENT_COOKIE, "")
        return await self._history(request, site, language, token, message=None)

    async def act(self, request: Request) -> Response:
        try:
            form = await _read_form(request)
        except ClientError as error:
            return self._page(request, None, "en", status=error.status, error=error.message)
        site = self.context.site(form.get("site"))
        language = pick_language(form.get("lang") or _accept_language(request))
        if site is None:
            return self._page(request, None, language, status=404, error="unknown site")
        if _cross_site(request):
            return self._page(request, site, language, status=403, error="cross-site form posts are refused")
        action = form.get("action", "view")
        if action not in _ACTIONS:
            return self._page(request, site, language, status=400, error=f"unknown action {action[:40]!r}")
        token = form.get("token", "")
        consent_id = self.context.codec.consent_id_of(token, site) if token else None
        if consent_id is None or action == "view":
            return await self._history(request, site, language, token, message=None)
        texts = texts_for(language, site.banner.texts)
        if action == "export":
            records = await records_for(self.context.database, consent_id, site.id)
            body = json.dumps({"consent_id": consent_id, "records": [r.to_json() for r in records]}, indent=2)
            return Response(
                body,
                media_type="application/json",
                headers={"content-disposition": f'attachment; filename="consent-{site.id}.json"', **_security()},
            )
        if action == "save":
            allowed = frozenset(c for c in CONSENT_CATEGORIES if form.get(f"category.{c}") == "on")
            services = {s.id: form.get(f"service.{s.id}") == "on" and s.category in allowed for s in site.services}
            method: ConsentMethod = (
                "accept_all" if len(allowed) == len(CONSENT_CATEGORIES) else "reject_all" if not allowed else "custom"
            )
            issued = await self._decide(request, site, consent_id, allowed, services, method, language)
            return await self._history(
                request, site, language, issued[0], message=texts["privacy.saved"], issued=issued
            )
        issued = await self._decide(request, site, consent_id, frozenset(), {}, "withdraw", language)
        if action == "erase":
            context = self.context
            await erase_records(context.database, consent_id, now=context.clock.now(), zones=context.settings.zones)
            return self._page(request, site, language, message=texts["privacy.erased"], token=issued[0], issued=issued)
        return await self._history(
            request, site, language, issued[0], message=texts["privacy.withdrawn"], issued=issued
        )

    async def _decide(
        self,
        request: Request,
        site: SiteSettings,
        consent_id: str,
        allowed: frozenset[Category],
        services: dict[str, bool],
        method: ConsentMethod,
        language: str,
    ) -> tuple[str, ConsentState]:
        """A new decision under the visitor's consent id, proof first; its token and state."""
        token, state = self.context.codec.issue(
            consent_id=consent_id, site=site, allowed=allowed, services=services, method=method, gpc=False
        )
        await append_proof(self.context, request, site, state, language=language, page_path="/privacy")
        return token, state

    async def _history(
        self,
        request: Request,
        site: SiteSettings,
        language: str,
        token: str,
        *,
        message: str | None,
        issued: tuple[str, ConsentState] | None = None,
    ) -> Response:
        consent_id = self.context.codec.consent_id_of(token, site) if token else None
        records = await records_for(self.context.database, consent_id, site.id) if consent_id else []
        current = self.context.codec.verify(token, site).state if token else None
        return self._page(
            request,
            site,
            language,
            token=token if consent_id else "",
            records=records,
            current=current.allowed if current else frozenset(),
            current_services=dict(current.services) if current else {},
            message=message,
            issued=issued,
        )

    def _page(
        self,
        request: Request,
        site: SiteSettings | None,
        language: str,
        *,
        status: int = 200,
        error: str | None = None,
        message: str | None = None,
        token: str = "",
        records: list[ConsentRecord] | None = None,
        current: frozenset[Category] = frozenset(),
        current_services: dict[str, bool] | None = None,
        issued: tuple[str, ConsentState] | None = None,
    ) -> Response:
        """``issued``: the token and state of a decision just made here, handed back to the site."""
        nonce = secrets.token_urlsafe(16)
        texts = texts_for(language, site.banner.texts if site else {})
        return_url = f"{site.origins[0]}/#cg_consent={issued[0]}" if site and site.origins and issued else None
        html = self.template.render(
            t=texts,
            lang=language,
            site=site,
            nonce=nonce,
            error=error,
            message=message,
            token=token,
            records=list(reversed(records or [])),
            categories=CONSENT_CATEGORIES,
            current=current,
            current_services=current_services or {},
            return_url=return_url,
        )
        response = HTMLResponse(html, status_code=status, headers=_security(nonce))
        here = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
        if issued is not None and site is not None and here in site.origins:  # on the site's own origin
            set_consent_cookie(response, request, site, *issued)
        return response


async def _read_form(request: Request) -> dict[str, str]:
    """An urlencoded form as single values (the first of each name); 413 beyond 4 KB."""
    body = await read_body(request, limit=_FORM_LIMIT)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientError(400, "the form is not valid UTF-8") from None
    return {name: values[0] for name, values in parse_qs(text, keep_blank_values=True).items()}


def _cross_site(request: Request) -> bool:
    """A post from another site (defence in depth: the token in the form is the real key).

    ``Sec-Fetch-Site`` where the browser sends it; else the Origin, which a page with
    ``Referrer-Policy: no-referrer`` (this one) sends as ``null`` even for its own forms.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin is not None and origin not in ("null", own)


def _accept_language(request: Request) -> str:
    return request.headers.get("accept-language", "").split(",", 1)[0]


def _security(nonce: str | None = None) -> dict[str, str]:
    sources = f"'nonce-{nonce}'" if nonce else "'none'"
    return {
        "content-security-policy": (
            f"default-src 'none'; style-src {sources}; script-src {sources}; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'"
        ),
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
        "cache-control": "no-store",
    }
