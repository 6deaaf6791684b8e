"""Two nodes on one store answer alike: a node's remembered figures never outlive a rebuild or a
purge that another node (the maintenance leader) made.

Each node here is its own store object (its own connections) and its own ``Stats`` (its own
memory), on one SQLite file or one PostgreSQL database. Node A answers first and remembers; node B
changes the data and rolls the day up again, as the leader does; A must then answer what B answers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import FixedClock
from gateway.stats.filters import parse_filters
from gateway.stats.query import Stats, StatsQuery
from gateway.storage.rollups import rebuild_day
from gateway.storage.store import Store
from tests.stats.test_query import BOTH_DAYS, exact, filled
from tests.storage.test_rollups import DAY1
from tests.stores import open_test_store

NOW = FixedClock(datetime(2026, 3, 12, 9, 0, tzinfo=UTC))
VIEWS = (
    [],  # the rollups' own sums (gateway/stats/sums.py remembers settled days)
    ["browser==Chrome"],  # one "is": the rollups of that value
    ["browser==Chrome", "os==Linux"],  # two: the stored visits (gateway/stats/filtered.py remembers days)
    ["browser!=Chrome"],  # "is not"
)


@pytest.mark.parametrize("filters", VIEWS, ids=lambda filters: " & ".join(filters) or "unfiltered")
def test_a_node_never_serves_what_another_node_rebuilt(tmp_path: Path, filters: list[str]) -> None:
    import asyncio

    path, shop = filled(tmp_path)
    query = StatsQuery(exact(shop), BOTH_DAYS, parse_filters(filters))
    a_store, b_store = open_test_store(path), open_test_store(path)

    async def answers(stats: Stats) -> tuple[Any, Any]:
        return (await stats.aggregate(query)).current, (await stats.breakdown(query, "page")).rows

    async def scenario() -> tuple[Any, Any, Any]:
        a: Store = await a_store.open()
        b: Store = await b_store.open()
        try:
            on_a = Stats(a, NOW)
            before = await answers(on_a)  # A remembers the settled days
            # B, the leader, purges some of the first day's events (b's /blog on Firefox, a's /signup on
            # Chrome: every view loses something) and rolls the day up again.
            await b.write(lambda c: c.execute("DELETE FROM events WHERE pathname IN ('/blog', '/signup')"))
            await b.write(lambda c: rebuild_day(c, "shop", DAY1))
            return before, await answers(on_a), await answers(Stats(b, NOW))
        finally:
            await a.close()
            await b.close()

    before, a_after, b_after = asyncio.run(scenario())
    assert a_after == b_after  # A agrees with the node that changed the data
    assert before != a_after  # the data did change: a stale memory would have shown "before"
