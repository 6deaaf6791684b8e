"""``consent-gateway migrate-store --from SQLITE_PATH --to POSTGRES_URL``: copy, then prove the copy.

The copy (gateway/storage/migrate.py) commits only when every table's row count matches; then
both stores are opened and every site's dashboard figures compared (gateway/migrate_check.py).
Success is reported only when nothing differs. Lines go to ``out`` as the work proceeds, so an
operator copying a year of events sees where it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from gateway.clock import Clock
from gateway.migrate_check import compare_dashboards
from gateway.settings import SiteSettings
from gateway.storage.db import Database
from gateway.storage.location import PostgresUrl
from gateway.storage.migrate import CopyReport, copy_store

#: Rows between two progress lines of one table.
_PROGRESS_EVERY = 200_000
#: Differences printed before the rest are only counted.
_DIFFERENCES_SHOWN = 20

Out = Callable[[str], None]


def copy_with_progress(source: Path, target: PostgresUrl, out: Out, *, batch_rows: int = 10_000) -> CopyReport:
    """The copy, printing a line every ``_PROGRESS_EVERY`` rows of a table and one when it is done."""
    printed: dict[str, int] = {}

    def progress(table: str, rows: int, seconds: float | None) -> None:
        if seconds is not None:
            out(f"  {table}: {rows:,} rows in {seconds:.1f} s")
        elif rows - printed.get(table, 0) >= _PROGRESS_EVERY:
            printed[table] = rows
            out(f"  {table}: {rows:,} rows so far")

    out(f"copying {source} to {target.redacted} (stop the gateway first: rows written meanwhile are not copied)")
    report = copy_store(source, target, batch_rows=batch_rows, progress=progress)
    for table, why in report.skipped:
        out(f"  {table}: not copied ({why})")
    rate = report.rows / report.seconds if report.seconds else 0.0
    out(f"copied {report.rows:,} rows of {len(report.copied)} tables in {report.seconds:.1f} s ({rate:,.0f} rows/s)")
    return report


async def check_figures(
    source: Path, target: PostgresUrl, clock: Clock, sites: Mapping[str, SiteSettings], out: Out
) -> bool:
    """Compare every site's dashboard on both stores; True when they agree."""
    from gateway.storage.postgres import PostgresStore

    out("comparing the dashboard's figures on both stores")
    sqlite = await Database(source).open()
    try:
        postgres = await PostgresStore(target).open()
        try:
            report = await compare_dashboards(sqlite, postgres, clock, sites)
        finally:
            await postgres.close()
    finally:
        await sqlite.close()
    for difference in report.differences[:_DIFFERENCES_SHOWN]:
        out(difference.describe())
    if len(report.differences) > _DIFFERENCES_SHOWN:
        out(f"... and {len(report.differences) - _DIFFERENCES_SHOWN} more differences")
    sites_text = ", ".join(report.sites) or "none"
    if report.differences:
        out(f"{len(report.differences)} of {report.figures} figures differ (sites: {sites_text})")
        return False
    out(f"{report.figures} figures agree on both stores (sites: {sites_text})")
    return True
