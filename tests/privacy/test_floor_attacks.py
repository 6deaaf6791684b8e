"""The privacy floor against a determined reader, on a live server: the attacks of issue 10, section 2.

The game every test here plays: two worlds that differ only in one lone visitor's attributes. In
world "a" the lone visitor comes from CN (Beijing), uses Lynx on Plan9, arrives from
``lone-a.example`` with campaign ``secret-a``, views ``/lonely-a``, fires ``lone-a`` and completes a
funnel; in world "b" the same lone visitor is from JP (Tokyo), on Links/Haiku, from
``lone-b.example`` with ``secret-b``, on ``/lonely-b``. Everything else — thirty ordinary visitors
a day on two days — is the same, and the lone visitor comes back on five days (each day a new
visitor id: daily salts), alone on the last three; there, in world "a" they view four pages and
in world "b" one (a bounce), so subtracting periods would tell the worlds apart by pageviews,
bounce rate and duration.

If a reader (a dashboard viewer, a shared link, an API key) can tell the worlds apart, they have
learned something about a group of fewer than k people, which is exactly what the floor forbids.
So each attack — probing filters, "contains" patterns, "(other)" rows, subtracting periods,
subtracting a filter from its complement, breakdown against top line, funnels, the returning
visitor's row — is sent to both worlds and must get byte-identical answers; and inside one world,
a filter naming the lone visitor's value answers exactly like a filter naming nothing at all.

Each test also checks that the attack has something to find: the lone visitor's events are in the
database of world "a" (so a floor that did nothing would fail these tests).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import create_app
from gateway.accounts.api_keys import create_api_key
from gateway.accounts.shared_links import SharedLinks
from gateway.clock import FixedClock
from gateway.ingest.event import AnonymousEvent
from gateway.storage.aggregates import DIMENSIONS
from gateway.storage.events import insert_events
from gateway.storage.rollups import rebuild_dirty
from gateway.storage.store import Store
from tests.conftest import LiveServer, make_settings, site_config
from tests.module_stores import store_kind_per_module  # noqa: F401 - the two worlds are built once per store
from tests.storage.test_rollups import event
from tests.stores import query
from tests.web.test_dashboard_auth import Dashboard, on_database

pytestmark = pytest.mark.integration

K = 5
DAYS = [date(2026, 3, 2) + timedelta(days=offset) for offset in range(5)]  # Monday to Friday
BUSY_DAYS = DAYS[:2]  # the ordinary visitors come on the first two days only
NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
BREAKDOWN_DIMENSIONS = [name for name in DIMENSIONS if name not in ("all", "hour")] + ["prop:plan"]


def _period(first: date, last: date) -> dict[str, str]:
    return {"period": "custom", "from": first.isoformat(), "to": last.isoformat()}


#: Periods an attacker subtracts: the whole week, the busy days, each day alone, and overlapping pairs.
PERIODS = [
    _period(DAYS[0], DAYS[-1]),
    _period(DAYS[0], DAYS[1]),
    *(_period(day, day) for day in DAYS),
    _period(DAYS[1], DAYS[2]),
    _period(DAYS[0], DAYS[2]),
    _period(DAYS[2], DAYS[4]),
]

LONE = {
    "a": {
        "country": "CN", "region": "CN-BJ", "city": "Beijing", "browser": "Lynx", "os": "Plan9",
        "referrer": "lone-a.example", "campaign": "secret-a", "page": "/lonely-a", "event": "lone-a",
    },
    "b": {
        "country": "JP", "region": "JP-13", "city": "Tokyo", "browser": "Links", "os": "Haiku",
        "referrer": "lone-b.example", "campaign": "secret-b", "page": "/lonely-b", "event": "lone-b",
    },
}  # fmt: skip

#: What an attacker probes with: each world's lone values, and values nobody has.
PROBES = [
    *(f"{dimension}{operator}{value}" for operator in ("==", "!=") for dimension, value in (
        ("country", "CN"), ("country", "JP"), ("country", "ZZ"), ("city", "Beijing"), ("city", "Tokyo"),
        ("browser", "Lynx"), ("browser", "Links"), ("os", "Plan9"), ("os", "Haiku"),
        ("referrer", "lone-a.example"), ("referrer", "lone-b.example"), ("utm_campaign", "secret-a"),
        ("utm_campaign", "secret-b"), ("page", "/lonely-a"), ("page", "/lonely-b"), ("event", "lone-a"),
        ("event", "lone-b"), ("device", "tablet"), ("prop:plan", "secret-a"), ("prop:plan", "secret-b"),
    )),
    *(f"{dimension}~={pattern}" for dimension, pattern in (
        ("utm_campaign", "secret"), ("utm_campaign", "-a"), ("utm_campaign", "-b"), ("referrer", "lone"),
        ("referrer", "a.ex"), ("referrer", "b.ex"), ("page", "lonely"), ("page", "-a"), ("event", "lone"),
        ("event", "-a"), ("city", "ei"), ("city", "ky"), ("country", "N"), ("country", "P"),
    )),
]  # fmt: skip
#: Complements and combinations: all minus `country!=X`, the big groups minus each other.
COMBINATIONS = [
    ("country!=DE", "country!=FR"),
    ("country!=DE", "country!=FR", "country!=US"),
    ("device!=desktop", "device!=mobile"),
    ("browser!=Chrome", "browser!=Firefox"),
    ("page==/pricing", "device!=desktop"),
    ("country==DE", "device==mobile"),
    ("country==DE", "device!=mobile"),
]


def _ordinary_day(day: date) -> list[AnonymousEvent]:
    """Thirty visitors: DE 12, FR 10, US 8; mobile 10; Firefox 12; Google 10; campaign "spring" 10;
    half of them see /pricing and every sixth signs up after it."""
    events: list[AnonymousEvent] = []
    for i in range(30):
        visitor = f"{day.isoformat()}-{i}"
        start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=8, minutes=i)
        country, region, city = ("DE", "DE-BE", "Berlin") if i < 12 else ("FR", "FR-IDF", "Paris") if i < 22 else (
            "US", "US-NY", "New York")  # fmt: skip
        common: dict[str, Any] = {
            "country": country,
            "region": region,
            "city": city,
            "device": "mobile" if i % 3 == 0 else "desktop",
            "browser": "Firefox" if i % 5 in (0, 1) else "Chrome",
            "os": "Windows" if i % 2 else "Linux",
        }
        if i < 10:
            common |= {"source": "Google", "channel": "search", "referrer_host": "google.com"}
        elif i < 20:
            common |= {"utm_campaign": "spring", "utm_source": "newsletter", "source": "newsletter", "channel": "email"}
        events.append(event(start, visitor, "/", **common))
        if i % 2 == 0:
            events.append(event(start + timedelta(minutes=1), visitor, "/pricing", **common))
        if i % 6 == 0:
            events.append(event(start + timedelta(minutes=2), visitor, "/", name="signup", **common))
    return events


def _lone_visitor(world: str, day: date) -> list[AnonymousEvent]:
    """The lone visitor's visit of ``day``: /, /pricing, their page, their event (the funnel "Lonely");
    in world "b", on the days they are alone, only / (a bounce)."""
    lone = LONE[world]
    values: dict[str, Any] = {
        "country": lone["country"], "region": lone["region"], "city": lone["city"], "device": "tablet",
        "browser": lone["browser"], "os": lone["os"], "referrer_host": lone["referrer"],
        "source": lone["referrer"], "channel": "referral", "utm_campaign": lone["campaign"],
        "utm_source": lone["referrer"],
    }  # fmt: skip
    visitor = f"lone-{day.isoformat()}"
    start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=15)
    if world == "b" and day not in BUSY_DAYS:
        return [event(start, visitor, "/", **values)]
    return [
        event(start, visitor, "/", **values),
        event(start + timedelta(minutes=1), visitor, "/pricing", **values),
        event(start + timedelta(minutes=2), visitor, lone["page"], **values),
        event(
            start + timedelta(minutes=3),
            visitor,
            lone["page"],
            name=lone["event"],
            props={"plan": lone["campaign"]},
            **values,
        ),  # fmt: skip
    ]


class World:
    """One world on its own live server, read through a viewer account, a shared link and an API key."""

    def __init__(self, tmp_path: Path, world: str) -> None:
        self.world = world
        goals = [
            {"name": "Signup", "event": "signup"},
            {"name": "Pricing", "page": "/pricing"},
            {"name": "Lonely", "page": "/lonely-*"},
        ]
        funnels = [
            {"name": "Lonely", "steps": ["Pricing", "Lonely"]},
            {"name": "Sign up", "steps": ["Pricing", "Signup"]},
        ]
        sites = {"shop": site_config(min_visitors=K, goals=goals, funnels=funnels)}
        tmp_path.mkdir(parents=True, exist_ok=True)
        # The attacker here is patient: the rate limit of filtered queries is out of the way (its own test
        # is tests/web/test_rate_limit.py); the floor alone must hold.
        self.settings = make_settings(tmp_path, sites=sites, filtered_query_limit=100_000)
        self.clock = FixedClock(NOW)
        events = [item for day in BUSY_DAYS for item in _ordinary_day(day)]
        events += [item for day in DAYS for item in _lone_visitor(world, day)]

        async def fill(db: Store) -> tuple[str, str]:
            await db.write(lambda c: insert_events(c, events))
            await db.write(lambda c: rebuild_dirty(c, zones=self.settings.zones))
            _, key = await create_api_key(db, "shop", "attacker", now=NOW)
            _, token = await SharedLinks(db, self.settings.secret_keys).create(
                "shop", label="", expires_at=None, password=None, now=NOW
            )
            return key, token

        self.key, token = on_database(self.settings, fill)
        self.share = f"/share/{token}"
        self.server = LiveServer(create_app(self.settings, clock=self.clock)).__enter__()
        self.dashboard = Dashboard.__new__(Dashboard)
        self.dashboard.settings, self.dashboard.clock, self.dashboard.server = self.settings, self.clock, self.server
        self.dashboard.add_user("eve", roles={"shop": "viewer"})
        self.viewer = self.dashboard.client()
        assert self.dashboard.login(self.viewer, "eve").status_code == 303
        self.anonymous = self.dashboard.client()
        self.api = self.dashboard.client(authorization=f"Bearer {self.key}")

    def close(self) -> None:
        for client in (self.viewer, self.anonymous, self.api):
            client.close()
        self.server.__exit__()

    def lone_events_stored(self) -> int:
        [(count,)] = query(
            self.settings.database, "SELECT count(*) FROM events WHERE pathname = ?", (LONE[self.world]["page"],)
        )
        return int(count)

    def api_get(self, endpoint: str, params: dict[str, Any]) -> Any:
        response = self.api.get(f"/api/v1/stats/{endpoint}", params={"site_id": "shop", **params})
        assert response.status_code == 200, (endpoint, params, response.status_code, response.text[:300])
        return response.json()

    def page(self, client: httpx.Client, path: str, params: dict[str, Any]) -> str:
        response = client.get(path, params=params)
        assert response.status_code == 200, (path, params, response.status_code)
        return _published(response)


def _published(response: httpx.Response) -> str:
    """What a reader sees of a response, less what differs per response (nonces, tokens)."""
    kind = response.headers.get("content-type", "")
    if kind.startswith("application/zip"):
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            return "\n".join(f"== {name}\n{archive.read(name).decode()}" for name in sorted(archive.namelist()))
    if kind.startswith("text/html"):
        text = re.sub(r"<[^>]+>", " ", response.text)
        return re.sub(r"\s+", " ", text)
    return response.text


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> Iterator[dict[str, World]]:
    made = {name: World(tmp_path_factory.mktemp(f"world-{name}"), name) for name in ("a", "b")}
    try:
        yield made
    finally:
        for world in made.values():
            world.close()


def _same_in_both(worlds: dict[str, World], ask: Any) -> Any:
    answers = {name: ask(world) for name, world in worlds.items()}
    assert answers["a"] == answers["b"], "the two worlds differ: the lone visitor's attributes leak"
    return answers["a"]


def test_the_lone_visitor_is_there_to_be_found(worlds: dict[str, World]) -> None:
    assert worlds["a"].lone_events_stored() == 2 * len(DAYS)  # their page twice a day, five days
    assert worlds["b"].lone_events_stored() == 2 * len(BUSY_DAYS)


def test_breakdowns_and_other_rows_are_the_same_in_both_worlds(worlds: dict[str, World]) -> None:
    """No "(other)" of 1 to k-1, no named row of the lone visitor, returning on five days or not."""
    for period in PERIODS[:3]:
        for dimension in BREAKDOWN_DIMENSIONS:
            answer = _same_in_both(
                worlds, lambda w, d=dimension, p=period: w.api_get("breakdown", {**p, "property": d, "limit": 1000})
            )
            for row in answer["results"]:
                visitors = row.get("visitors")
                assert visitors is None or visitors >= K, (dimension, row)
                assert row.get(dimension, row.get("value")) not in {v for lone in LONE.values() for v in lone.values()}


def test_filter_probes_answer_alike_in_both_worlds_and_like_a_value_nobody_has(worlds: dict[str, World]) -> None:
    """Probing every country code (or campaign, page, event...) finds nothing: the lone value reads like ZZ."""
    period = PERIODS[0]
    nobody = _same_in_both(worlds, lambda w: w.api_get("aggregate", {**period, "f": "country==ZZ"}))
    for probe in PROBES:
        answer = _same_in_both(worlds, lambda w, f=probe: w.api_get("aggregate", {**period, "f": f}))
        if "==" in probe:
            assert answer["results"] == nobody["results"], probe


def test_subtracting_periods_isolates_nobody(worlds: dict[str, World]) -> None:
    """A two-day range minus its first day, and every other pair of these periods, is the same in both worlds."""
    for period in PERIODS:
        _same_in_both(worlds, lambda w, p=period: w.api_get("aggregate", p))
        _same_in_both(worlds, lambda w, p=period: w.api_get("timeseries", {**p, "interval": "day"}))


def test_a_filter_and_its_complement_isolate_nobody(worlds: dict[str, World]) -> None:
    for period in PERIODS[:3]:
        for combination in COMBINATIONS:
            params = {**period, "f": list(combination)}
            _same_in_both(worlds, lambda w, p=params: w.api_get("aggregate", p))
            _same_in_both(worlds, lambda w, p=params: w.api_get("breakdown", {**p, "property": "country"}))


def test_the_dashboard_pages_exports_and_shared_link_are_the_same_in_both_worlds(worlds: dict[str, World]) -> None:
    pages = ["", "/breakdown/country", "/breakdown/page", "/breakdown/utm_campaign", "/goals", "/realtime",
             "/export/country.csv", "/export/referrer.csv", "/export.zip"]  # fmt: skip
    for period in PERIODS[:3]:
        for path in pages:
            _same_in_both(worlds, lambda w, s=path, p=period: w.page(w.viewer, f"/dashboard/shop{s}", p))
            _same_in_both(worlds, lambda w, s=path, p=period: w.page(w.anonymous, f"{w.share}{s}", p))
        for probe in ("country==CN", "utm_campaign~=secret", "country!=CN"):
            _same_in_both(worlds, lambda w, p=period, f=probe: w.page(w.viewer, "/dashboard/shop", {**p, "f": f}))


def test_funnels_show_no_drop_off_after_a_withheld_step(worlds: dict[str, World]) -> None:
    """Only the lone visitor reaches "Lonely": the step and its drop-off read as if nobody had."""
    for period in PERIODS:
        text = _same_in_both(worlds, lambda w, p=period: w.page(w.viewer, "/dashboard/shop/goals", p))
        assert not re.search(r"\b0 visits? · [1-4] dropped", text), text


def test_withheld_and_zero_read_the_same_in_the_csv(worlds: dict[str, World]) -> None:
    """The export of a filter naming the lone visitor's country equals the export of a country nobody has."""
    world = worlds["a"]
    period = PERIODS[0]
    for name in ("country", "page", "referrer"):
        lone = world.page(world.viewer, f"/dashboard/shop/export/{name}.csv", {**period, "f": "country==CN"})
        nobody = world.page(world.viewer, f"/dashboard/shop/export/{name}.csv", {**period, "f": "country==ZZ"})
        assert lone == nobody
        for row in list(csv.reader(io.StringIO(lone)))[1:]:
            assert row[0] != "CN"


