"""The privacy floor, rule by rule (``gateway.stats.privacy``), on a real SQLite file through the
storage helpers: events stored as the ingest path stores them, rolled up, asked through ``Stats``.

Each rule has a table of cases, and an attack: world A holds the lone visitor, world B does not
(or holds them with another secret), and the attacker's queries, or what the attacker computes
from them (a difference of two answers), must come out the same in both worlds. A test fails when
the attack succeeds. k is 5 (the default) throughout.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import FixedClock
from gateway.ingest.event import AnonymousEvent
from gateway.settings import SiteSettings
from gateway.stats.figures import Figures
from gateway.stats.filters import parse_filters
from gateway.stats.period import Period
from gateway.stats.query import Stats, StatsQuery
from gateway.storage.retention import purge
from gateway.storage.rollups import rebuild_dirty
from tests.conftest import make_settings, site_config
from tests.storage.test_rollups import GOOGLE, NEWSLETTER, event, run, store

K = 5
DAY = date(2026, 3, 10)
NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)  # every day of March is settled
World = list[AnonymousEvent]


def at(day: date, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC) + timedelta(minutes=minute)


def crowd(n: int, tag: str, *pages: str, day: date = DAY, start: int = 0, **fields: Any) -> World:
    """``n`` visitors of ``day``, each viewing ``pages`` (``/`` if none) a minute apart."""
    events = []
    for number in range(n):
        for offset, page in enumerate(pages or ("/",)):
            events.append(event(at(day, start + number + offset), f"{tag}{number}-{day}", page, **fields))
    return events


def lone(page: str = "/secret", *, day: date = DAY, **fields: Any) -> World:
    return crowd(1, "lone", page, day=day, start=600, **fields)


def shop(tmp_path: Path, **overrides: Any) -> SiteSettings:
    return make_settings(tmp_path, site=site_config(min_visitors=K, **overrides)).sites["shop"]


def ask(
    tmp_path: Path,
    world: World,
    work: Callable[[Stats, SiteSettings], Awaitable[Any]],
    *,
    counted_for: int | None = K,
    raw_events: bool = False,
    **site: Any,
) -> Any:
    """Store ``world`` in a fresh database, roll it up, and run ``work`` on it.

    ``counted_for``: the k the rollup counts the people behind "(other)" for, as the gateway does for
    the site's own k (None: not counted, as before migration 0011; another k: as after k changed).
    """
    folder = tmp_path / f"world{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    path = folder / "gateway.sqlite3"
    settings = shop(folder, **site)
    store(path, world)
    floors = None if counted_for is None else {"shop": counted_for}
    run(path, lambda db: db.write(lambda c: rebuild_dirty(c, zones={"shop": settings.zone}, floors=floors)))
    return run(path, lambda db: work(Stats(db, FixedClock(NOW), raw_events=raw_events), settings))


def days(first: date, last: date | None = None) -> Period:
    return Period("custom", first, last or first)


def query(site: SiteSettings, period: Period, *filters: str) -> StatsQuery:
    return StatsQuery(site, period, parse_filters(filters))


async def top_line(stats: Stats, site: SiteSettings, period: Period, *filters: str) -> Figures:
    return (await stats.aggregate(query(site, period, *filters))).current


async def rows(stats: Stats, site: SiteSettings, period: Period, dimension: str, *filters: str) -> dict[str, int]:
    result = await stats.breakdown(query(site, period, *filters), dimension)
    found = {row.value: row.figures.visitors for row in result.rows}
    if result.other is not None:
        found["(other)"] = result.other.figures.visitors
    return found


def published(values: Iterable[int]) -> bool:
    return all(value == 0 or value >= K for value in values)


# Rule 1: the day floor.


@pytest.mark.parametrize(
    ("visitors", "shown", "withheld"), [(0, 0, True), (1, 0, True), (4, 0, True), (5, 5, False), (12, 12, False)]
)
def test_a_day_under_k_publishes_zero_and_is_withheld(
    tmp_path: Path, visitors: int, shown: int, withheld: bool
) -> None:
    async def work(stats: Stats, site: SiteSettings) -> Any:
        result = await stats.aggregate(query(site, days(DAY)))
        buckets = await stats.timeseries(query(site, days(DAY)), "day")
        return result.current, result.withheld, [(b.figures, b.withheld) for b in buckets]

    current, flag, buckets = ask(tmp_path, crowd(visitors, "v"), work)
    assert current.visitors == shown and flag is withheld
    assert buckets == [(current, withheld)]
    if withheld:
        assert current == Figures()  # every number of a withheld figure is zero


def test_attack_two_periods_minus_each_other_isolate_nobody(tmp_path: Path) -> None:
    """A two-day range minus its first day used to be one visitor's figures."""
    second = DAY + timedelta(days=1)
    crowd_days = crowd(30, "c") + crowd(2, "d", day=second)  # the 11th: two others, under k with or without

    async def attack(stats: Stats, site: SiteSettings) -> Any:
        both, first = days(DAY, second), days(DAY)
        return (
            await top_line(stats, site, both),
            await top_line(stats, site, first),
            [b.figures for b in await stats.timeseries(query(site, both), "day")],
            await rows(stats, site, both, "page"),
            await rows(stats, site, both, "country"),
        )

    world_a = ask(tmp_path, [*crowd_days, *lone(day=second, country="CN")], attack)
    world_b = ask(tmp_path, crowd_days, attack)
    assert world_a == world_b


