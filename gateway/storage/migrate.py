"""Copy a SQLite store into an empty PostgreSQL database (``consent-gateway migrate-store``).

Why it looks the way it does:

- Every table of the SQLite schema must be named in ``PLAN`` with what to do with it. A table added
  by a later migration and not named here stops the copy (``MigrationRefused``) instead of being
  left behind without a word; so does a SQLite column the PostgreSQL table lacks.
- The whole copy is one PostgreSQL transaction: a copy that fails or is killed halfway leaves the
  target as empty as it found it, so the operator can simply run it again (hence no ``--force``).
- The source is read in one SQLite read transaction (one snapshot, even if a gateway still writes)
  and streamed in batches of ``batch_rows`` through ``COPY``: a year of events never sits in memory.
- Ids are copied as they are (a shared link's token, a session's admin id and the visit an event
  belongs to all name ids), then every sequence is moved past the highest id copied (and past
  SQLite's ``sqlite_sequence`` for AUTOINCREMENT tables, whose ids are never reused).
- The rollups' generations are copied as they were (a filtered day's cached visits name the
  generation they were built at); the PostgreSQL insert trigger has already written new ones for the
  copied rollups by then, so those rows are overwritten rather than inserted.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from gateway.storage.db import check_database
from gateway.storage.location import PostgresUrl
from gateway.storage.partitions import ensure_months
from gateway.storage.store import Store

Mode = Literal["copy", "upsert", "cache", "skip"]
#: Called while a table is copied: its name, rows copied so far, and None; once it is done: its
#: name, its rows and the seconds it took.
Progress = Callable[[str, int, float | None], None]
#: pg_advisory_xact_lock key held by a copy, so two copies into one database queue ("migrate").
_COPY_LOCK = 0x6D696772617465
_CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True, slots=True)
class TablePlan:
    """What ``migrate-store`` does with one SQLite table.

    ``copy``: every row, ids included. ``upsert``: every row, replacing what the target wrote for the
    same key meanwhile (``key``). ``cache``: rows derived from the others, copied when the target has
    every cache table, else left to be rebuilt. ``skip``: not copied, for the reason in ``why``.
    """

    table: str
    mode: Mode
    why: str = ""
    key: tuple[str, ...] = ()


#: Every SQLite table, in the order the copy writes them (users before what references them,
#: rollups before their generations).
PLAN: tuple[TablePlan, ...] = (
    TablePlan("users", "copy"),
    TablePlan("site_roles", "copy"),
    TablePlan("sessions", "copy"),
    TablePlan("login_attempts", "copy"),
    TablePlan("api_keys", "copy"),
    TablePlan("shared_links", "copy"),
    TablePlan("policy_revisions", "copy"),
    TablePlan("consent_records", "copy"),
    TablePlan("banner_impressions", "copy"),
    TablePlan("cookie_report", "copy"),
    TablePlan("salts", "copy"),
    TablePlan("visits", "copy"),
    TablePlan("events", "copy"),
    TablePlan("rollups", "copy"),
    TablePlan("rollup_generations", "upsert", key=("site_id", "day")),
    TablePlan("rollup_other_visitors", "copy"),
    TablePlan("rollup_dirty", "copy"),
    TablePlan(
        "rollup_dirty_counter",
        "skip",
        why="SQLite's counter of dirty-mark generations; PostgreSQL's sequence is moved past it instead",
    ),
    TablePlan("visit_day_generations", "cache"),
    TablePlan("visit_day_packs", "cache"),
    TablePlan("outbox", "copy"),
    TablePlan("sample_data", "copy"),
    TablePlan("scans", "copy"),
    TablePlan("worker_metrics", "skip", why="live counters of running workers, published again every few seconds"),
    TablePlan("health", "skip", why="one row /healthz rewrites on its next check"),
    TablePlan("schema_migrations", "skip", why="each store keeps its own migrations"),
)
_PLANNED = {plan.table: plan for plan in PLAN}
#: Sequences no column draws from: which column's highest value each must pass.
_COUNTERS = {"rollup_generation": ("rollup_generations", "generation")}
#: Sequences that must also pass a SQLite counter kept in a table (where PostgreSQL has a sequence).
_SQLITE_COUNTERS = {"rollup_dirty_generation": ("rollup_dirty_counter", "generation")}
_NEXTVAL = re.compile(r"nextval\('([^']+)'(?:::regclass)?\)")


class MigrationRefused(Exception):
    """The copy cannot start or cannot be trusted; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class TableCopied:
    table: str
    rows: int
    seconds: float


