"""``POST /api/event`` on a real uvicorn: events become anonymous rows in a real SQLite file.

The clock is pinned and moved by hand, so visits, their 30-minute timeout and the salt that
rotates at UTC midnight are exact. The database is read back directly (``sqlite3`` or psycopg, tests/stores.py). Bodies
are encoded here (``json.dumps`` escapes non-ASCII), so a test can send what a browser would
never produce: lone surrogates, control characters, raw invalid bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import create_app
from gateway.clock import FixedClock
from gateway.ingest.geo import GeoLookup, NullGeo, bundled_database_path
from gateway.settings import Settings
from gateway.storage.location import DatabaseLocation
from tests.conftest import SITE_ORIGIN, LiveServer, make_settings, site_config
from tests.stores import query

pytestmark = pytest.mark.integration

Start = Callable[[Any], LiveServer]

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
SAFARI_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.6478.71 Mobile Safari/537.36"
)
EDGE_WINDOWS = CHROME_WINDOWS + " Edg/126.0.2592.68"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

PAGE = f"{SITE_ORIGIN}/pricing"
PAGEVIEW = {"s": "shop", "n": "pageview", "u": PAGE}
SCRIPT = "<script>alert(1)</script>"
SQL = "'; DROP TABLE events; --"


def body_of(value: Any) -> bytes:
    """JSON as the snippet sends it; non-ASCII (and lone surrogates) travel as \\u escapes."""
    return json.dumps(value).encode()


def rows(database: DatabaseLocation, sql: str, parameters: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return [dict(zip(row.keys(), row, strict=True)) for row in query(database, sql, parameters)]


class Gateway:
    """One ``create_app`` on a live server with a pinned clock, an HTTP client and its database."""

    def __init__(self, settings: Settings, clock: FixedClock, start: Start, *, geo: GeoLookup | None = None) -> None:
        self.settings, self.clock = settings, clock
        self.server = start(create_app(settings, clock=clock, geo=geo or NullGeo()))
        self.http = httpx.Client(base_url=self.server.url, timeout=10, headers={"user-agent": CHROME_WINDOWS})

    def send(self, body: Any, *, headers: dict[str, str] | None = None) -> httpx.Response:
        content = body if isinstance(body, bytes) or not isinstance(body, dict) else body_of(body)
        return self.http.post("/api/event", content=content, headers={"content-type": "text/plain", **(headers or {})})

    def accept(self, body: dict[str, Any], **headers: str) -> None:
        response = self.send(body, headers=headers)
        assert response.status_code == 202, response.text
        assert "x-consent-gateway-dropped" not in response.headers

    def events(self) -> list[dict[str, Any]]:
        return rows(self.settings.database, "SELECT * FROM events ORDER BY id")

    def visits(self) -> list[dict[str, Any]]:
        return rows(self.settings.database, "SELECT * FROM visits ORDER BY id")

    def salt_days(self) -> list[str]:
        return [row["day"] for row in rows(self.settings.database, "SELECT day FROM salts ORDER BY day")]

    def close(self) -> None:
        self.http.close()


def settings_for(tmp_path: Path, **top: Any) -> Settings:
    """``shop`` counts anonymously; ``members`` needs analytics consent; ``office`` ignores 127.0.0.1."""
    sites = {
        "shop": site_config(),
        "members": site_config(analytics_consent="required"),
        "office": site_config(ignore_ips=["127.0.0.1"]),
    }
    return make_settings(tmp_path, sites=sites, **{"debug": True, **top})


@pytest.fixture
def gateway(tmp_path: Path, clock: FixedClock, live_server: Start) -> Iterator[Gateway]:
    gateway = Gateway(settings_for(tmp_path), clock, live_server)
    yield gateway
    gateway.close()


# --- what an accepted event stores ----------------------------------------------------------------

SHOP = "https://shop.example.com"


@pytest.mark.parametrize(
    ("body", "user_agent", "expected"),
    [
        pytest.param({"r": "https://www.google.com/", "w": 1280}, CHROME_WINDOWS,
                     {"source": "Google", "channel": "search", "referrer_host": "google.com", "browser": "Chrome",
                      "browser_version": "126.0", "os": "Windows", "os_version": "10", "device": "desktop",
                      "screen": "laptop"},
                     id="a Google search on Chrome for Windows, a laptop screen"),
        pytest.param({"u": f"{SHOP}/spring?utm_source=newsletter&utm_medium=email&utm_campaign=spring-sale", "w": 390},
                     SAFARI_IPHONE,
                     {"pathname": "/spring", "source": "newsletter", "channel": "email", "referrer_host": None,
                      "utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "spring-sale",
                      "browser": "Mobile Safari", "os": "iOS", "device": "mobile", "screen": "mobile"},
                     id="a newsletter's UTM tags on an iPhone, a mobile screen"),
        pytest.param({"u": f"{SHOP}/shoes?utm_source=google&utm_medium=cpc&utm_term=boots&utm_content=ad-1&gclid=XyZ",
                      "w": 820},
                     SAFARI_IPAD,
                     {"pathname": "/shoes", "source": "Google", "channel": "paid", "utm_term": "boots",
                      "utm_content": "ad-1", "device": "tablet", "screen": "tablet"},
                     id="a paid click on an iPad: the path without its query, gclid forgotten"),
        pytest.param({"r": "https://news.ycombinator.com/item?id=1", "w": 2560}, FIREFOX_LINUX,
                     {"source": "Hacker News", "channel": "social", "referrer_host": "news.ycombinator.com",
                      "browser": "Firefox", "os": "Linux", "device": "desktop", "screen": "desktop"},
                     id="Hacker News on Firefox for Linux, a desktop screen"),
        pytest.param({"r": f"{SHOP}/cart"}, CHROME_ANDROID,
                     {"source": "Direct / None", "channel": "internal", "referrer_host": None,
                      "browser": "Chrome Mobile", "os": "Android", "os_version": "14", "device": "mobile",
                      "screen": None},
                     id="an internal link on Android, no screen width sent"),
        pytest.param({"r": "https://blog.example.org/post/1"}, EDGE_WINDOWS,
                     {"source": "blog.example.org", "channel": "referral", "referrer_host": "blog.example.org",
                      "browser": "Edge"},
                     id="an unknown blog is a referral, on Edge"),
        pytest.param({}, CHROME_WINDOWS,
                     {"source": "Direct / None", "channel": "direct", "referrer_host": None, "utm_source": None},
                     id="no referrer, no tags: direct"),
    ],
)  # fmt: skip
def test_a_pageview_is_stored_with_its_source_browser_and_screen(
    gateway: Gateway, body: dict[str, Any], user_agent: str, expected: dict[str, Any]
) -> None:
    gateway.accept({**PAGEVIEW, **body}, **{"user-agent": user_agent})

    [event] = gateway.events()
    [visit] = gateway.visits()
    defaults = {"site_id": "shop", "name": "pageview", "hostname": "shop.example.com", "pathname": "/pricing"}
    assert {key: event[key] for key in {**defaults, **expected}} == {**defaults, **expected}
    assert event["ts"] == "2026-03-10T09:30:00+00:00"
    assert event["props"] == "{}" and event["consent"] == ""
    assert (event["country"], event["region"], event["city"]) == (None, None, None)  # NullGeo
    assert event["visit_id"] == visit["id"] and event["visitor_id"] == visit["visitor_id"]
    assert len(event["visitor_id"]) == 32
    assert (visit["entry_page"], visit["exit_page"], visit["pageviews"], visit["events"]) == (
        expected.get("pathname", "/pricing"),
        expected.get("pathname", "/pricing"),
        1,
        1,
    )


def test_long_field_names_are_read_like_the_short_ones(gateway: Gateway) -> None:
    gateway.accept(
        {
            "site": "shop",
            "name": "pageview",
            "url": f"{SHOP}/docs",
            "referrer": "https://duckduckgo.com/",
            "width": 1000,
            "props": {"lang": "de"},
            "consent": {"analytics": True, "advertising": False},
        }
    )

    [event] = gateway.events()
    assert (event["pathname"], event["channel"], event["screen"]) == ("/docs", "search", "laptop")
    assert (event["props"], event["consent"]) == ('{"lang": "de"}', "analytics")


def test_a_custom_event_keeps_its_props_and_joins_the_visit(gateway: Gateway) -> None:
    gateway.accept(PAGEVIEW)
    gateway.clock.advance(timedelta(minutes=2))
    gateway.accept({**PAGEVIEW, "n": "Signup", "p": {"plan": "pro", "seats": 5, "trial": True, "ratio": 0.5}})

    pageview, signup = gateway.events()
    assert signup["name"] == "Signup"
    assert json.loads(signup["props"]) == {"plan": "pro", "seats": "5", "trial": "true", "ratio": "0.5"}
    assert signup["visit_id"] == pageview["visit_id"] and signup["visitor_id"] == pageview["visitor_id"]
    [visit] = gateway.visits()
    # A custom event is part of the visit but neither a pageview nor a page to exit from.
    assert (visit["pageviews"], visit["events"], visit["exit_page"]) == (1, 2, "/pricing")
    assert visit["last_seen"] == "2026-03-10T09:32:00+00:00"


def test_a_visit_records_its_entry_and_exit_pages_and_pageviews(gateway: Gateway) -> None:
    for path, minutes in (("/", 0), ("/pricing", 3), ("/signup", 5), ("/thanks", 1)):
        gateway.clock.advance(timedelta(minutes=minutes))
        gateway.accept({**PAGEVIEW, "u": SHOP + path})

    [visit] = gateway.visits()
    assert visit == {
        **visit,
        "entry_page": "/",
        "exit_page": "/thanks",
        "pageviews": 4,
        "events": 4,
        "started_at": "2026-03-10T09:30:00+00:00",
        "last_seen": "2026-03-10T09:39:00+00:00",
    }
    assert {event["visit_id"] for event in gateway.events()} == {visit["id"]}


@pytest.mark.parametrize(
    ("gaps", "visits"),
    [
        pytest.param([timedelta(minutes=29)], 1, id="29 minutes apart: one visit"),
        pytest.param([timedelta(minutes=30)], 1, id="exactly 30 minutes apart: still one visit"),
        pytest.param([timedelta(minutes=30, seconds=1)], 2, id="30 minutes and a second: a new visit"),
        pytest.param([timedelta(minutes=20)] * 3, 1, id="every 20 minutes for an hour: one visit"),
        pytest.param([timedelta(hours=2), timedelta(minutes=5)], 2, id="back after two hours: a second visit"),
    ],
)
def test_thirty_minutes_without_an_event_end_a_visit(gateway: Gateway, gaps: list[timedelta], visits: int) -> None:
    gateway.accept(PAGEVIEW)
    for gap in gaps:
        gateway.clock.advance(gap)
        gateway.accept(PAGEVIEW)

    assert len(gateway.visits()) == visits
    assert sum(visit["pageviews"] for visit in gateway.visits()) == len(gaps) + 1
    assert len({event["visitor_id"] for event in gateway.events()}) == 1  # the same visitor all day


def test_the_same_address_with_another_browser_is_another_visitor(gateway: Gateway) -> None:
    gateway.accept(PAGEVIEW)
    gateway.accept(PAGEVIEW, **{"user-agent": FIREFOX_LINUX})

    first, second = gateway.events()
    assert first["visitor_id"] != second["visitor_id"]
    assert len(gateway.visits()) == 2


# --- midnight: the salt rotates, a visit in progress goes on for 30 minutes ----------------------


@pytest.fixture
def late_clock(clock: FixedClock) -> FixedClock:
    clock.current = datetime(2026, 3, 10, 23, 50, tzinfo=UTC)
    return clock


def test_a_visit_across_midnight_goes_on_in_the_first_30_minutes(gateway: Gateway, late_clock: FixedClock) -> None:
    gateway.accept({**PAGEVIEW, "u": f"{SHOP}/before"})
    late_clock.advance(timedelta(minutes=25))  # 00:15
    gateway.accept({**PAGEVIEW, "u": f"{SHOP}/after"})

    before, after = gateway.events()
    [visit] = gateway.visits()
    assert before["visit_id"] == after["visit_id"] == visit["id"]
    assert before["visitor_id"] != after["visitor_id"]  # the visit is re-keyed to today's id
    assert visit["visitor_id"] == after["visitor_id"]  # so it survives yesterday's salt
    assert (visit["entry_page"], visit["exit_page"], visit["pageviews"]) == ("/before", "/after", 2)
    assert gateway.salt_days() == ["2026-03-10", "2026-03-11"]  # yesterday's salt is still needed


def test_after_the_grace_period_yesterdays_salt_is_deleted_and_the_visitor_is_new(
    gateway: Gateway, late_clock: FixedClock
) -> None:
    gateway.accept({**PAGEVIEW, "u": f"{SHOP}/before"})
    late_clock.advance(timedelta(minutes=41))  # 00:31, 41 minutes later: the visit is over
    gateway.accept({**PAGEVIEW, "u": f"{SHOP}/after"})

    before, after = gateway.events()
    assert before["visitor_id"] != after["visitor_id"]
    assert len(gateway.visits()) == 2
    assert gateway.salt_days() == ["2026-03-11"]


def test_the_salt_rotates_daily_so_a_visitor_id_changes_with_the_day(gateway: Gateway, clock: FixedClock) -> None:
    gateway.accept(PAGEVIEW)
    gateway.accept(PAGEVIEW)
    clock.advance(timedelta(days=1))
    gateway.accept(PAGEVIEW)

    monday, monday_again, tuesday = (event["visitor_id"] for event in gateway.events())
    assert monday == monday_again
    assert tuesday != monday
    assert gateway.salt_days() == ["2026-03-11"]


def test_the_salt_of_yesterday_is_kept_only_until_half_past_midnight(gateway: Gateway, late_clock: FixedClock) -> None:
    gateway.accept(PAGEVIEW)
    late_clock.current = datetime(2026, 3, 11, 0, 29, 59, tzinfo=UTC)
    gateway.accept({**PAGEVIEW, "n": "Other visitor"}, **{"user-agent": FIREFOX_LINUX})
    assert gateway.salt_days() == ["2026-03-10", "2026-03-11"]
    late_clock.current = datetime(2026, 3, 11, 0, 30, tzinfo=UTC)
    gateway.accept(PAGEVIEW, **{"user-agent": FIREFOX_LINUX})
    assert gateway.salt_days() == ["2026-03-11"]


def test_a_visit_active_across_midnight_is_not_split_at_half_past(gateway: Gateway, late_clock: FixedClock) -> None:
    gateway.accept({**PAGEVIEW, "u": f"{SHOP}/a"})  # 23:50
    late_clock.advance(timedelta(minutes=20))  # 00:10: continues through yesterday's salt
    gateway.accept({**PAGEVIEW, "u": f"{SHOP}/b"})
    late_clock.advance(timedelta(minutes=25))  # 00:35: 25 minutes after the last event
    gateway.accept({**PAGEVIEW, "u": f"{SHOP}/c"})

    assert len(gateway.visits()) == 1


# --- dropped events: 202, nothing stored, the reason in a debug header ----------------------------


@pytest.mark.parametrize(
    ("site", "body", "headers", "reason"),
    [
        pytest.param("shop", {}, {"user-agent": GOOGLEBOT}, "bot", id="Googlebot is a bot"),
        pytest.param("shop", {}, {"user-agent": "curl/8.5.0"}, "bot", id="curl is a bot"),
        pytest.param("shop", {}, {"user-agent": HEADLESS}, "headless", id="HeadlessChrome is headless"),
        pytest.param("shop", {}, {"user-agent": ""}, "empty_user_agent", id="no user agent"),
        pytest.param("shop", {}, {"sec-purpose": "prefetch"}, "prefetch", id="Sec-Purpose prefetch"),
        pytest.param("shop", {}, {"sec-purpose": "prefetch;prerender"}, "prefetch", id="Sec-Purpose prerender"),
        pytest.param("office", {}, {}, "ignored_network", id="the site ignores 127.0.0.1"),
        pytest.param("shop", {"r": "https://semalt.com/"}, {}, "referrer_spam", id="a spam referrer"),
        pytest.param("shop", {"r": "http://www.darodar.com/x"}, {}, "referrer_spam", id="a spam referrer's www host"),
        pytest.param("members", {}, {}, "no_consent", id="consent required, no consent snapshot"),
        pytest.param("members", {"c": ["functional"]}, {}, "no_consent", id="consent required, analytics refused"),
        pytest.param("members", {"c": {"analytics": False}}, {}, "no_consent", id="consent required, analytics false"),
        pytest.param("members", {}, {"sec-gpc": "1"}, "gpc", id="consent required, GPC and no consent"),
        pytest.param("members", {"c": ["advertising"]}, {"sec-gpc": "1"}, "gpc", id="GPC and analytics not allowed"),
        pytest.param("members", {"c": ["analytics"]}, {}, None, id="consent required and given: counted"),
        pytest.param("members", {"c": ["analytics"]}, {"sec-gpc": "1"}, None,
                     id="an explicit analytics consent outweighs GPC"),
        pytest.param("shop", {}, {"sec-gpc": "1"}, None, id="a cookieless site counts GPC visitors anonymously"),
        pytest.param("office", {}, {"sec-purpose": "prefetch"}, "ignored_network",
                     id="the ignore list is the first explanation"),
    ],
)  # fmt: skip
def test_noise_and_refusals_are_answered_202_and_not_stored(
    gateway: Gateway, site: str, body: dict[str, Any], headers: dict[str, str], reason: str | None
) -> None:
    response = gateway.send({**PAGEVIEW, "s": site, **body}, headers=headers)

    assert response.status_code == 202
    assert response.headers.get("x-consent-gateway-dropped") == reason
    assert len(gateway.events()) == (0 if reason else 1)
    assert len(gateway.visits()) == (0 if reason else 1)
    if reason is None:
        assert gateway.events()[0]["consent"] == ",".join(body.get("c", []))


def test_without_debug_a_dropped_event_does_not_say_why(tmp_path: Path, clock: FixedClock, live_server: Start) -> None:
    gateway = Gateway(settings_for(tmp_path, debug=False), clock, live_server)
    try:
        response = gateway.send(PAGEVIEW, headers={"user-agent": GOOGLEBOT})
        assert (response.status_code, response.content) == (202, b"")
        assert "x-consent-gateway-dropped" not in response.headers
        assert gateway.events() == []
    finally:
        gateway.close()


# --- malformed requests: a clear 4xx, nothing stored ----------------------------------------------


class chunked:  # noqa: N801 - reads as the function it replaces in the parameter table
    """A body without Content-Length (Transfer-Encoding: chunked); iterable again for each store's run
    (a generator would be used up by the [sqlite] case and send nothing in the [postgresql] one)."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.body), 1000):
            yield self.body[start : start + 1000]


