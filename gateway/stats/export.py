"""CSV files of breakdowns and time series, and a zip of them all ("export all").

Values come from visitors' browsers (paths, referrers, custom props), so a cell that a spreadsheet
would run as a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return first) is prefixed with
``'`` (OWASP, CSV injection). The rows are the dashboard's: folded and withheld the same way. A
withheld figure is the text ``< k`` whether it stood for nobody or for a few, a row or an "(other)"
under k visitors is not written at all: the files read the same with or without a lone visitor.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from datetime import datetime

from gateway.stats.privacy import BreakdownRow
from gateway.stats.query import Breakdown, Bucket

BREAKDOWN_COLUMNS = ("visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration")
SERIES_COLUMNS = ("visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return buffer.getvalue()


def published_rows(breakdown: Breakdown, k: int) -> list[BreakdownRow]:
    """The rows, then "(other)", that stand for at least ``k`` visitors (the core folds so; this is the check)."""
    rows = [row for row in breakdown.rows if row.figures.visitors >= k]
    if breakdown.other is not None and breakdown.other.figures.visitors >= k:
        rows.append(breakdown.other)
    return rows


def breakdown_csv(breakdown: Breakdown, k: int) -> str:
    rows = published_rows(breakdown, k)
    return _csv(
        (breakdown.dimension, *BREAKDOWN_COLUMNS),
        (
            (
                row.label,
                row.figures.visitors,
                row.figures.visits,
                row.figures.pageviews,
                row.figures.events,
                row.figures.bounce_rate,
                row.figures.visit_duration,
            )
            for row in rows
        ),
    )


def series_csv(buckets: Sequence[Bucket], k: int) -> str:
    """One row per bucket; a bucket under the privacy floor, zero included, reads ``< k`` in every column."""
    rows = []
    hidden = f"< {k}"
    for bucket in buckets:
        metrics = bucket.figures.metrics()
        withheld = bucket.withheld or bucket.figures.visitors < k
        rows.append((bucket.label, *((hidden if withheld else metrics[name]) for name in SERIES_COLUMNS)))
    return _csv(("bucket", *SERIES_COLUMNS), rows)


def export_zip(files: dict[str, str], now: datetime) -> bytes:
    """The CSV files in one zip (UTF-8 text, deflated), each dated ``now``."""
    buffer = io.BytesIO()
    stamp = now.timetuple()[:6]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()
