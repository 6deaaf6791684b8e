"""SQL for the consent report: banner impressions and consent decisions, by time, country and device.

The dashboard's report reads day cells (``consent_cells``: one row per local day and country,
device or nothing) and impressions per UTC day (``impressions_by_day``), so that the privacy
floor can be applied to each day before anything is added up (``gateway/stats/consent.py``).

Decisions come from the proof log (``consent_records``, read through its ``(site_id,
recorded_at)`` index); impressions from ``banner_impressions`` (migrations/0007). Impressions
have **day resolution**: a range counts every impression of each UTC day it touches, so a
range that starts or ends inside a day counts that whole day's impressions. Decisions are
exact to the instant.

A *decision* is a record whose method is ``accept_all``, ``reject_all``, ``custom`` or ``gpc``;
``withdraw`` records are counted apart and ``erase`` tombstones not at all. An erased record
still counts: its decision, country and device are anonymous and kept.
"""

from __future__ import annotations

# The statements are put together from fixed fragments (a dialect's category test, a bucket count's
# VALUES list); every value is a ? parameter.
# ruff: noqa: S608
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from gateway.categories import CONSENT_CATEGORIES
from gateway.storage.store import Store

Dimension = Literal["country", "device"]


@dataclass(frozen=True, slots=True)
class ImpressionCount:
    """Banner impressions of one site, UTC day, country and device ("" unknown)."""

    site_id: str
    day: date
    country: str
    device: str
    count: int


@dataclass(frozen=True, slots=True)
class ConsentFigures:
    impressions: int
    decisions: int  # accept_all + reject_all + custom + gpc
    accept_all: int
    reject_all: int
    custom: int
    gpc: int
    withdrawals: int
    #: category -> share (0.0-1.0) of the decisions that allowed it; 0.0 when there was no decision.
    opt_in: dict[str, float]


# The stored count is named with its table: on PostgreSQL a bare ``count`` beside ``excluded``
# would be ambiguous.
_UPSERT_IMPRESSIONS = """
INSERT INTO banner_impressions (site_id, day, country, device, count) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (site_id, day, country, device) DO UPDATE SET count = banner_impressions.count + excluded.count
"""

#: A record that is a decision (not a withdrawal, not an erasure tombstone).
_DECIDED = "r.method IN ('accept_all', 'reject_all', 'custom', 'gpc')"


def _counts(allowed: str) -> str:
    """The counting columns shared by both reads; ``allowed`` tests one category (one parameter each).

    Counted with CASE, not by summing a comparison: PostgreSQL has no sum of booleans."""
    return f"""
    COALESCE(SUM(CASE WHEN {_DECIDED} THEN 1 ELSE 0 END), 0) AS decisions,
    COALESCE(SUM(CASE WHEN r.method = 'accept_all' THEN 1 ELSE 0 END), 0) AS accept_all,
    COALESCE(SUM(CASE WHEN r.method = 'reject_all' THEN 1 ELSE 0 END), 0) AS reject_all,
    COALESCE(SUM(CASE WHEN r.method = 'custom' THEN 1 ELSE 0 END), 0) AS custom,
    COALESCE(SUM(CASE WHEN r.method = 'gpc' THEN 1 ELSE 0 END), 0) AS gpc,
    COALESCE(SUM(CASE WHEN r.method = 'withdraw' THEN 1 ELSE 0 END), 0) AS withdrawals,
    COALESCE(SUM(CASE WHEN r.method != 'withdraw' AND {allowed} THEN 1 ELSE 0 END), 0) AS allowed1,
    COALESCE(SUM(CASE WHEN r.method != 'withdraw' AND {allowed} THEN 1 ELSE 0 END), 0) AS allowed2,
    COALESCE(SUM(CASE WHEN r.method != 'withdraw' AND {allowed} THEN 1 ELSE 0 END), 0) AS allowed3"""


# Whether the record allowed one category, by dialect: SQLite reads the JSON path ("$.functional")
# and its true is 1; PostgreSQL reads the key ("functional") of the jsonb and compares its text.
_ALLOWED = {
    "sqlite": ("json_extract(r.categories, ?) = 1", "$.{}"),
    "postgresql": ("(r.categories::jsonb ->> ?) = 'true'", "{}"),
}
_KEY = "CASE ? WHEN 'country' THEN COALESCE(r.country, '') WHEN 'device' THEN COALESCE(r.device, '') ELSE '' END"