THIRTY_ONE_PROPS = {f"k{index}": "v" for index in range(31)}


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        pytest.param(b'{"s": "shop",', {}, 400, "the body is not valid JSON: Expecting property name",
                     id="invalid JSON"),
        pytest.param(b'{"s": "shop", "n": "pageview", "u": "https://shop.example.com/\xff\xfe"}', {}, 400,
                     "the body is not valid UTF-8", id="invalid UTF-8 bytes"),
        pytest.param(b"[1, 2]", {}, 400, "expected a JSON object, found list", id="a JSON array"),
        pytest.param(b"null", {}, 400, "expected a JSON object, found NoneType", id="JSON null"),
        pytest.param(b"", {}, 400, "the body is empty: expected a JSON object", id="an empty body"),
        pytest.param(body_of({**PAGEVIEW, "p": {f"k{i}": "x" * 200 for i in range(25)}}), {},
                     413, "the body is larger than 4096 bytes", id="over max_body_bytes with Content-Length"),
        pytest.param(chunked(body_of({**PAGEVIEW, "p": {f"k{i}": "x" * 200 for i in range(25)}})), {},
                     413, "the body is larger than 4096 bytes", id="over max_body_bytes chunked, no Content-Length"),
        pytest.param(body_of({"n": "pageview", "u": PAGE}), {}, 400, "'site' is missing", id="no site"),
        pytest.param(body_of({"s": "shop", "u": PAGE}), {}, 400, "'name' is missing", id="no name"),
        pytest.param(body_of({"s": "shop", "n": "pageview"}), {}, 400, "'url' is missing", id="no url"),
        pytest.param(body_of({**PAGEVIEW, "n": ""}), {}, 400, "'name' is missing", id="an empty name"),
        pytest.param(body_of({**PAGEVIEW, "s": 5}), {}, 400, "'site' must be text, found int", id="site as a number"),
        pytest.param(body_of({**PAGEVIEW, "n": ["pageview"]}), {}, 400, "'name' must be text, found list",
                     id="name as a list"),
        pytest.param(body_of({**PAGEVIEW, "u": {"href": PAGE}}), {}, 400, "'url' must be text, found dict",
                     id="url as an object"),
        pytest.param(body_of({**PAGEVIEW, "r": 7}), {}, 400, "'referrer' must be text, found int",
                     id="referrer as a number"),
        pytest.param(body_of({**PAGEVIEW, "w": "1280"}), {}, 400, "'width' must be the screen width",
                     id="width as text"),
        pytest.param(body_of({**PAGEVIEW, "w": True}), {}, 400, "'width' must be the screen width",
                     id="width as a boolean"),
        pytest.param(body_of({**PAGEVIEW, "w": -1}), {}, 400, "'width' must be the screen width",
                     id="a negative width"),
        pytest.param(body_of({**PAGEVIEW, "w": 1280.5}), {}, 400, "'width' must be the screen width",
                     id="a fractional width"),
        pytest.param(body_of({**PAGEVIEW, "p": "plan=pro"}), {}, 400, "'props' must be an object",
                     id="props as text"),
        pytest.param(body_of({**PAGEVIEW, "c": "analytics"}), {}, 400, "'consent' must list the allowed categories",
                     id="consent as text"),
        pytest.param(body_of({**PAGEVIEW, "x": 1}), {}, 400, "unknown field 'x'", id="an unknown field"),
        pytest.param(body_of({**PAGEVIEW, "u": "/pricing"}), {}, 400,
                     "'url' must be the page's absolute http(s) URL, found '/pricing'", id="a relative URL"),
        pytest.param(body_of({**PAGEVIEW, "u": "javascript:alert(1)"}), {}, 400,
                     "'url' must be the page's absolute http(s) URL", id="a javascript: URL"),
        pytest.param(body_of({**PAGEVIEW, "u": "ftp://shop.example.com/"}), {}, 400,
                     "'url' must be the page's absolute http(s) URL", id="an ftp URL"),
        pytest.param(body_of({**PAGEVIEW, "p": THIRTY_ONE_PROPS}), {}, 400,
                     "'props' has 31 keys; at most 30 are allowed", id="31 props"),
        pytest.param(body_of({**PAGEVIEW, "p": {"plan": "x" * 301}}), {}, 400,
                     "props.plan is longer than 300 characters", id="a prop value of 301 characters"),
        pytest.param(body_of({**PAGEVIEW, "p": {"k" * 101: "v"}}), {}, 400, "must be 1 to 100 printable characters",
                     id="a prop key of 101 characters"),
        pytest.param(body_of({**PAGEVIEW, "p": {"": "v"}}), {}, 400, "must be 1 to 100 printable characters",
                     id="an empty prop key"),
        pytest.param(body_of({**PAGEVIEW, "p": {"plan": {"tier": "pro"}}}), {}, 400,
                     "props.plan must be text, a number or true/false", id="a nested props object"),
        pytest.param(body_of({**PAGEVIEW, "p": {"tags": ["a"]}}), {}, 400,
                     "props.tags must be text, a number or true/false", id="a props list"),
        pytest.param(body_of({**PAGEVIEW, "p": {"gone": None}}), {}, 400,
                     "props.gone must be text, a number or true/false", id="a null prop"),
        pytest.param(body_of({**PAGEVIEW, "c": ["analytics", "tracking"]}), {}, 400,
                     "'consent' names an unknown category 'tracking'", id="consent with an unknown category"),
        pytest.param(body_of({**PAGEVIEW, "n": "x" * 121}), {}, 400, "'name' is longer than 120 characters",
                     id="a name of 121 characters"),
        pytest.param(body_of({**PAGEVIEW, "s": "blog"}), {}, 404, "unknown site 'blog'", id="an unknown site"),
        pytest.param(body_of(PAGEVIEW), {"origin": "https://evil.example"}, 403,
                     "origin 'https://evil.example' is not allowed for site 'shop'", id="an origin not allowed"),
        pytest.param(body_of({**PAGEVIEW, "s": "office"}), {"origin": "https://evil.example"}, 403,
                     "is not allowed for site 'office'", id="the origin is checked before the ignore list"),
    ],
)  # fmt: skip
def test_a_malformed_event_is_refused_with_a_message_naming_the_problem(
    gateway: Gateway, body: bytes | Iterator[bytes], headers: dict[str, str], status: int, message: str
) -> None:
    response = gateway.send(body, headers=headers)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]
    assert gateway.events() == []
    assert gateway.visits() == []


