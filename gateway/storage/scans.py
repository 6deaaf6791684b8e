"""SQL for the compliance scans (see migrations/0021_scans.sql): a queue that several nodes share.

A scan is queued (``enqueue_scan``), claimed by exactly one node (``claim_scan``: on SQLite the
write lock makes the claim exclusive; on PostgreSQL the row is read ``FOR UPDATE SKIP LOCKED``, so a
node claiming at the same moment takes the next one or none), renewed while it runs
(``record_progress`` moves its lease), and ends ``done`` with its report or ``failed`` with a
reason. A scan whose node stopped renewing it is failed once its lease is over
(``fail_abandoned``): a scan that kills its node must not be retried into killing the next.
At most one scan per site is queued or running: a partial unique index refuses a second one, so
two owners pressing "Scan now" at once (on two nodes) queue one scan.
"""

# ruff: noqa: S608 - the only text put into SQL is _COLUMNS, a constant; every value is a parameter

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

from gateway.storage.sql import Connection, is_postgres
from gateway.storage.store import Store

Trigger = Literal["manual", "scheduled", "demo"]
Status = Literal["queued", "running", "done", "failed"]
TRIGGERS: tuple[Trigger, ...] = ("manual", "scheduled", "demo")
#: What a scan failed with when its node stopped renewing its lease.
ABANDONED = "The scan stopped: the gateway node running it stopped answering before it finished."
#: The longest error message kept (a browser's stack trace is not for the page).
_ERROR_LIMIT = 2000
_COLUMNS = (
    "id, site_id, url, trigger, status, max_pages, queued_at, started_at, finished_at, pages_done, pages_total,"
    " current_url, violations, error, node"
)


class ScanAlreadyActive(Exception):
    """The site already has a queued or running scan."""

    def __init__(self, site_id: str) -> None:
        super().__init__(f"a scan of {site_id} is already running")


@dataclass(frozen=True, slots=True)
class Scan:
    """One scan's row, without its report (``scan_report`` reads that)."""

    id: int
    site_id: str
    url: str
    trigger: Trigger
    status: Status
    max_pages: int
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    pages_done: int
    pages_total: int
    current_url: str | None
    violations: int | None
    error: str | None
    node: str | None

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


def _at(moment: datetime) -> str:
    """A fixed-width UTC form, so that text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _scan(row: Any) -> Scan:
    return Scan(
        id=int(row[0]),
        site_id=row[1],
        url=row[2],
        trigger=row[3],
        status=row[4],
        max_pages=int(row[5]),
        queued_at=datetime.fromisoformat(row[6]),
        started_at=_moment(row[7]),
        finished_at=_moment(row[8]),
        pages_done=int(row[9]),
        pages_total=int(row[10]),
        current_url=row[11],
        violations=None if row[12] is None else int(row[12]),
        error=row[13],
        node=row[14],
    )


def _fail_abandoned(connection: Connection, now: datetime, site_id: str | None = None) -> int:
    sql = "UPDATE scans SET status = 'failed', error = ?, finished_at = ?, lease_until = NULL"
    sql += " WHERE status = 'running' AND lease_until < ?"
    parameters: list[Any] = [ABANDONED, _at(now), _at(now)]
    if site_id is not None:
        sql += " AND site_id = ?"
        parameters.append(site_id)
    return connection.execute(sql, parameters).rowcount


def _enqueue(connection: Connection, site_id: str, url: str, trigger: Trigger, max_pages: int, now: datetime) -> int:
    _fail_abandoned(connection, now, site_id)  # a dead node's scan does not block the site for good
    row = connection.execute(
        "INSERT INTO scans (site_id, url, trigger, status, max_pages, queued_at) VALUES (?, ?, ?, 'queued', ?, ?)"
        " ON CONFLICT DO NOTHING RETURNING id",
        (site_id, url, trigger, max_pages, _at(now)),
    ).fetchone()
    if row is None:
        raise ScanAlreadyActive(site_id)
    return int(row[0])


async def enqueue_scan(store: Store, site_id: str, url: str, *, trigger: Trigger, max_pages: int, now: datetime) -> int:
    """Queue a scan of ``url`` and return its id; ``ScanAlreadyActive`` when the site has one queued or running."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown scan trigger {trigger!r}")
    return await store.write(partial(_enqueue, site_id=site_id, url=url, trigger=trigger, max_pages=max_pages, now=now))