def test_attack_one_person_returning_on_five_days_never_forms_a_row(tmp_path: Path) -> None:
    week = [DAY + timedelta(days=n) for n in range(5)]
    # each day: 30 visitors on /, and 3 on each of /x and /y: an "(other)" of 6 with or without the lone visitor
    crowds = [
        e
        for day in week
        for e in crowd(30, "c", day=day)
        + crowd(3, "x", "/x", day=day, start=40)
        + crowd(3, "y", "/y", day=day, start=50)
    ]
    returning = [e for day in week for e in lone("/my-secret-page", day=day)]

    async def attack(stats: Stats, site: SiteSettings) -> Any:
        period = days(week[0], week[-1])
        found = await rows(stats, site, period, "page")
        return (
            sorted(value for value in found if value != "(other)"),
            await top_line(stats, site, period, "page==/my-secret-page"),
            await top_line(stats, site, period, "page~=secret"),
        )

    world_a = ask(tmp_path, crowds + returning, attack)
    assert world_a == ask(tmp_path, crowds, attack)
    assert "/my-secret-page" not in world_a[0]


# Rule 2: named values, complementary suppression.


@pytest.mark.parametrize(
    ("countries", "expected"),
    [
        pytest.param({"DE": 10, "FR": 6}, {"DE": 10, "FR": 6}, id="no remainder: every value named"),
        pytest.param({"DE": 10, "FR": 6, "US": 3}, {"DE": 10}, id="other of 3: withheld, the smallest too"),
        pytest.param({"DE": 10, "FR": 6, "US": 3, "JP": 2}, {"DE": 10, "FR": 6, "(other)": 5}, id="other of 5 stays"),
        pytest.param({"DE": 6, "FR": 6, "US": 1}, {"FR": 6}, id="ties by value: DE withheld first"),
        pytest.param({"DE": 4, "FR": 3}, {"(other)": 7}, id="nothing named, other of 7"),
        pytest.param({"DE": 2, "FR": 1}, {}, id="nothing of k: nothing at all"),
    ],
)
def test_complementary_suppression(tmp_path: Path, countries: dict[str, int], expected: dict[str, int]) -> None:
    world = [e for country, n in countries.items() for e in crowd(n, country, country=country)]
    found = ask(tmp_path, world, lambda stats, site: rows(stats, site, days(DAY), "country"))
    assert found == expected


