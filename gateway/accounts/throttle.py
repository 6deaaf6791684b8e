"""Login throttling: an attempt is reserved before its password is checked, so parallel requests cannot
all slip through, and a stranger's failures slow an account down without locking its owner out.

One write transaction (``BEGIN IMMEDIATE`` on the one writer: reservations are serialised) counts
the recent attempts under three keys and, when every key allows it, inserts the attempt under
each. Only then does the caller run scrypt; 40 parallel wrong passwords meet the limit in the
database, not after 40 hashes. A right password releases its own reservation and clears its
(account, network) pair; a wrong one leaves the attempt counted as a failure.

* (account, network): at most ``per_pair`` attempts in ``window`` — the strict limit, 429 until
  the oldest leaves the window. It stops a guesser on one network without touching anyone else.
* the account, over every network: past ``account_slow_after`` failures it is slowed, never
  locked — each further attempt waits ``first_delay`` doubled per failure, capped at
  ``max_delay`` — so a stranger on another network cannot deny the owner their dashboard, and
  guessers spread over many networks still get no more than one try per ``max_delay``.
* the network, over every account: past ``network_slow_after`` failures slowed the same way
  (one network guessing at many accounts), without locking its other users out.

Counted in the database (``login_attempts``), so every worker process sees them. The network is
the truncated address (IPv4 /24, IPv6 /48): the raw IP is never written. (OWASP Authentication
Cheat Sheet: "account lockout" vs. throttling, and denial of service by lockout.)
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.anonymise import truncate_ip
from gateway.storage.db import Database


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    window: timedelta = timedelta(minutes=15)
    per_pair: int = 5
    account_slow_after: int = 10
    network_slow_after: int = 20
    first_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Reservation:
    """An attempt counted before its password is checked; ``release`` it when the password was right."""

    attempt: str
    pair_key: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Too many attempts: try again in ``retry_after`` seconds (at least 1)."""

    retry_after: int


@dataclass(frozen=True, slots=True)
class _Rule:
    key: str
    limit: int
    slows: bool  # False: refused until the window lets the oldest go; True: spaced by a growing delay


class LoginThrottle:
    def __init__(self, database: Database, policy: ThrottlePolicy | None = None) -> None:
        self._database = database
        self.policy = policy or ThrottlePolicy()

    async def reserve(self, name: str, client_ip: str | None, now: datetime) -> Reservation | Refused:
        """Count this attempt now, or say how long to wait; one transaction, so concurrent calls queue."""
        rules = self._rules(name, client_ip)
        attempt = secrets.token_hex(16)

        def reserve(connection: sqlite3.Connection) -> Reservation | Refused:
            connection.execute("DELETE FROM login_attempts WHERE at < ?", (_at(now - self.policy.window),))
            wait = max(self._wait(connection, rule, now) for rule in rules)
            if wait > 0:
                return Refused(wait)
            connection.executemany(
                "INSERT INTO login_attempts (key, at, attempt) VALUES (?, ?, ?)",
                [(rule.key, _at(now), attempt) for rule in rules],
            )
            return Reservation(attempt, rules[0].key)

        return await self._database.write(reserve)

    async def release(self, reservation: Reservation) -> None:
        """The password was right: this attempt counts nowhere, and the (account, network) pair starts afresh.

        The account's and the network's earlier failures stay: they were failures.
        """

        def release(connection: sqlite3.Connection) -> None:
            connection.execute("DELETE FROM login_attempts WHERE attempt = ?", (reservation.attempt,))
            connection.execute("DELETE FROM login_attempts WHERE key = ?", (reservation.pair_key,))

        await self._database.write(release)

    def _wait(self, connection: sqlite3.Connection, rule: _Rule, now: datetime) -> int:
        since = _at(now - self.policy.window)
        if not rule.slows:
            rows = connection.execute(
                "SELECT at FROM login_attempts WHERE key = ? AND at >= ? ORDER BY at DESC LIMIT ?",
                (rule.key, since, rule.limit),
            ).fetchall()
            if len(rows) < rule.limit:
                return 0
            return _seconds(datetime.fromisoformat(rows[-1][0]) + self.policy.window - now)
        count, newest = connection.execute(
            "SELECT count(*), max(at) FROM login_attempts WHERE key = ? AND at >= ?", (rule.key, since)
        ).fetchone()
        if count < rule.limit:
            return 0
        steps = min(count - rule.limit, 32)  # 2**32 seconds is past any cap
        delay = min(self.policy.first_delay * 2**steps, self.policy.max_delay)
        return _seconds(datetime.fromisoformat(newest) + delay - now)

    def _rules(self, name: str, client_ip: str | None) -> list[_Rule]:
        account = name.lower()
        network = truncate_ip(client_ip) or "unknown"
        return [
            _Rule(f"pair:{account}|{network}", self.policy.per_pair, slows=False),  # first: released on success
            _Rule(f"account:{account}", self.policy.account_slow_after, slows=True),
            _Rule(f"network:{network}", self.policy.network_slow_after, slows=True),
        ]


def _at(moment: datetime) -> str:
    # One fixed width, so text order is time order.
    return moment.isoformat(timespec="microseconds")


def _seconds(wait: timedelta) -> int:
    """Whole seconds to wait, rounded up; 0 when the wait is over."""
    seconds = wait.total_seconds()
    return 0 if seconds <= 0 else int(-(-seconds // 1))