def _lone_on_small_values(count: int, day: date) -> list[AnonymousEvent]:
    """The lone visitor's ``count`` visits of ``day``, an hour apart, each from its own referrer to its own
    page, firing its own event with its own plan: ``count`` unnamed values of each, and no named one."""
    events = []
    for n in range(count):
        start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=14 + n)
        origin = {"referrer_host": f"small-{n}.example", "source": f"small-{n}.example", "channel": "referral"}
        events += [
            event(start, f"lone-{day}", f"/small-{n}", **origin),
            event(
                start + timedelta(minutes=1), f"lone-{day}", f"/small-{n}", name=f"small-{n}", props={"plan": f"p{n}"}
            ),
        ]
    return events


def test_other_is_no_sum_of_one_visitors_small_values(tmp_path: Path) -> None:
    """Issue 10's "(other)" of one person: it added the cells of the day's small values, so a visitor on
    five unnamed pages (events, plans, entry pages, sources) read as an "(other)" of 5 visitors. Two
    worlds on live servers, rolled up as the gateway's maintenance rolls up: the lone visitor on five
    small values of each, or on one; every breakdown of the day, "(other)" included, reads the same."""
    from gateway.maintenance import floors

    day, answers = BUSY_DAYS[0], {}
    for world, count in (("five", 5), ("one", 1)):
        sites = {"shop": site_config(min_visitors=K)}
        settings = make_settings(tmp_path / world, sites=sites, filtered_query_limit=100_000)
        readers = [event(datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12, minutes=n),
                         f"{day}-reader-{n}", "/docs", country="DE") for n in range(10)]  # fmt: skip
        events = _ordinary_day(day) + readers + _lone_on_small_values(count, day)

        async def fill(db: Store, settings: Any = settings, events: Any = events) -> str:
            await db.write(lambda c: insert_events(c, events))
            await db.write(lambda c: rebuild_dirty(c, zones=settings.zones, floors=floors(settings)))
            return (await create_api_key(db, "shop", "attacker", now=NOW))[1]

        key = on_database(settings, fill)
        with (
            LiveServer(create_app(settings, clock=FixedClock(NOW))) as server,
            httpx.Client(base_url=server.url, timeout=30, headers={"authorization": f"Bearer {key}"}) as api,
        ):
            found = {}
            for dimension in ("page", "event", "prop:plan", "entry_page", "exit_page", "source", "referrer"):
                for filters in ([], ["country!=CN"], ["device==desktop"]):
                    params = {"site_id": "shop", **_period(day, day), "property": dimension, "f": filters}
                    response = api.get("/api/v1/stats/breakdown", params=params)
                    assert response.status_code == 200, response.text[:300]
                    found[dimension, tuple(filters)] = response.json()["results"]
            answers[world] = found
    assert answers["five"] == answers["one"], 'one visitor\'s small values leak through "(other)"'
    assert answers["five"]["page", ()]  # the breakdown is answered, not refused
