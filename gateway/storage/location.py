"""Where the data lives: a SQLite file (the embedded default) or a PostgreSQL server.

``database = "data/gateway.sqlite3"`` (or ``sqlite:///data/gateway.sqlite3``) keeps SQLite;
``database = "postgresql://user@host:5432/db"`` selects PostgreSQL. Parsed once, in settings,
so a typo fails at start-up with one line rather than at the first write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

_POSTGRES_SCHEMES = ("postgresql", "postgres")
#: ``scheme://user:`` then the password up to the last ``@`` of the authority.
_USERINFO_PASSWORD = re.compile(r"^([a-zA-Z][\w+.-]*://[^:/@?#]*:)[^/?#]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*")


@dataclass(frozen=True)
class PostgresUrl:
    """A PostgreSQL connection URL; its password never appears in a repr, a log line or an error."""

    url: str

    def __repr__(self) -> str:
        return f"PostgresUrl({self.redacted!r})"

    def __str__(self) -> str:
        return self.redacted

    @property
    def redacted(self) -> str:
        """The URL with any password (``user:PASSWORD@`` or ``password=...``) replaced by ``***``."""
        shown = _USERINFO_PASSWORD.sub(r"\1***@", self.url, count=1)
        return _QUERY_PASSWORD.sub(r"\1***", shown)

    @property
    def database_name(self) -> str:
        return urlsplit(self.url).path.lstrip("/") or "postgres"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "localhost"


DatabaseLocation = Path | PostgresUrl


def parse_database(text: str) -> DatabaseLocation:
    """A path or ``sqlite:///path`` -> the SQLite file; ``postgresql://...`` -> PostgreSQL.

    Raises ValueError with a one-line reason for anything else (an unknown scheme, a URL with no host).
    """
    value = text.strip()
    if not value:
        raise ValueError("is empty")
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme in _POSTGRES_SCHEMES:
        parts = urlsplit(value)
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError("names no PostgreSQL host (postgresql://user@host:5432/db)")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise ValueError("has a port that is not a number") from None
        return PostgresUrl(value)
    if scheme == "sqlite":
        path = value[len("sqlite://") :]
        if not path.startswith("/") or path == "/":
            raise ValueError("is not sqlite:///relative/path or sqlite:////absolute/path")
        return Path(path[1:])
    if scheme:
        raise ValueError(f"has the scheme {scheme!r}: use a file path, sqlite:///path or postgresql://...")
    return Path(value)
