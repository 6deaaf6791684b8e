"""Counting visitors without identifying them: a keyed hash under a salt that rotates daily.

visitor id = BLAKE2b(key = the day's salt, data = site, IP address, user agent), as
Plausible does. The salt is random, rotates at UTC midnight, and yesterday's is deleted
once a visit begun before midnight can no longer continue (30 minutes of inactivity), so
no one — not even with the database — can recompute an old id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.storage.db import Database
from gateway.storage.salts import delete_salts_before, salts_for

VISIT_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class DailySalts:
    day: str
    current: bytes
    #: Yesterday's salt, only during the grace period after midnight.
    previous: bytes | None
    #: When the previous salt stops being needed.
    grace_ends: datetime


def visitor_id(salt: bytes, site_id: str, ip: str, user_agent: str) -> str:
    data = b"\x1f".join((site_id.encode(), ip.encode(), user_agent.encode("utf-8", "replace")))
    return hashlib.blake2b(data, key=salt, digest_size=16).hexdigest()


class SaltKeeper:
    """Caches the day's salts in memory; reads (or creates) them in the shared database at day change."""

    def __init__(self, database: Database) -> None:
        self._database = database
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
        self._salts = DailySalts(day, current, previous if in_grace else None, grace_ends)
        return self._salts

    def forget(self) -> None:
        self._salts = None
