"""Dashboard sessions: a signed cookie with idle and absolute timeouts and a CSRF token.

The cookie holds ``{user, sid, csrf, issued, seen}`` signed with the gateway's secret keys
(itsdangerous; the newest key signs, every key verifies). Nothing is stored server-side, so
``serve --workers N`` needs no shared session store; logging out clears the cookie, and
changing a password ends every older session (``issued`` before the change). A fresh ``sid``
and ``csrf`` at every login means a cookie planted before login is worth nothing (fixation).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer

from gateway.settings import Secret

SESSION_COOKIE = "cg_session"
_SALT = "consent-gateway.dashboard-session"


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    #: Signed out after this long without a request.
    idle: timedelta = timedelta(minutes=30)
    #: Signed out this long after logging in, however active.
    absolute: timedelta = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class Session:
    user_id: int
    session_id: str
    csrf_token: str
    issued_at: datetime
    last_seen: datetime

    def csrf_matches(self, token: str | None) -> bool:
        """Constant-time check of a form's or header's CSRF token."""
        return token is not None and hmac.compare_digest(token.encode(), self.csrf_token.encode())


class SessionCodec:
    def __init__(self, secret_keys: Sequence[Secret], policy: SessionPolicy | None = None) -> None:
        self.policy = policy or SessionPolicy()
        self._serializer = URLSafeSerializer([key.value for key in secret_keys], salt=_SALT)

    def start(self, user_id: int, now: datetime) -> tuple[Session, str]:
        """A new session at login: fresh ids, never carried over from a cookie sent before."""
        session = Session(user_id, secrets.token_urlsafe(16), secrets.token_urlsafe(24), now, now)
        return session, self.dump(session)

    def dump(self, session: Session) -> str:
        return self._serializer.dumps(
            {
                "u": session.user_id,
                "s": session.session_id,
                "c": session.csrf_token,
                "i": int(session.issued_at.timestamp()),
                "l": int(session.last_seen.timestamp()),
            }
        )

    def load(self, cookie: str | None, now: datetime, *, password_changed_at: datetime | None = None) -> Session | None:
        """The session behind a cookie, or None: tampered, idle too long, too old, or older than the password."""
        if not cookie or len(cookie) > 1024:
            return None
        try:
            data = self._serializer.loads(cookie)
            session = Session(
                int(data["u"]),
                str(data["s"]),
                str(data["c"]),
                datetime.fromtimestamp(int(data["i"]), UTC),
                datetime.fromtimestamp(int(data["l"]), UTC),
            )
        except (BadSignature, KeyError, TypeError, ValueError, OverflowError):
            return None
        if now - session.last_seen > self.policy.idle or now - session.issued_at > self.policy.absolute:
            return None
        if session.last_seen > now + timedelta(minutes=5):  # from the future: not ours to trust
            return None
        if password_changed_at is not None and session.issued_at < password_changed_at.replace(microsecond=0):
            return None
        return session

    def touch(self, session: Session, now: datetime) -> tuple[Session, str]:
        """The same session, seen now (the idle timeout starts again)."""
        seen = replace(session, last_seen=now)
        return seen, self.dump(seen)
