"""CSV files of breakdowns and time series, and a zip of them all ("export all").

Values come from visitors' browsers (paths, referrers, custom props), so a cell that a spreadsheet
would run as a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return first) is prefixed with
``'`` (OWASP, CSV injection). The rows are the dashboard's: folded and withheld the same way.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from datetime import datetime

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


def breakdown_csv(breakdown: Breakdown) -> str:
    rows = [*breakdown.rows, *([breakdown.other] if breakdown.other else [])]
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


def series_csv(buckets: Sequence[Bucket]) -> str:
    """One row per bucket; a withheld bucket (under the privacy floor) has empty figures."""
    rows = []
    for bucket in buckets:
        metrics = bucket.figures.metrics()
        rows.append((bucket.label, *(("" if bucket.withheld else metrics[name]) for name in SERIES_COLUMNS)))
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
