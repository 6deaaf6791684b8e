"""The only place that reads real time: everything else takes a ``Clock``.

Injecting time lets tests pin it (consent expiry, lifetime caps, salts) and keeps
``datetime.now`` out of the rest of the code base (ruff's banned-api rule enforces it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(slots=True)
class FixedClock:
    """A clock that only moves when a test moves it."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 15, 12, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta | float) -> None:
        self.current += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)


class CorrectedClock:
    """System time moved by the offset to a shared reference clock: the database server's.

    Several gateway nodes stamp events, visits, outbox retries and login windows with their own
    clocks; a node whose clock runs a few seconds off would order those wrongly against the others.
    Each node measures the server's time (``correct``, called at start-up and then every minute)
    and reads its own clock plus that offset, so all nodes agree with the database — and tests
    still inject a FixedClock instead.
    """

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def local(self) -> datetime:
        """This machine's own time (to bracket a measurement of the reference)."""
        return datetime.now(UTC)

    def correct(self, reference: datetime, *, sent: datetime, received: datetime) -> None:
        """Take ``reference`` (the server's time, read between ``sent`` and ``received`` local times)
        as the time at the midpoint of the round trip."""
        self.offset = reference - (sent + (received - sent) / 2)
