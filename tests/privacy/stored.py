"""Everything a store holds, as bytes an attacker would search for a value that must never be stored."""

from __future__ import annotations

from pathlib import Path

from gateway.storage.location import DatabaseLocation, PostgresUrl
from tests.stores import query


def stored_bytes(location: DatabaseLocation) -> bytes:
    """SQLite: the raw bytes of the file and of its ``-wal`` and ``-shm`` (deleted rows and free pages included).

    PostgreSQL: every row of every table of the gateway's database, as text. Its files live in the server's
    cluster, not beside the gateway; what anyone who can read that database (a dump, a replica, a stolen
    login) gets is its rows, so that is what is searched.
    """
    if isinstance(location, PostgresUrl):
        tables = query(
            location,
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        )
        assert tables, "the gateway's schema has tables"
        rows = [row for (table,) in tables for row in query(location, f"SELECT t::text FROM {table} t")]  # noqa: S608 - names from the catalog
        return "\n".join(text for (text,) in rows).encode()
    path = Path(location)
    files = [path.with_name(path.name + suffix) for suffix in ("", "-wal", "-shm")]
    assert files[0].exists(), f"no database at {path}"
    return b"".join(file.read_bytes() for file in files if file.exists())
