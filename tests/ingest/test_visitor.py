"""Daily salts: one per UTC day, shared by workers, yesterday's deleted once its visits are over."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.ingest.visitor import SaltKeeper
from gateway.storage.db import Database


def salt_days(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as connection:
        return [row[0] for row in connection.execute("SELECT day FROM salts ORDER BY day")]


def test_salts_rotate_at_midnight_and_yesterdays_is_deleted_after_the_grace_period(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    day_one = datetime(2026, 3, 10, 23, 50, tzinfo=UTC)

    async def scenario() -> list[object]:
        db = await Database(path).open()
        keeper, other_worker = SaltKeeper(db), SaltKeeper(db)
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

    async def scenario() -> list[object]:
        db = await Database(tmp_path / "db.sqlite3").open()
        keeper = SaltKeeper(db)
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
