"""The dashboard's figures against the hand-worked day of traffic of tests/storage/test_rollups.py.

Visitors of a period add up the days' (daily salts), so the two days hold 3 + 1 = 4 visitors and
the visit across midnight counts on both. Three visitors are too few for the privacy floor to
leave the arithmetic visible, so the tests of the arithmetic use ``exact``: the site with k = 1 (a
value settings refuse, the floor then changes nothing). The floor's own tests use k = 2 here and
tests/stats/test_privacy_floor.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import FixedClock
from gateway.settings import SiteSettings
from gateway.stats.figures import Figures
from gateway.stats.filters import parse_filters
from gateway.stats.period import Period
from gateway.stats.query import Stats, StatsQuery
from gateway.storage.db import Database
from gateway.storage.rollups import DIMENSIONS, day_bounds, rebuild_day, rebuild_dirty
from gateway.storage.stats import raw_figures
from tests.conftest import make_settings, site_config
from tests.storage.test_rollups import AFTER_MIDNIGHT, DAY1, DAY2, EXPECTED, FIRST_DAY, at, event, run, store

BOTH_DAYS = Period("custom", date(2026, 3, 10), date(2026, 3, 11))
FIRST = Period("custom", date(2026, 3, 10), date(2026, 3, 10))


def site(tmp_path: Path, **overrides: Any) -> SiteSettings:
    return make_settings(tmp_path, site=site_config(min_visitors=2, **overrides)).sites["shop"]


def exact(shop: SiteSettings) -> SiteSettings:
    """The site with k = 1: no day cell is under the floor, so the figures are the hand-worked ones."""
    return replace(shop, min_visitors=1)


def filled(tmp_path: Path, zone: str = "UTC", *, k: int = 2) -> tuple[Path, SiteSettings]:
    shop = site(tmp_path, timezone=zone)
    if k == 1:
        shop = exact(shop)
    path = tmp_path / "gateway.sqlite3"
    store(path, FIRST_DAY, AFTER_MIDNIGHT)
    run(path, lambda db: db.write(lambda c: rebuild_dirty(c, zones={"shop": shop.zone})))
    return path, shop


def ask(path: Path, work: Any) -> Any:
    return run(path, lambda db: work(Stats(db, FixedClock(datetime(2026, 3, 10, 9, 30, tzinfo=UTC)))))


def figures(*numbers: int) -> Figures:
    return Figures(*numbers)


@pytest.mark.parametrize(("day", "dimension", "expected"), EXPECTED)
def test_raw_events_give_the_rollups_figures(tmp_path: Path, day: str, dimension: str, expected: dict) -> None:
    path, shop = filled(tmp_path)
    start, stop = day_bounds(date.fromisoformat(day), shop.zone)
    rows = run(path, lambda db: raw_figures(db, "shop", [dimension], (), start, stop))
    assert {row[1]: tuple(row[2:]) for row in rows} == expected


def test_the_top_line_adds_up_the_days_and_compares_with_the_days_before(tmp_path: Path) -> None:
    path, shop = filled(tmp_path, k=1)
    result = ask(path, lambda stats: stats.aggregate(StatsQuery(shop, BOTH_DAYS)))
    assert result.current == figures(4, 5, 8, 11, 1, 4500)
    assert result.current.metrics() == {
        "visitors": 4,
        "visits": 5,
        "pageviews": 8,
        "views_per_visit": 1.6,
        "bounce_rate": 20.0,
        "visit_duration": 900,
    }
    assert result.previous == Figures()  # 8 and 9 March: nothing, so no change to report
    assert result.changes()["visitors"] is None
    assert not result.withheld and result.previous_withheld  # zero is withheld too


def test_a_day_under_k_adds_nothing_to_the_top_line(tmp_path: Path) -> None:
    path, shop = filled(tmp_path)  # k = 2: the 11th has one visitor
    result = ask(path, lambda stats: stats.aggregate(StatsQuery(shop, BOTH_DAYS)))
    assert result.current == figures(3, 4, 7, 9, 1, 3000)  # the 10th alone


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param(["country==FR"], figures(1, 2, 5, 7, 0, 1500), id="one is-filter: from the country rollup"),
        pytest.param(["country==FR", "page==/pricing"], figures(1, 2, 2, 2, 0, 1500), id="two filters: raw events"),
        pytest.param(["source~=GOO"], figures(1, 1, 3, 4, 0, 300), id="contains ignores case"),
        pytest.param(["referrer=="], figures(3, 3, 4, 5, 1, 2700), id="an empty value is (none)"),
        pytest.param(["country!=FR", "country!=DE"], figures(1, 1, 1, 1, 0, 1500), id="is-not filters combine"),
        pytest.param(["prop:plan==free"], figures(1, 1, 1, 2, 0, 1200), id="a custom property"),
        pytest.param(["event==signup"], figures(1, 2, 0, 2, 0, 1500), id="a custom event"),
    ],
)
def test_filters_narrow_the_top_line(tmp_path: Path, filters: list[str], expected: Figures) -> None:
    path, shop = filled(tmp_path, k=1)
    query = StatsQuery(shop, FIRST, parse_filters(filters))
    assert ask(path, lambda stats: stats.aggregate(query)).current == expected


def test_a_breakdown_folds_rows_under_k_into_other(tmp_path: Path) -> None:
    path, shop = filled(tmp_path, k=1)
    shop = replace(shop, min_visitors=2)
    more = [event(at(DAY1, "11:00"), visitor, "/pricing") for visitor in ("d", "e")]
    store(path, more)
    run(path, lambda db: db.write(lambda c: rebuild_dirty(c, zones={"shop": shop.zone})))
    result = ask(path, lambda stats: stats.breakdown(StatsQuery(shop, FIRST), "page"))
    assert [(row.value, row.figures) for row in result.rows] == [
        ("/pricing", figures(3, 4, 4, 4, 2, 1500)),
        ("/", figures(2, 3, 3, 3, 0, 3000)),
    ]
    # /signup (1, 1, 1, 1, 0, 300) + /blog (1, 1, 1, 1, 1, 0)
    assert result.other is not None and result.other.label == "(other)"
    assert result.other.figures == figures(2, 2, 2, 2, 1, 300)
    assert not result.raw


def test_a_row_that_leaves_out_fewer_than_k_takes_the_days_cell(tmp_path: Path) -> None:
    """/ has 2 of the day's 3 visitors: the day minus / would be one visitor, so / shows the day."""
    path, shop = filled(tmp_path)
    result = ask(path, lambda stats: stats.breakdown(StatsQuery(shop, FIRST), "page"))
    assert [(row.value, row.figures) for row in result.rows] == [("/", figures(3, 4, 7, 9, 1, 3000))]
    assert result.other is None