def _decisions(dialect: str) -> str:
    """One statement for the whole range and for each dimension: the first parameter ("country",
    "device" or "" for one row) picks the key; the next three are the categories of
    CONSENT_CATEGORIES (a new category fails loudly, by the number of bindings, until it gets its
    column); then the site and the range."""
    return f"""
SELECT {_KEY} AS key,{_counts(_ALLOWED[dialect][0])}
FROM consent_records AS r
WHERE r.site_id = ? AND r.recorded_at >= ? AND r.recorded_at < ? AND r.method != 'erase'
GROUP BY 1
"""


def _category_parameters(dialect: str) -> tuple[str, ...]:
    return tuple(_ALLOWED[dialect][1].format(category) for category in CONSENT_CATEGORIES)


_IMPRESSIONS = """
SELECT
    CASE ? WHEN 'country' THEN country WHEN 'device' THEN device ELSE '' END AS key,
    SUM(count) AS impressions
FROM banner_impressions
WHERE site_id = ? AND day >= ? AND day <= ?
GROUP BY 1
"""


@dataclass(frozen=True, slots=True)
class ConsentCell:
    """The decisions of one bucket (a local day) and one key (a country, a device, or "" for all)."""

    label: str
    key: str
    #: Distinct consent ids that decided in the cell: what the privacy floor counts.
    deciders: int
    decisions: int
    accept_all: int
    reject_all: int
    custom: int
    gpc: int
    withdrawals: int
    #: Decisions that allowed each of CONSENT_CATEGORIES, in that order.
    allowed: tuple[int, ...]


def _cells(dialect: str, buckets: int) -> str:
    """The buckets come as rows of a VALUES list (label, since, until), the same SQL on both stores;
    each bucket is a range read of the (site_id, recorded_at) index. The parameters, in the order
    of the text: the buckets' three values each, the key's dimension, the three categories, the site."""
    values = ", ".join(["(?, ?, ?)"] * buckets)
    return f"""
WITH buckets (label, since, until) AS (VALUES {values})
SELECT
    buckets.label AS label,
    {_KEY} AS key,
    COUNT(DISTINCT CASE WHEN {_DECIDED} THEN r.consent_id END) AS deciders,{_counts(_ALLOWED[dialect][0])}
FROM buckets JOIN consent_records AS r
    ON r.site_id = ? AND r.recorded_at >= buckets.since AND r.recorded_at < buckets.until AND r.method != 'erase'
GROUP BY 1, 2
"""


_IMPRESSIONS_BY_DAY = """
SELECT day, SUM(count) AS impressions FROM banner_impressions
WHERE site_id = ? AND day >= ? AND day <= ? GROUP BY day ORDER BY day
"""


async def consent_cells(
    db: Store, site_id: str, group: Literal["", "country", "device"], buckets: list[tuple[str, datetime, datetime]]
) -> list[ConsentCell]:
    """One cell per ``(label, start, end)`` bucket and key that holds any record; "" is an unknown key."""
    if group not in ("", "country", "device"):
        raise ValueError(f"group must be '', 'country' or 'device', not {group!r}")
    if not buckets:
        return []
    dialect = db.dialect
    spans = [value for label, start, end in buckets for value in (label, *_range(start, end)[:2])]
    parameters = (*spans, group, *_category_parameters(dialect), site_id)  # in the order of the text
    rows = await db.fetch_all(_cells(dialect, len(buckets)), parameters)
    return [
        ConsentCell(
            row["label"],
            row["key"],
            row["deciders"],
            row["decisions"],
            row["accept_all"],
            row["reject_all"],
            row["custom"],
            row["gpc"],
            row["withdrawals"],
            (row["allowed1"], row["allowed2"], row["allowed3"]),
        )
        for row in rows
    ]


async def impressions_by_day(db: Store, site_id: str, start: datetime, end: datetime) -> dict[date, int]:
    """Banner impressions of each UTC day that ``[start, end)`` touches (impressions have day resolution)."""
    _, _, first_day, last_day = _range(start, end)
    rows = await db.fetch_all(_IMPRESSIONS_BY_DAY, (site_id, first_day, last_day))
    return {date.fromisoformat(row["day"]): int(row["impressions"]) for row in rows}


