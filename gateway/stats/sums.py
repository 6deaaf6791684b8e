"""Rollup rows summed over a range of days, with the settled days remembered between requests.

A breakdown over 30 days adds up every day's rows: at 10 million events a month, that is some
130,000 page rows to group, ~100 ms of SQLite each time the overview is drawn. Yet only the
newest day of a range still changes (today's rollup is redone every ``rollup_interval``); the
days before it change only when a late visit or ``rollup --rebuild`` rewrites them, or the
purge deletes them. So the sum of all days but the last is kept in memory under a fingerprint of
those days' rollups, and only the last day is read fresh on each request.

The fingerprint is the count and the highest generation of the range's days in
``rollup_generations``: triggers give a day the next generation number whenever its rollups are
written or deleted (a rebuild, a purge), so any change in the range changes it. (A rowid would
not do: SQLite reuses the largest rowid once its row is deleted.) Each process keeps its own
bounded memory of the most recent ranges.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import date, timedelta
from operator import add

from gateway.storage import stats as sql
from gateway.storage.db import Database

Sums = dict[str, tuple[int, ...]]  # value -> (visitors, visits, pageviews, events, bounces, duration)
_Key = tuple[str, str, str, str]  # site, dimension, first day, last day


class RollupSums:
    def __init__(self, database: Database, *, capacity: int = 48) -> None:
        self._db = database
        self._capacity = capacity
        self._settled: OrderedDict[_Key, tuple[tuple[int, int], Sums]] = OrderedDict()

    async def sums(self, site_id: str, dimension: str, first: date, last: date) -> Sums:
        """Each value's figures summed over the days ``first`` to ``last``."""
        fresh = _summed(await sql.rollup_breakdown(self._db, site_id, dimension, last.isoformat(), last.isoformat()))
        if first >= last:
            return fresh
        settled = await self._settled_sums(site_id, dimension, first, last - timedelta(days=1))
        if not fresh:
            return settled
        merged = dict(settled)
        for value, figures in fresh.items():
            before = merged.get(value)
            merged[value] = figures if before is None else tuple(map(add, before, figures))
        return merged

    async def _settled_sums(self, site_id: str, dimension: str, first: date, last: date) -> Sums:
        key = (site_id, dimension, first.isoformat(), last.isoformat())
        fingerprint = await sql.rollup_fingerprint(self._db, site_id, key[2], key[3])
        remembered = self._settled.get(key)
        if remembered is not None and remembered[0] == fingerprint:
            self._settled.move_to_end(key)
            return remembered[1]
        sums = _summed(await sql.rollup_breakdown(self._db, site_id, dimension, key[2], key[3]))
        self._settled[key] = (fingerprint, sums)
        self._settled.move_to_end(key)
        while len(self._settled) > self._capacity:
            self._settled.popitem(last=False)
        return sums


def _summed(rows: list[tuple[object, ...]]) -> Sums:
    # SQLite's sum() of integers is an integer, and every row has at least one day: no NULL here.
    return {str(row[0]): row[1:7] for row in rows}  # type: ignore[misc]
