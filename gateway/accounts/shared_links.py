"""Read-only shared links to a site's dashboard, optionally behind a password.

A link's token is ``[id, nonce]`` signed with the gateway's secret keys (itsdangerous; the
newest key signs, every key verifies): it names neither the site nor the password, cannot be
forged from an id, and dies with its row — revoking or expiring a link makes every token of
it fail, and a new link that reuses an id has a new nonce. A link with a password is opened
by an unlock cookie, signed over the link's id and nonce, that lasts 12 hours.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer

from gateway.accounts.passwords import check_new_password, hash_password, verify_password
from gateway.settings import Secret
from gateway.storage.shared_links import (
    SharedLink,
    insert_shared_link,
    revoke_stored_shared_link,
    shared_link_by_id,
    shared_links_of,
)
from gateway.storage.store import Store

__all__ = ["UNLOCK_LIFETIME", "SharedLink", "SharedLinkError", "SharedLinks"]

_LINK_SALT = "consent-gateway.shared-link"
_UNLOCK_SALT = "consent-gateway.shared-link-unlock"
#: How long a password, once given, opens its link in that browser.
UNLOCK_LIFETIME = timedelta(hours=12)
#: Clocks of several servers may disagree a little; more than this in the future is forged.
_CLOCK_SKEW = timedelta(minutes=5)
#: Our tokens are under 100 characters; a long one is not worth a signature check.
_MAX_TOKEN = 512
_LABEL_LENGTH = 100


class SharedLinkError(ValueError):
    """A link that cannot be created (an overlong label, a past expiry, a weak password)."""


class SharedLinks:
    """Creates, opens, lists and revokes shared links; holds no state but the serializers."""

    def __init__(self, db: Store, secret_keys: Sequence[Secret]) -> None:
        keys = [key.value for key in secret_keys]
        if not keys:
            raise SharedLinkError("shared links need a secret key (secret_keys)")
        self._db = db
        self._tokens = URLSafeSerializer(keys, salt=_LINK_SALT)
        self._unlocks = URLSafeSerializer(keys, salt=_UNLOCK_SALT)

    async def create(
        self, site_id: str, *, label: str, expires_at: datetime | None, password: str | None, now: datetime
    ) -> tuple[SharedLink, str]:
        """A new link of ``site_id`` (the caller checks that the site exists) and its token."""
        label = label.strip()
        if len(label) > _LABEL_LENGTH or not label.isprintable():
            raise SharedLinkError(f"a label is at most {_LABEL_LENGTH} printable characters, found {label!r}")
        if expires_at is not None and expires_at <= now:
            raise SharedLinkError(f"the expiry {expires_at.isoformat()} is not in the future")
        password_hash = None
        if password is not None:
            try:
                check_new_password(password)
            except ValueError as error:
                raise SharedLinkError(str(error)) from None
            password_hash = await asyncio.to_thread(hash_password, password)  # scrypt: ~0.2 s off the loop
        link = await insert_shared_link(
            self._db,
            site_id,
            label=label,
            nonce=secrets.token_urlsafe(16),
            password_hash=password_hash,
            expires_at=expires_at,
            now=now,
        )
        return link, self.token_for(link)

    def token_for(self, link: SharedLink) -> str:
        """The link's token (the same link always has a valid one, so owners can copy it again)."""
        return self._tokens.dumps([link.id, link.nonce])

    async def open(self, token: str | None, *, now: datetime) -> SharedLink | None:
        """The live link behind ``token``; None when tampered, unknown, revoked or expired."""
        if not token or len(token) > _MAX_TOKEN:
            return None
        try:
            link_id, nonce = self._tokens.loads(token)
        except (BadSignature, TypeError, ValueError):
            return None
        if type(link_id) is not int or not isinstance(nonce, str):
            return None
        link = await shared_link_by_id(self._db, link_id)
        if link is None or not hmac.compare_digest(link.nonce.encode(), nonce.encode()):
            return None
        if link.revoked_at is not None or (link.expires_at is not None and now >= link.expires_at):
            return None
        return link

    async def list(self, site_id: str) -> list[SharedLink]:
        """Every link of the site, revoked and expired ones included, oldest first."""
        return await shared_links_of(self._db, site_id)

    async def revoke(self, site_id: str, link_id: int, *, now: datetime) -> bool:
        """Revoke a link of ``site_id`` for good; False when the site has no such link (another site's is kept).

        Revoking twice is not an error: the link stays revoked since the first time.
        """
        return await revoke_stored_shared_link(self._db, site_id, link_id, now=now)

    def password_ok(self, link: SharedLink, password: str) -> bool:
        """True when ``password`` is the link's; always False for a link without one (nothing to check)."""
        return link.password_hash is not None and verify_password(password, link.password_hash)

    def unlock_cookie(self, link: SharedLink, now: datetime) -> str:
        """A cookie value proving the password was given for this link, valid for ``UNLOCK_LIFETIME``."""
        return self._unlocks.dumps([link.id, link.nonce, int(now.timestamp())])

    def unlocked(self, link: SharedLink, cookie: str | None, now: datetime) -> bool:
        """True when the link may be shown: it has no password, or ``cookie`` unlocks it and is recent."""
        if link.password_hash is None:
            return True
        if not cookie or len(cookie) > _MAX_TOKEN:
            return False
        try:
            link_id, nonce, issued = self._unlocks.loads(cookie)
            given = datetime.fromtimestamp(issued, UTC)
        except (BadSignature, TypeError, ValueError, OverflowError, OSError):
            return False
        if (
            link_id != link.id
            or not isinstance(nonce, str)
            or not hmac.compare_digest(nonce.encode(), link.nonce.encode())
        ):
            return False
        return now - UNLOCK_LIFETIME < given <= now + _CLOCK_SKEW
