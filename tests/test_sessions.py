"""Dashboard sessions (signed cookie, idle and absolute timeouts, CSRF) and login throttling."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.accounts.sessions import SessionCodec, SessionPolicy
from gateway.accounts.throttle import LoginThrottle, ThrottlePolicy
from gateway.settings import Secret
from gateway.storage.db import Database

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
KEYS = [Secret("old-key-for-sessions"), Secret("new-key-for-sessions")]
codec = SessionCodec(KEYS, SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12)))


def test_a_session_survives_the_round_trip_and_refreshes_its_idle_clock() -> None:
    session, cookie = codec.start(7, NOW)
    loaded = codec.load(cookie, NOW + timedelta(minutes=29))
    assert loaded is not None and loaded.user_id == 7 and loaded.session_id == session.session_id
    assert (
        loaded.csrf_matches(session.csrf_token) and not loaded.csrf_matches("forged") and not loaded.csrf_matches(None)
    )
    _, touched = codec.touch(loaded, NOW + timedelta(minutes=29))
    assert codec.load(touched, NOW + timedelta(minutes=58)) is not None  # 29 idle minutes again


@pytest.mark.parametrize(
    ("later", "why"),
    [(timedelta(minutes=31), "idle too long"), (timedelta(hours=12, seconds=1), "past the absolute limit")],
)
def test_timeouts_end_a_session(later: timedelta, why: str) -> None:
    session, cookie = codec.start(7, NOW)
    if later > timedelta(hours=1):  # active all along, but not forever
        for minute in range(0, int(later.total_seconds() // 60) - 1, 20):
            session, cookie = codec.touch(session, NOW + timedelta(minutes=minute))
    assert codec.load(cookie, NOW + later) is None, why


def test_every_login_gets_fresh_ids_and_keys_rotate() -> None:
    first, _ = codec.start(7, NOW)
    second, cookie = codec.start(7, NOW)
    assert first.session_id != second.session_id and first.csrf_token != second.csrf_token
    older = SessionCodec(KEYS[:1])
    _, old_cookie = older.start(7, NOW)
    assert codec.load(old_cookie, NOW) is not None  # signed with a key still listed
    assert SessionCodec([Secret("another-key-entirely")]).load(cookie, NOW) is None


@pytest.mark.parametrize("cookie", [None, "", "garbage", "x" * 2000, "eyJ1Ijo3fQ.forged-signature"])
def test_a_forged_or_broken_cookie_is_no_session(cookie: str | None) -> None:
    assert codec.load(cookie, NOW) is None


def test_a_tampered_cookie_is_no_session() -> None:
    _, cookie = codec.start(7, NOW)
    payload, signature = cookie.rsplit(".", 1)
    assert codec.load(payload + "." + signature[::-1], NOW) is None


def test_a_password_change_ends_older_sessions() -> None:
    _, cookie = codec.start(7, NOW)
    assert codec.load(cookie, NOW + timedelta(minutes=5), password_changed_at=NOW + timedelta(minutes=1)) is None
    assert codec.load(cookie, NOW + timedelta(minutes=5), password_changed_at=NOW - timedelta(days=1)) is not None


def test_throttling_per_account_and_per_network(tmp_path: Path) -> None:
    policy = ThrottlePolicy(window=timedelta(minutes=15), per_account=3, per_network=5)

    async def scenario() -> list[int]:
        db = await Database(tmp_path / "db.sqlite3").open()
        try:
            throttle = LoginThrottle(db, policy)
            waits = [await throttle.retry_after("ada", "203.0.113.7", NOW)]
            for minute in range(3):
                await throttle.failed("ADA", "203.0.113.7", NOW + timedelta(minutes=minute))
            waits.append(await throttle.retry_after("ada", "198.51.100.1", NOW + timedelta(minutes=3)))  # account
            waits.append(await throttle.retry_after("bob", "203.0.113.9", NOW + timedelta(minutes=3)))  # network ok
            for _ in range(2):
                await throttle.failed("bob", "203.0.113.9", NOW + timedelta(minutes=4))
            waits.append(await throttle.retry_after("carol", "203.0.113.200", NOW + timedelta(minutes=4)))  # /24 full
            waits.append(await throttle.retry_after("ada", "198.51.100.1", NOW + timedelta(minutes=15, seconds=1)))
            await throttle.succeeded("ada")
            waits.append(await throttle.retry_after("ada", "198.51.100.1", NOW + timedelta(minutes=3)))
            return waits
        finally:
            await db.close()

    waits = asyncio.run(scenario())
    assert waits[0] == 0
    assert 0 < waits[1] <= 12 * 60 + 1  # the oldest of the 3 failures leaves the window at 15 min
    assert waits[2] == 0
    assert waits[3] > 0  # five failures from 203.0.113.0/24, whoever the account
    assert waits[4] == 0  # the first failure has left the window: two of three remain
    assert waits[5] == 0  # a good password cleared the account
    with closing(sqlite3.connect(tmp_path / "db.sqlite3")) as connection:
        keys = {row[0] for row in connection.execute("SELECT key FROM login_failures")}
    assert "network:203.0.113.0/24" in keys and not any("203.0.113.7" in key for key in keys)
