"""The login attempts table: reserve an attempt under every key at once, or say how long to wait.

``reserve_attempt`` counts and inserts in one write transaction, so parallel requests queue in the
database instead of all slipping under a limit. On SQLite the one writer (``BEGIN IMMEDIATE``)
serialises every reservation. On PostgreSQL several nodes write at once under READ COMMITTED, so
the transaction first takes a transaction-level advisory lock per key (in key order, so two
reservations sharing keys never deadlock): two nodes counting the same account queue as one writer
would. The policy (which keys, which limits, why) is ``gateway.accounts.throttle``'s; this module
only counts. Times are stored as fixed-width ISO text, so text order is time order on both stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.storage.sql import Connection, is_postgres
from gateway.storage.store import Store

#: The first key of PostgreSQL's two-key advisory locks taken here: its own space of lock ids, so a
#: login key's hash never queues behind an unrelated lock that happens to share the number.
ADVISORY_LOCK_CLASS = 1201


@dataclass(frozen=True, slots=True)
class AttemptRule:
    """One key an attempt counts under: ``limit`` attempts in the window, then refused until the oldest
    leaves it (``slows`` False), or let in after a delay that doubles per attempt (``slows`` True)."""

    key: str
    limit: int
    slows: bool


@dataclass(frozen=True, slots=True)
class Backoff:
    """How far back attempts count, and the delay of a slowed key: ``first`` doubled per attempt past
    the limit, never more than ``longest``."""

    window: timedelta
    first: timedelta
    longest: timedelta


@dataclass(frozen=True, slots=True)
class Reservation:
    """An attempt counted before its password is checked; ``release`` it when the password was right."""

    attempt: str
    pair_key: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Too many attempts: try again in ``retry_after`` seconds (at least 1)."""

    retry_after: int


_DELETE_OLD = "DELETE FROM login_attempts WHERE at < ?"
_LOCK_KEY = f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_CLASS}, hashtext(?))"
_NEWEST = "SELECT at FROM login_attempts WHERE key = ? AND at >= ? ORDER BY at DESC LIMIT ?"
_COUNT = "SELECT count(*), max(at) FROM login_attempts WHERE key = ? AND at >= ?"
_INSERT = "INSERT INTO login_attempts (key, at, attempt) VALUES (?, ?, ?)"
_DELETE_ATTEMPT = "DELETE FROM login_attempts WHERE attempt = ?"
_DELETE_KEY = "DELETE FROM login_attempts WHERE key = ?"


async def reserve_attempt(
    store: Store, rules: Sequence[AttemptRule], *, attempt: str, now: datetime, backoff: Backoff
) -> Reservation | Refused:
    """Count ``attempt`` under every rule's key at ``now``, or refuse it with the longest wait any key asks.

    The first rule's key is the one a right password clears (``release_attempt``).
    """
    if not rules:
        raise ValueError("an attempt counts under at least one key")

    def reserve(connection: Connection) -> Reservation | Refused:
        if is_postgres(connection):
            for key in sorted({rule.key for rule in rules}):
                connection.execute(_LOCK_KEY, (key,))
        connection.execute(_DELETE_OLD, (_at(now - backoff.window),))
        wait = max(_wait(connection, rule, now, backoff) for rule in rules)
        if wait > 0:
            return Refused(wait)
        connection.executemany(_INSERT, [(rule.key, _at(now), attempt) for rule in rules])
        return Reservation(attempt, rules[0].key)

    return await store.write(reserve)


async def release_attempt(store: Store, reservation: Reservation) -> None:
    """The password was right: this attempt counts nowhere, and its first key starts afresh.

    The attempt's other keys keep their earlier attempts: they were failures.
    """

    def release(connection: Connection) -> None:
        connection.execute(_DELETE_ATTEMPT, (reservation.attempt,))
        connection.execute(_DELETE_KEY, (reservation.pair_key,))

    await store.write(release)


def _wait(connection: Connection, rule: AttemptRule, now: datetime, backoff: Backoff) -> int:
    since = _at(now - backoff.window)
    if not rule.slows:
        rows = connection.execute(_NEWEST, (rule.key, since, rule.limit)).fetchall()
        if len(rows) < rule.limit:
            return 0
        return _seconds(datetime.fromisoformat(rows[-1][0]) + backoff.window - now)
    row = connection.execute(_COUNT, (rule.key, since)).fetchone()
    assert row is not None  # noqa: S101 - an aggregate without GROUP BY always answers one row
    count, newest = int(row[0]), row[1]
    if count < rule.limit:
        return 0
    steps = min(count - rule.limit, 32)  # 2**32 seconds is past any cap
    delay = min(backoff.first * 2**steps, backoff.longest)
    return _seconds(datetime.fromisoformat(newest) + delay - now)


def _at(moment: datetime) -> str:
    # One fixed width, so text order is time order.
    return moment.isoformat(timespec="microseconds")


def _seconds(wait: timedelta) -> int:
    """Whole seconds to wait, rounded up; 0 when the wait is over."""
    seconds = wait.total_seconds()
    return 0 if seconds <= 0 else int(-(-seconds // 1))