async def add_impressions(db: Store, counts: Iterable[ImpressionCount]) -> None:
    """Add a batch of counts in one transaction."""
    rows = [(c.site_id, c.day.isoformat(), c.country, c.device, c.count) for c in counts]
    await db.write(lambda connection: connection.executemany(_UPSERT_IMPRESSIONS, rows))


async def impression_counts(db: Store, site_id: str) -> list[ImpressionCount]:
    """Every stored count of a site, oldest day first."""
    rows = await db.fetch_all("SELECT * FROM banner_impressions WHERE site_id = ?", (site_id,))
    counts = [
        ImpressionCount(row["site_id"], date.fromisoformat(row["day"]), row["country"], row["device"], row["count"])
        for row in rows
    ]
    # Sorted here, not by ORDER BY: a PostgreSQL database's collation would order text unlike SQLite.
    return sorted(counts, key=lambda c: (c.day, c.country, c.device))


async def consent_figures(db: Store, site_id: str, start: datetime, end: datetime) -> ConsentFigures:
    """The figures of ``[start, end)``; impressions of every UTC day the range touches."""
    [(_, figures)] = await _grouped(db, site_id, "", start, end) or [("", _no_decision(0))]
    return figures


async def consent_over_time(
    db: Store, site_id: str, days: list[tuple[str, datetime, datetime]]
) -> list[tuple[str, ConsentFigures]]:
    """One ``(label, figures)`` per ``(label, start, end)`` bucket, in the given order.

    A bucket is two indexed range reads, so buckets may be any instants (a site's local
    midnights, hours); a dashboard's 30 to 90 buckets cost a few milliseconds each.
    """
    return [(label, await consent_figures(db, site_id, start, end)) for label, start, end in days]


async def consent_by(
    db: Store, site_id: str, dimension: Dimension, start: datetime, end: datetime
) -> list[tuple[str, ConsentFigures]]:
    """The figures of ``[start, end)`` per country or device, most decisions first; "" is unknown.

    A value with impressions but no decision is listed too (its consent rate is what matters).
    """
    if dimension not in ("country", "device"):
        raise ValueError(f"dimension must be 'country' or 'device', not {dimension!r}")
    figures = await _grouped(db, site_id, dimension, start, end)
    return sorted(figures, key=lambda item: (-item[1].decisions, -item[1].impressions, item[0]))


async def _grouped(
    db: Store, site_id: str, group: str, start: datetime, end: datetime
) -> list[tuple[str, ConsentFigures]]:
    since, until, first_day, last_day = _range(start, end)
    dialect = db.dialect
    parameters = (group, *_category_parameters(dialect), site_id, since, until)  # in the order of the text
    decided = {row["key"]: row for row in await db.fetch_all(_decisions(dialect), parameters)}
    shown: dict[str, int] = {
        row["key"]: row["impressions"]
        for row in await db.fetch_all(_IMPRESSIONS, (group, site_id, first_day, last_day))
    }
    return [
        (key, _figures(decided[key], shown.get(key, 0)) if key in decided else _no_decision(shown[key]))
        for key in decided.keys() | shown.keys()
    ]


def _range(start: datetime, end: datetime) -> tuple[str, str, str, str]:
    """The ISO instants of ``[start, end)`` as stored (UTC) and the first and last UTC day it touches."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the range must be timezone-aware instants")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    last_day = (end - timedelta(microseconds=1)).date() if end > start else start.date() - timedelta(days=1)
    return start.isoformat(), end.isoformat(), start.date().isoformat(), last_day.isoformat()


def _figures(row: Any, impressions: int) -> ConsentFigures:
    decisions = row["decisions"]
    allowed = (row["allowed1"], row["allowed2"], row["allowed3"])
    return ConsentFigures(
        impressions=impressions,
        decisions=decisions,
        accept_all=row["accept_all"],
        reject_all=row["reject_all"],
        custom=row["custom"],
        gpc=row["gpc"],
        withdrawals=row["withdrawals"],
        opt_in={c: n / decisions if decisions else 0.0 for c, n in zip(CONSENT_CATEGORIES, allowed, strict=True)},
    )


def _no_decision(impressions: int) -> ConsentFigures:
    return ConsentFigures(impressions, 0, 0, 0, 0, 0, 0, dict.fromkeys(CONSENT_CATEGORIES, 0.0))
