"""Dashboard sessions (server-side rows behind a signed id, timeouts, CSRF) and login throttling, on real SQLite."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from gateway.accounts.sessions import SessionCodec, SessionPolicy, Sessions, purge_expired_sessions
from gateway.accounts.throttle import LoginThrottle, Refused, Reservation, ThrottlePolicy
from gateway.settings import Secret
from gateway.storage.store import Store
from gateway.storage.users import add_user, grant, remove_user, set_password
from tests.stores import open_test_store

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
KEYS = [Secret("old-key-for-sessions"), Secret("new-key-for-sessions")]
POLICY = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
codec = SessionCodec(KEYS, POLICY)
T = TypeVar("T")


def on_database(tmp_path: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    store = open_test_store(tmp_path / "db.sqlite3")  # on PostgreSQL: created here, outside the event loop

    async def run() -> T:
        db = await store.open()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def rows(tmp_path: Path, sql: str) -> list[tuple[object, ...]]:
    """What ``sql`` reads on the test's store, read apart from the code under test."""
    return [tuple(row) for row in on_database(tmp_path, lambda db: db.fetch_all(sql))]


def test_every_login_gets_fresh_256_bit_ids_and_keys_rotate() -> None:
    first, _ = codec.start(7, NOW)
    second, cookie = codec.start(7, NOW)
    assert first.session_id != second.session_id and first.csrf_token != second.csrf_token
    assert len(first.session_id) >= 43  # 32 random bytes in base64url
    _, old_cookie = SessionCodec(KEYS[:1]).start(7, NOW)
    assert codec.session_id_of(old_cookie) is not None  # signed with a key still listed
    assert SessionCodec([Secret("another-key-entirely")]).session_id_of(cookie) is None


@pytest.mark.parametrize("cookie", [None, "", "garbage", "x" * 2000, "eyJ1Ijo3fQ.forged-signature"])
def test_a_forged_or_broken_cookie_is_no_session(cookie: str | None) -> None:
    assert codec.session_id_of(cookie) is None


def test_a_tampered_cookie_is_no_session() -> None:
    _, cookie = codec.start(7, NOW)
    payload, signature = cookie.rsplit(".", 1)
    assert codec.session_id_of(payload + "." + signature[::-1]) is None


def test_a_session_is_a_row_found_by_the_ids_hash_and_the_id_is_never_stored(tmp_path: Path) -> None:
    async def work(db: Store) -> tuple[str, str, bool, bool]:
        sessions = Sessions(db, KEYS, POLICY)
        user = await add_user(db, "ann", "x", is_admin=True, now=NOW)
        session, cookie = await sessions.start(user, NOW, network="203.0.113.0/24")
        loaded = await sessions.load(cookie, NOW + timedelta(minutes=29))
        assert loaded is not None and loaded.user_id == user
        forged = await sessions.load(codec.start(user, NOW)[1], NOW)  # well signed, never stored
        return session.session_id, session.csrf_token, loaded.csrf_matches(session.csrf_token), forged is None

    session_id, csrf, csrf_ok, forged_refused = on_database(tmp_path, work)
    assert csrf_ok and forged_refused
    stored = rows(tmp_path, "SELECT id_hash, network, csrf_token FROM sessions")
    assert stored == [(hashlib.sha256(session_id.encode()).hexdigest(), "203.0.113.0/24", csrf)]
    for table in ("sessions", "users"):
        assert session_id not in repr(rows(tmp_path, f"SELECT * FROM {table}"))  # noqa: S608 - fixed names
    for file in tmp_path.glob("db.sqlite3*"):  # SQLite's files, the WAL's old pages included
        assert session_id.encode() not in file.read_bytes()


def test_timeouts_end_a_session_and_last_seen_is_written_once_a_minute(tmp_path: Path) -> None:
    async def work(db: Store) -> list[bool]:
        sessions = Sessions(db, KEYS, POLICY)
        user = await add_user(db, "ann", "x", is_admin=True, now=NOW)
        _, idle = await sessions.start(user, NOW, network=None)
        _, active = await sessions.start(user, NOW, network=None)
        seen = [await sessions.load(idle, NOW + timedelta(minutes=29)) is not None]
        seen.append(await sessions.load(idle, NOW + timedelta(minutes=29, seconds=30)) is not None)
        seen.append(await sessions.load(idle, NOW + timedelta(minutes=60)) is not None)  # 31 idle minutes
        for minute in range(0, 12 * 60, 20):  # active all along, but not forever
            assert await sessions.load(active, NOW + timedelta(minutes=minute)) is not None
        seen.append(await sessions.load(active, NOW + timedelta(hours=12, seconds=1)) is not None)
        return seen

    assert on_database(tmp_path, work) == [True, True, False, False]