def test_attack_top_line_minus_named_rows_never_leaves_a_small_group(tmp_path: Path) -> None:
    """The issue's "(other)" of 1-4 visitors: top line minus the named rows gave the lone visitor."""
    base = crowd(10, "de", country="DE") + crowd(6, "fr", country="FR")

    async def attack(stats: Stats, site: SiteSettings) -> Any:
        total = (await top_line(stats, site, days(DAY))).visitors
        found = await rows(stats, site, days(DAY), "country")
        named = {value: n for value, n in found.items() if value != "(other)"}
        return named, total - sum(named.values()), await top_line(stats, site, days(DAY), "country==CN")

    world_a = ask(tmp_path, [*base, *lone(country="CN")], attack)
    world_b = ask(tmp_path, [*base, *lone(country="JP")], attack)
    assert world_a == world_b  # which country the lone visitor has is not in any answer
    assert published([world_a[1]])
    absent = ask(tmp_path, base, attack)
    assert published([absent[1]]) and absent[2] == world_a[2] == Figures()


# Rule 2: "(other)" stands for k DISTINCT visitors, not for k cells.


def ordinary_day() -> World:
    """Thirty visitors from DE: / (20), /pricing (20), /docs (10); signup (10, plan free), download
    (8, plan pro); Google (15) or a newsletter (15)."""
    events: World = []
    for i in range(30):
        visitor, source = f"o{i}-{DAY}", GOOGLE if i < 15 else NEWSLETTER
        pages = [page for page, seen in (("/", i < 20), ("/pricing", i >= 10), ("/docs", i % 3 == 0)) if seen]
        for offset, page in enumerate(pages):
            events.append(event(at(DAY, i * 5 + offset), visitor, page, country="DE", **(source if not offset else {})))
        if i < 10:
            events.append(event(at(DAY, i * 5 + 3), visitor, pages[-1], name="signup", props={"plan": "free"}))
        elif i < 18:
            events.append(event(at(DAY, i * 5 + 3), visitor, pages[-1], name="download", props={"plan": "pro"}))
    return events


def lone_on_many(values: int) -> World:
    """One visitor, ``values`` visits an hour apart, each from its own referrer, on its own page, firing
    its own event with its own plan: ``values`` distinct unnamed values of page, event, prop:plan,
    entry and exit page, source and referrer, each of one visitor."""
    events: World = []
    for n in range(values):
        start = at(DAY, 400 + 60 * n)
        origin = {"referrer_host": f"lone-{n}.example", "source": f"lone-{n}.example", "channel": "referral"}
        events.append(event(start, f"lone-{DAY}", f"/secret-{n}", country="DE", **origin))
        events.append(event(start, f"lone-{DAY}", f"/secret-{n}", name=f"secret-{n}", props={"plan": f"s{n}"}))
    return events


MANY = ("page", "event", "prop:plan", "entry_page", "exit_page", "source", "referrer")


async def every_breakdown(stats: Stats, site: SiteSettings, *filters: str) -> dict[str, Any]:
    found = {}
    for dimension in MANY:
        result = await stats.breakdown(query(site, days(DAY), *filters), dimension)
        found[dimension] = [(row.label, tuple(row.figures)) for row in [*result.rows, *filter(None, [result.other])]]
    return found


@pytest.mark.parametrize("filters", [(), ("country==DE",)], ids=["rollups", "filtered: raw events"])
@pytest.mark.parametrize(
    "counted_for", [K, None, 3], ids=["counted with the rollups", "counted from raw events", "k changed since"]
)
def test_attack_one_visitor_on_five_small_values_is_no_other(
    tmp_path: Path, filters: tuple[str, ...], counted_for: int | None
) -> None:
    """The hole of issue 10: "(other)" added the cells of the small values, so one visitor on five
    unnamed pages (events, plans, entry pages, sources) was an "(other)" of 5 visitors. World A: five
    of each; world B: one. Every breakdown, "(other)" included, must read the same."""
    ordinary = ordinary_day()

    def attack(stats: Stats, site: SiteSettings) -> Any:
        return every_breakdown(stats, site, *filters)

    world_a = ask(tmp_path, ordinary + lone_on_many(5), attack, counted_for=counted_for)
    world_b = ask(tmp_path, ordinary + lone_on_many(1), attack, counted_for=counted_for)
    assert world_a == world_b
    for dimension, found in world_a.items():
        assert found, dimension  # something is published: the attack is answered, not refused
        assert all(label != "(other)" for label, _ in found), dimension