@dataclass(frozen=True, slots=True)
class CopyReport:
    copied: tuple[TableCopied, ...]
    skipped: tuple[tuple[str, str], ...]  # (table, why)
    seconds: float

    @property
    def rows(self) -> int:
        return sum(table.rows for table in self.copied)


def copy_store(
    source: Path,
    target: PostgresUrl,
    *,
    batch_rows: int = 10_000,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy every table of the SQLite file ``source`` into the empty PostgreSQL database ``target``.

    Brings both schemas up to date first. Refuses (``MigrationRefused``) a missing source, a target
    that already holds data, and a table or column it does not know how to copy. Row counts are
    compared table by table before the transaction commits.
    """
    if not source.is_file():
        raise MigrationRefused(f"the SQLite database {source} does not exist")
    check_database(source)  # an older schema is migrated first, so both stores have the same tables
    import psycopg

    from gateway.storage.postgres import PgConnection, apply_migrations

    apply_migrations(target)
    started = time.perf_counter()
    reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        reader.execute("BEGIN")  # one snapshot for every table and count
        with psycopg.connect(target.url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S) as raw:
            with raw.transaction():
                raw.execute("SELECT pg_advisory_xact_lock(%s)", (_COPY_LOCK,))
                writer = PgConnection(raw)
                plans, skipped = _plans(reader, writer)
                _refuse_data(writer, plans)
                copied = [_copy_table(reader, writer, plan, batch_rows, progress) for plan in plans]
                _reset_sequences(reader, writer, [plan.table for plan in plans])
        reader.execute("COMMIT")
    finally:
        reader.close()
    return CopyReport(tuple(copied), tuple(skipped), time.perf_counter() - started)


def _plans(reader: sqlite3.Connection, writer: Any) -> tuple[list[TablePlan], list[tuple[str, str]]]:
    """The tables to copy in order, and those left out with why; refuses what it does not know."""
    names = {
        row[0]
        for row in reader.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    }
    unknown = sorted(names - set(_PLANNED))
    if unknown:
        raise MigrationRefused(
            f"the SQLite database has tables migrate-store does not know how to copy: {', '.join(unknown)} "
            "(a newer gateway wrote it, or gateway/storage/migrate.py's PLAN lacks them)"
        )
    target = _target_columns(writer)
    caches = [plan.table for plan in PLAN if plan.mode == "cache" and plan.table in names]
    caches_fit = all(table in target for table in caches)
    plans, skipped = [], []
    for plan in PLAN:
        if plan.table not in names:
            continue
        if plan.mode == "skip":
            skipped.append((plan.table, plan.why))
            continue
        if plan.mode == "cache" and not caches_fit:
            skipped.append(
                (plan.table, "a cache of the raw events, rebuilt on first use (the target lacks its tables)")
            )
            continue
        if plan.table not in target:
            raise MigrationRefused(
                f"the PostgreSQL database has no table {plan.table}: its schema is older than the code"
            )
        missing = [column for column in _source_columns(reader, plan.table) if column not in target[plan.table]]
        if missing:
            raise MigrationRefused(f"the PostgreSQL table {plan.table} lacks the SQLite columns {', '.join(missing)}")
        plans.append(plan)
    return plans, skipped


def _source_columns(reader: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in reader.execute(f'PRAGMA table_info("{table}")')]


def _target_columns(writer: Any) -> dict[str, set[str]]:
    """The target's tables (partitions left out: rows go through their parent) and their columns."""
    rows = writer.execute(
        "SELECT c.relname, a.attname FROM pg_class AS c "
        "JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = current_schema() "
        "JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
    ).fetchall()
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(table, set()).add(column)
    return columns


def _refuse_data(writer: Any, plans: Sequence[TablePlan]) -> None:
    """A target holding rows already (a gateway ran on it, or a copy was made before) is refused:
    merging two stores would mix ids; the operator empties it or names a fresh database."""
    held = [
        plan.table
        for plan in plans
        if writer.execute(f'SELECT EXISTS (SELECT 1 FROM "{plan.table}")').fetchone()[0]  # noqa: S608 - names from PLAN
    ]
    if held:
        raise MigrationRefused(
            f"the PostgreSQL database already holds data (in {', '.join(held)}): migrate-store copies into an empty "
            "database only; create a new one (CREATE DATABASE) or drop and recreate this one"
        )


def _batches(reader: sqlite3.Connection, table: str, columns: Sequence[str], size: int) -> Iterator[list[Any]]:
    quoted = ", ".join(f'"{column}"' for column in columns)
    cursor = reader.execute(f'SELECT {quoted} FROM "{table}"')  # noqa: S608 - names from the schema
    while batch := cursor.fetchmany(size):
        yield batch


def _copy_table(
    reader: sqlite3.Connection, writer: Any, plan: TablePlan, batch_rows: int, progress: Progress | None
) -> TableCopied:
    started = time.perf_counter()
    table = plan.table
    columns = _source_columns(reader, table)
    quoted = ", ".join(f'"{column}"' for column in columns)
    if table == "events":
        months = [row[0] for row in reader.execute("SELECT DISTINCT substr(ts, 1, 7) FROM events")]
        ensure_months(writer, months)
    indexes = _drop_secondary_indexes(writer, table) if plan.mode == "copy" else []
    copied = 0
    if plan.mode == "upsert":
        updates = ", ".join(f'"{column}" = excluded."{column}"' for column in columns if column not in plan.key)
        statement = (
            f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" * len(columns))}) '  # noqa: S608 - names from the schema
            f"ON CONFLICT ({', '.join(plan.key)}) DO UPDATE SET {updates}"
        )
        for batch in _batches(reader, table, columns, batch_rows):
            writer.executemany(statement, batch)
            copied += len(batch)
            if progress is not None:
                progress(table, copied, None)
    else:
        with writer.raw.cursor().copy(f'COPY "{table}" ({quoted}) FROM STDIN') as stream:
            for batch in _batches(reader, table, columns, batch_rows):
                for row in batch:
                    stream.write_row(row)
                copied += len(batch)
                if progress is not None:
                    progress(table, copied, None)
    for definition in indexes:
        writer.execute(definition)
    expected = reader.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # noqa: S608 - names from the schema
    stored = writer.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # noqa: S608 - names from the schema
    if not copied == expected == stored:
        raise MigrationRefused(f"{table}: {expected} rows in SQLite, {copied} copied, {stored} in PostgreSQL")
    seconds = time.perf_counter() - started
    if progress is not None:
        progress(table, copied, seconds)
    return TableCopied(table, copied, seconds)


def _drop_secondary_indexes(writer: Any, table: str) -> list[str]:
    """Drop the table's indexes that back no constraint and return how to create them again: one
    index built after the rows is several times faster than one kept up to date row by row (what
    pg_restore does too). Inside the copy's transaction, so a failed copy keeps them."""
    rows = writer.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index AS x "
        "JOIN pg_class AS i ON i.oid = x.indexrelid JOIN pg_class AS t ON t.oid = x.indrelid "
        "JOIN pg_namespace AS n ON n.oid = t.relnamespace AND n.nspname = current_schema() "
        "WHERE t.relname = ? AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid)",
        (table,),
    ).fetchall()
    for name, _ in rows:
        writer.execute(f'DROP INDEX "{name}"')
    # A partitioned table's index reads "ON ONLY": created that way it would not reach the partitions.
    return [definition.replace(" ON ONLY ", " ON ", 1) for _, definition in rows]


