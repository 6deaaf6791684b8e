"""Counting visitors without identifying them: a hash keyed by a secret and a salt that rotates daily.

    day key    = BLAKE2b(key = visitor key, data = the day's salt, person = "cg-visitor-day")
    visitor id = BLAKE2b(key = day key, data = site, IP address, user agent)

The salt is random, rotates at UTC midnight, and yesterday's is deleted (and scrubbed from the
database files) once a visit begun before midnight can no longer continue (30 minutes of
inactivity). The salt alone is not enough: the salt sits in the database, and with it, the
stored city and browser, and the public address ranges of that city, a brute force over
candidate addresses and user agents recovered most visitors' IP addresses in seconds. So the
hash is also keyed by the *visitor key*, a secret that is never written to the database
(``visitor_key`` in the settings, else derived from ``secret_keys``): a copy of the database
alone recomputes nothing.

Why the two-step key rather than one hash over (key, salt, site, IP, user agent): the day key
is derived once a day per process, so an event costs one BLAKE2b as before; and the day key
is what the process keeps in memory, never the raw salt beside the visitor key.

Rotating the visitor key changes every id from that moment: a visitor seen before and after
the change that day is counted twice, and a visit continuing across it starts anew. Old ids
cannot be linked to new ones — as every midnight, since the salt rotates daily anyway.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.settings import Secret
from gateway.storage.salts import delete_salts_before, salts_for
from gateway.storage.store import Store

VISIT_TIMEOUT = timedelta(minutes=30)
#: Domain separation: the visitor key derived from a secret key is used for nothing else.
VISITOR_KEY_LABEL = b"consent-gateway visitor key"
_DAY_KEY_PERSON = b"cg-visitor-day"


def visitor_key(configured: Secret | None, secret_keys: Sequence[Secret]) -> bytes:
    """The secret every visitor id is keyed with: HMAC-SHA256(``visitor_key``, label) when the
    setting is given, else HMAC-SHA256(the oldest of ``secret_keys``, label).

    The oldest secret key, because rotating ``secret_keys`` appends keys: the visitor key changes
    only when the oldest is finally dropped. Neither source is ever written to the database.
    """
    source = configured if configured is not None else (secret_keys[0] if secret_keys else None)
    if source is None:
        raise ValueError("no visitor key: set visitor_key or secret_keys")
    return hmac.new(source.value.encode("utf-8"), VISITOR_KEY_LABEL, hashlib.sha256).digest()


def day_key(key: bytes, salt: bytes) -> bytes:
    """The key of one day's visitor ids: neither the visitor key nor the salt alone yields it."""
    return hashlib.blake2b(salt, key=key, digest_size=32, person=_DAY_KEY_PERSON).digest()


@dataclass(frozen=True, slots=True)
class DailySalts:
    """The day's hashing keys (``day_key`` of the visitor key and each salt), not the salts themselves."""

    day: str
    current: bytes
    #: Yesterday's key, only during the grace period after midnight.
    previous: bytes | None
    #: When the previous key stops being needed.
    grace_ends: datetime


def visitor_id(key: bytes, site_id: str, ip: str, user_agent: str) -> str:
    """``key``: a day key (``DailySalts.current`` or ``previous``)."""
    data = b"\x1f".join((site_id.encode(), ip.encode(), user_agent.encode("utf-8", "replace")))
    return hashlib.blake2b(data, key=key, digest_size=16).hexdigest()


class SaltKeeper:
    """Caches the day's keys in memory; reads (or creates) the salts in the shared database at day change.

    ``key``: the visitor key (``visitor_key``), held by the process and never stored.
    """

    def __init__(self, database: Store, *, key: bytes) -> None:
        self._database = database
        self._key = key
        self._salts: DailySalts | None = None

    def cached(self, now: datetime) -> DailySalts | None:
        """The salts for ``now`` if :meth:`salts` would answer from memory, else None: the event
        endpoint asks on every request, and a coroutine per request is measurable there."""
        cached = self._salts
        if cached is None or cached.day != now.date().isoformat():
            return None
        return cached if cached.previous is None or now < cached.grace_ends else None

    async def salts(self, now: datetime) -> DailySalts:
        """The salts for ``now``; after the grace period yesterday's salt is deleted from the database."""
        cached = self.cached(now)
        if cached is not None:
            return cached
        day = now.date().isoformat()
        midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=now.tzinfo)
        grace_ends = midnight + VISIT_TIMEOUT
        yesterday = (now.date() - timedelta(days=1)).isoformat()
        in_grace = now < grace_ends
        current, previous = await salts_for(self._database, day, yesterday if in_grace else None, now=now)
        if not in_grace:
            await delete_salts_before(self._database, day)
        previous_key = day_key(self._key, previous) if in_grace and previous is not None else None
        self._salts = DailySalts(day, day_key(self._key, current), previous_key, grace_ends)
        return self._salts

    def forget(self) -> None:
        self._salts = None
