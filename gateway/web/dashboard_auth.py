"""Dashboard login: ``/login``, ``/logout``, ``/dashboard`` and the guard every dashboard page sits behind.

``DashboardAuth.login_required`` turns ``endpoint(request, viewer)`` into a route endpoint:
it loads the session behind the cookie (server-side: ``gateway.accounts.sessions``), checks the
CSRF token of every state-changing request (OWASP's synchronizer token, bound to the session: form
field ``csrf`` or header ``X-CSRF-Token``) and adds the security headers. A login reserves its
attempt with the throttle before scrypt runs (``gateway.accounts.throttle``).
The login form itself is protected by a double-submit token in a signed ``cg_login`` cookie,
so another site cannot log a visitor into an account of its choosing (login CSRF).
"""

from __future__ import annotations

import base64
import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.accounts import passwords
from gateway.accounts.sessions import SESSION_COOKIE, Session, Sessions
from gateway.accounts.throttle import LoginThrottle, Refused
from gateway.anonymise import truncate_ip
from gateway.context import GatewayContext
from gateway.resources import resource_dir
from gateway.settings import Secret, Settings, SiteSettings
from gateway.storage.users import User, get_user, get_user_by_id
from gateway.templating import template_environment
from gateway.web.errors import ClientError, read_body
from gateway.web.security import apply_security_headers, new_nonce

LOGIN_COOKIE = "cg_login"
_LOGIN_SALT = "consent-gateway.login-form"
#: How long a login form may be left open before it must be reloaded.
_LOGIN_FORM_AGE = timedelta(hours=1)
_FORM_LIMIT = 16 * 1024
_FORM_SCOPE_KEY = "gateway.form"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRONG_LOGIN = "Wrong name or password."