def test_the_body_limit_follows_max_body_bytes(tmp_path: Path, clock: FixedClock, live_server: Start) -> None:
    gateway = Gateway(settings_for(tmp_path, max_body_bytes=65536), clock, live_server)
    try:
        body = body_of({**PAGEVIEW, "p": {f"k{i}": "x" * 200 for i in range(25)}})
        assert 4096 < len(body) < 65536
        gateway.accept(json.loads(body))
        assert len(gateway.events()) == 1
    finally:
        gateway.close()


# --- hostile text: stored exactly as text, or refused clearly; never a 500 ------------------------

LONG_PATH = "/" + "a" * 1499


@pytest.mark.parametrize(
    ("body", "column", "stored"),
    [
        pytest.param({"u": f"{SHOP}/{SCRIPT}"}, "pathname", f"/{SCRIPT}", id="HTML in the path"),
        pytest.param({"n": SCRIPT}, "name", SCRIPT, id="HTML as the event name"),
        pytest.param({"p": {"note": SCRIPT}}, "props", json.dumps({"note": SCRIPT}), id="HTML in a prop value"),
        pytest.param({"p": {SCRIPT: "1"}}, "props", json.dumps({SCRIPT: "1"}), id="HTML as a prop key"),
        pytest.param({"r": SCRIPT}, "referrer_host", None, id="HTML as the referrer is no referrer"),
        pytest.param({"r": f"https://evil.example/{SCRIPT}"}, "referrer_host", "evil.example",
                     id="HTML in the referrer's path: only its host is kept"),
        pytest.param({"u": f"{SHOP}/?utm_source={SCRIPT}"}, "utm_source", SCRIPT, id="HTML as utm_source"),
        pytest.param({"n": SQL}, "name", SQL, id="SQL as the event name"),
        pytest.param({"u": f"{SHOP}/{SQL}"}, "pathname", f"/{SQL}", id="SQL in the path"),
        pytest.param({"p": {"q": SQL}}, "props", json.dumps({"q": SQL}), id="SQL in a prop"),
        pytest.param({"u": f"{SHOP}/a\x00b\x1bc\x7fd\ne"}, "pathname", "/abcde",
                     id="control characters in the path are removed"),
        pytest.param({"p": {"note": "a\x00b\r\nc"}}, "props", json.dumps({"note": "abc"}),
                     id="control characters in a prop value are removed"),
        pytest.param({"u": f"{SHOP}/%zz/%E0%A4%A/%"}, "pathname", "/%zz/%E0%A4%A/%",
                     id="invalid percent escapes are kept literally"),
        pytest.param({"u": f"{SHOP}/%00%0d%0a"}, "pathname", "/%00%0d%0a", id="encoded controls stay encoded"),
        pytest.param({"u": SHOP + LONG_PATH}, "pathname", LONG_PATH[:1024],
                     id="a 1,500-character path is cut to 1024"),
        pytest.param({"n": "Kauf \u2713 \U0001f6d2", "p": {"stadt": "Z\u00fcrich"}}, "name", "Kauf \u2713 \U0001f6d2",
                     id="non-ASCII text and an emoji (a surrogate pair in JSON)"),
        pytest.param({"u": f"{SHOP}/\u202eevil"}, "pathname", "/\u202eevil", id="a bidi override is kept as text"),
    ],
)  # fmt: skip
def test_hostile_text_is_stored_exactly_as_text(
    gateway: Gateway, body: dict[str, Any], column: str, stored: str | None
) -> None:
    gateway.accept({**PAGEVIEW, **body})

    [event] = gateway.events()
    assert event[column] == stored
    # Every table is still there (a statement built from the text would have dropped one).
    still_there = (
        "SELECT (SELECT count(*) FROM events) AS e, (SELECT count(*) FROM visits) AS v,"
        " (SELECT count(*) FROM salts) AS s"
    )
    assert rows(gateway.settings.database, still_there)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        pytest.param(b'{"s": "shop", "n": "\\ud800", "u": "https://shop.example.com/"}', 400,
                     "'name' is not valid Unicode", id="a lone surrogate in the name"),
        pytest.param(b'{"s": "shop", "n": "pageview", "u": "https://shop.example.com/\\udfff"}', 400,
                     "'url' is not valid Unicode", id="a lone surrogate in the path"),
        pytest.param(b'{"s": "shop", "n": "pageview", "u": "https://shop.example.com/", "r": "https://a.example/\\ud800"}',
                     400, "'referrer' is not valid Unicode", id="a lone surrogate in the referrer"),
        pytest.param(b'{"s": "shop", "n": "pageview", "u": "https://shop.example.com/", "p": {"k": "\\ud800"}}', 400,
                     "'props.k' is not valid Unicode", id="a lone surrogate in a prop value"),
        pytest.param(b'{"s": "shop", "n": "pageview", "u": "https://shop.example.com/", "p": {"\\ud800": "v"}}', 400,
                     "'props key' is not valid Unicode", id="a lone surrogate in a prop key"),
        pytest.param(b'{"s": "sh\\ud800op", "n": "pageview", "u": "https://shop.example.com/"}', 400,
                     "'site' is not valid Unicode", id="a lone surrogate in the site"),
        pytest.param(body_of({**PAGEVIEW, "n": "sign\nup"}), 400, "'name' contains control characters",
                     id="control characters in the name"),
        pytest.param(body_of({**PAGEVIEW, "p": {"a\tb": "v"}}), 400, "must be 1 to 100 printable characters",
                     id="control characters in a prop key"),
        pytest.param(body_of({**PAGEVIEW, "u": SHOP + "/" + "a" * 10_000}), 413, "the body is larger than 4096 bytes",
                     id="a 10,000-character path is over the body limit"),
        pytest.param(body_of({**PAGEVIEW, "u": SHOP + "/" + "a" * 2100}), 400, "'url' is longer than 2048 characters",
                     id="a 2,100-character URL"),
        pytest.param(body_of({**PAGEVIEW, "u": "https://"}), 400, "'url' must be the page's absolute http(s) URL",
                     id="a URL without a host"),
        pytest.param(body_of({**PAGEVIEW, "u": "http://[::1/"}), 400, "'url' must be the page's absolute http(s) URL",
                     id="an unclosed IPv6 bracket in the URL"),
        pytest.param(body_of({**PAGEVIEW, "u": "https://shop\uff0fexample.com/"}), 400,
                     "'url' must be the page's absolute http(s) URL", id="a host with a fullwidth solidus (NFKC '/')"),
    ],
)  # fmt: skip
def test_hostile_text_that_cannot_be_stored_is_refused_clearly(
    gateway: Gateway, body: bytes, status: int, message: str
) -> None:
    response = gateway.send(body)

    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert gateway.events() == []


