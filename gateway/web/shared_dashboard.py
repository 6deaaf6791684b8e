"""``/share/{token}``: a site's dashboard, read-only, for whoever holds a shared link.

The pages are the signed-in dashboard's own (``DashboardPages.shared_pages``) under the link's
path, for an ``Audience`` with no viewer: no account menu, no site switcher, no consent,
cookie or settings tab. A link that does not open (tampered, revoked, expired, or its site
gone from the config) is one 404 page that does not say which. A link with a password shows a
password form (401) until an unlock cookie, scoped to ``/share/`` and named after the link,
proves the password was given; failures are throttled like logins, per link and per network.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.accounts.shared_links import UNLOCK_LIFETIME, SharedLink, SharedLinks
from gateway.accounts.throttle import LoginThrottle, Refused
from gateway.context import GatewayContext
from gateway.settings import SiteSettings
from gateway.web.dashboard import Audience, DashboardPages, Page
from gateway.web.dashboard_auth import DashboardAuth, read_form
from gateway.web.errors import ClientError
from gateway.web.rate_limit import FilteredQueryLimit
from gateway.web.security import apply_security_headers

NOT_VALID = "This link is not valid: it may have been revoked or have expired."
WRONG_PASSWORD = "Wrong password."  # noqa: S105 - the message, not a password
_PASSWORD_LIMIT = 1024


def unlock_cookie_name(link: SharedLink) -> str:
    """One cookie per link, so unlocking one link never opens another."""
    return f"cg_share_{link.id}"


class SharedDashboard:
    def __init__(
        self,
        context: GatewayContext,
        auth: DashboardAuth,
        pages: DashboardPages,
        *,
        limit: FilteredQueryLimit | None = None,
    ) -> None:
        self.context = context
        self.auth = auth
        self.pages = pages
        #: Filtered queries per link (``gateway/web/rate_limit.py``); made from the settings unless given.
        self.limit = limit or FilteredQueryLimit(limit=context.settings.filtered_query_limit, clock=context.clock)
        self.throttle: LoginThrottle = auth.throttle
        self.links = (
            SharedLinks(context.database, context.settings.secret_keys) if context.settings.secret_keys else None
        )

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route(f"/share/{{token}}{path}", self._shared(page), methods=["GET"])
            for path, page in self.pages.shared_pages()
        ]
        routes.append(Route("/share/{token}/unlock", self.unlock, methods=["POST"]))
        return routes

    def _shared(self, page: Page) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            token = request.path_params["token"]
            now = self.context.clock.now()
            opened = await self._open(token)
            if opened is None:
                return self.auth.error_page(request, 404, NOT_VALID)
            link, site = opened
            if not self.links or not self.links.unlocked(link, request.cookies.get(unlock_cookie_name(link)), now):
                return self._password_form(request, token, status=401)
            if request.query_params.getlist("f"):
                wait = self.limit.reserve(f"shared-link:{link.id}")
                if wait:
                    return self._too_many(request, wait)
            return await page(request, Audience(site, base=f"/share/{token}"))

        return endpoint

    async def unlock(self, request: Request) -> Response:
        token = request.path_params["token"]
        opened = await self._open(token)
        if opened is None or self.links is None:
            return self.auth.error_page(request, 404, NOT_VALID)
        link, _ = opened
        try:
            form = await read_form(request)
        except ClientError as error:
            return self.auth.error_page(request, error.status, error.message)
        back = f"/share/{token}{_page_under_link(form.get('next', ''))}"
        if not link.has_password:
            return _see_other(back)
        now = self.context.clock.now()
        name = f"shared-link:{link.id}"  # ':' is in no user name: a link never shares an account's count
        client = request.client.host if request.client else None  # the throttle keeps only its network
        reservation = await self.throttle.reserve(name, client, now)  # before scrypt: parallel tries queue here
        if isinstance(reservation, Refused):
            wait = reservation.retry_after
            minutes = -(-wait // 60)
            problem = f"Too many wrong passwords. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
            response = self._password_form(request, token, status=429, error=problem, next_page=form.get("next", ""))
            response.headers["retry-after"] = str(wait)
            return response
        password = form.get("password", "")[:_PASSWORD_LIMIT]
        stored = link.password_hash or ""
        if not await self.context.passwords.verify(password, stored):  # scrypt: bounded, off the event loop
            return self._password_form(request, token, status=401, error=WRONG_PASSWORD, next_page=form.get("next", ""))
        await self.throttle.release(reservation)
        response = _see_other(back)
        response.set_cookie(
            unlock_cookie_name(link),
            self.links.unlock_cookie(link, now),
            max_age=int(UNLOCK_LIFETIME.total_seconds()),
            path="/share/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response

    def _too_many(self, request: Request, wait: int) -> Response:
        minutes = -(-wait // 60)
        message = (
            f"Too many filtered views from this link: at most {self.limit.limit} every 10 minutes. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, or remove the filters."
        )
        return self.auth.error_page(request, 429, message, headers={"retry-after": str(wait)})

    async def _open(self, token: str) -> tuple[SharedLink, SiteSettings] | None:
        """The live link behind ``token`` and its configured site, or None (one answer for every reason)."""
        if self.links is None:
            return None
        link = await self.links.open(token, now=self.context.clock.now())
        site = self.context.site(link.site_id) if link is not None else None
        return (link, site) if link is not None and site is not None else None

    def _password_form(
        self, request: Request, token: str, *, status: int, error: str | None = None, next_page: str | None = None
    ) -> Response:
        if next_page is None:  # the page asked for, to come back to once unlocked
            prefix = f"/share/{token}"
            next_page = request.url.path.removeprefix(prefix) + (f"?{request.url.query}" if request.url.query else "")
        context = {"action": f"/share/{token}/unlock", "next": _page_under_link(next_page), "error": error}
        return self.auth.render(request, "share_password.html", context, status=status)


def _page_under_link(candidate: str) -> str:
    """``candidate`` when it is a page under the link (``/goals?period=7d``), else the overview.

    What is returned is appended to ``/share/TOKEN``, so it can never lead to another host;
    control characters, spaces and backslashes are refused all the same.
    """
    if (
        len(candidate) > 2000
        or not candidate.startswith(("/", "?"))
        or candidate.startswith("//")
        or any(char <= " " or char in "\\\x7f" for char in candidate)
    ):
        return ""
    return candidate


def _see_other(location: str) -> Response:
    return apply_security_headers(RedirectResponse(location, status_code=303))
