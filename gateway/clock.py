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
