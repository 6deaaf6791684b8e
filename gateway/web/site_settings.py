"""``/dashboard/{site_id}/settings``: a site owner's API keys and shared links, and the site's configuration.

The configuration itself (origins, time zone, privacy floor, goals, funnels) lives in the
config file and is only shown here. Keys and links are created and revoked by forms: every
POST goes through ``login_required`` (CSRF-checked) and answers with a 303 back to the page
(post/redirect/get), except the creation of a key, whose response shows the key itself once —
it is never put in a URL, where history, logs and Referer headers would keep it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.accounts.api_keys import ApiKeyError, create_api_key, list_api_keys, revoke_api_key
from gateway.accounts.shared_links import SharedLink, SharedLinkError, SharedLinks
from gateway.context import GatewayContext
from gateway.settings import SiteSettings
from gateway.web.dashboard import Audience, DashboardPages, SiteEndpoint, owners_only
from gateway.web.dashboard_auth import DashboardAuth, Viewer, read_form
from gateway.web.dashboard_view import parse_view
from gateway.web.security import apply_security_headers
from gateway.web.snippets import Bundles, script_tag

Done = Literal["key-revoked", "link-created", "link-revoked"]
_DONE: dict[str, str] = {
    "key-revoked": "The API key is revoked: it no longer opens the stats API.",
    "link-created": "The shared link is ready. Anyone holding it sees this site's statistics, read-only.",
    "link-revoked": "The shared link is revoked: every copy of it stops working now.",
}
#: The expiry choices of the link form, in its order: (form value, label, lifetime or None for never).
EXPIRIES: tuple[tuple[str, str, timedelta | None], ...] = (
    ("never", "Never", None),
    ("1d", "In 1 day", timedelta(days=1)),
    ("7d", "In 7 days", timedelta(days=7)),
    ("30d", "In 30 days", timedelta(days=30)),
    ("90d", "In 90 days", timedelta(days=90)),
    ("1y", "In 1 year", timedelta(days=365)),
)
_LIFETIMES = {value: lifetime for value, _, lifetime in EXPIRIES}


class SiteSettingsPages:
    """The settings page of each site and its four forms, for the site's owners only."""

    def __init__(self, context: GatewayContext, auth: DashboardAuth, pages: DashboardPages, bundles: Bundles) -> None:
        self.context = context
        self.auth = auth
        self.pages = pages
        self.bundles = bundles
        # Links are signed: without a secret key none can be made (the page says so).
        self.links = (
            SharedLinks(context.database, context.settings.secret_keys) if context.settings.secret_keys else None
        )

    def routes(self) -> list[BaseRoute]:
        base = "/dashboard/{site_id}/settings"
        return [
            Route(base, self._guard(self.show), methods=["GET"]),
            Route(f"{base}/keys", self._guard(self.create_key), methods=["POST"]),
            Route(f"{base}/keys/revoke", self._guard(self.revoke_key), methods=["POST"]),
            Route(f"{base}/links", self._guard(self.create_link), methods=["POST"]),
            Route(f"{base}/links/revoke", self._guard(self.revoke_link), methods=["POST"]),
        ]

    # Endpoints: each gets the site its owner may manage.

    async def show(self, request: Request, viewer: Viewer, site: SiteSettings) -> Response:
        done = _DONE.get(request.query_params.get("done", ""))
        new_link = request.query_params.get("link", "")
        return await self._page(
            request, viewer, site, message=done, new_link=int(new_link) if new_link.isdecimal() else None
        )

    async def create_key(self, request: Request, viewer: Viewer, site: SiteSettings) -> Response:
        form = await read_form(request)
        name = form.get("name", "")
        permissions = frozenset({"consent_log"} if form.get("consent_log") == "1" else ())
        try:
            _, key = await create_api_key(
                self.context.database, site.id, name, now=self.context.clock.now(), permissions=permissions
            )
        except ApiKeyError:
            error = "A key needs a name of 1 to 100 printable characters, such as “weekly report”."
            return await self._page(request, viewer, site, error=error, key_name=name)
        return await self._page(request, viewer, site, created_key=key, key_name="")

    async def revoke_key(self, request: Request, viewer: Viewer, site: SiteSettings) -> Response:
        key_id = _number((await read_form(request)).get("id"))
        now = self.context.clock.now()
        if key_id is None or not await revoke_api_key(self.context.database, site.id, key_id, now=now):
            return await self._page(request, viewer, site, error="This site has no such API key.")
        return _back(site, "key-revoked")

    async def create_link(self, request: Request, viewer: Viewer, site: SiteSettings) -> Response:
        form = await read_form(request)
        label, expiry, password = form.get("label", ""), form.get("expires", "never"), form.get("password", "")
        if self.links is None or expiry not in _LIFETIMES:
            error = _LINKS_NEED_A_KEY if self.links is None else "Pick an expiry from the list."
            return await self._page(request, viewer, site, error=error, link_label=label, link_expiry=expiry)
        now = self.context.clock.now()
        lifetime = _LIFETIMES[expiry]
        try:
            link, _ = await self.links.create(
                site.id,
                label=label,
                expires_at=now + lifetime if lifetime is not None else None,
                password=password or None,
                now=now,
            )
        except SharedLinkError as error:
            problem = f"The link was not created: {error}."
            return await self._page(request, viewer, site, error=problem, link_label=label, link_expiry=expiry)
        return _back(site, "link-created", link=str(link.id))

    async def revoke_link(self, request: Request, viewer: Viewer, site: SiteSettings) -> Response:
        link_id = _number((await read_form(request)).get("id"))
        now = self.context.clock.now()
        if self.links is None or link_id is None or not await self.links.revoke(site.id, link_id, now=now):
            return await self._page(request, viewer, site, error="This site has no such shared link.")
        return _back(site, "link-revoked")

    # Helpers.

    def _guard(self, endpoint: SiteEndpoint) -> Callable[[Request], Awaitable[Response]]:
        refusal = "Only an owner of this site manages its keys and shared links."
        return owners_only(self.auth, self.pages, endpoint, refusal)

    async def _page(
        self,
        request: Request,
        viewer: Viewer,
        site: SiteSettings,
        *,
        message: str | None = None,
        error: str | None = None,
        created_key: str | None = None,
        new_link: int | None = None,
        key_name: str = "",
        link_label: str = "",
        link_expiry: str = "never",
    ) -> Response:
        now = self.context.clock.now()
        # Never the request's Host header: any client sets it, and a link or tag copied from this page would
        # carry it (``Host: evil.example``). Without public_url: paths, and the tag says to prefix them.
        base_url = self.context.settings.public_url or ""
        keys = await list_api_keys(self.context.database, site.id)
        link_rows = []
        if self.links is not None:
            listed = await self.links.list(site.id)
            link_rows = [_link_row(link, self.links, base_url, site, now) for link in reversed(listed)]
        context = {
            **self._site_header(site, viewer),
            "snippet": _snippet(self.bundles, base_url, site.id),
            "keys": [
                {
                    "id": key.id,
                    "name": key.name,
                    "prefix": key.prefix,
                    "may_read": "statistics, consent log" if "consent_log" in key.permissions else "statistics",
                    "created": _when(key.created_at, site),
                    "last_used": _when(key.last_used_at, site) if key.last_used_at else "never",
                    "revoked": _when(key.revoked_at, site) if key.revoked_at else None,
                }
                for key in reversed(keys)
            ],
            "links": link_rows,
            "new_link": next((row for row in link_rows if row["id"] == new_link and row["url"]), None),
            "links_enabled": self.links is not None,
            "links_need_a_key": _LINKS_NEED_A_KEY,
            "expiries": [(value, label) for value, label, _ in EXPIRIES],
            "created_key": created_key,
            "key_name": key_name,
            "link_label": link_label,
            "link_expiry": link_expiry if link_expiry in _LIFETIMES else "never",
            "message": _with_paths_note(message, base_url),
            "error": error,
        }
        return self.auth.render(request, "settings.html", context, status=400 if error else 200, viewer=viewer)

    def _site_header(self, site: SiteSettings, viewer: Viewer) -> dict[str, Any]:
        """The site's tabs as on its other pages (``DashboardPages``), with Settings current."""
        today = self.context.clock.now().astimezone(site.zone).date()
        view = parse_view(f"/dashboard/{site.id}", site, QueryParams(""), today)
        common = self.pages.common(view, Audience(site, f"/dashboard/{site.id}", viewer), "settings")
        return {key: common[key] for key in ("site", "site_tabs", "page", "k")}


