"""Day packs (gateway/storage/day_packs.py) and the figures counted from them (gateway/stats/pack_figures.py):
a pack gives back exactly the rows it was made of, and every cell, breakdown row and small group's visitors
equals a plain count over those rows, for any conditions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.stats import pack_figures
from gateway.stats.figures import Figures
from gateway.storage.aggregates import Condition
from gateway.storage.day_packs import FIGURES, pack, unpack

DIMENSIONS = ("source", "country", "device", "entry_page", "exit_page")
#: Values as stored, hostile ones included (HTML, SQL, control characters): a pack keeps them as words.
WORDS = st.sampled_from(
    ["", "DE", "US", "Google", "mobile", "/", "/a", "<script>", "x'; DROP TABLE visits;--", "\x00\n", "\u00e9\u4e2d"]
)


@st.composite
def day(draw: st.DrawFn) -> tuple[list[tuple[Any, ...]], dict[str, list[tuple[Any, ...]]]]:
    """A day's visits (visit id, FIGURES, DIMENSIONS) and their pages and events (some of unknown visits)."""
    count = draw(st.integers(min_value=0, max_value=25))
    ids = draw(st.lists(st.integers(min_value=1, max_value=10**12), min_size=count, max_size=count, unique=True))
    visits = []
    for visit_id in ids:
        visitor = draw(st.integers(min_value=1, max_value=8))
        numbers = [draw(st.integers(min_value=0, max_value=50)) for _ in FIGURES[1:]]
        numbers[FIGURES.index("bounce") - 1] = draw(st.integers(0, 1))
        numbers[FIGURES.index("started") - 1] = draw(st.integers(0, 1))
        visits.append((visit_id, visitor, *numbers, *(draw(WORDS) for _ in DIMENSIONS)))
    facts: dict[str, list[tuple[Any, ...]]] = {"page": [], "event": []}
    for dimension in facts:
        for visit_id in [*ids, 0]:  # 0: a visit the day does not hold, left out
            for value in draw(st.sets(WORDS, max_size=3)):
                facts[dimension].append((visit_id, value, draw(st.integers(0, 9)), draw(st.integers(1, 9))))
    return visits, facts


CONDITION = st.builds(
    lambda dimension, operator, words: Condition(
        dimension,
        operator,
        words[0] if operator in ("is", "is_not") else "",
        tuple(words) if operator in ("in", "not_in") else (),
    ),
    st.sampled_from(("source", "country", "device")),
    st.sampled_from(("is", "is_not", "in", "not_in")),
    st.lists(WORDS, min_size=1, max_size=3, unique=True),
)


def holds(visit: Sequence[Any], condition: Condition) -> bool:
    value = visit[1 + len(FIGURES) + DIMENSIONS.index(condition.dimension)]
    wanted = condition.values if condition.operator in ("in", "not_in") else (condition.value,)
    return (value in wanted) != (condition.operator in ("is_not", "not_in"))


def figure(visit: Sequence[Any], name: str) -> int:
    return int(visit[1 + FIGURES.index(name)])


@settings(max_examples=150, deadline=None)
@given(day())
def test_a_pack_gives_back_its_rows(data: tuple[list[tuple[Any, ...]], dict[str, list[tuple[Any, ...]]]]) -> None:
    visits, facts = data
    unpacked = unpack(pack(visits, DIMENSIONS, facts))
    assert unpacked.visits == len(visits)
    for index, visit in enumerate(visits):
        assert [int(unpacked.figures[name][index]) for name in FIGURES] == list(visit[1 : 1 + len(FIGURES)])
        for offset, dimension in enumerate(DIMENSIONS, start=1 + len(FIGURES)):
            column = unpacked.columns[dimension]
            assert column.words[int(column.codes[index])] == visit[offset]
    position = {visit[0]: index for index, visit in enumerate(visits)}
    for dimension, rows in facts.items():
        stored = unpacked.facts[dimension]
        expected = [(position[row[0]], row[1], row[2], row[3]) for row in rows if row[0] in position]
        words = stored.column.words
        got = [
            (int(visit), words[int(code)], int(pageviews), int(events))
            for visit, code, pageviews, events in zip(
                stored.visit, stored.column.codes, stored.pageviews, stored.events, strict=True
            )
        ]
        assert got == expected