def test_other_of_k_distinct_visitors_publishes_the_sum_of_its_cells(tmp_path: Path) -> None:
    """Five more visitors, each on a page of their own: "(other)" holds k people, so it shows, adding
    its cells (the lone visitor's five pages included); counted from raw events, or after k changed,
    it reads the same."""
    world = ordinary_day() + lone_on_many(5)
    world += [e for n in range(K) for e in crowd(1, f"tail{n}-", f"/tail-{n}", start=300 + n, country="DE")]

    async def work(stats: Stats, site: SiteSettings) -> Any:
        return await rows(stats, site, days(DAY), "page"), await rows(stats, site, days(DAY), "page", "country==DE")

    expected = {"/": 20, "/pricing": 20, "/docs": 10, "(other)": 10}
    assert ask(tmp_path, world, work) == (expected, expected)
    assert (
        ask(tmp_path, world, work, counted_for=None)
        == ask(tmp_path, world, work, counted_for=4)
        == (
            expected,
            expected,
        )
    )


def test_other_of_a_day_whose_raw_events_are_gone_reads_as_under_k(tmp_path: Path) -> None:
    """Rolled up before "(other)" was counted, then past the events' retention: nobody can count its
    people any more, so it publishes nothing (and the smallest named value is withheld with it)."""
    world = ordinary_day() + [e for n in range(K) for e in crowd(1, f"tail{n}-", f"/tail-{n}", start=300 + n)]

    async def purge_then_ask(stats: Stats, site: SiteSettings) -> Any:
        before = await rows(stats, site, days(DAY), "page")
        await stats._db.write(  # the daily purge, with the events' retention ending after DAY
            lambda c: purge(
                c, events_before=NOW, rollups_before="2000-01-01", consent_before=datetime(2000, 1, 1, tzinfo=UTC)
            )
        )
        return before, await rows(Stats(stats._db, FixedClock(NOW)), site, days(DAY), "page")

    before, after = ask(tmp_path, world, purge_then_ask, counted_for=None)
    assert before == {"/": 20, "/pricing": 20, "/docs": 10, "(other)": 5}
    assert after == {"/": 20, "/pricing": 20}  # ties by value: /docs (10) is the smallest, withheld


def test_the_raw_events_give_every_breakdown_the_rollups_give(tmp_path: Path) -> None:
    """``Stats(raw_events=True)``, the benchmark's baseline, answers like the rollups."""
    world = ordinary_day() + lone_on_many(5) + crowd(6, "t", "/tail", start=300)

    async def work(stats: Stats, site: SiteSettings) -> Any:
        return await every_breakdown(stats, site), await top_line(stats, site, days(DAY))

    assert ask(tmp_path, world, work, raw_events=True) == ask(tmp_path, world, work)


# Rule 3: filters see only named values.

#: DE, FR and CA are named; US and BR (and a lone CN) make an "(other)" of k or more.
NAMED_WORLD = [
    *crowd(10, "de", country="DE"),
    *crowd(6, "fr", country="FR"),
    *crowd(5, "ca", country="CA"),
    *crowd(2, "us", country="US"),
    *crowd(3, "br", country="BR"),
]


