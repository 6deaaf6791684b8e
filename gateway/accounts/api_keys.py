"""Per-site API keys for the JSON stats API.

A key is ``cg_`` and 256 random bits (``secrets.token_urlsafe(32)``). It is shown once, at
creation, and stored only as its SHA-256 (GitHub's and Stripe's practice): a leaked database
holds no working key, and a presented key is found by an indexed lookup of its hash. A key
belongs to one site; ``verify_api_key`` returns it with its ``site_id`` and the caller
compares that with the site asked for. A key reads the statistics; a permission given at
creation (``consent_log``) lets it read more, so a stats key handed to a reporting script
cannot read the proof-of-consent log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import replace
from datetime import datetime, timedelta

from gateway.storage.api_keys import (
    ApiKey,
    api_key_by_hash,
    api_keys_of,
    insert_api_key,
    revoke_stored_api_key,
    touch_api_key,
)
from gateway.storage.store import Store

__all__ = [
    "KEY_PREFIX",
    "PERMISSIONS",
    "ApiKey",
    "ApiKeyError",
    "bearer_key",
    "create_api_key",
    "list_api_keys",
    "revoke_api_key",
    "verify_api_key",
]

KEY_PREFIX = "cg_"
#: ``token_urlsafe(32)`` is always 43 characters; anything else is not one of our keys.
_KEY = re.compile(r"cg_[A-Za-z0-9_-]{43}")
_SHOWN_CHARACTERS = 8
#: ``last_used_at`` is a hint for owners, not an audit log: one write a minute per key at most,
#: so a busy API client does not turn every read into a write.
_TOUCH_EVERY = timedelta(minutes=1)
_NAME_LENGTH = 100
#: What a key may be given besides the statistics, and what each allows.
PERMISSIONS: dict[str, str] = {"consent_log": "export the site's proof-of-consent log"}


class ApiKeyError(ValueError):
    """A key that cannot be created (an empty or overlong name)."""


async def create_api_key(
    db: Store, site_id: str, name: str, *, now: datetime, permissions: frozenset[str] = frozenset()
) -> tuple[ApiKey, str]:
    """A new key of ``site_id`` (the caller checks that the site exists): the record and the plaintext, once."""
    name = name.strip()
    if not name or len(name) > _NAME_LENGTH or not name.isprintable():
        raise ApiKeyError(f"a key name is 1 to {_NAME_LENGTH} printable characters, found {name!r}")
    unknown = sorted(permissions - PERMISSIONS.keys())
    if unknown:
        raise ApiKeyError(f"no such permission {unknown[0][:40]!r}: expected one of {', '.join(PERMISSIONS)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = key[:_SHOWN_CHARACTERS]
    record = await insert_api_key(db, site_id, name, prefix, _hash(key), now=now, permissions=permissions)
    return record, key


async def verify_api_key(db: Store, presented: str | None, *, now: datetime) -> ApiKey | None:
    """The live key behind ``presented``; None when it is missing, malformed, unknown or revoked."""
    if presented is None or not _KEY.fullmatch(presented):
        return None
    key = await api_key_by_hash(db, _hash(presented))
    if key is None or key.revoked_at is not None:
        return None
    if key.last_used_at is None or now - key.last_used_at >= _TOUCH_EVERY:
        if await touch_api_key(db, key.id, key.last_used_at, now=now):
            return replace(key, last_used_at=now)
    return key


async def list_api_keys(db: Store, site_id: str) -> list[ApiKey]:
    """Every key of the site, revoked ones included, oldest first."""
    return await api_keys_of(db, site_id)


async def revoke_api_key(db: Store, site_id: str, key_id: int, *, now: datetime) -> bool:
    """Revoke a key of ``site_id`` for good; False when the site has no such key (another site's is kept).

    Revoking twice is not an error: the key stays revoked since the first time.
    """
    return await revoke_stored_api_key(db, site_id, key_id, now=now)


def bearer_key(authorization_header: str | None) -> str | None:
    """The key of an ``Authorization: Bearer cg_...`` header (RFC 6750 section 2.1), else None.

    The scheme is case-insensitive (RFC 9110 section 11.1); anything that is not one of our keys
    is None, so callers never hash or look up arbitrary text.
    """
    if not authorization_header:
        return None
    scheme, _, credentials = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    credentials = credentials.strip(" \t")
    return credentials if _KEY.fullmatch(credentials) else None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()
