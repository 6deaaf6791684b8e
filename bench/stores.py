"""Which store a benchmark runs on: a SQLite file per run, or a database per run on PostgreSQL.

``--store postgresql`` with no ``--database-url`` starts a throwaway cluster the way the tests do
(scripts/postgres_cluster.py) and removes it at the end; with a URL (an admin URL of a server you
run) each run gets a database of its own, created and dropped here.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
STORES = ("sqlite", "postgresql")


def add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", choices=STORES, default="sqlite", help="where events are stored (default: sqlite)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="--store postgresql: an admin URL of a server to use (default: a throwaway cluster started here)",
    )


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@dataclass
class BenchStore:
    """Hands out databases (a settings value each) and reads them back: row counts and bytes on disk."""

    kind: str
    directory: Path
    admin_url: str | None = None
    #: (events, bytes) of the databases measured, for the storage per million events.
    sizes: list[tuple[int, int]] = field(default_factory=list)
    _created: list[str] = field(default_factory=list)

    def mb_per_million_events(self) -> float | None:
        """Median megabytes per million stored events over the databases measured (None: none)."""
        if not self.sizes:
            return None
        per_million = sorted(size / events * 1e6 / 1e6 for events, size in self.sizes if events)
        return round(per_million[len(per_million) // 2], 1) if per_million else None

    def new_database(self, name: str) -> str:
        """A fresh, empty database for one run; its ``database =`` settings value."""
        if self.kind == "sqlite":
            return str(self.directory / f"{name}.sqlite3")
        assert self.admin_url is not None
        import psycopg

        database = f"bench_{name}".replace("-", "_")
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{database}"')
        self._created.append(database)
        return _with_database(self.admin_url, database)

    def scalar(self, database: str, sql: str) -> int:
        if self.kind == "sqlite":
            with contextlib.closing(sqlite3.connect(database)) as connection:
                return int(connection.execute(sql).fetchone()[0])
        import psycopg

        with psycopg.connect(database) as connection:
            row = connection.execute(sql).fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    def count_events(self, database: str) -> int:
        return self.scalar(database, "SELECT count(*) FROM events")

    def size_bytes(self, database: str) -> int:
        """Bytes the database takes: the SQLite file with its -wal, or pg_database_size."""
        if self.kind == "sqlite":
            return sum(
                Path(database + suffix).stat().st_size for suffix in ("", "-wal") if Path(database + suffix).exists()
            )
        return self.scalar(database, "SELECT pg_database_size(current_database())")

    def server_cpu_ticks(self) -> int | None:
        """User + system CPU clock ticks of the PostgreSQL server so far (the postmaster and every
        process it started: backends, WAL writer, autovacuum), when it runs on this machine and its
        data directory can be read; None for SQLite (it runs inside the gateway) or a remote server."""
        if self.kind != "postgresql" or self.admin_url is None:
            return None
        import psycopg

        try:
            with psycopg.connect(self.admin_url, autocommit=True) as admin:
                row = admin.execute("SHOW data_directory").fetchone()
            postmaster = int((Path(str(row[0])) / "postmaster.pid").read_text(encoding="ascii").split()[0])  # type: ignore[index]
        except (psycopg.Error, OSError, ValueError, IndexError):
            return None
        return sum(cpu_ticks(pid) for pid in (postmaster, *children_of(postmaster)))

    def close(self) -> None:
        if self.kind == "postgresql" and self.admin_url and self._created:
            import psycopg

            with psycopg.connect(self.admin_url, autocommit=True) as admin:
                for database in self._created:
                    admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        self._created.clear()


def children_of(parent: int) -> list[int]:
    """The processes whose parent id (in /proc/PID/stat) is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _stat_fields(int(entry.name))[1:2] == [str(parent)]:
            found.append(int(entry.name))
    return found


def cpu_ticks(pid: int) -> int:
    """User + system CPU clock ticks of ``pid`` so far (0 once it has ended)."""
    fields = _stat_fields(pid)
    return int(fields[11]) + int(fields[12]) if fields else 0


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (state, parent id, ...); empty once the process ended."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    return stat[stat.rindex(")") + 2 :].split()


@contextlib.contextmanager
def bench_store(kind: str, directory: Path, database_url: str | None = None) -> Iterator[BenchStore]:
    """The store for a benchmark run (a throwaway cluster for PostgreSQL without a URL)."""
    if kind == "sqlite":
        yield BenchStore(kind, directory)
        return
    if database_url is not None:
        store = BenchStore(kind, directory, database_url)
        try:
            yield store
        finally:
            store.close()
        return
    sys.path.insert(0, str(REPO / "scripts"))
    from postgres_cluster import throwaway_cluster

    with throwaway_cluster() as cluster:
        print(f"store: a throwaway PostgreSQL cluster on 127.0.0.1:{cluster.port} ({cluster.folder})", flush=True)
        store = BenchStore(kind, directory, cluster.admin_url)
        try:
            yield store
        finally:
            store.close()