def test_a_10000_character_path_within_a_roomy_body_limit_is_refused_not_truncated(
    tmp_path: Path, clock: FixedClock, live_server: Start
) -> None:
    gateway = Gateway(settings_for(tmp_path, max_body_bytes=65536), clock, live_server)
    try:
        response = gateway.send({**PAGEVIEW, "u": SHOP + "/" + "a" * 10_000})
        assert response.status_code == 400
        assert response.json()["error"] == "'url' is longer than 2048 characters"
        assert gateway.events() == []
    finally:
        gateway.close()


# --- CORS, /metrics, /healthz ---------------------------------------------------------------------


def test_an_allowed_origin_gets_cors_headers(gateway: Gateway) -> None:
    response = gateway.send(PAGEVIEW, headers={"origin": SITE_ORIGIN})

    assert response.status_code == 202
    assert response.headers["access-control-allow-origin"] == SITE_ORIGIN
    assert response.headers["vary"] == "Origin"
    assert len(gateway.events()) == 1


def test_a_dropped_event_from_an_allowed_origin_gets_cors_headers_too(gateway: Gateway) -> None:
    response = gateway.send(PAGEVIEW, headers={"origin": SITE_ORIGIN, "user-agent": GOOGLEBOT})

    assert response.status_code == 202
    assert response.headers["access-control-allow-origin"] == SITE_ORIGIN
    assert response.headers["x-consent-gateway-dropped"] == "bot"