def test_a_filtered_breakdown_comes_from_raw_events_and_sorts_by_any_column(tmp_path: Path) -> None:
    path, shop = filled(tmp_path)
    query = StatsQuery(exact(shop), FIRST, parse_filters(["browser==Chrome"]))
    result = ask(path, lambda stats: stats.breakdown(query, "source", sort="visit_duration", descending=True))
    assert result.raw
    # Chrome visits: Google (a, 300 s), direct (a, 1200 s), newsletter (c, 1500 s)
    assert [(row.value, row.figures.visit_duration) for row in result.rows] == [
        ("newsletter", 1500),
        ("Direct / None", 1200),
        ("Google", 300),
    ]
    # k = 2: Chrome has 2 of the 10th's 3 visitors, Firefox 1; Chrome named would give Firefox away
    # (all minus Chrome), so neither is named that day, and a filter on Chrome matches nothing.
    floored = StatsQuery(shop, FIRST, parse_filters(["browser==Chrome"]))
    result = ask(path, lambda stats: stats.breakdown(floored, "source"))
    assert result.rows == [] and result.other is None


def test_breakdowns_sort_by_the_column_asked(tmp_path: Path) -> None:
    path, shop = filled(tmp_path)
    more = [event(at(DAY1, "11:00"), visitor, "/pricing") for visitor in ("d", "e")]
    store(path, more)
    run(path, lambda db: db.write(lambda c: rebuild_dirty(c, zones={"shop": shop.zone})))
    query = StatsQuery(shop, FIRST)
    by_visitors = ask(path, lambda stats: stats.breakdown(query, "page"))
    assert [(row.value, row.figures.visitors) for row in by_visitors.rows] == [("/pricing", 3), ("/", 2)]
    by_name = ask(path, lambda stats: stats.breakdown(query, "page", sort="value", descending=False))
    assert [row.value for row in by_name.rows] == ["/", "/pricing"]
    by_bounce = ask(path, lambda stats: stats.breakdown(query, "page", sort="bounce_rate"))
    assert [row.value for row in by_bounce.rows] == ["/pricing", "/"]  # d and e bounced