@pytest.mark.parametrize(
    ("filters", "visitors"),
    [
        pytest.param(["country==DE"], 10, id="is a named value"),
        pytest.param(["country==CN"], 0, id="is a value not named: nothing"),
        pytest.param(["country!=CN"], 27, id="is not a value not named: everything"),
        pytest.param(["country!=DE"], 17, id="is not a named value"),
        pytest.param(["country~=a"], 5, id="contains: the named values containing it"),
        pytest.param(["country~=c"], 5, id="contains ignores case, never reaches the unnamed CN"),
        pytest.param(["country~=N"], 0, id="contains only an unnamed value: nothing"),
        pytest.param(["country~=R"], 6, id="contains FR, never the unnamed BR"),
    ],
)
def test_filters_see_only_named_values(tmp_path: Path, filters: list[str], visitors: int) -> None:
    world = [*NAMED_WORLD, *lone(country="CN")]
    found = ask(tmp_path, world, lambda stats, site: top_line(stats, site, days(DAY), *filters))
    assert found.visitors == visitors


def test_attack_probing_values_and_contains_patterns_finds_nothing(tmp_path: Path) -> None:
    """The issue's probes: every country code through a filter, and "contains" patterns letter by
    letter for a lone visitor's campaign, referrer and event name."""
    base = NAMED_WORLD + crowd(8, "sp", utm_campaign="spring", referrer_host="news.example")
    secret = lone(country="CN", utm_campaign="secret-plan", referrer_host="secret.example")
    secret += [event(at(DAY, 700), "lone0-2026-03-10", "/secret", name="secret-event")]
    probes = [
        *(f"country=={code}" for code in ("CN", "JP", "US", "DE", "BR")),
        *(f"utm_campaign~={text}" for text in ("s", "se", "sec", "secret", "-", "plan")),
        *(f"referrer~={text}" for text in ("s", "secret", ".example")),
        *(f"event~={text}" for text in ("s", "secret")),
        "event==secret-event",
        "page==/secret",
    ]

    async def attack(stats: Stats, site: SiteSettings) -> Any:
        return [await top_line(stats, site, days(DAY), probe) for probe in probes]

    world_a = ask(tmp_path, [*base, *secret], attack)
    # The same lone visitor with other secrets. (Absent, they would leave "(other)" empty, and
    # complementary suppression would then name "spring": a sign that someone is outside the named
    # values, never of who or what.)
    other = lone(country="JP", utm_campaign="public-x", referrer_host="other.example")
    other += [event(at(DAY, 700), "lone0-2026-03-10", "/secret", name="other-event")]
    world_b = ask(tmp_path, [*base, *other], attack)
    assert world_a == world_b


def test_attack_a_filter_and_its_complement(tmp_path: Path) -> None:
    """All minus ``country!=CN`` was the lone Chinese visitor."""

    async def attack(stats: Stats, site: SiteSettings) -> Any:
        everyone = await top_line(stats, site, days(DAY))
        complement = await top_line(stats, site, days(DAY), "country!=CN")
        return tuple(a - b for a, b in zip(everyone, complement, strict=True))

    world_a = ask(tmp_path, [*NAMED_WORLD, *lone(country="CN")], attack)
    assert world_a == ask(tmp_path, NAMED_WORLD, attack) == (0, 0, 0, 0, 0, 0)


# Rule 4: drop-one, and breakdown rows snapped to their view.

DROP_ONE_WORLD = crowd(26, "a", "/", "/pricing", country="DE") + crowd(3, "b", "/", country="FR")


@pytest.mark.parametrize(
    ("filters", "visitors"),
    [
        pytest.param(["page==/"], 29, id="every visitor: kept"),
        pytest.param(["page==/pricing"], 29, id="leaves out 3 of 29: ignored"),
        pytest.param(["country==DE"], 0, id="DE is not named (all minus DE would be FR's 3): nothing"),
        pytest.param(["page==/pricing", "browser==Chrome"], 29, id="two conditions: the one leaving out 3 ignored"),
        pytest.param(["page==/pricing", "page==/"], 0, id="no pageview is of two pages"),
        pytest.param(["page!=/pricing"], 29, id="is not: everything but /pricing pageviews, 29 visitors"),
    ],
)
def test_one_condition_never_splits_off_a_small_group(tmp_path: Path, filters: list[str], visitors: int) -> None:
    found = ask(tmp_path, DROP_ONE_WORLD, lambda stats, site: top_line(stats, site, days(DAY), *filters))
    assert found.visitors == visitors


