"""Dashboard sessions: kept server-side, with idle and absolute timeouts and a CSRF token.

The cookie holds a random 256-bit session id, signed with the gateway's secret keys
(itsdangerous; the newest key signs, every key verifies) so a forged cookie costs no database
read. The row (``storage/sessions.py``) is found by the id's SHA-256: the id itself is never
stored, so a copy of the database signs nobody in. Because every request checks the row,
logging out, a password change, a role change or removing the user ends a session at once
(OWASP Session Management: server-side invalidation), and the admin page can list and revoke
them. A fresh id and CSRF token at every login means a cookie planted before login is worth
nothing (fixation). ``last_seen`` is written at most once a minute, not on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer

from gateway.settings import Secret
from gateway.storage.sessions import delete_session, insert_session, purge_sessions, session_by_hash, touch_session
from gateway.storage.store import Store

SESSION_COOKIE = "cg_session"
_SALT = "consent-gateway.dashboard-session"
#: 32 random bytes: 256 bits, beyond guessing however many requests are made.
_ID_BYTES = 32


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    #: Signed out after this long without a request.
    idle: timedelta = timedelta(minutes=30)
    #: Signed out this long after logging in, however active.
    absolute: timedelta = timedelta(hours=12)
    #: ``last_seen`` is written when it is at least this old (one write a minute, not one a request).
    touch_every: timedelta = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Session:
    user_id: int
    #: The secret in the cookie; the database holds only ``id_hash(session_id)``.
    session_id: str
    csrf_token: str
    issued_at: datetime
    last_seen: datetime
    #: The row's id, as the admin page names it (0 until stored).
    row_id: int = 0

    def csrf_matches(self, token: str | None) -> bool:
        """Constant-time check of a form's or header's CSRF token."""
        return token is not None and hmac.compare_digest(token.encode(), self.csrf_token.encode())


def id_hash(session_id: str) -> str:
    """What the database keeps of a session id: its SHA-256 (the id has 256 bits: no salt needed)."""
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionCodec:
    """The cookie's value: a signed session id. Holds no state but the serializer."""

    def __init__(self, secret_keys: Sequence[Secret], policy: SessionPolicy | None = None) -> None:
        self.policy = policy or SessionPolicy()
        self._serializer = URLSafeSerializer([key.value for key in secret_keys], salt=_SALT)

    def start(self, user_id: int, now: datetime) -> tuple[Session, str]:
        """A new session (not yet stored): fresh ids, never carried over from a cookie sent before."""
        session = Session(user_id, secrets.token_urlsafe(_ID_BYTES), secrets.token_urlsafe(24), now, now)
        return session, self.dump(session)

    def dump(self, session: Session) -> str:
        return self._serializer.dumps(session.session_id)

    def session_id_of(self, cookie: str | None) -> str | None:
        """The session id in a cookie, or None when it is missing, tampered or not ours."""
        if not cookie or len(cookie) > 512:
            return None
        try:
            session_id = self._serializer.loads(cookie)
        except BadSignature:
            return None
        return session_id if isinstance(session_id, str) and 0 < len(session_id) <= 128 else None


class Sessions:
    """Starts, loads and ends the sessions stored in the database."""

    def __init__(self, database: Store, secret_keys: Sequence[Secret], policy: SessionPolicy | None = None) -> None:
        self.codec = SessionCodec(secret_keys, policy)
        self.policy = self.codec.policy
        self._database = database

    async def start(self, user_id: int, now: datetime, *, network: str | None) -> tuple[Session, str]:
        """Store a new session of ``user_id``; the cookie value to set. ``network`` is already truncated."""
        session, cookie = self.codec.start(user_id, now)
        await insert_session(
            self._database,
            id_hash(session.session_id),
            user_id=user_id,
            csrf_token=session.csrf_token,
            now=now,
            network=network,
        )
        return session, cookie

    async def load(self, cookie: str | None, now: datetime) -> Session | None:
        """The live session behind a cookie, or None: tampered, unknown, ended, idle too long or too old."""
        session_id = self.codec.session_id_of(cookie)
        if session_id is None:
            return None
        stored = await session_by_hash(self._database, id_hash(session_id))
        if stored is None:
            return None
        if now - stored.last_seen > self.policy.idle or now - stored.created_at > self.policy.absolute:
            return None
        if now - stored.last_seen >= self.policy.touch_every:
            await touch_session(self._database, stored.id, now)
        return Session(stored.user_id, session_id, stored.csrf_token, stored.created_at, now, stored.id)

    async def end(self, cookie: str | None) -> None:
        """Logout: the session's row is deleted, so a saved copy of the cookie opens nothing."""
        session_id = self.codec.session_id_of(cookie)
        if session_id is not None:
            await delete_session(self._database, id_hash(session_id))


async def purge_expired_sessions(database: Store, now: datetime, policy: SessionPolicy | None = None) -> int:
    """Delete the sessions past their idle or absolute timeout (run daily by ``gateway.maintenance``).

    They already sign nobody in; this keeps the table, and the admin's list, to live sessions.
    """
    policy = policy or SessionPolicy()
    return await purge_sessions(database, seen_before=now - policy.idle, created_before=now - policy.absolute)
