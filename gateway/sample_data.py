"""Sample data for the demo: some 60 days of a small site's traffic, consent decisions and cookie sightings.

A fresh demo's dashboard is empty (the tracker skips localhost and automation, one person is under
the privacy floor), so nothing shows what the product does. On the demo's first start this writes a
plausible history for its site, clearly labelled: the ``sample_data`` marker is claimed before the
first row (gateway/storage/sample_data.py), so a second start never seeds again and the dashboard
says "Sample data" on the site's pages. Only ``consent-gateway demo`` calls it.

Everything goes through the storage functions the gateway itself uses, so every page reads it as it
reads real data: events and visits through ``write_events`` (a day per batch), then the rollups and
the filtered views' stored visits as the maintenance leader builds them; proof-of-consent records with
the proof log's own statement (all in one transaction: one commit each would be thousands of fsyncs);
banner impressions and cookie tallies through the consent and cookie reports' writers. Sources are
named by the referrer classifier and browsers by the user-agent parser from real referrers, tags and
user agents, so the vocabulary is the ingest's.

The volume (a few hundred visitors a day, growing, quieter at weekends) keeps a dozen countries,
sources and browsers above the default floor of 5 on most days: the floor works per day.
Deterministic for a seed (one ``random.Random``); the visitor ids are random like daily-salted hashes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from random import Random
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from gateway.categories import CONSENT_CATEGORIES, Category
from gateway.consent.model import GPC_OPT_OUT, ConsentMethod
from gateway.consent.records import ConsentRecord, category_choices, policy_revision
from gateway.consent.report import MAX_REPORTED_NAMES
from gateway.consent.texts import texts_for
from gateway.cookies.catalog import CookieCatalog
from gateway.ingest.referrer import classify_source
from gateway.ingest.useragent import UAInfo, parse_user_agent
from gateway.maintenance import floors
from gateway.settings import Settings, SiteSettings
from gateway.storage.consent_report import ImpressionCount, add_impressions
from gateway.storage.cookie_report import CookieTally, ScriptSighting, add_cookie_tallies, add_script_sightings
from gateway.storage.events import write_events
from gateway.storage.records import AnonymousEvent
from gateway.storage.sample_data import analyze_events, append_sample_records, claim_sample_data
from gateway.storage.store import Store
from gateway.storage.upkeep import roll_up_dirty
from gateway.storage.visit_days import build_stale

__all__ = ["SAMPLE_DAYS", "SampleSummary", "seed_sample_data"]

T = TypeVar("T")
#: (referrer_host, source, channel, utm_source, utm_medium, utm_campaign, utm_content, utm_term)
_Source = tuple[str | None, str, str, str | None, str | None, str | None, str | None, str | None]

SAMPLE_DAYS = 60
#: Visitors on the first day; the last is about a quarter busier.
_DAILY_VISITORS = 200
_PATHS = (  # (path, weight): the demo's own pages lead, then what a small product site has
    ("/", 30), ("/page-2", 14), ("/pricing", 11), ("/features", 9), ("/blog", 7), ("/privacy", 4),
    ("/blog/what-a-cookie-banner-must-say", 7), ("/blog/analytics-without-cookies", 6), ("/docs", 6),
    ("/docs/getting-started", 5), ("/contact", 3), ("/about", 3),
)  # fmt: skip
_LANDINGS = (  # (query string of the landing URL, referrer, weight): sources and campaigns as ingest sees them
    ("", None, 36), ("", "https://www.google.com/", 20), ("", "https://www.google.de/", 4),
    ("", "https://www.bing.com/", 4), ("", "https://duckduckgo.com/", 3), ("", "https://github.com/", 4),
    ("", "https://news.ycombinator.com/", 3), ("", "https://www.reddit.com/", 3), ("", "https://l.facebook.com/", 3),
    ("", "https://t.co/", 2), ("", "https://www.linkedin.com/", 2), ("", "https://privacyweekly.example.org/", 2),
    ("utm_source=newsletter&utm_medium=email&utm_campaign=monthly-digest&utm_content=header",
     "https://mail.google.com/", 5),
    ("utm_source=google&utm_medium=cpc&utm_campaign=consent-banner&utm_term=cookie+consent&utm_content=ad-a&gclid=Cj0KCQ",
     "https://www.google.com/", 4),
    ("utm_source=linkedin&utm_medium=paid_social&utm_campaign=gdpr-webinar", "https://www.linkedin.com/", 3),
)  # fmt: skip
_PLACES = (  # (country, region, city, weight), English names as the GeoLite2 adapter gives them
    ("US", "California", "San Francisco", 9), ("US", "New York", "New York", 7), ("US", "Texas", "Austin", 4),
    ("US", None, None, 3), ("DE", "Berlin", "Berlin", 6), ("DE", "Bavaria", "Munich", 4), ("DE", None, None, 2),
    ("GB", "England", "London", 6), ("GB", "Scotland", "Edinburgh", 2), ("FR", "Île-de-France", "Paris", 5),
    ("FR", None, None, 1), ("NL", "North Holland", "Amsterdam", 4), ("IN", "Karnataka", "Bengaluru", 4),
    ("CA", "Ontario", "Toronto", 3), ("ES", "Madrid", "Madrid", 3), ("IT", "Lombardy", "Milan", 3),
    ("SE", "Stockholm", "Stockholm", 2.5), ("PL", "Mazovia", "Warsaw", 2.5), ("BR", "São Paulo", "São Paulo", 2.5),
    ("AU", "New South Wales", "Sydney", 2.5), ("CH", "Zurich", "Zurich", 2), ("AT", "Vienna", "Vienna", 2),
    ("JP", "Tokyo", "Tokyo", 2), ("BE", None, None, 1.5), ("DK", None, None, 1.5), ("IE", None, None, 1.2),
    ("NO", None, None, 1), ("FI", None, None, 1), ("PT", None, None, 1), ("CZ", None, None, 1), ("MX", None, None, 1),
    ("SG", None, None, 0.8), ("ZA", None, None, 0.6), ("NZ", None, None, 0.5), ("AR", None, None, 0.5),
    ("KR", None, None, 0.5), ("TR", None, None, 0.5), (None, None, None, 1),
)  # fmt: skip
_AGENTS = (  # real user agents, parsed by the gateway's own parser
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
     "Safari/537.36", 24),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
     "Safari/537.36", 9),
    ("Mozilla/5.0 (Linux; Android 14; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile "
     "Safari/537.36", 15),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Mobile/15E148 Safari/604.1", 17),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
     "Safari/605.1.15", 8),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0", 7),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", 2),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
     "Safari/537.36 Edg/126.0.0.0", 8),
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
     "Mobile/15E148 Safari/604.1", 3),
    ("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36", 3),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
     "Safari/537.36 OPR/112.0.0.0", 2),
)  # fmt: skip
#: A pageview followed by a click on a link to another site, and where such links lead.
_OUTBOUND_SHARE = 0.06
_OUTBOUND = ("https://github.com/example/consent-gateway", "https://gdpr.eu/cookies/")
_SCREENS = {"desktop": ("desktop", "laptop"), "mobile": ("mobile",), "tablet": ("tablet",)}
#: Relative visits by local hour: quiet nights, a mid-afternoon peak.
_HOURLY = (35, 28, 24, 22, 24, 30, 42, 58, 75, 88, 95, 100, 102, 105, 110, 112, 110, 102, 95, 88, 78, 66, 55, 44)
#: How a visitor shown the banner answers (none: closes the tab without deciding).
_ANSWERS: tuple[tuple[ConsentMethod | None, float], ...] = (
    ("accept_all", 46),
    ("reject_all", 28),
    ("custom", 12),
    ("gpc", 4),
    (None, 10),
)
_LANGUAGES = {"DE": "de", "AT": "de", "CH": "de", "FR": "fr", "BE": "fr", "ES": "es", "IT": "it", "NL": "nl"}
#: Networks of the documentation ranges (RFC 5737): the sample's records never name a real network.
_NETWORKS = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")


@dataclass(frozen=True, slots=True)
class SampleSummary:
    """What one seed wrote and how long it took (``consent-gateway demo`` prints it)."""

    events: int  # pageviews and outbound-link clicks
    consent_records: int
    days: int
    seconds: float


@dataclass(frozen=True, slots=True)
class _Weighted(Generic[T]):
    """Items to draw from and their cumulative weights, worked out once."""

    items: tuple[T, ...]
    cumulative: tuple[float, ...]

    @classmethod
    def of(cls, weighted: Iterable[tuple[T, float]]) -> _Weighted[T]:
        pairs = tuple(weighted)
        return cls(tuple(item for item, _ in pairs), tuple(accumulate(weight for _, weight in pairs)))


_PAGES = _Weighted.of(_PATHS)
_HOURS = _Weighted.of(enumerate(_HOURLY))
_WHERE = _Weighted.of(((country, region, city), weight) for country, region, city, weight in _PLACES)
_DECISIONS = _Weighted.of(_ANSWERS)
_RETURNS = _Weighted.of(((0, 78), (1, 16), (2, 6)))


@dataclass(frozen=True, slots=True)
class _Visitor:
    visitor_id: str
    place: tuple[str | None, str | None, str | None]
    agent: UAInfo
    screen: str | None
    allowed: frozenset[Category]


async def seed_sample_data(
    store: Store,
    settings: Settings,
    site_id: str,
    *,
    now: datetime,
    catalog: CookieCatalog,
    cookies: Sequence[tuple[str, int]] = (),
    script_cookies: Sequence[str] = (),
    seed: int = 1,
) -> SampleSummary | None:
    """Write ``SAMPLE_DAYS`` days of sample data for ``site_id`` ending at ``now``; None when the site
    already holds sample data (the marker is claimed first, so this never writes it twice).

    ``cookies``: (name, Max-Age asked in seconds, 0 for a session cookie) the site sets on every page,
    for the cookie report; each is classified with ``catalog`` as the middleware would.
    ``script_cookies``: the undeclared names the site's scripts set, as the snippet reports them.
    """
    if not await claim_sample_data(store, site_id, now=now):
        return None
    started = time.perf_counter()
    site = settings.sites[site_id]
    traffic = _Traffic(Random(seed), site, catalog)  # noqa: S311 - sample data, reproducible by design
    today = now.astimezone(site.zone).date()
    days = [today - timedelta(days=back) for back in range(SAMPLE_DAYS - 1, -1, -1)]
    events = 0
    records: list[ConsentRecord] = []
    impressions: Counter[tuple[date, str, str]] = Counter()
    pageviews: Counter[frozenset[Category]] = Counter()
    for index, day in enumerate(days):
        busy = _DAILY_VISITORS * (1 + 0.25 * index / (SAMPLE_DAYS - 1)) * (0.7 if day.weekday() >= 5 else 1.0)
        batch, decided, shown = traffic.day(day, round(busy * traffic.rng.uniform(0.9, 1.1)), until=now)
        if batch:
            await write_events(store, batch, (), now=None)
        events += len(batch)
        records += decided
        impressions.update(shown)
        pageviews.update(event.consent for event in batch if event.name == "pageview")
    await append_sample_records(store, records, list(traffic.banners.values()))
    await add_impressions(
        store,
        [
            ImpressionCount(site_id, day, country, device, count)
            for (day, country, device), count in impressions.items()
        ],
    )
    first_seen = datetime.combine(days[0], datetime.min.time(), tzinfo=site.zone).astimezone(UTC)
    await add_cookie_tallies(store, _cookie_tallies(site, catalog, cookies, pageviews, first_seen, now))
    sightings = _script_sightings(catalog, script_cookies, pageviews, first_seen, now)
    await add_script_sightings(store, site_id, sightings, max_names=MAX_REPORTED_NAMES)
    await analyze_events(store)
    rolled_up = await roll_up_dirty(store, settings.zones, floors=floors(settings))
    await build_stale(store, settings.zones, rolled_up)
    return SampleSummary(events, len(records), len(days), time.perf_counter() - started)


def _cookie_tallies(
    site: SiteSettings,
    catalog: CookieCatalog,
    cookies: Sequence[tuple[str, int]],
    pageviews: Counter[frozenset[Category]],
    first_seen: datetime,
    now: datetime,
) -> list[CookieTally]:
    """What the middleware would have counted: each cookie set on every pageview, kept where its
    category was allowed (essential always), blocked elsewhere, and capped when it asks to outlive its
    declared lifetime or its category's cap (an unknown cookie is never allowed, so never capped)."""
    tallies = []
    for name, asked in cookies:
        rule = catalog.classify(name).rule
        category = rule.category if rule else None
        allowed = sum(n for consent, n in pageviews.items() if category == "essential" or category in consent)
        blocked = sum(pageviews.values()) - allowed
        cap = site.cap_for(category) if category else None
        limits = (rule.lifetime.seconds if rule else None, cap.seconds if cap else None)
        longest = min((limit for limit in limits if limit is not None), default=None)
        capped = bool(asked and longest is not None and asked > longest)
        tallies.append(
            CookieTally(
                site.id, name, category, allowed, blocked, allowed if capped else 0, asked or None, first_seen, now
            )
        )
    return tallies