def test_attack_a_filter_minus_the_top_line(tmp_path: Path) -> None:
    """The lone visitor never viewed /pricing: the top line minus ``page==/pricing`` would be their
    figures. World A: they viewed / once; world B: twice; world C: they are absent."""
    base = crowd(30, "a", "/", "/pricing")

    async def attack(stats: Stats, site: SiteSettings) -> Any:
        everyone = await top_line(stats, site, days(DAY))
        filtered = await top_line(stats, site, days(DAY), "page==/pricing")
        mixed = await top_line(stats, site, days(DAY), "page==/pricing", "page!=/nowhere")
        return tuple(a - b for a, b in zip(everyone, filtered, strict=True)), filtered == mixed

    world_a = ask(tmp_path, [*base, *lone("/")], attack)
    twice = [*lone("/"), event(at(DAY, 601), "lone0-2026-03-10", "/")]
    assert world_a == ask(tmp_path, [*base, *twice], attack) == ((0, 0, 0, 0, 0, 0), True)
    absent = ask(tmp_path, base, attack)  # no one is left out: the filter's own figures
    assert absent == ((0, 0, 30, 30, 0, 0), True)


@pytest.mark.parametrize(
    ("readers", "filters", "expected"),
    [
        pytest.param(2, [], {"/": 32}, id="/ leaves out 2 of 32: it shows the day, /blog nothing"),
        pytest.param(5, [], {"/": 30, "/blog": 10}, id="/ leaves out 5: both rows as they are"),
        pytest.param(2, ["browser==Chrome"], {"/": 32}, id="the same under a filter (raw events)"),
        pytest.param(2, ["country!=CN", "browser!=Opera"], {"/": 32}, id="filters matching everything"),
    ],
)
def test_a_breakdown_row_leaving_out_few_takes_the_views_cell(
    tmp_path: Path, readers: int, filters: list[str], expected: dict[str, int]
) -> None:
    """Thirty visitors on /, five of them on /blog too, and ``readers`` more on /blog only."""
    world = crowd(30, "a", "/") + crowd(5, "a", "/blog", start=40) + crowd(readers, "r", "/blog", start=100)
    found = ask(tmp_path, world, lambda stats, site: rows(stats, site, days(DAY), "page", *filters))
    assert found == expected


def test_attack_breakdown_row_against_the_top_line(tmp_path: Path) -> None:
    """Thirty visitors on /, five of them on /blog too; the lone visitor reads /blog only: the top
    line minus the / row would be them."""
    base = crowd(30, "a", "/") + crowd(5, "a", "/blog", start=40)

    async def attack(stats: Stats, site: SiteSettings) -> Any:
        everyone = (await top_line(stats, site, days(DAY))).visitors
        found = await rows(stats, site, days(DAY), "page")
        filtered = await rows(stats, site, days(DAY), "page", "country!=CN")
        hours = await stats.timeseries(query(site, days(DAY)), "hour")
        return everyone - found.get("/", 0), found == filtered, published(b.figures.visitors for b in hours)

    world_a = ask(tmp_path, [*base, *lone("/blog")], attack)
    assert world_a == ask(tmp_path, base, attack) == (0, True, True)


# Funnels: a step is its previous step plus one condition.


def funnel_site() -> dict[str, Any]:
    return {
        "goals": [{"name": "Pricing", "page": "/pricing"}, {"name": "Signup", "event": "signup"}],
        "funnels": [{"name": "Buy", "steps": ["Pricing", "Signup"]}],
    }


def buyers(n: int, tag: str, *, start: int = 0) -> World:
    events = []
    for number in range(n):
        visitor = f"{tag}{number}-{DAY}"
        events.append(event(at(DAY, start + 2 * number), visitor, "/pricing"))
        events.append(event(at(DAY, start + 2 * number + 1), visitor, "/pricing", name="signup"))
    return events