@settings(max_examples=200, deadline=None)
@given(day(), st.lists(CONDITION, max_size=3), st.integers(min_value=1, max_value=4))
def test_figures_from_a_pack_are_plain_counts_of_its_rows(
    data: tuple[list[tuple[Any, ...]], dict[str, list[tuple[Any, ...]]]], conditions: list[Condition], k: int
) -> None:
    visits, facts = data
    unpacked = unpack(pack(visits, DIMENSIONS, facts))
    chosen = pack_figures.matching(unpacked, conditions)
    kept = [visit for visit in visits if all(holds(visit, condition) for condition in conditions)]
    assert chosen.mask.tolist() == [visit in kept for visit in visits]
    assert chosen.positions.tolist() == [i for i, visit in enumerate(visits) if visit in kept]

    def cell(rows: list[tuple[Any, ...]], pageviews: str = "pageviews", events: str = "events") -> tuple[int, ...]:
        return (
            len({figure(v, "visitor") for v in rows}),
            len(rows),
            sum(figure(v, pageviews) for v in rows),
            sum(figure(v, events) for v in rows),
            sum(figure(v, "bounce") for v in rows),
            sum(figure(v, "duration") for v in rows),
        )

    assert pack_figures.cell(unpacked, chosen) == (cell(kept) if kept else (0,) * 6)

    def expected_rows(groups: dict[str, list[tuple[Any, ...]]], counted: Any) -> pack_figures.Rows:
        large, small, people = {}, [(0,) * 6], set()
        for value, rows in groups.items():
            visitors = {figure(v, "visitor") for v in rows}
            if len(visitors) >= k:
                large[value] = counted(rows)
            else:
                small.append(counted(rows))
                people |= visitors
        return pack_figures.Rows(large, Figures(*map(sum, zip(*small, strict=True))), len(people))

    for dimension in DIMENSIONS:
        started = dimension in ("entry_page", "exit_page")
        groups: dict[str, list[tuple[Any, ...]]] = {}
        for visit in kept:
            if not started or figure(visit, "started") == 1:
                groups.setdefault(visit[1 + len(FIGURES) + DIMENSIONS.index(dimension)], []).append(visit)
        counted = (lambda rows: cell(rows, "visit_pageviews", "visit_events")) if started else cell
        assert pack_figures.breakdown(unpacked, dimension, chosen, k) == expected_rows(groups, counted)
    assert pack_figures.breakdown(unpacked, "all", chosen, k) == expected_rows({"": kept} if kept else {}, cell)
    by_id = {visit[0]: visit for visit in kept}
    for dimension, rows in facts.items():
        joined: dict[str, list[tuple[Any, ...]]] = {}
        for visit_id, value, pageviews, events in rows:
            if visit_id in by_id:
                visit = list(by_id[visit_id])
                visit[1 + FIGURES.index("pageviews")], visit[1 + FIGURES.index("events")] = pageviews, events
                joined.setdefault(value, []).append(tuple(visit))
        assert pack_figures.breakdown(unpacked, dimension, chosen, k) == expected_rows(joined, cell)


def test_a_pack_holds_its_numbers_in_the_narrowest_type_that_fits() -> None:
    """A day of a busy site is sixty thousand visits: each column as narrow as its numbers allow."""
    visits = [(n, n, 3, 0, 1, 70_000, 1, 2, 1, "DE", "US", "mobile", "/", "/") for n in range(1, 300)]
    unpacked = unpack(pack(visits, DIMENSIONS, {"page": [], "event": []}))
    assert unpacked.figures["visitor"].dtype == np.uint16
    assert unpacked.figures["pageviews"].dtype == np.uint8
    assert unpacked.figures["duration"].dtype == np.uint32
    assert unpacked.columns["country"].codes.dtype == np.uint8