def test_logout_password_role_and_removal_end_the_sessions(tmp_path: Path) -> None:
    async def work(db: Store) -> list[bool]:
        sessions = Sessions(db, KEYS, POLICY)
        ann = await add_user(db, "ann", "x", is_admin=False, now=NOW)
        cookies = [(await sessions.start(ann, NOW, network=None))[1] for _ in range(4)]
        await sessions.end(cookies[0])
        ended = [await sessions.load(cookies[0], NOW) is None, await sessions.load(cookies[1], NOW) is None]
        await set_password(db, "ann", "y", now=NOW)
        ended.append(all([await sessions.load(cookie, NOW) is None for cookie in cookies]))
        fresh = (await sessions.start(ann, NOW, network=None))[1]
        await grant(db, "ann", "shop", "viewer")
        ended.append(await sessions.load(fresh, NOW) is None)
        fresh = (await sessions.start(ann, NOW, network=None))[1]
        await remove_user(db, "ann")
        ended.append(await sessions.load(fresh, NOW) is None)
        return ended

    assert on_database(tmp_path, work) == [True, False, True, True, True]
    assert rows(tmp_path, "SELECT count(*) FROM sessions") == [(0,)]


def test_maintenance_purges_expired_sessions(tmp_path: Path) -> None:
    async def work(db: Store) -> int:
        sessions = Sessions(db, KEYS, POLICY)
        user = await add_user(db, "ann", "x", is_admin=True, now=NOW)
        await sessions.start(user, NOW - timedelta(hours=1), network=None)  # idle too long
        await sessions.start(user, NOW, network=None)
        return await purge_expired_sessions(db, NOW, POLICY)

    assert on_database(tmp_path, work) == 1
    assert rows(tmp_path, "SELECT count(*) FROM sessions") == [(1,)]


STRICT = ThrottlePolicy(window=timedelta(minutes=15), per_pair=3, account_slow_after=5, network_slow_after=8)


def test_the_pair_is_refused_the_account_slowed_and_a_success_clears_the_pair(tmp_path: Path) -> None:
    async def work(db: Store) -> list[Reservation | Refused]:
        throttle = LoginThrottle(db, STRICT)
        results = [await throttle.reserve("ADA", "203.0.113.7", NOW + timedelta(minutes=m)) for m in range(3)]
        results.append(await throttle.reserve("ada", "203.0.113.99", NOW + timedelta(minutes=3)))  # pair full
        results.append(await throttle.reserve("ada", "198.51.100.1", NOW + timedelta(minutes=3)))  # other network
        results.append(await throttle.reserve("ada", "203.0.113.7", NOW + timedelta(minutes=15, seconds=1)))
        good = await throttle.reserve("bob", "192.0.2.1", NOW)
        assert isinstance(good, Reservation)
        await throttle.release(good)
        return results

    results = on_database(tmp_path, work)
    assert [type(r).__name__ for r in results] == ["Reservation"] * 3 + ["Refused", "Reservation", "Reservation"]
    refused = results[3]
    assert isinstance(refused, Refused) and refused.retry_after == 12 * 60  # the oldest leaves at 15 min
    keys = {str(row[0]) for row in rows(tmp_path, "SELECT key FROM login_attempts")}
    assert "pair:ada|203.0.113.0/24" in keys and "network:203.0.113.0/24" in keys
    assert not any("203.0.113.7" in key for key in keys) and not any("bob" in key for key in keys)


def test_failures_from_many_networks_slow_the_account_with_a_growing_capped_delay(tmp_path: Path) -> None:
    async def work(db: Store) -> list[int]:
        throttle = LoginThrottle(db, STRICT)
        for network in range(5):  # five networks, one failure each: at the threshold
            assert isinstance(await throttle.reserve("ada", f"198.51.{network}.1", NOW), Reservation)
        waits = []
        at = NOW
        for network in range(5, 14):
            result = await throttle.reserve("ada", f"198.51.{network}.1", at)
            assert isinstance(result, Refused)  # slowed, even from a network that never failed
            waits.append(result.retry_after)
            at += timedelta(seconds=result.retry_after)
            assert isinstance(await throttle.reserve("ada", f"198.51.{network}.1", at), Reservation)
        return waits

    waits = on_database(tmp_path, work)
    assert waits[:7] == [1, 2, 4, 8, 16, 32, 60] and waits[7:] == [60, 60]  # never locked: at most a minute


def test_concurrent_reservations_never_pass_the_limit(tmp_path: Path) -> None:
    async def work(db: Store) -> list[Reservation | Refused]:
        throttle = LoginThrottle(db)
        return list(await asyncio.gather(*[throttle.reserve("ada", "203.0.113.7", NOW) for _ in range(40)]))

    results = on_database(tmp_path, work)
    assert sum(isinstance(r, Reservation) for r in results) == ThrottlePolicy().per_pair