def _reset_sequences(reader: sqlite3.Connection, writer: Any, tables: Sequence[str]) -> None:
    """Move every sequence past the highest value copied, so the next insert gets a fresh id."""
    autoincrement = {}
    if reader.execute("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence'").fetchone():
        autoincrement = {name: int(seq) for name, seq in reader.execute("SELECT name, seq FROM sqlite_sequence")}
    passed: set[str] = set()
    for table in tables:
        for column, default, identity in writer.execute(
            "SELECT column_name, column_default, is_identity FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        ).fetchall():
            found = _NEXTVAL.search(default or "")
            sequence = found.group(1) if found else None
            if identity == "YES":
                sequence = writer.execute("SELECT pg_get_serial_sequence(?, ?)", (table, column)).fetchone()[0]
            if sequence is None:
                continue
            name = sequence.split(".")[-1].strip('"')
            floor = autoincrement.get(table, 0) if identity == "YES" else _sqlite_counter(reader, name)
            _pass(writer, sequence, table, column, floor)
            passed.add(name)
    sequences = [
        row[0] for row in writer.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()")
    ]
    for sequence in sequences:
        if sequence in passed:
            continue
        if sequence not in _COUNTERS:
            raise MigrationRefused(f"the PostgreSQL sequence {sequence} is unknown to migrate-store (see _COUNTERS)")
        table, column = _COUNTERS[sequence]
        if table in tables:
            _pass(writer, sequence, table, column, 0)


def _sqlite_counter(reader: sqlite3.Connection, sequence: str) -> int:
    if sequence not in _SQLITE_COUNTERS:
        return 0
    table, column = _SQLITE_COUNTERS[sequence]
    if not reader.execute("SELECT 1 FROM sqlite_schema WHERE name = ?", (table,)).fetchone():
        return 0
    found = reader.execute(f'SELECT max("{column}") FROM "{table}"').fetchone()  # noqa: S608 - names from above
    return int(found[0] or 0)


def _pass(writer: Any, sequence: str, table: str, column: str, floor: int) -> None:
    highest = writer.execute(f'SELECT max("{column}") FROM "{table}"').fetchone()[0]  # noqa: S608 - names from the catalog
    last_value, is_called = writer.execute(f"SELECT last_value, is_called FROM {sequence}").fetchone()  # noqa: S608
    value = max(int(highest or 0), floor, int(last_value) if is_called else 0)
    if value > 0:
        writer.execute("SELECT setval(?, ?, true)", (sequence, value))


# What the figure check (gateway/migrate_check.py) asks of each store.

_SITES_WITH_DATA = """
SELECT site_id FROM rollups UNION SELECT site_id FROM consent_records
UNION SELECT site_id FROM banner_impressions UNION SELECT DISTINCT site_id FROM events
"""
_FIRST_MOMENTS = """
SELECT (SELECT min(ts) FROM events WHERE site_id = ?), (SELECT min(day) FROM rollups WHERE site_id = ?),
       (SELECT min(recorded_at) FROM consent_records WHERE site_id = ?),
       (SELECT min(day) FROM banner_impressions WHERE site_id = ?)
"""


async def sites_with_data(store: Store) -> list[str]:
    """Every site id the store holds figures or consent records for."""
    return sorted(str(row[0]) for row in await store.fetch_all(_SITES_WITH_DATA))


async def first_day_with_data(store: Store, site_id: str) -> date | None:
    """The earliest UTC day of the site's events, rollups or consent records (None: nothing)."""
    rows = await store.fetch_all(_FIRST_MOMENTS, (site_id,) * 4)
    moments = [str(value)[:10] for value in rows[0] if value is not None]
    return date.fromisoformat(min(moments)) if moments else None
