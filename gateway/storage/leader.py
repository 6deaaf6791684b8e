"""One leader at a time for a role ("maintenance") across every process and node on one store.

Rollups, retention and salt deletion are safe to repeat, but on several nodes they would each
read a busy day's events and queue behind each other's write transactions: one node does them,
and the others only check, on every poll, whether the role has become free.

* SQLite: an exclusive ``flock`` on a file beside the database (``gateway.sqlite3.maintenance.lock``),
  held by an open descriptor. Several ``serve --workers`` processes on one file share it, and the
  kernel releases it when the holder exits or is killed, so the next poll of another process takes
  over. (A lock file on a network file system may not lock: the SQLite file must not be there either.)
* PostgreSQL: ``pg_try_advisory_lock`` on a dedicated session (``PostgresStore.session``) kept open
  for as long as the node leads. The server frees the lock when that session ends: a clean exit, a
  ``kill -9`` (the socket closes) or, with TCP keepalives, a node that vanished from the network.
  A leader checks its session on every poll; a broken one means the role may already be another's.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import weakref
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from gateway.storage.store import Store

if TYPE_CHECKING:  # psycopg is imported only where PostgreSQL is used
    from gateway.storage.postgres import PostgresStore

log = logging.getLogger("gateway.storage.leader")

#: The first key of PostgreSQL's two-key advisory locks taken here (its own space of lock ids;
#: gateway/storage/login_attempts.py uses 1201); the second is ``hashtext(role)``.
ADVISORY_LOCK_CLASS = 1202

#: A leader's session is dropped by the server within about idle + interval * count seconds of its
#: node vanishing without closing the socket (power loss, a cut network), so the role moves on.
_KEEPALIVES = (("tcp_keepalives_idle", 10), ("tcp_keepalives_interval", 5), ("tcp_keepalives_count", 3))


class _Lock(Protocol):
    @property
    def held(self) -> bool: ...

    async def try_take(self) -> bool: ...

    async def give_up(self) -> None: ...


def lock_path(database: Path, role: str) -> Path:
    """The lock file of ``role`` beside a SQLite database."""
    return database.with_name(f"{database.name}.{role}.lock")


class _FileLock:
    """An exclusive ``flock``: per open file description, so two holders in one process exclude
    each other too (two ``Maintenance`` objects in a test, like two worker processes)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None
        self._closer: weakref.finalize[Any, Any] | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    async def try_take(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._closer = weakref.finalize(self, os.close, fd)  # a holder dropped without give_up still lets go
        return True

    async def give_up(self) -> None:
        if self._closer is not None:
            self._closer()  # closing the descriptor releases the lock
        self._fd = self._closer = None


class _SessionLock:
    """A session-level advisory lock on a connection of its own, open for as long as it is held."""

    def __init__(self, store: PostgresStore, role: str) -> None:
        self._store = store
        self._role = role
        self._session: Any = None
        self._exits: AsyncExitStack | None = None

    @property
    def held(self) -> bool:
        return self._session is not None

    async def try_take(self) -> bool:
        if self._session is not None:
            if await self._alive():
                return True
            log.warning("the %s leader's database session broke; the role is taken again if free", self._role)
            await self.give_up()
        exits = AsyncExitStack()
        try:
            session = await exits.enter_async_context(self._store.session())
            for setting, value in _KEEPALIVES:
                await session.execute(f"SET {setting} = {int(value)}")
            cursor = await session.execute(
                f"SELECT pg_try_advisory_lock({ADVISORY_LOCK_CLASS}, hashtext(%s))", (self._role,)
            )
            row = await cursor.fetchone()
        except BaseException:
            await exits.aclose()
            raise
        if not (row and row[0]):
            await exits.aclose()  # a follower keeps no connection open between polls
            return False
        self._session, self._exits = session, exits
        return True

    async def _alive(self) -> bool:
        try:
            await self._session.execute("SELECT 1")
        except Exception:  # noqa: BLE001 - any failure: the session (and with it the lock) is gone
            return False
        return True

    async def give_up(self) -> None:
        exits, self._session, self._exits = self._exits, None, None
        if exits is not None:
            with contextlib.suppress(Exception):  # a broken session is closed all the same; its lock is gone
                await exits.aclose()  # the session ends: the server frees its advisory locks


class Leadership:
    """Whether this process holds ``role`` on ``store``: ``claim`` on every poll, ``release`` at stop.

    ``claim`` takes the role when it is free and keeps it while held; it never waits for it.
    """

    def __init__(self, store: Store, role: str) -> None:
        self.role = role
        path = getattr(store, "path", None)
        if store.dialect == "sqlite" and isinstance(path, Path):
            self._lock: _Lock = _FileLock(lock_path(path, role))
        elif store.dialect == "postgresql":
            self._lock = _SessionLock(cast("PostgresStore", store), role)
        else:
            raise ValueError(f"no leader lock for a {store.dialect} store without a file path")

    @property
    def leading(self) -> bool:
        return self._lock.held

    async def claim(self) -> bool:
        """True when this process leads now (it just became leader, or still is)."""
        was = self._lock.held
        leading = await self._lock.try_take()
        if leading and not was:
            log.info("this process now leads %s", self.role)
        return leading

    async def release(self) -> None:
        """Let the role go (another process takes it at its next poll); harmless when not held."""
        if self._lock.held:
            await self._lock.give_up()
            log.info("this process no longer leads %s", self.role)


@asynccontextmanager
async def hold_leadership(store: Store, role: str) -> AsyncIterator[Leadership]:
    """``async with hold_leadership(store, "maintenance") as leadership:`` — claims once on entry
    (``leadership.leading`` says whether it was won; call ``claim`` again to retry) and releases on exit."""
    leadership = Leadership(store, role)
    try:
        await leadership.claim()
        yield leadership
    finally:
        await leadership.release()
