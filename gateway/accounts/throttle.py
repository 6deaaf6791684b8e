"""Login throttling: after repeated failures an account, or a network, waits before trying again.

Failures are counted in the database (``login_failures``), so every worker process sees them.
The network is the truncated address (IPv4 /24, IPv6 /48): the raw IP is never written.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.anonymise import truncate_ip
from gateway.storage.db import Database


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    window: timedelta = timedelta(minutes=15)
    per_account: int = 5
    per_network: int = 20


class LoginThrottle:
    def __init__(self, database: Database, policy: ThrottlePolicy | None = None) -> None:
        self._database = database
        self.policy = policy or ThrottlePolicy()

    async def retry_after(self, name: str, client_ip: str | None, now: datetime) -> int:
        """0 when a login may be tried now, else the seconds to wait."""
        since = (now - self.policy.window).isoformat()
        waits = []
        for key, limit in self._keys(name, client_ip):
            rows = await self._database.fetch_all(
                "SELECT at FROM login_failures WHERE key = ? AND at >= ? ORDER BY at DESC LIMIT ?",
                (key, since, limit),
            )
            if len(rows) >= limit:
                oldest = datetime.fromisoformat(rows[-1]["at"])
                waits.append(max(1, int((oldest + self.policy.window - now).total_seconds()) + 1))
        return max(waits, default=0)

    async def failed(self, name: str, client_ip: str | None, now: datetime) -> None:
        keys = [key for key, _ in self._keys(name, client_ip)]
        cutoff = (now - self.policy.window).isoformat()

        def record(connection: sqlite3.Connection) -> None:
            connection.executemany(
                "INSERT INTO login_failures (key, at) VALUES (?, ?)", [(k, now.isoformat()) for k in keys]
            )
            connection.execute("DELETE FROM login_failures WHERE at < ?", (cutoff,))

        await self._database.write(record)

    async def succeeded(self, name: str) -> None:
        """A good password clears the account's failures (not the network's)."""
        await self._database.write(
            lambda connection: connection.execute("DELETE FROM login_failures WHERE key = ?", (_account(name),))
        )

    def _keys(self, name: str, client_ip: str | None) -> list[tuple[str, int]]:
        keys = [(_account(name), self.policy.per_account)]
        network = truncate_ip(client_ip)
        if network:
            keys.append((f"network:{network}", self.policy.per_network))
        return keys


def _account(name: str) -> str:
    return f"account:{name.lower()}"