def test_a_server_without_an_origin_gets_no_cors_headers(gateway: Gateway) -> None:
    response = gateway.send(PAGEVIEW)

    assert response.status_code == 202
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("origin", "status", "allowed"),
    [
        pytest.param(SITE_ORIGIN, 204, SITE_ORIGIN, id="the site's origin: 204 with CORS headers"),
        pytest.param("https://evil.example", 403, None, id="another origin: 403 without CORS headers"),
    ],
)
def test_a_preflight_admits_only_configured_origins(
    gateway: Gateway, origin: str, status: int, allowed: str | None
) -> None:
    response = gateway.http.options(
        "/api/event",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )

    assert response.status_code == status
    assert response.headers.get("access-control-allow-origin") == allowed
    if allowed:
        assert "POST" in response.headers["access-control-allow-methods"]
        assert response.headers["access-control-allow-headers"] == "content-type"


def metric(text: str, sample: str) -> float:
    """The value of one sample line (``name{labels}``) of the Prometheus text, 0 when absent."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


def test_metrics_count_accepted_dropped_by_reason_and_refused_events(gateway: Gateway) -> None:
    gateway.accept(PAGEVIEW)
    gateway.accept({**PAGEVIEW, "n": "Signup"})
    gateway.send(PAGEVIEW, headers={"user-agent": GOOGLEBOT})
    gateway.send(PAGEVIEW, headers={"user-agent": "curl/8.5.0"})
    gateway.send(PAGEVIEW, headers={"sec-purpose": "prefetch"})
    gateway.send({**PAGEVIEW, "s": "members"})
    gateway.send(b"[]")
    gateway.send({**PAGEVIEW, "s": "blog"})

    response = gateway.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "consent_gateway_events_accepted_total") == 2
    assert metric(text, 'consent_gateway_events_dropped_total{reason="bot"}') == 2
    assert metric(text, 'consent_gateway_events_dropped_total{reason="prefetch"}') == 1
    assert metric(text, 'consent_gateway_events_dropped_total{reason="no_consent"}') == 1
    assert metric(text, 'consent_gateway_events_dropped_total{reason="headless"}') == 0
    assert metric(text, 'consent_gateway_events_rejected_total{status="400"}') == 1
    assert metric(text, 'consent_gateway_events_rejected_total{status="404"}') == 1
    assert metric(text, "consent_gateway_write_batch_events_total") == 2
    assert metric(text, "consent_gateway_write_queue_depth") == 0


@pytest.mark.parametrize(
    ("geo", "described"),
    [
        pytest.param(NullGeo(), "none", id="without a GeoIP database"),
        pytest.param(None, "GeoLite2-City", id="with the bundled GeoLite2 database",
                     marks=pytest.mark.skipif(bundled_database_path() is None,
                                              reason="maxminddb-geolite2 is not installed")),
    ],
)  # fmt: skip
def test_healthz_shows_the_writer_and_the_geo_database(
    tmp_path: Path, clock: FixedClock, live_server: Start, geo: GeoLookup | None, described: str
) -> None:
    settings = settings_for(tmp_path)
    server = live_server(create_app(settings, clock=clock, geo=geo))
    with httpx.Client(base_url=server.url, timeout=10) as http:
        response = http.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"], body["writer"], body["queue"]) == ("ok", "ok", "ok", 0)
    assert body["geo"].startswith(described)
    if geo is None:
        assert body["geo"].endswith("(bundled)")
