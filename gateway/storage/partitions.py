"""Monthly partitions of ``events`` on PostgreSQL: created as batches need them, dropped by retention.

The table is partitioned by range of ``ts`` (ISO-8601 text in the "C" collation), one partition per
UTC month: ``events_2024_05`` holds ``'2024-05' <= ts < '2024-06'``. Retention then drops a month
whole (a catalog change, instead of deleting millions of rows one by one and vacuuming them).
SQLite has one table and no partitions: every function here does nothing there.

Creating a partition locks the parent table, so a batch creates its months first, before it takes
any other lock (no deadlock with a batch of another node that already inserted rows), under an
advisory lock so two nodes never race to create the same month. The month after the newest one
is created ahead, so at a month's turn the new partition is usually there already.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from datetime import date

from gateway.storage.sql import Connection, is_postgres

#: pg_advisory_xact_lock key under which partitions are created ("events-p").
_PARTITION_LOCK = 0x6576656E74732D70
_CREATE = "CREATE TABLE IF NOT EXISTS {name} PARTITION OF events FOR VALUES FROM ('{start}') TO ('{stop}')"
_PARTITIONS = """
SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
WHERE i.inhparent = 'events'::regclass ORDER BY c.relname
"""

#: The months this process knows exist, per writer connection. Safe to keep: a month is only ever
#: dropped by retention, when it is wholly older than the events' retention; this process forgets
#: the months it drops itself, and a batch that fails (say, for a month another node dropped)
#: forgets every month of its connection, so the next batch checks again.
_known: weakref.WeakKeyDictionary[object, set[str]] = weakref.WeakKeyDictionary()


def month_of(ts: str) -> str:
    """``YYYY-MM`` of a stored time (ISO 8601 UTC text)."""
    return ts[:7]


def next_month(month: str) -> str:
    year, number = int(month[:4]), int(month[5:7])
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def partition_name(month: str) -> str:
    date.fromisoformat(month + "-01")  # a month, or ValueError: the name goes into DDL
    return f"events_{month[:4]}_{month[5:7]}"


def _known_months(connection: Connection) -> set[str]:
    try:
        return _known.setdefault(connection, set())
    except TypeError:  # not weakly referenceable: no memory, each batch checks the catalog
        return set()


def ensure_months(connection: Connection, months: Iterable[str]) -> None:
    """Create the partitions of ``months`` (and of the month after the newest) that do not exist yet.

    Call it first in a write transaction, before any row is written or other lock taken.
    """
    if not is_postgres(connection):
        return
    wanted = set(months)
    if wanted:
        wanted.add(next_month(max(wanted)))
    known = _known_months(connection)
    missing = sorted(wanted - known)
    if not missing:
        return
    connection.execute("SELECT pg_advisory_xact_lock(?)", (_PARTITION_LOCK,))
    for month in missing:
        name = partition_name(month)
        connection.execute(_CREATE.format(name=name, start=month, stop=next_month(month)))
    known.update(missing)


def forget_months(connection: Connection) -> None:
    """After a failed transaction: the months it created were rolled back (or another node dropped one)."""
    _known.pop(connection, None)


def drop_months_before(connection: Connection, cutoff: str) -> int:
    """Drop the partitions whose every possible ``ts`` is before ``cutoff`` (ISO text); returns the
    events they held. The caller deletes the rest of the events before ``cutoff`` row by row."""
    if not is_postgres(connection):
        return 0
    dropped = 0
    for (name,) in connection.execute(_PARTITIONS).fetchall():
        month = f"{name[7:11]}-{name[12:14]}"
        try:
            ours = partition_name(month) == name
        except ValueError:
            ours = False
        if not ours or next_month(month) > cutoff[:7]:
            continue  # not one of ours, or it may hold events from the cut-off on
        dropped += int(connection.execute(f"SELECT count(*) FROM {name}").fetchone()[0])  # noqa: S608 - our own name
        connection.execute(f"DROP TABLE {name}")
        _known_months(connection).discard(month)
    return dropped
