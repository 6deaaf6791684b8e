"""``/admin/users``: the instance admin adds and removes users, sets passwords and grants roles per site,
and sees and ends each user's sessions (when they started, when last seen, from which network).

The same operations as ``consent-gateway user``, for whoever holds the admin account and no
shell. Every form is a POST behind ``login_required`` (CSRF-checked); every other user gets a
403 page. Each change answers with a redirect back to the list (post/redirect/get), so a
reload does not repeat it. Removing a user, a new password or a role change ends the user's
sessions (``storage/users.py``); the admin's own is started again when the change was theirs.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.accounts.passwords import PasswordError, check_new_password
from gateway.context import GatewayContext
from gateway.storage.sessions import StoredSession, live_sessions, revoke_session, revoke_sessions_of
from gateway.storage.users import (
    ROLES,
    USER_NAME,
    Role,
    UserError,
    add_user,
    get_user,
    grant,
    list_users,
    remove_user,
    set_password,
)
from gateway.web.dashboard_auth import DashboardAuth, Viewer, read_form
from gateway.web.security import apply_security_headers

Done = Literal["added", "removed", "password", "role", "ended"]
_DONE: dict[str, str] = {
    "added": "Added {user}.",
    "removed": "Removed {user}.",
    "password": "Changed the password of {user}; their older sessions have ended.",
    "role": "Changed the roles of {user}; their older sessions have ended.",
    "ended": "Ended the chosen sessions of {user}.",
}


def admin_routes(context: GatewayContext, auth: DashboardAuth) -> list[BaseRoute]:
    admin = _UserAdmin(context, auth)
    return [
        Route("/admin/users", auth.login_required(admin.show), methods=["GET"]),
        Route("/admin/users/add", auth.login_required(admin.add), methods=["POST"]),
        Route("/admin/users/remove", auth.login_required(admin.remove), methods=["POST"]),
        Route("/admin/users/password", auth.login_required(admin.password), methods=["POST"]),
        Route("/admin/users/role", auth.login_required(admin.role), methods=["POST"]),
        Route("/admin/users/sessions/end", auth.login_required(admin.end_sessions), methods=["POST"]),
    ]


class _UserAdmin:
    def __init__(self, context: GatewayContext, auth: DashboardAuth) -> None:
        self.context = context
        self.auth = auth

    async def show(self, request: Request, viewer: Viewer) -> Response:
        if not viewer.user.is_admin:
            return self._forbidden(request, viewer)
        done = _DONE.get(request.query_params.get("done", ""))
        user = request.query_params.get("user", "")
        message = done.format(user=user if USER_NAME.fullmatch(user) else "the user") if done else None
        return await self._page(request, viewer, message=message)

    async def add(self, request: Request, viewer: Viewer) -> Response:
        if not viewer.user.is_admin:
            return self._forbidden(request, viewer)
        form = await read_form(request)
        name = form.get("name", "").strip()
        if not USER_NAME.fullmatch(name):
            return await self._page(request, viewer, error="A user name is 1 to 64 letters, digits or . _ @ -.")
        password_hash = await self._hash(form.get("password", ""))
        if isinstance(password_hash, PasswordError):
            return await self._page(request, viewer, error=f"{name}: {password_hash}.")
        try:
            await add_user(
                self.context.database,
                name,
                password_hash,
                is_admin=form.get("admin") == "on",
                now=self.context.clock.now(),
            )
        except UserError as error:
            return await self._page(request, viewer, error=f"{error}.")
        return _done("added", name)

    async def remove(self, request: Request, viewer: Viewer) -> Response:
        if not viewer.user.is_admin:
            return self._forbidden(request, viewer)
        name = (await read_form(request)).get("name", "")
        if name.lower() == viewer.user.name.lower():
            return await self._page(request, viewer, error="You cannot remove your own account while signed in to it.")
        try:
            await remove_user(self.context.database, name)
        except UserError as error:
            return await self._page(request, viewer, error=f"{error}.")
        return _done("removed", name)

    async def password(self, request: Request, viewer: Viewer) -> Response:
        if not viewer.user.is_admin:
            return self._forbidden(request, viewer)
        form = await read_form(request)
        name = form.get("name", "")
        password_hash = await self._hash(form.get("password", ""))
        if isinstance(password_hash, PasswordError):
            return await self._page(request, viewer, error=f"{name}: {password_hash}.")
        try:
            await set_password(self.context.database, name, password_hash, now=self.context.clock.now())
        except UserError as error:
            return await self._page(request, viewer, error=f"{error}.")
        response = _done("password", name)
        if name.lower() == viewer.user.name.lower():  # the change ended this session too: start a new one
            await self.auth.start_session(response, request, viewer.user.id)
        return response

    async def role(self, request: Request, viewer: Viewer) -> Response:
        if not viewer.user.is_admin:
            return self._forbidden(request, viewer)
        form = await read_form(request)
        name, site_id, wanted = form.get("name", ""), form.get("site", ""), form.get("role", "")
        if self.context.site(site_id) is None:
            return await self._page(request, viewer, error="Pick one of the configured sites.")
        role: Role | None = next((r for r in ROLES if r == wanted), None)
        if role is None and wanted != "none":
            return await self._page(request, viewer, error="A role is owner, viewer or none.")
        try:
            await grant(self.context.database, name, site_id, role)
        except UserError as error:
            return await self._page(request, viewer, error=f"{error}.")
        response = _done("role", name)
        if name.lower() == viewer.user.name.lower():  # the change ended this session too: start a new one
            await self.auth.start_session(response, request, viewer.user.id)
        return response

    async def end_sessions(self, request: Request, viewer: Viewer) -> Response:
        """End one session of a user (``session`` = its number on the page) or all of them (``all``)."""
        if not viewer.user.is_admin:
            return self._forbidden(request, viewer)
        form = await read_form(request)
        name, which = form.get("name", ""), form.get("session", "")
        user = await get_user(self.context.database, name) if USER_NAME.fullmatch(name) else None
        if user is None:
            return await self._page(request, viewer, error=f"no user named {name!r}.")
        if which == "all":
            await revoke_sessions_of(self.context.database, user.id)
        elif not which.isdigit() or not await revoke_session(self.context.database, user.id, int(which)):
            return await self._page(request, viewer, error=f"{user.name} has no such session (it may have ended).")
        return _done("ended", user.name)

    async def _page(
        self, request: Request, viewer: Viewer, *, message: str | None = None, error: str | None = None
    ) -> Response:
        users = await list_users(self.context.database)
        context = {
            "users": users,
            "sessions": await self._sessions_by_user(),
            "sites": list(self.context.settings.sites.values()),
            "roles": ROLES,
            "message": message,
            "error": error,
        }
        return self.auth.render(request, "admin_users.html", context, status=400 if error else 200, viewer=viewer)

    async def _sessions_by_user(self) -> dict[int, list[StoredSession]]:
        now, policy = self.context.clock.now(), self.auth.sessions.policy
        live = await live_sessions(
            self.context.database, seen_since=now - policy.idle, created_since=now - policy.absolute
        )
        by_user: dict[int, list[StoredSession]] = {}
        for session in live:
            by_user.setdefault(session.user_id, []).append(session)
        return by_user

    def _forbidden(self, request: Request, viewer: Viewer) -> Response:
        return self.auth.error_page(request, 403, "Only the instance admin manages users.", viewer=viewer)

    async def _hash(self, password: str) -> str | PasswordError:
        """The new password's hash (scrypt, bounded like logins, off the event loop), or why it may not be set."""
        try:
            check_new_password(password)
        except PasswordError as error:
            return error
        return await self.context.passwords.hash(password)


def _done(what: Done, name: str) -> Response:
    location = f"/admin/users?{urlencode({'done': what, 'user': name})}"
    return apply_security_headers(RedirectResponse(location, status_code=303))