def test_daily_series_and_withheld_buckets(tmp_path: Path) -> None:
    path, shop = filled(tmp_path)
    buckets = ask(path, lambda stats: stats.timeseries(StatsQuery(shop, BOTH_DAYS), "day"))
    assert [(b.label, b.figures, b.withheld) for b in buckets] == [
        (DAY1, figures(3, 4, 7, 9, 1, 3000), False),
        (DAY2, Figures(), True),  # one visitor: withheld, and its figures are zeros
    ]
    previous = ask(path, lambda stats: stats.timeseries(StatsQuery(shop, BOTH_DAYS), "day", previous=True))
    assert [b.label for b in previous] == ["2026-03-08", "2026-03-09"]


def test_monthly_series_adds_days(tmp_path: Path) -> None:
    path, shop = filled(tmp_path)
    period = Period("custom", date(2026, 2, 20), date(2026, 3, 31))
    buckets = ask(path, lambda stats: stats.timeseries(StatsQuery(shop, period), "month"))
    assert [(b.label, b.figures.visitors) for b in buckets] == [("2026-02", 0), ("2026-03", 3)]  # the 11th: 1 < k


def test_a_day_in_new_york_holds_the_visit_that_crossed_utc_midnight(tmp_path: Path) -> None:
    path, shop = filled(tmp_path, "America/New_York", k=1)  # 10 March 2026: UTC-4 (daylight time began on the 8th)
    result = ask(path, lambda stats: stats.aggregate(StatsQuery(shop, FIRST)))
    assert result.current == figures(3, 4, 8, 11, 1, 3000)  # the visit across UTC midnight counts once
    nothing = ask(
        path, lambda stats: stats.aggregate(StatsQuery(shop, Period("custom", date(2026, 3, 11), date(2026, 3, 11))))
    )
    assert nothing.current == Figures()
    hours = ask(path, lambda stats: stats.timeseries(StatsQuery(shop, FIRST), "hour"))
    assert len(hours) == 24 and hours[0].label == "2026-03-10 00:00"
    five = hours[5]  # 09:00-09:05 UTC: visit 1
    assert five.label == "2026-03-10 05:00" and five.figures.pageviews == 3 and five.figures.events == 4


def test_a_day_in_paris_starts_the_late_visit_on_the_next_day(tmp_path: Path) -> None:
    path, shop = filled(tmp_path, "Europe/Paris", k=1)  # UTC+1: 23:50 UTC is 00:50 on the 11th
    first = ask(path, lambda stats: stats.aggregate(StatsQuery(shop, FIRST)))
    assert first.current == figures(2, 3, 6, 8, 1, 1500)
    second = StatsQuery(shop, Period("custom", date(2026, 3, 11), date(2026, 3, 11)))
    assert ask(path, lambda stats: stats.aggregate(second)).current == figures(1, 1, 2, 3, 0, 1500)
    entries = ask(
        path,
        lambda stats: stats.breakdown(
            StatsQuery(exact(site(tmp_path / "k", timezone="Europe/Paris")), second.period), "entry_page"
        ),
    )
    assert [(row.value, row.figures.visits) for row in entries.rows] == [("/", 1)]  # the visit started on the 11th


def test_a_dst_day_has_23_hourly_buckets(tmp_path: Path) -> None:
    path, shop = filled(tmp_path, "America/New_York")
    spring = Period("custom", date(2026, 3, 8), date(2026, 3, 8))
    hours = ask(path, lambda stats: stats.timeseries(StatsQuery(shop, spring), "hour"))
    assert len(hours) == 23