Endpoint = Callable[[Request, "Viewer"], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking at a dashboard page.

    ``configured`` holds the ids of the sites in the settings: a role on a site that was
    removed from the config (or the admin's "every site") never reaches a site that is not there.
    """

    user: User
    session: Session
    configured: frozenset[str]

    def can_see(self, site_id: str) -> bool:
        return site_id in self.configured and self.user.role_for(site_id) is not None

    def is_owner(self, site_id: str) -> bool:
        return site_id in self.configured and self.user.role_for(site_id) == "owner"

    def visible_sites(self, settings: Settings) -> list[SiteSettings]:
        """The sites this user may see, in the order of the config file."""
        return [site for site in settings.sites.values() if self.user.role_for(site.id) is not None]


class DashboardAuth:
    def __init__(self, context: GatewayContext) -> None:
        self.context = context
        self.sessions = Sessions(context.database, context.settings.secret_keys)
        self.throttle = LoginThrottle(context.database)
        self.templates = template_environment()
        self._login_form = _LoginFormToken(context.settings.secret_keys)
        self._unmatchable_hash = _unmatchable_hash()
        self._stylesheet = (resource_dir("consent_ui") / "dashboard" / "dashboard.css").read_bytes()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/login", self._login_page, methods=["GET"]),
            Route("/login", self._login, methods=["POST"]),
            Route("/logout", self.login_required(self._logout), methods=["POST"]),
            Route("/dashboard", self.login_required(self._sites), methods=["GET"]),
            Route("/dashboard/static/dashboard.css", self._stylesheet_response, methods=["GET"]),
        ]

    async def viewer(self, request: Request) -> Viewer | None:
        """The signed-in user behind the request's session cookie, or None."""
        session = await self.sessions.load(request.cookies.get(SESSION_COOKIE), self.context.clock.now())
        if session is None:
            return None
        user = await get_user_by_id(self.context.database, session.user_id)
        if user is None:  # removed since (its sessions went with it; this is belt and braces)
            return None
        return Viewer(user, session, frozenset(self.context.settings.sites))

    def login_required(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        """``endpoint(request, viewer)`` for signed-in users only, CSRF-checked when it changes state."""

        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            viewer = await self.viewer(request)
            if viewer is None:
                if request.method in ("GET", "HEAD"):
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return _see_other(f"/login?{urlencode({'next': target})}")
                return self.error_page(request, 403, "Your session has ended: log in again, then retry.")
            if request.method not in _SAFE_METHODS:
                token = request.headers.get("x-csrf-token")
                if token is None:
                    try:
                        token = (await read_form(request)).get("csrf")
                    except ClientError as error:
                        return self.error_page(request, error.status, error.message, viewer=viewer)
                if not viewer.session.csrf_matches(token):
                    return self.error_page(
                        request,
                        403,
                        "This form did not come from this dashboard, or it is from an older session "
                        "(CSRF check failed). Go back, reload the page and try again.",
                        viewer=viewer,
                    )
            response = await endpoint(request, viewer)  # the idle clock is kept in the row: no cookie to refresh
            return apply_security_headers(response, replace=False)

        return guarded

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        status: int = 200,
        viewer: Viewer | None = None,
    ) -> HTMLResponse:
        """``dashboard/<template>`` with the names base.html needs, behind the security headers."""
        nonce = new_nonce()
        html = self.templates.get_template(f"dashboard/{template}").render(
            {
                "nonce": nonce,
                "csrf": viewer.session.csrf_token if viewer else "",
                "viewer": viewer,
                "site_links": viewer.visible_sites(self.context.settings) if viewer else [],
                "request_path": request.url.path,
                **context,
            }
        )
        return apply_security_headers(HTMLResponse(html, status_code=status), nonce)

    def error_page(
        self,
        request: Request,
        status: int,
        message: str,
        *,
        viewer: Viewer | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """A readable error page (403, 404, ...) in the dashboard's layout."""
        response = self.render(
            request, "error.html", {"status": status, "message": message}, status=status, viewer=viewer
        )
        response.headers.update(headers or {})
        return response

    async def start_session(self, response: Response, request: Request, user_id: int) -> None:
        """Sign ``user_id`` in on ``response`` with fresh session and CSRF ids (never the request's).

        The session keeps the login's network (/24 or /48) for the admin's list, never the address.
        """
        network = truncate_ip(request.client.host if request.client else None)
        _, cookie = await self.sessions.start(user_id, self.context.clock.now(), network=network)
        self._set_session_cookie(response, request, cookie)

    def _set_session_cookie(self, response: Response, request: Request, cookie: str) -> None:
        # No Max-Age: a session cookie, gone when the browser closes; the timeouts live in its row.
        response.set_cookie(
            SESSION_COOKIE, cookie, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https"
        )

    async def _login_page(self, request: Request) -> Response:
        return self._login_form_response(request, next_path=_local_path(request.query_params.get("next")))

    async def _login(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except ClientError as error:
            return self.error_page(request, error.status, error.message)
        now = self.context.clock.now()
        next_path = _local_path(form.get("next"))
        name = form.get("name", "").strip()
        expected = self._login_form.token_of(request.cookies.get(LOGIN_COOKIE), now)
        if expected is None or not hmac.compare_digest(form.get("login_csrf", "").encode(), expected.encode()):
            problem = "This login form expired or was not opened on this site. It has been reloaded: please try again."
            return self._login_form_response(request, next_path=next_path, name=name, error=problem, status=403)
        client = request.client.host if request.client else None  # the throttle keeps only its network
        reservation = await self.throttle.reserve(name, client, now)  # before scrypt: parallel tries queue here
        if isinstance(reservation, Refused):
            wait = reservation.retry_after
            problem = f"Too many failed logins. Try again in {_duration(wait)}."
            return self._login_form_response(
                request, next_path=next_path, name=name, error=problem, status=429, headers={"retry-after": str(wait)}
            )
        user = await get_user(self.context.database, name) if 0 < len(name) <= 64 else None
        # An unknown name still costs one scrypt, so the answer's timing does not tell which names exist.
        stored = user.password_hash if user is not None else self._unmatchable_hash
        matches = await self.context.passwords.verify(form.get("password", ""), stored)  # bounded: ~32 MB each
        if user is None or not matches:  # the reserved attempt stays counted as a failure
            return self._login_form_response(request, next_path=next_path, name=name, error=WRONG_LOGIN, status=401)
        await self.throttle.release(reservation)
        response = _see_other(next_path)
        await self.start_session(response, request, user.id)
        response.delete_cookie(LOGIN_COOKIE, path="/login", httponly=True, samesite="lax")
        return response

    def _login_form_response(
        self,
        request: Request,
        *,
        next_path: str,
        name: str = "",
        error: str | None = None,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        now = self.context.clock.now()
        token = self._login_form.token_of(request.cookies.get(LOGIN_COOKIE), now, fresh_for=_LOGIN_FORM_AGE / 2)
        cookie = None
        if token is None or status == 403:
            token, cookie = self._login_form.issue(now)
        context = {"name": name[:64], "next": next_path, "login_csrf": token, "error": error}
        response = self.render(request, "login.html", context, status=status)
        response.headers.update(headers or {})
        if cookie is not None:
            response.set_cookie(
                LOGIN_COOKIE,
                cookie,
                max_age=int(_LOGIN_FORM_AGE.total_seconds()),
                path="/login",
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
            )
        return response

    async def _logout(self, request: Request, viewer: Viewer) -> Response:
        await self.sessions.end(request.cookies.get(SESSION_COOKIE))  # a saved copy of the cookie opens nothing
        response = _see_other("/login")
        response.delete_cookie(
            SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https"
        )
        return response

    async def _sites(self, request: Request, viewer: Viewer) -> Response:
        return self.render(request, "sites.html", {"sites": viewer.visible_sites(self.context.settings)}, viewer=viewer)

    async def _stylesheet_response(self, request: Request) -> Response:
        return Response(
            self._stylesheet,
            media_type="text/css",
            headers={"cache-control": "public, max-age=300", "x-content-type-options": "nosniff"},
        )


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form as single values (the first of each name), read once per request.

    ``login_required`` reads it for the CSRF token; the endpoint gets the same dict.
    Bodies of other types are left for the endpoint (an empty form here); 413 beyond 16 KB.
    """
    cached: dict[str, str] | None = request.scope.get(_FORM_SCOPE_KEY)
    if cached is not None:
        return cached
    form: dict[str, str] = {}
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        body = await read_body(request, limit=_FORM_LIMIT)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ClientError(400, "the form is not valid UTF-8") from None
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=100)
        form = {name: values[0] for name, values in fields.items()}
    request.scope[_FORM_SCOPE_KEY] = form
    return form


class _LoginFormToken:
    """The login form's double-submit token: the same random value in a signed cookie and a hidden field."""

    def __init__(self, secret_keys: Sequence[Secret]) -> None:
        self._serializer = URLSafeSerializer([key.value for key in secret_keys], salt=_LOGIN_SALT)

    def issue(self, now: datetime) -> tuple[str, str]:
        token = secrets.token_urlsafe(24)
        return token, self._serializer.dumps({"t": token, "a": int(now.timestamp())})

    def token_of(self, cookie: str | None, now: datetime, *, fresh_for: timedelta = _LOGIN_FORM_AGE) -> str | None:
        """The token in a cookie issued less than ``fresh_for`` ago, or None."""
        if not cookie or len(cookie) > 512:
            return None
        try:
            data = self._serializer.loads(cookie)
            token, issued = str(data["t"]), datetime.fromtimestamp(int(data["a"]), UTC)
        except (BadSignature, KeyError, TypeError, ValueError, OverflowError):
            return None
        return token if timedelta(minutes=-5) <= now - issued <= fresh_for else None


def _local_path(candidate: str | None) -> str:
    """``candidate`` when it is a path on this host, else ``/dashboard`` (no open redirect).

    ``//host`` and ``/\\host`` are read by browsers as other hosts, and they drop tabs and
    newlines from URLs (``/\\t/host``), so any control character or space is refused too.
    """
    if (
        not candidate
        or len(candidate) > 2000
        or not candidate.startswith("/")
        or candidate[1:2] in ("/", "\\")
        or any(char <= " " or char == "\x7f" for char in candidate)
    ):
        return "/dashboard"
    return candidate


def _see_other(location: str) -> Response:
    return apply_security_headers(RedirectResponse(location, status_code=303))


def _duration(seconds: int) -> str:
    minutes = -(-seconds // 60)
    if seconds < 60:  # a slowed account waits seconds, a refused network minutes
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _unmatchable_hash() -> str:
    """A hash in today's format that no password matches: verifying it costs what a real one costs."""
    salt, digest = (base64.b64encode(secrets.token_bytes(n)).decode("ascii") for n in (16, 32))
    return "$".join(
        ["scrypt", str(passwords.COST), str(passwords.BLOCK_SIZE), str(passwords.PARALLELISM), salt, digest]
    )