async def funnel(stats: Stats, site: SiteSettings) -> list[tuple[int, int, bool]]:
    steps = await stats.funnel(query(site, days(DAY)), site.funnels[0])
    return [(step.visits, step.drop_off, step.withheld) for step in steps]


@pytest.mark.parametrize(
    ("world", "expected"),
    [
        pytest.param(crowd(20, "x") + buyers(10, "b"), [(10, 0, False), (10, 0, False)], id="all convert"),
        pytest.param(
            crowd(20, "x") + buyers(10, "b") + crowd(8, "p", "/pricing", start=200),
            [(18, 0, False), (10, 8, False)],
            id="8 drop off",
        ),
        pytest.param(
            crowd(20, "x") + buyers(10, "b") + crowd(3, "p", "/pricing", start=200),
            [(13, 0, False), (13, 0, False)],
            id="3 drop off: the step takes the one before",
        ),
        pytest.param(crowd(20, "x") + buyers(3, "b"), [(0, 0, True), (0, 0, True)], id="3 convert: withheld, zeros"),
    ],
)
def test_funnel_steps_and_drop_off(tmp_path: Path, world: World, expected: list[tuple[int, int, bool]]) -> None:
    assert ask(tmp_path, world, funnel, **funnel_site()) == expected


def test_attack_funnel_drop_off_shows_no_small_group(tmp_path: Path) -> None:
    """The issue's "0 visits · 3 dropped off": the lone visitor saw the pricing and left."""
    base = crowd(20, "x") + buyers(10, "b")

    async def attack(stats: Stats, site: SiteSettings) -> Any:
        return [drop_off for _, drop_off, _ in await funnel(stats, site)]

    world_a = ask(tmp_path, [*base, *lone("/pricing")], attack, **funnel_site())
    assert world_a == ask(tmp_path, base, attack, **funnel_site()) == [0, 0]


# Goals: the view plus one condition.


def test_goals_are_floored_and_snapped(tmp_path: Path) -> None:
    goals = {"goals": [{"name": "Pricing", "page": "/pricing"}, {"name": "Blog", "page": "/blog"}]}
    world = crowd(20, "x") + crowd(3, "p", "/pricing", start=100) + crowd(18, "b", "/blog", start=200)

    async def work(stats: Stats, site: SiteSettings) -> Any:
        return [
            (g.goal.name, g.visitors, g.conversion_rate, g.withheld) for g in await stats.goals(query(site, days(DAY)))
        ]

    assert ask(tmp_path, world, work, **goals) == [("Pricing", 0, 0.0, True), ("Blog", 18, 43.9, False)]


# Rule 6: realtime rounds down to a multiple of k.


def arrivals(n: int, tag: str, page: str, now: datetime) -> World:
    """``n`` visitors with one pageview each in the two minutes before ``now``."""
    return [event(now - timedelta(seconds=120 - number), f"{tag}{number}-{DAY}", page) for number in range(n)]


@pytest.mark.parametrize(("visitors", "shown"), [(0, 0), (1, 0), (4, 0), (5, 5), (9, 5), (10, 10), (14, 10)])
def test_realtime_rounds_down_to_a_multiple_of_k(tmp_path: Path, visitors: int, shown: int) -> None:
    now = at(DAY, 30)
    world = arrivals(visitors, "r", "/", now)

    async def work(stats: Stats, site: SiteSettings) -> Any:
        result = await stats.realtime(site, now)
        return result.visitors, result.withheld, [(row.value, row.figures.visitors) for row in result.pages]

    found = ask(tmp_path, world, work)
    assert found == (shown, shown < K, [("/", shown)] if shown else [])