def test_goals_convert_against_the_periods_visitors(tmp_path: Path) -> None:
    path, _ = filled(tmp_path)
    shop = exact(
        site(tmp_path / "goals", goals=[{"name": "Signup", "event": "signup"}, {"name": "Pricing", "page": "/pri*"}])
    )
    results = ask(path, lambda stats: stats.goals(StatsQuery(shop, BOTH_DAYS)))
    assert [(r.goal.name, r.visitors, r.events, r.conversion_rate, r.withheld) for r in results] == [
        ("Signup", 2, 3, 50.0, False),  # a on the 10th, c on the 11th (a new id: a new visitor)
        ("Pricing", 2, 3, 50.0, False),  # pageviews of /pricing: visits 1 and 3 on the 10th, 4 on the 11th
    ]


def test_a_funnel_counts_visits_completing_the_steps_in_order(tmp_path: Path) -> None:
    path, _ = filled(tmp_path)
    shop = exact(
        site(
            tmp_path / "funnel",
            goals=[
                {"name": "Pricing", "page": "/pricing"},
                {"name": "Signup", "event": "signup"},
                {"name": "Blog", "page": "/blog"},
            ],
            funnels=[{"name": "Buy", "steps": ["Pricing", "Signup", "Blog"]}],
        )
    )
    steps = ask(path, lambda stats: stats.funnel(StatsQuery(shop, BOTH_DAYS), shop.funnels[0]))
    assert [(s.goal.name, s.visits, s.drop_off, s.conversion_rate) for s in steps] == [
        ("Pricing", 3, 0, 100.0),
        ("Signup", 3, 0, 100.0),
        ("Blog", 0, 0, 0.0),  # visit 2 read the blog, but never saw the pricing first: withheld, so all zeros
    ]


def test_realtime_withholds_a_lone_visitor(tmp_path: Path) -> None:
    path, shop = filled(tmp_path)
    now = at(DAY1, "15:22")
    result = ask(path, lambda stats: stats.realtime(shop, now))
    assert result.visitors == 0 and result.withheld  # one visitor: rounded down to 0
    assert result.pages == [] and result.other is None
    busy = ask(path, lambda stats: stats.realtime(exact(shop), datetime.fromisoformat(f"{DAY1}T09:04:00+00:00")))
    assert busy.visitors == 1 and [(row.value, row.figures.visitors) for row in busy.pages] == [
        ("/", 1),
        ("/pricing", 1),
    ]


def test_every_dimension_has_a_breakdown(tmp_path: Path) -> None:
    path, shop = filled(tmp_path)
    for dimension in DIMENSIONS:
        result = ask(path, lambda stats, d=dimension: stats.breakdown(StatsQuery(shop, FIRST), d))
        assert result.total.visitors >= 0
    assert ask(path, lambda stats: stats.prop_keys(StatsQuery(exact(shop), FIRST))) == ["plan"]
    assert ask(path, lambda stats: stats.prop_keys(StatsQuery(shop, FIRST))) == []  # each plan: one visitor


def test_no_change_is_shown_against_a_withheld_previous_period(tmp_path: Path) -> None:
    path, shop = filled(tmp_path)
    day2 = Period("custom", date(2026, 3, 11), date(2026, 3, 11))  # previous: the 10th, 3 visitors
    assert ask(path, lambda stats: stats.aggregate(StatsQuery(exact(shop), day2))).changes()["visitors"] == -66.7
    withheld_now = ask(path, lambda stats: stats.aggregate(StatsQuery(shop, day2)))  # k = 2: the 11th is withheld
    assert withheld_now.withheld and withheld_now.current == Figures()
    assert set(withheld_now.changes().values()) == {None}
    day3 = Period("custom", date(2026, 3, 12), date(2026, 3, 12))  # previous: the 11th, 1 visitor < k
    result = ask(path, lambda stats: stats.aggregate(StatsQuery(shop, day3)))
    assert result.previous_withheld and set(result.changes().values()) == {None}


