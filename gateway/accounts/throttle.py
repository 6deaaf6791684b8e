"""Login throttling: an attempt is reserved before its password is checked, so parallel requests cannot
all slip through, and a stranger's failures slow an account down without locking its owner out.

One write transaction (``gateway.storage.login_attempts``: serialised on every store) counts
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
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.anonymise import truncate_ip
from gateway.storage.login_attempts import AttemptRule, Backoff, Refused, Reservation, release_attempt, reserve_attempt
from gateway.storage.store import Store

__all__ = ["LoginThrottle", "Refused", "Reservation", "ThrottlePolicy"]


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    window: timedelta = timedelta(minutes=15)
    per_pair: int = 5
    account_slow_after: int = 10
    network_slow_after: int = 20
    first_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(seconds=60)


class LoginThrottle:
    def __init__(self, database: Store, policy: ThrottlePolicy | None = None) -> None:
        self._database = database
        self.policy = policy or ThrottlePolicy()
        self._backoff = Backoff(self.policy.window, self.policy.first_delay, self.policy.max_delay)

    async def reserve(self, name: str, client_ip: str | None, now: datetime) -> Reservation | Refused:
        """Count this attempt now, or say how long to wait; one transaction, so concurrent calls queue."""
        rules = self._rules(name, client_ip)
        attempt = secrets.token_hex(16)
        return await reserve_attempt(self._database, rules, attempt=attempt, now=now, backoff=self._backoff)

    async def release(self, reservation: Reservation) -> None:
        """The password was right: this attempt counts nowhere, and the (account, network) pair starts afresh.

        The account's and the network's earlier failures stay: they were failures.
        """
        await release_attempt(self._database, reservation)

    def _rules(self, name: str, client_ip: str | None) -> list[AttemptRule]:
        account = name.lower()
        network = truncate_ip(client_ip) or "unknown"
        return [
            AttemptRule(f"pair:{account}|{network}", self.policy.per_pair, slows=False),  # first: released on success
            AttemptRule(f"account:{account}", self.policy.account_slow_after, slows=True),
            AttemptRule(f"network:{network}", self.policy.network_slow_after, slows=True),
        ]
