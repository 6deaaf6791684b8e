"""Daily salts: one per UTC day, shared by workers, yesterday's deleted once its visits are over;
visitor ids keyed by a secret that is never in the database."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.ingest.visitor import VISITOR_KEY_LABEL, SaltKeeper, day_key, visitor_id, visitor_key
from gateway.settings import Secret, SettingsError, settings_from_dict
from tests.stores import database_location, open_test_store, query

KEY = b"k" * 32


def salt_days(path: Path) -> list[str]:
    return [row[0] for row in query(database_location(path), "SELECT day FROM salts ORDER BY day")]


def test_salts_rotate_at_midnight_and_yesterdays_is_deleted_after_the_grace_period(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    day_one = datetime(2026, 3, 10, 23, 50, tzinfo=UTC)

    store = open_test_store(path)  # outside the loop: a PostgreSQL run creates the database here

    async def scenario() -> list[object]:
        db = await store.open()
        keeper, other_worker = SaltKeeper(db, key=KEY), SaltKeeper(db, key=KEY)
        seen: list[object] = []
        first = await keeper.salts(day_one)
        seen.append(first.current == (await other_worker.salts(day_one)).current)  # shared by workers
        after_midnight = await keeper.salts(day_one + timedelta(minutes=20))  # 00:10: grace period
        seen.append(after_midnight.current != first.current)
        seen.append(after_midnight.previous == first.current)
        seen.append(salt_days(path))
        after_grace = await keeper.salts(day_one + timedelta(minutes=41))  # 00:31
        seen.append(after_grace.previous is None and after_grace.current == after_midnight.current)
        seen.append(salt_days(path))
        await db.close()
        return seen

    shared, rotated, kept_for_grace, during, grace_over, after = asyncio.run(scenario())
    assert shared and rotated and kept_for_grace and grace_over
    assert during == ["2026-03-10", "2026-03-11"]
    assert after == ["2026-03-11"]  # no one can recompute yesterday's visitor ids


def test_cached_salts_answer_only_what_salts_would_answer_from_memory(tmp_path: Path) -> None:
    """The endpoint's fast path: never a stale salt after midnight, nor yesterday's after the grace period."""
    day_one = datetime(2026, 3, 10, 23, 50, tzinfo=UTC)

    store = open_test_store(tmp_path / "db.sqlite3")

    async def scenario() -> list[object]:
        db = await store.open()
        keeper = SaltKeeper(db, key=KEY)
        seen: list[object] = [keeper.cached(day_one)]  # nothing read yet
        first = await keeper.salts(day_one)
        seen.append(keeper.cached(day_one + timedelta(minutes=5)) is first)
        seen.append(keeper.cached(day_one + timedelta(minutes=10)))  # 00:00: a new day
        in_grace = await keeper.salts(day_one + timedelta(minutes=20))
        seen.append(keeper.cached(day_one + timedelta(minutes=39)) is in_grace)  # 00:29
        seen.append(keeper.cached(day_one + timedelta(minutes=40)))  # 00:30: yesterday's salt must go
        await db.close()
        return seen

    assert asyncio.run(scenario()) == [None, True, None, True, None]


def test_the_visitor_key_comes_from_the_setting_else_from_the_oldest_secret_key() -> None:
    configured = Secret("v" * 40)
    old, new = Secret("old-secret-key"), Secret("new-secret-key")
    assert visitor_key(configured, (old, new)) == visitor_key(configured, ())  # the setting wins
    assert visitor_key(None, (old, new)) == visitor_key(None, (old,))  # appending a secret key changes nothing
    assert visitor_key(None, (old, new)) != visitor_key(None, (new,))  # dropping the oldest does
    assert visitor_key(None, (old,)) != visitor_key(configured, ())
    # domain-separated: neither the secret key itself nor a plain hash of it
    assert visitor_key(None, (old,)) not in (old.value.encode(), hashlib.sha256(old.value.encode()).digest())
    assert visitor_key(None, (old,)) == hmac.new(b"old-secret-key", VISITOR_KEY_LABEL, hashlib.sha256).digest()
    with pytest.raises(ValueError, match="no visitor key"):
        visitor_key(None, ())


def test_a_visitor_id_needs_both_the_key_and_the_salt() -> None:
    salt = b"s" * 32
    base = visitor_id(day_key(KEY, salt), "shop", "203.0.113.7", "Firefox")
    assert base != visitor_id(day_key(b"j" * 32, salt), "shop", "203.0.113.7", "Firefox")
    assert base != visitor_id(day_key(KEY, b"t" * 32), "shop", "203.0.113.7", "Firefox")
    assert base != visitor_id(salt, "shop", "203.0.113.7", "Firefox")  # the salt alone is not the key


def test_keepers_with_another_key_count_the_same_visitor_under_another_id(tmp_path: Path) -> None:
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)

    store = open_test_store(tmp_path / "db.sqlite3")
    location = database_location(tmp_path / "db.sqlite3")

    async def scenario() -> tuple[bytes, bytes, bytes]:
        db = await store.open()
        try:
            ours = await SaltKeeper(db, key=KEY).salts(now)
            rotated = await SaltKeeper(db, key=b"r" * 32).salts(now)
        finally:
            await db.close()
        [(salt,)] = query(location, "SELECT salt FROM salts")
        return ours.current, rotated.current, bytes(salt)

    ours, rotated, salt = asyncio.run(scenario())
    assert ours == day_key(KEY, salt) and rotated == day_key(b"r" * 32, salt)
    assert ours != rotated and salt not in (ours, rotated)  # the process keeps day keys, not the salt


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("k" * 32, "k" * 32, id="a long random string"),
        pytest.param("", None, id="empty: derived from secret_keys"),
    ],
)
def test_the_visitor_key_setting(value: str, expected: str | None) -> None:
    settings = settings_from_dict({"secret_keys": ["s"], "visitor_key": value})
    assert (settings.visitor_key.value if settings.visitor_key else None) == expected
    assert value not in repr(settings) or not value


@pytest.mark.parametrize("value", ["too-short-secret", 12345, ["a" * 40]], ids=["short", "a number", "a list"])
def test_a_bad_visitor_key_is_refused_without_being_quoted(value: object) -> None:
    with pytest.raises(SettingsError) as raised:
        settings_from_dict({"secret_keys": ["s"], "visitor_key": value}, source="my.toml")
    message = str(raised.value)
    assert "my.toml: visitor_key: expected a random string of at least 32 characters" in message
    assert "\n" not in message and str(value) not in message
