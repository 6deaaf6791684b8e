"""What storage code writes against on either store: a connection that runs ``?``-placeholder SQL.

SQL is written with ``?`` placeholders and a sequence of values, or ``:name`` placeholders and a
mapping, as sqlite3 takes them. A transaction function (``store.write(fn)``) receives a ``Connection``: on SQLite the
``sqlite3.Connection`` itself, on PostgreSQL an adapter that rewrites the placeholders and binds
values client-side (gateway/storage/postgres.py). The same function then runs on both stores;
``is_postgres`` lets the few statements whose dialects differ pick their own text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]


class Cursor(Protocol):
    """The part of a DB-API cursor the storage code uses."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The part of a DB-API connection a transaction function may use (both stores provide it)."""

    def execute(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any] | Mapping[str, Any]], /) -> Cursor: ...

    def close(self) -> None: ...


def is_postgres(connection: object) -> bool:
    """Whether a transaction function runs on PostgreSQL (the adapter says so; sqlite3 does not)."""
    return getattr(connection, "dialect", "sqlite") == "postgresql"
