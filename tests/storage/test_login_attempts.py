"""Login attempts counted in the database: parallel reservations from two stores (two processes on one
SQLite file, two nodes on one PostgreSQL database) never let more than the limit in."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

from gateway.settings import Settings
from gateway.storage.login_attempts import AttemptRule, Backoff, Refused, Reservation, release_attempt, reserve_attempt
from gateway.storage.store import Store, open_store

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
BACKOFF = Backoff(window=timedelta(minutes=15), first=timedelta(seconds=1), longest=timedelta(seconds=60))
#: Four stores (four processes or nodes) and rounds of parallel attempts: without the PostgreSQL
#: reservation lock, several rounds let 6 to 8 in (two nodes both count 4, both insert).
STORES, ROUNDS, ATTEMPTS = 4, 10, 32


def test_parallel_reservations_from_several_stores_let_exactly_the_limit_in(settings: Settings) -> None:
    async def one_round(stores: list[Store], round: int) -> list[Reservation | Refused]:
        pair = AttemptRule(f"pair:ann{round}|203.0.113.0", limit=5, slows=False)
        account = AttemptRule(f"account:ann{round}", limit=100, slows=True)
        return list(
            await asyncio.gather(
                *(
                    reserve_attempt(
                        stores[i % len(stores)], [pair, account], attempt=f"{round}-{i}", now=NOW, backoff=BACKOFF
                    )
                    for i in range(ATTEMPTS)
                )
            )
        )

    async def scenario() -> list[list[Reservation | Refused]]:
        async with AsyncExitStack() as exits:
            stores = []
            for _ in range(STORES):
                stores.append(await open_store(settings.database).open())
                exits.push_async_callback(stores[-1].close)
            return [await one_round(stores, round) for round in range(ROUNDS)]

    rounds = asyncio.run(scenario())
    assert [sum(isinstance(result, Reservation) for result in results) for results in rounds] == [5] * ROUNDS
    waits = {result.retry_after for results in rounds for result in results if isinstance(result, Refused)}
    assert waits == {15 * 60}  # the pair is full until the oldest attempt leaves the window


def test_a_slowed_key_doubles_its_wait_and_a_released_attempt_counts_nowhere(settings: Settings) -> None:
    network = AttemptRule("network:203.0.113.0", limit=2, slows=True)
    pair = AttemptRule("pair:bob|203.0.113.0", limit=5, slows=False)

    async def scenario() -> list[Reservation | Refused]:
        store = await open_store(settings.database).open()
        try:
            results: list[Reservation | Refused] = []

            async def attempt(second: int) -> Reservation | Refused:
                now = NOW + timedelta(seconds=second)
                results.append(
                    await reserve_attempt(store, [pair, network], attempt=f"t{len(results)}", now=now, backoff=BACKOFF)
                )
                return results[-1]

            for second in (0, 0, 0, 1, 2):
                await attempt(second)
            right = await attempt(4)
            assert isinstance(right, Reservation)
            await release_attempt(store, right)  # the right password: as if it had never been tried
            await attempt(4)
            await attempt(4)
            return results
        finally:
            await store.close()

    outcomes = [result.retry_after if isinstance(result, Refused) else "in" for result in asyncio.run(scenario())]
    # two in; the third waits 1 s after the newest; then 2 s (doubled) after the attempt at 1 s; the released
    # attempt at 4 s does not count, so the next at 4 s is in, and the one after it waits 4 s (doubled again)
    assert outcomes == ["in", "in", 1, "in", 1, "in", "in", 4]
