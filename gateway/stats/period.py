"""Periods the dashboard and the API ask about, in the site's own calendar.

``today``, ``yesterday``, ``7d`` and ``30d`` (the last 7 or 30 days, today included), ``month``
(this month so far), ``last_month``, ``year`` (this year so far) and ``custom`` (``from`` and
``to``, both included). The previous period, for comparisons, is the same number of days just
before. Buckets are hours for one day, days up to three months, months beyond.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

Interval = Literal["hour", "day", "month"]
INTERVALS: tuple[Interval, ...] = ("hour", "day", "month")
PERIODS = ("today", "yesterday", "7d", "30d", "month", "last_month", "year", "custom")
PERIOD_LABELS = {
    "today": "Today",
    "yesterday": "Yesterday",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "month": "This month",
    "last_month": "Last month",
    "year": "This year",
    "custom": "Custom range",
}
#: The longest custom range: the rollups are kept 25 months by default.
MAX_DAYS = 3 * 366
_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits: fromisoformat takes other forms


class PeriodError(ValueError):
    """A period that cannot be shown, worded for the person who asked."""


@dataclass(frozen=True, slots=True)
class Period:
    name: str
    first: date  # the first local day, included
    last: date  # the last local day, included

    @property
    def length(self) -> int:
        return (self.last - self.first).days + 1

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.length)]

    def previous(self) -> Period:
        """The same number of days just before (what the top line's changes compare with)."""
        return Period(self.name, self.first - timedelta(days=self.length), self.first - timedelta(days=1))

    @property
    def default_interval(self) -> Interval:
        if self.length == 1:
            return "hour"
        return "day" if self.length <= 93 else "month"

    def bounds(self, zone: tzinfo) -> tuple[datetime, datetime]:
        """The UTC instants [start, end) the period covers in ``zone``."""
        start = datetime.combine(self.first, time(), zone).astimezone(UTC)
        end = datetime.combine(self.last + timedelta(days=1), time(), zone).astimezone(UTC)
        return start, end

    def label(self) -> str:
        if self.name != "custom":
            return PERIOD_LABELS[self.name]
        if self.first == self.last:
            return self.first.isoformat()
        return f"{self.first.isoformat()} to {self.last.isoformat()}"

    def query(self) -> dict[str, str]:
        """The URL parameters that ask for this period again."""
        if self.name == "custom":
            return {"period": "custom", "from": self.first.isoformat(), "to": self.last.isoformat()}
        return {"period": self.name}


def period_for(name: str, today: date) -> Period:
    if name == "today":
        return Period(name, today, today)
    if name == "yesterday":
        day = today - timedelta(days=1)
        return Period(name, day, day)
    if name in ("7d", "30d"):
        return Period(name, today - timedelta(days=int(name[:-1]) - 1), today)
    if name == "month":
        return Period(name, today.replace(day=1), today)
    if name == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return Period(name, last.replace(day=1), last)
    if name == "year":
        return Period(name, today.replace(month=1, day=1), today)
    raise PeriodError(f"unknown period {name!r}: expected one of {', '.join(PERIODS)}")


def parse_period(query: Mapping[str, str], today: date) -> Period:
    """The period named by URL parameters (``period``, and ``from``/``to`` for a custom range)."""
    name = query.get("period") or "30d"
    if name != "custom":
        return period_for(name, today)
    first, last = _day(query, "from"), _day(query, "to")
    if last < first:
        raise PeriodError("'to' is before 'from'")
    if (last - first).days + 1 > MAX_DAYS:
        raise PeriodError(f"a custom range covers at most {MAX_DAYS} days")
    return Period("custom", first, last)


def parse_interval(query: Mapping[str, str], period: Period) -> Interval:
    interval = query.get("interval") or period.default_interval
    if interval not in INTERVALS:
        raise PeriodError(f"unknown interval {interval!r}: expected hour, day or month")
    if interval == "hour" and period.length > 7:
        raise PeriodError("hourly buckets cover at most 7 days")
    return interval


def parse_day(text: str, key: str) -> date:
    """``YYYY-MM-DD`` only (RFC 3339 full-date, what the OpenAPI ``format: date`` promises).

    ``date.fromisoformat`` alone would also take ``20260310`` and ``2026-W11-2`` since Python 3.11.
    """
    try:
        if not _DAY_RE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"'{key}' is a day as YYYY-MM-DD, found {text[:40]!r}") from None


def _day(query: Mapping[str, str], key: str) -> date:
    if key not in query:
        raise PeriodError(f"a custom period needs '{key}' as YYYY-MM-DD")
    return parse_day(query[key], key)