def _script_sightings(
    catalog: CookieCatalog,
    names: Sequence[str],
    pageviews: Counter[frozenset[Category]],
    first_seen: datetime,
    now: datetime,
) -> dict[str, ScriptSighting]:
    """What the snippet would have reported: each name once per page load where its category was
    allowed (its script ran then, and the cookie stays in the browser afterwards)."""
    sightings = {}
    for name in names:
        category = catalog.classify(name).category
        times = sum(n for consent, n in pageviews.items() if category in consent)
        if times:
            sightings[name] = ScriptSighting(category, times, first_seen, now)
    return sightings


class _Traffic:
    """The weighted vocabularies and the draws over them, for one seed and site."""

    def __init__(self, rng: Random, site: SiteSettings, catalog: CookieCatalog) -> None:
        self.rng = rng
        self.site = site
        origin = site.origins[0] if site.origins else "http://localhost"
        self.hostname = urlsplit(origin).hostname or "localhost"
        self.landings = _Weighted.of(
            (_source(self.hostname, site, query, referrer), weight) for query, referrer, weight in _LANDINGS
        )
        self.internal = _source(self.hostname, site, "", origin + "/")
        self.agents = _Weighted.of((parse_user_agent(text), weight) for text, weight in _AGENTS)
        self.banners = {  # what each language's banner showed, stored once and pointed to by its records
            language: policy_revision(site, catalog, language, texts_for(language, site.banner.texts))
            for language in {"en", *_LANGUAGES.values()}
        }

    def pick(self, weighted: _Weighted[T]) -> T:
        return self.rng.choices(weighted.items, cum_weights=weighted.cumulative)[0]

    def day(
        self, day: date, visitors: int, *, until: datetime
    ) -> tuple[list[AnonymousEvent], list[ConsentRecord], Counter[tuple[date, str, str]]]:
        """One local day: its events in time order (none at or after ``until``), the consent records
        of the visitors who answered the banner, and the banner impressions by (UTC day, country, device)."""
        rng, zone = self.rng, self.site.zone
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=zone)
        events: list[AnonymousEvent] = []
        records: list[ConsentRecord] = []
        shown: Counter[tuple[date, str, str]] = Counter()
        for _ in range(visitors):
            hour = self.pick(_HOURS)
            start = midnight + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
            if start >= until - timedelta(minutes=1):
                continue
            visitor = self._visitor()
            landing = self.pick(_PAGES)
            if rng.random() < 0.4:  # no decision yet: the banner shows on the first page
                country, device = visitor.place[0] or "", visitor.agent.device
                shown[(start.astimezone(UTC).date(), country, device)] += 1
                method = self.pick(_DECISIONS)
                allowed = _allowed(rng, method)
                visitor = _Visitor(visitor.visitor_id, visitor.place, visitor.agent, visitor.screen, allowed)
                if method is not None:
                    answered = start + timedelta(seconds=rng.uniform(2, 25))
                    if answered < until:
                        records.append(self._record(visitor, method, answered, landing))
            for count, visit_start in enumerate(self._visit_starts(start)):
                if visit_start >= until:
                    break
                source = self.pick(self.landings) if count == 0 or rng.random() < 0.5 else self.landings.items[0]
                events += self._visit(visitor, visit_start, landing, source, until)
                landing = self.pick(_PAGES)
        events.sort(key=lambda event: event.ts)
        return events, records, shown

    def _visitor(self) -> _Visitor:
        rng = self.rng
        place = self.pick(_WHERE)
        agent = self.pick(self.agents)
        screens = _SCREENS.get(agent.device, ("desktop",))
        screen = None if rng.random() < 0.02 else rng.choice(screens)
        allowed = _allowed(rng, self.pick(_DECISIONS))  # decided on an earlier day
        return _Visitor(f"{rng.getrandbits(128):032x}", place, agent, screen, allowed)

    def _visit_starts(self, first: datetime) -> list[datetime]:
        """Most visitors come once a day; some come back later the same day (a new visit each time)."""
        starts = [first]
        for _ in range(self.pick(_RETURNS)):
            starts.append(starts[-1] + timedelta(minutes=self.rng.uniform(40, 300)))
        return [start for start in starts if start.date() == first.date()]

    def _visit(
        self, visitor: _Visitor, start: datetime, landing: str, source: _Source, until: datetime
    ) -> list[AnonymousEvent]:
        rng = self.rng
        pages = 1 if rng.random() < 0.45 else 2 + min(int(rng.expovariate(0.6)), 8)
        events = []
        at, path = start, landing
        for number in range(pages):
            if number:
                at += timedelta(seconds=5 + rng.expovariate(1 / 55))
                path = self.pick(_PAGES)
            if at >= until:
                break
            events.append(self._event(visitor, at, path, source if number == 0 else self.internal))
            if rng.random() < _OUTBOUND_SHARE:  # the tracker's outbound-link clicks (data-outbound)
                at += timedelta(seconds=2 + rng.expovariate(1 / 20))
                if at < until:
                    props = {"url": rng.choice(_OUTBOUND)}
                    events.append(self._event(visitor, at, path, self.internal, "Outbound Link: Click", props))
        return events

    def _event(
        self,
        visitor: _Visitor,
        at: datetime,
        path: str,
        source: _Source,
        name: str = "pageview",
        props: Mapping[str, str] | None = None,
    ) -> AnonymousEvent:
        agent = visitor.agent
        country, region, city = visitor.place
        referrer_host, source_name, channel, utm_source, utm_medium, utm_campaign, utm_content, utm_term = source
        return AnonymousEvent(
            site_id=self.site.id,
            ts=at.astimezone(UTC),
            name=name,
            visitor_id=visitor.visitor_id,
            previous_visitor_id=None,
            hostname=self.hostname,
            pathname=path,
            referrer_host=referrer_host,
            source=source_name,
            channel=channel,
            utm_source=utm_source,
            utm_medium=utm_medium,
            utm_campaign=utm_campaign,
            utm_content=utm_content,
            utm_term=utm_term,
            country=country,
            region=region,
            city=city,
            browser=agent.browser,
            browser_version=agent.browser_version,
            os=agent.os,
            os_version=agent.os_version,
            device=agent.device,
            screen=visitor.screen,
            props=props or {},
            consent=visitor.allowed,
        )

    def _record(self, visitor: _Visitor, method: ConsentMethod, at: datetime, path: str) -> ConsentRecord:
        rng, site = self.rng, self.site
        language = _LANGUAGES.get(visitor.place[0] or "", "en")
        lifetime = site.consent_lifetime_accept if visitor.allowed else site.consent_lifetime_reject
        at = at.astimezone(UTC)
        return ConsentRecord(
            consent_id=f"{rng.getrandbits(128):032x}",
            site_id=site.id,
            recorded_at=at,
            method=method,
            policy_revision=site.policy_revision,
            banner_hash=self.banners[language].content_hash,
            revision_hash=self.banners[language].content_hash,
            categories=category_choices(visitor.allowed),
            services={service.id: service.category in visitor.allowed for service in site.services},
            gpc=method == "gpc",
            language=language,
            page_path=path,
            ip_network=rng.choice(_NETWORKS),
            ua_family=visitor.agent.browser,
            expires_at=at + timedelta(seconds=lifetime.seconds) if lifetime.seconds else None,
            country=visitor.place[0],
            device=visitor.agent.device,
        )


def _allowed(rng: Random, method: ConsentMethod | None) -> frozenset[Category]:
    """The categories a decision allows; a custom choice mostly keeps functional and analytics."""
    if method == "accept_all":
        return frozenset(CONSENT_CATEGORIES)
    if method == "gpc":
        return frozenset(CONSENT_CATEGORIES) - GPC_OPT_OUT
    if method == "custom":
        shares: dict[Category, float] = {"functional": 0.8, "analytics": 0.6, "advertising": 0.15}
        return frozenset(category for category in CONSENT_CATEGORIES if rng.random() < shares.get(category, 0.5))
    return frozenset()


def _source(hostname: str, site: SiteSettings, query: str, referrer: str | None) -> _Source:
    """How ingest names the source of a landing on ``hostname`` with ``query`` from ``referrer``."""
    found = classify_source(f"http://{hostname}/?{query}", referrer, own_hosts=site.own_hosts | {hostname})
    utm = found.utm
    return (
        found.referrer_host,
        found.source,
        found.channel,
        utm.source,
        utm.medium,
        utm.campaign,
        utm.content,
        utm.term,
    )