_LINKS_NEED_A_KEY = "Shared links need a secret key: set secret_keys in the config file."
_PATHS_NOTE = "Links are shown as paths: put the gateway's address in front, or set public_url in the config file."


def _snippet(bundles: Bundles, base_url: str, site_id: str) -> str:
    """The tag to paste; as a path (with a comment saying so) until ``public_url`` names the gateway."""
    tag = script_tag(bundles, base_url, site_id)
    if base_url:
        return tag
    return f"<!-- put the gateway's address (https://...) before {bundles.consent.versioned_path} -->\n{tag}"


def _with_paths_note(message: str | None, base_url: str) -> str | None:
    """A created link's message says how to complete its path when ``public_url`` is unset."""
    if message is None or base_url or message != _DONE["link-created"]:
        return message
    return f"{message} {_PATHS_NOTE}"


def _link_row(link: SharedLink, links: SharedLinks, base_url: str, site: SiteSettings, now: datetime) -> dict[str, Any]:
    expired = link.expires_at is not None and link.expires_at <= now
    live = link.revoked_at is None and not expired
    if link.revoked_at is not None:
        state = f"revoked {_when(link.revoked_at, site)}"
    elif expired:
        state = "expired"
    else:
        state = "active"
    return {
        "id": link.id,
        "label": link.label,
        "created": _when(link.created_at, site),
        "expires": _when(link.expires_at, site) if link.expires_at else "never",
        "password": link.has_password,
        "state": state,
        "live": live,
        # Only a live link's address is worth copying; a revoked or expired one opens nothing.
        "url": f"{base_url}/share/{links.token_for(link)}" if live else None,
    }


def _when(moment: datetime, site: SiteSettings) -> str:
    """A time in the site's time zone, to the minute, as the rest of its dashboard counts days."""
    return moment.astimezone(site.zone).strftime("%Y-%m-%d %H:%M")


def _number(text: str | None) -> int | None:
    return int(text) if text and text.isdecimal() and len(text) <= 18 else None


def _back(site: SiteSettings, done: Done, **extra: str) -> Response:
    location = f"/dashboard/{site.id}/settings?{urlencode({'done': done, **extra})}"
    return apply_security_headers(RedirectResponse(location, status_code=303))