def _claim(connection: Connection, node: str, now: datetime, lease_until: datetime) -> Scan | None:
    select = "SELECT id FROM scans WHERE status = 'queued' ORDER BY queued_at, id LIMIT 1"
    if is_postgres(connection):
        select += " FOR UPDATE SKIP LOCKED"
    row = connection.execute(select).fetchone()
    if row is None:
        return None
    # The status condition keeps the claim exclusive even where the row was not locked.
    claimed = connection.execute(
        "UPDATE scans SET status = 'running', started_at = ?, lease_until = ?, node = ?"
        f" WHERE id = ? AND status = 'queued' RETURNING {_COLUMNS}",
        (_at(now), _at(lease_until), node, row[0]),
    ).fetchone()
    return None if claimed is None else _scan(claimed)


async def claim_scan(store: Store, *, node: str, now: datetime, lease_until: datetime) -> Scan | None:
    """Take the oldest queued scan for ``node`` (running, leased until ``lease_until``), or None."""
    return await store.write(partial(_claim, node=node, now=now, lease_until=lease_until))


async def record_progress(
    store: Store,
    scan_id: int,
    *,
    node: str,
    pages_done: int,
    pages_total: int,
    current_url: str | None,
    lease_until: datetime,
) -> bool:
    """Note how far a running scan is and renew its lease; False when it is no longer this node's to run."""

    def update(connection: Connection) -> bool:
        return (
            connection.execute(
                "UPDATE scans SET pages_done = ?, pages_total = ?, current_url = ?, lease_until = ?"
                " WHERE id = ? AND status = 'running' AND node = ?",
                (pages_done, pages_total, current_url, _at(lease_until), scan_id, node),
            ).rowcount
            > 0
        )

    return await store.write(update)


async def finish_scan(store: Store, scan_id: int, *, node: str, report: dict[str, Any], now: datetime) -> bool:
    """Store a running scan's report and mark it done; False when it was not this node's (its lease ran out)."""
    violations = len(report.get("violations") or ())
    pages = len(report.get("pages") or ())
    text = json.dumps(report, ensure_ascii=False, sort_keys=True)

    def update(connection: Connection) -> bool:
        return (
            connection.execute(
                "UPDATE scans SET status = 'done', report = ?, violations = ?, finished_at = ?, pages_done = ?,"
                " pages_total = ?, current_url = NULL, lease_until = NULL WHERE id = ? AND status = 'running'"
                " AND node = ?",
                (text, violations, _at(now), pages, pages, scan_id, node),
            ).rowcount
            > 0
        )

    return await store.write(update)


async def fail_scan(store: Store, scan_id: int, *, node: str, error: str, now: datetime) -> bool:
    """Mark a running scan failed with ``error`` (one readable line for the page)."""

    def update(connection: Connection) -> bool:
        return (
            connection.execute(
                "UPDATE scans SET status = 'failed', error = ?, finished_at = ?, current_url = NULL,"
                " lease_until = NULL WHERE id = ? AND status = 'running' AND node = ?",
                (error[:_ERROR_LIMIT], _at(now), scan_id, node),
            ).rowcount
            > 0
        )

    return await store.write(update)


async def fail_abandoned(store: Store, *, now: datetime) -> int:
    """Fail every running scan whose lease is over at ``now`` (its node was killed); how many."""
    return await store.write(partial(_fail_abandoned, now=now))