def test_attack_realtime_one_arrival_changes_nothing(tmp_path: Path) -> None:
    now = at(DAY, 30)
    base = arrivals(12, "r", "/", now) + arrivals(6, "s", "/shop", now)

    async def attack(stats: Stats, site: SiteSettings) -> Any:
        result = await stats.realtime(site, now)
        other = result.other.figures.visitors if result.other else 0
        return result.visitors, [(row.value, row.figures.visitors) for row in result.pages], other

    arrival = [event(now - timedelta(minutes=1), "new-2026-03-10", "/secret")]
    assert ask(tmp_path, base + arrival, attack) == ask(tmp_path, base, attack) == (15, [("/", 10), ("/shop", 5)], 0)


def test_attack_realtime_other_needs_k_distinct_visitors(tmp_path: Path) -> None:
    """One arrival on five small pages was a realtime "(other)" of 5; five arrivals, one page each, are."""
    now = at(DAY, 30)
    base = arrivals(12, "r", "/", now)
    one = [event(now - timedelta(seconds=100 - n), "one-2026-03-10", f"/secret-{n}") for n in range(5)]
    five = [event(now - timedelta(seconds=100 - n), f"five{n}-2026-03-10", f"/small-{n}") for n in range(5)]

    async def work(stats: Stats, site: SiteSettings) -> Any:
        result = await stats.realtime(site, now)
        return [(row.value, row.figures.visitors) for row in result.pages], result.other

    assert ask(tmp_path, base + one, work) == ([("/", 10)], None)
    pages, other = ask(tmp_path, base + one + five, work)
    assert pages == [("/", 10)] and other is not None and other.figures.visitors == 10


# Rule 7: custom property keys.


@pytest.mark.parametrize(
    ("world", "keys"),
    [
        pytest.param(crowd(5, "p", props={"plan": "pro"}), ["plan"], id="one value of k visitors"),
        pytest.param(crowd(4, "p", props={"plan": "pro"}), [], id="under k"),
        pytest.param(
            [e for n in range(5) for e in crowd(1, "p", day=DAY + timedelta(days=n), props={"plan": "pro"})],
            [],
            id="one visitor on each of five days",
        ),
    ],
)
def test_prop_keys_need_k_visitors_on_one_day(tmp_path: Path, world: World, keys: list[str]) -> None:
    period = days(DAY, DAY + timedelta(days=6))
    assert ask(tmp_path, world, lambda stats, site: stats.prop_keys(query(site, period))) == keys


def test_attack_a_lone_visitors_property_key_is_not_listed(tmp_path: Path) -> None:
    base = crowd(10, "c", props={"plan": "pro"})
    secret = lone(props={"ssn": "123"})

    async def attack(stats: Stats, site: SiteSettings) -> Any:
        return await stats.prop_keys(query(site, days(DAY))), await top_line(stats, site, days(DAY), "prop:ssn==123")

    assert ask(tmp_path, base + secret, attack) == ask(tmp_path, base, attack) == (["plan"], Figures())


# Every published number: zero or at least k.


@pytest.mark.parametrize("seed", range(4))
def test_every_published_figure_is_zero_or_at_least_k(tmp_path: Path, seed: int) -> None:
    chance = random.Random(seed)
    world: World = []
    for number in range(40):
        day = DAY + timedelta(days=chance.randrange(3))
        pages = chance.sample(["/", "/a", "/b", "/c", "/d"], chance.randrange(1, 4))
        country = chance.choice(["DE", "FR", "CN", "US"])
        world += crowd(1, f"v{number}-", *pages, day=day, start=number * 5, country=country)
    period = days(DAY, DAY + timedelta(days=2))
    views = [(), ("country==DE",), ("page==/a",), ("country!=FR", "page~=b"), ("page~=/",)]

    async def work(stats: Stats, site: SiteSettings) -> list[int]:
        numbers = []
        for filters in views:
            numbers.append((await top_line(stats, site, period, *filters)).visitors)
            for dimension in ("page", "country", "hour"):
                numbers.extend((await rows(stats, site, period, dimension, *filters)).values())
            numbers.extend(b.figures.visitors for b in await stats.timeseries(query(site, period, *filters), "day"))
        return numbers

    assert published(ask(tmp_path, world, work))