def test_a_filtered_answer_follows_its_days_rollups_not_the_raw_events(tmp_path: Path) -> None:
    """Filtered views read each day's stored visits (gateway/storage/visit_days.py), built at the day's
    rollup generation: events deleted behind the gateway's back change nothing until the day is rolled
    up again, and then only that day is read again."""
    path, shop = filled(tmp_path)
    query = StatsQuery(exact(shop), BOTH_DAYS, parse_filters(["browser==Chrome", "os==Linux"]))  # two: stored visits
    today = FixedClock(datetime(2026, 3, 12, 9, 0, tzinfo=UTC))

    async def thrice(db: Database) -> tuple[Figures, Figures, Figures]:
        stats = Stats(db, today)
        first = (await stats.aggregate(query)).current
        await db.write(lambda c: c.execute("DELETE FROM events"))
        second = (await stats.aggregate(query)).current
        await db.write(lambda c: rebuild_day(c, "shop", DAY2))
        return first, second, (await stats.aggregate(query)).current

    first, second, third = run(path, thrice)
    assert first == figures(3, 4, 7, 10, 0, 4500)  # the Chrome visits of both days
    assert second == first  # the days' rollups did not change: neither did their visits
    assert third == figures(2, 3, 6, 8, 0, 3000)  # the 11th rolled up again (empty now), the 10th as it was


def test_stored_visits_give_the_raw_events_answers(tmp_path: Path) -> None:
    """Two "is" filters, one "is not", and their breakdowns: the same figures from the stored visits as
    from raw events (Stats(raw_events=True) reads every cell from the events)."""
    path, shop = filled(tmp_path)
    views = (["browser==Chrome", "os==Linux"], ["browser!=Chrome"], ["country==DE", "device!=mobile"])
    now = FixedClock(datetime(2026, 3, 12, 9, 0, tzinfo=UTC))

    async def both(db: Database) -> list[tuple[object, object]]:
        stored, raw = Stats(db, now), Stats(db, now, raw_events=True)
        pairs: list[tuple[object, object]] = []
        for filters in views:
            query = StatsQuery(exact(shop), BOTH_DAYS, parse_filters(filters))
            pairs.append((await stored.aggregate(query), await raw.aggregate(query)))
            for dimension in ("page", "source", "country", "entry_page", "exit_page", "event", "browser"):
                pairs.append((await stored.breakdown(query, dimension), await raw.breakdown(query, dimension)))
        return pairs

    for stored, raw in run(path, both):
        assert stored == raw


def test_breakdowns_read_together_give_the_same_rows_as_one_by_one(tmp_path: Path) -> None:
    """A page of panels reads its breakdowns in one pass (``Stats.prefetch``): the same rows as each
    breakdown read alone, and as raw events, for "is", "is not" and two conditions."""
    path, shop = filled(tmp_path)
    views = (["browser==Chrome", "os==Linux"], ["browser!=Chrome"], ["country==DE", "device!=mobile"])
    dimensions = ("page", "source", "country", "entry_page", "exit_page", "event", "browser")
    now = FixedClock(datetime(2026, 3, 12, 9, 0, tzinfo=UTC))

    async def both(db: Database) -> list[tuple[object, object, object]]:
        together, alone, raw = Stats(db, now), Stats(db, now), Stats(db, now, raw_events=True)
        triples: list[tuple[object, object, object]] = []
        for filters in views:
            query = StatsQuery(exact(shop), BOTH_DAYS, parse_filters(filters))
            await together.prefetch(query, dimensions)
            for dimension in dimensions:
                triples.append(
                    (
                        await together.breakdown(query, dimension),
                        await alone.breakdown(query, dimension),
                        await raw.breakdown(query, dimension),
                    )
                )
        return triples

    for together, alone, raw in run(path, both):
        assert together == alone == raw


def test_a_remembered_sum_of_settled_days_is_read_again_after_they_are_rebuilt(tmp_path: Path) -> None:
    path, shop = filled(tmp_path)
    week = Period("custom", date(2026, 3, 10), date(2026, 3, 12))  # the 10th and 11th settle; the 12th is fresh

    async def scenario(db: Database) -> tuple[int, int]:
        stats = Stats(db, FixedClock(datetime(2026, 3, 12, 9, 0, tzinfo=UTC)))
        before = await stats.breakdown(StatsQuery(exact(shop), week), "page")
        # Rebuild the 10th with fewer events (as a rebuild after a purge of raw events would):
        # the same number of rows may come back under the same rowids, the generation still moves.
        await db.write(lambda c: c.execute("DELETE FROM events WHERE pathname = '/blog'"))
        await db.write(lambda c: rebuild_day(c, "shop", DAY1))
        after = await stats.breakdown(StatsQuery(exact(shop), week), "page")
        return before.total.pageviews, after.total.pageviews

    assert run(path, scenario) == (8, 7)