async def record_finished_scan(
    store: Store, site_id: str, url: str, *, trigger: Trigger, report: dict[str, Any], started: datetime, now: datetime
) -> int:
    """A scan made elsewhere (the demo's seeded one, a CLI run), stored as done."""
    pages = len(report.get("pages") or ())

    def insert(connection: Connection) -> int:
        row = connection.execute(
            "INSERT INTO scans (site_id, url, trigger, status, max_pages, queued_at, started_at, finished_at,"
            " pages_done, pages_total, report, violations) VALUES (?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING id",
            (
                site_id,
                url,
                trigger,
                max(pages, 1),
                _at(started),
                _at(started),
                _at(now),
                pages,
                pages,
                json.dumps(report, ensure_ascii=False, sort_keys=True),
                len(report.get("violations") or ()),
            ),
        ).fetchone()
        return int(row[0])

    return await store.write(insert)


async def queue_busy(store: Store) -> bool:
    """Whether any scan is queued or running (on any site): the worker's cheap check before it claims."""
    rows = await store.fetch_all("SELECT 1 FROM scans WHERE status IN ('queued', 'running') LIMIT 1", ())
    return bool(rows)


async def list_scans(store: Store, site_id: str, *, limit: int = 20, offset: int = 0) -> list[Scan]:
    """A site's scans, newest first."""
    rows = await store.fetch_all(
        f"SELECT {_COLUMNS} FROM scans WHERE site_id = ? ORDER BY id DESC LIMIT ? OFFSET ?", (site_id, limit, offset)
    )
    return [_scan(row) for row in rows]


async def count_scans(store: Store, site_id: str) -> int:
    rows = await store.fetch_all("SELECT count(*) FROM scans WHERE site_id = ?", (site_id,))
    return int(rows[0][0])


async def get_scan(store: Store, site_id: str, scan_id: int) -> Scan | None:
    """One scan of ``site_id`` (None for another site's id: nobody reads across sites)."""
    rows = await store.fetch_all(f"SELECT {_COLUMNS} FROM scans WHERE site_id = ? AND id = ?", (site_id, scan_id))
    return _scan(rows[0]) if rows else None


async def active_scan(store: Store, site_id: str) -> Scan | None:
    """The site's queued or running scan, if any."""
    rows = await store.fetch_all(
        f"SELECT {_COLUMNS} FROM scans WHERE site_id = ? AND status IN ('queued', 'running')", (site_id,)
    )
    return _scan(rows[0]) if rows else None


async def scan_report(store: Store, site_id: str, scan_id: int) -> dict[str, Any] | None:
    """A done scan's report as the JSON object it was stored as."""
    rows = await store.fetch_all(
        "SELECT report FROM scans WHERE site_id = ? AND id = ? AND status = 'done'", (site_id, scan_id)
    )
    if not rows or rows[0][0] is None:
        return None
    report: dict[str, Any] = json.loads(rows[0][0])
    return report


async def done_before(store: Store, site_id: str, scan_id: int | None = None, *, limit: int = 2) -> list[Scan]:
    """The newest ``limit`` done scans of a site (those up to ``scan_id`` when given), newest first:
    a report and the one it is compared with."""
    sql = f"SELECT {_COLUMNS} FROM scans WHERE site_id = ? AND status = 'done'"
    parameters: list[Any] = [site_id]
    if scan_id is not None:
        sql += " AND id <= ?"
        parameters.append(scan_id)
    rows = await store.fetch_all(sql + " ORDER BY id DESC LIMIT ?", [*parameters, limit])
    return [_scan(row) for row in rows]


async def last_scan_times(store: Store) -> dict[str, datetime]:
    """When each site's latest scan was queued, whatever became of it: the schedule's clock (a failing
    scheduled scan is tried again at the next interval, not at every poll)."""
    rows = await store.fetch_all("SELECT site_id, max(queued_at) FROM scans GROUP BY site_id", ())
    return {row[0]: datetime.fromisoformat(row[1]) for row in rows}
