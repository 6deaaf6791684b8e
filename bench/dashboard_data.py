"""Synthetic traffic for the dashboard benchmark: a SQLite file shaped like months of a busy site.

The rows are what ``gateway.storage.events.insert_events`` would have written for that traffic, so
the dashboard's queries meet realistic cardinalities and skew rather than a few repeated values.
Writing them through the ingest path would take hours at 10M events; instead plain tuples go in with
``executemany`` (one transaction a day, ``synchronous=OFF``, no journal), then
``gateway.storage.rollups.rebuild_all`` builds the rollups (with the people behind each day's "(other)"
for the site's k, as the gateway's maintenance counts them) and ``ANALYZE`` the planner statistics.

What the traffic looks like (each figure is a weight below, not a promise of the output):

- Visits: a visitor id is 32 hex characters, new every day (daily salts); 70% of a day's visitors
  visit once, the rest 2-5 times, each visit starting over 30 minutes after the previous one ended.
  Pageviews per visit: 45% bounce (1 pageview), else 2 + geometric, a mean of about 2.6. Time
  between events: 1 s + exponential (mean about 60 s after a pageview, 15 s before a custom event),
  always under 30 minutes. A visit never crosses midnight (it is moved earlier in the day), so
  every event of a visit has the visit's visitor id.
- When: visits start on a daily curve (UTC; peak mid-afternoon, trough around 03:00), weekends
  carry 25% less traffic, and the period grows about 20% from its first day to its last, with a
  little day-to-day noise. ``events`` is met exactly: each day's share is fixed first.
- Pages: about 5,000 paths with Zipf popularity (s = 1.1): the fixed pages (``/``, ``/pricing``,
  ``/docs`` ...) lead, then blog posts (``/blog/slug-words-123``), docs (``/docs/section/page``),
  products (``/products/1234``), customer stories, tags, shuffled together. One hostname.
- Sources, named by ``gateway.ingest.referrer.classify_source`` itself from a referrer and landing
  URL, so the vocabulary is the classifier's: Direct ~35%, Google ~29% (google.com and country
  domains), Bing, DuckDuckGo and a few other engines ~7%, Facebook, X, LinkedIn, Reddit, Hacker
  News, YouTube ~8%, ~2,000 referring domains on a Zipf tail ~9%, and ~12% of visits tagged with
  UTM (~40 campaigns): newsletters (``utm_medium=email``), paid search and social (``cpc``,
  ``paid_social``, with click ids, so channel ``paid``), tagged social posts and partner links;
  ``utm_content`` and ``utm_term`` on some. Only a visit's first event has its source; later ones
  are internal navigation, stored as ingest stores it: "Direct / None", channel ``internal``.
- Geo: ~60 weighted countries plus a tail to ~200 ISO codes (1% unknown); a few regions and cities
  (English names, as the GeoLite adapter gives) for the top countries, NULL for some visits and
  for the tail. Browser, OS and device come from ~90 real user-agent strings run through
  ``gateway.ingest.useragent.parse_user_agent``; the screen class fits the device (2% NULL).
- ~4% of events are custom events (Signup {plan}, Download {file}, Outbound Link: Click {url},
  Contact Form, 404 {path}) with JSON props as ingest writes them (``{}`` for pageviews); consent is
  the comma-joined sorted categories ("" unknown), fixed per visitor.

Deterministic for a seed: every draw comes from one ``random.Random(seed)``, in a fixed order.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from itertools import accumulate, chain, product
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import gateway.storage.aggregates
import gateway.storage.rollups
from gateway.ingest.referrer import classify_source, is_referrer_spam
from gateway.ingest.useragent import parse_user_agent
from gateway.storage.db import _apply_migrations, _migrations
from gateway.storage.rollups import rebuild_all

__all__ = ["GeneratedData", "cached_database", "generate"]

HOSTNAME = "www.example.com"
#: Bump when the generated rows change, so ``cached_database`` stops reusing older files.
GENERATOR_VERSION = 2  # 2: rollup_other_visitors filled (migration 0011)
#: The site's k: the default ``min_visitors``, which ``bench/dashboard.py``'s site keeps.
MIN_VISITORS = 5
T = TypeVar("T")

_DAY_US = 86_400_000_000
_SECOND_US = 1_000_000
_MAX_GAP_US = 1_799 * _SECOND_US  # under the 30 minutes that end a visit
_NEXT_VISIT_GAP_US = 31 * 60 * _SECOND_US  # over them: ingest would otherwise continue the visit
_CUSTOM_SHARE = 0.04
_HMS = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
# Relative traffic by UTC hour: quiet nights, a mid-afternoon peak.
_HOURLY = (35, 28, 24, 22, 24, 30, 42, 58, 75, 88, 95, 100, 102, 105, 110, 112, 110, 102, 95, 88, 78, 66, 55, 44)

_LOAD_PRAGMAS = ("PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", "PRAGMA cache_size=-262144")
# The migrations' indexes on the loaded tables, dropped during the load and created again after it.
_INDEXES = (
    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('events', 'visits') AND sql NOT NULL"
)
_INSERT_VISITS = """
INSERT INTO visits (id, site_id, visitor_id, started_at, last_seen, entry_page, exit_page, pageviews, events)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_EVENTS = """
INSERT INTO events (
    ts, name, pathname, props, visit_id, site_id, hostname, visitor_id, consent, country, region, city,
    browser, browser_version, os, os_version, device, screen,
    referrer_host, source, channel, utm_source, utm_medium, utm_campaign, utm_content, utm_term
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# A visit while its day is being made: (start, the visit's event values, its events as
# (offset, name, path, props), pageviews, exit page).
_Visit = tuple[int, tuple[object, ...], list[tuple[int, str, str, str]], int, str]

_WORDS = (
    "privacy cookie consent analytics growth design code stack cloud data open web tiny fast simple static "
    "indie maker studio labs daily weekly digital garden notes tech dev ops product market startup saas "
    "pixel craft build ship launch metric signal forest river mountain ocean north south blue green red "
    "golden silver quiet bright clever honest modern classic urban rural"
).split()
_COUNTRIES = (  # ~60 weighted countries (share of visits, %), the largest first
    "US 22 DE 9 GB 7 FR 5 IN 5 CA 3.5 NL 3 BR 2.8 ES 2.5 IT 2.5 AU 2.2 PL 1.8 SE 1.5 CH 1.4 JP 1.4 AT 1.1 "
    "BE 1.1 MX 1 DK .9 NO .9 FI .8 IE .8 PT .8 CZ .8 TR .8 ID .7 RU .7 UA .6 RO .6 AR .6 ZA .6 SG .5 IL .5 "
    "KR .5 PH .5 NZ .5 VN .4 GR .4 HU .4 CO .4 CL .4 NG .4 PK .4 EG .3 TH .3 MY .3 BD .3 TW .3 HK .3 AE .3 "
    "SA .2 KE .2 PE .2 BG .2 HR .2 SK .2 LT .2 SI .2 RS .2 EE .15 LV .15"
).split()
_TAIL_COUNTRIES = (  # the long tail, equal small shares
    "AD AF AG AL AM AO AZ BA BB BF BH BI BJ BN BO BS BT BW BY BZ CD CF CG CI CM CR CU CV CY DJ DM DO DZ EC ER "
    "ET FJ FM GA GD GE GH GM GN GQ GT GW GY HN HT IQ IR IS JM JO KG KH KI KM KN KW KZ LA LB LC LI LK LR LS LU "
    "LY MA MC MD ME MG MH MK ML MM MN MR MT MU MV MW MZ NA NE NI NP NR OM PA PG PS PW PY QA RW SB SC SD SL SM "
    "SN SO SR SS ST SV SY SZ TD TG TJ TL TM TN TO TT TV TZ UG UY UZ VA VC VE WS XK YE ZM ZW"
).split()
_PLACES = {  # region: cities, for the top countries (English names, as GeoLite2 gives them)
    "US": {"California": "San Francisco,Los Angeles,San Jose", "New York": "New York,Brooklyn", "Texas": "Austin"},
    "DE": {"Berlin": "Berlin", "Bavaria": "Munich,Nuremberg", "Hamburg": "Hamburg", "Hesse": "Frankfurt am Main"},
    "GB": {"England": "London,Manchester,Bristol", "Scotland": "Edinburgh,Glasgow"},
    "FR": {"Île-de-France": "Paris", "Auvergne-Rhône-Alpes": "Lyon,Grenoble", "Occitanie": "Toulouse"},
    "IN": {"Karnataka": "Bengaluru", "Maharashtra": "Mumbai,Pune", "Delhi": "New Delhi"},
    "CA": {"Ontario": "Toronto,Ottawa", "Quebec": "Montreal", "British Columbia": "Vancouver"},
    "NL": {"North Holland": "Amsterdam,Haarlem", "South Holland": "Rotterdam,The Hague", "Utrecht": "Utrecht"},
    "BR": {"São Paulo": "São Paulo,Campinas", "Rio de Janeiro": "Rio de Janeiro"},
}
_OUTBOUND = ("https://github.com/example/sdk", "https://docs.python.org/3/", "https://x.com/example")
_CUSTOM_EVENTS = (  # (name, weight, prop key, values)
    ("Signup", 30, "plan", ("free", "pro", "team", "enterprise")),
    ("Download", 20, "file", ("whitepaper.pdf", "pricing.pdf", "dpa.pdf", "brand-kit.zip")),
    ("Outbound Link: Click", 35, "url", _OUTBOUND),
    ("Contact Form", 8, "", ()),
    ("404", 7, "path", ("/old-pricing", "/blog/draft", "/wp-login.php", "/docs/v1/setup")),
)
_CONSENTS = (("", 20), ("analytics", 30), ("analytics,functional", 15), ("advertising,analytics,functional", 35))


@dataclass(frozen=True, slots=True)
class GeneratedData:
    """What one ``generate`` call wrote and how long each part took."""

    path: Path
    events: int
    visits: int
    days: int
    generate_seconds: float  # migrations, rows and indexes
    rollup_seconds: float  # rebuild_all and ANALYZE
    file_bytes: int


def generate(path: Path, *, events: int, days: int, end: date, site_id: str = "bench", seed: int = 1) -> GeneratedData:
    """Write a fresh database at ``path`` holding ``events`` events of ``site_id`` over the ``days`` UTC
    days that end with ``end`` (inclusive); replaces any file already there."""
    if events < 0 or days < 1:
        raise ValueError("expected events >= 0 and days >= 1")
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    _apply_migrations(path)
    rng = random.Random(seed)
    traffic = _Traffic(rng)
    first = end - timedelta(days=days - 1)
    calendar = [first + timedelta(days=offset) for offset in range(days)]
    visits = 0
    with (
        contextlib.closing(sqlite3.connect(path, isolation_level=None, check_same_thread=False)) as connection,
        ThreadPoolExecutor(1) as writer,  # SQLite releases the GIL while it works: write one day, make the next
    ):
        for pragma in _LOAD_PRAGMAS:
            connection.execute(pragma)
        indexes = connection.execute(_INDEXES).fetchall()
        for name, _ in indexes:  # rebuilt at the end: one sort each instead of millions of B-tree inserts
            connection.execute(f"DROP INDEX {name}")
        written: Future[None] | None = None
        for day, budget in zip(calendar, _daily_budgets(rng, calendar, events), strict=True):
            visit_rows, event_rows = traffic.day(day, budget, site_id, first_visit_id=visits + 1)
            visits += len(visit_rows)
            if written is not None:
                written.result()
            written = writer.submit(_insert_day, connection, visit_rows, event_rows)
        if written is not None:
            written.result()
        connection.execute("BEGIN")
        for _, sql in indexes:
            connection.execute(sql)
        connection.execute("COMMIT")
        generated = time.perf_counter()
        _roll_up(connection, site_id)
        connection.execute("ANALYZE")
        connection.execute("PRAGMA journal_mode=WAL")  # as the gateway keeps it
    rolled_up = time.perf_counter()
    return GeneratedData(path, events, visits, days, generated - started, rolled_up - generated, path.stat().st_size)


def cached_database(
    events: int, *, days: int = 60, end: date, seed: int = 1, folder: Path = Path(".cache/bench")
) -> Path:
    """The generated file for these parameters, made once: written under a temporary name and renamed
    when complete, so an interrupted run never leaves a file that looks finished.

    The name also carries a digest of the migrations and the rollup code: after either changes, the
    rollups a cached file holds would not be what the gateway computes, so a new file is made.
    """
    name = f"dashboard-{events}ev-{days}d-{end.isoformat()}-s{seed}-{_code_digest()}.sqlite3"
    final = folder / name
    if final.exists():
        return final
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{name}.{os.getpid()}.partial"
    try:
        generate(partial, events=events, days=days, end=end, seed=seed)
        os.replace(partial, final)
    finally:
        for leftover in (partial, partial.with_name(partial.name + "-wal"), partial.with_name(partial.name + "-shm")):
            leftover.unlink(missing_ok=True)
    return final


def _insert_day(
    connection: sqlite3.Connection, visit_rows: list[tuple[object, ...]], event_rows: list[tuple[object, ...]]
) -> None:
    connection.execute("BEGIN")
    connection.executemany(_INSERT_VISITS, visit_rows)
    connection.executemany(_INSERT_EVENTS, event_rows)
    connection.execute("COMMIT")


def _roll_up(connection: sqlite3.Connection, site_id: str) -> int:
    """The one call into the rollups (all UTC: the generated site has no ``timezone``)."""
    connection.execute("BEGIN")
    built = rebuild_all(connection, site_id, floors={site_id: MIN_VISITORS})
    connection.execute("COMMIT")
    return built


def _code_digest() -> str:
    """What the file's rows depend on: the generator, the events/visits/rollups schema and the SQLite SQL
    that computes a day's rollups and its "(other)" visitors (not the rest of the Python around them, so
    a refactor keeps the cache). Only SQLite's text: the file is SQLite whatever store the bench measures,
    and a PostgreSQL copy rebuilds its rollups with its own SQL, so a change there leaves the file valid."""
    digest = hashlib.sha256(str(GENERATOR_VERSION).encode())
    for _, name, sql in _migrations():
        if name.startswith(("0002_", "0011_")):
            digest.update(name.encode() + sql.encode())
    for per_dialect in (gateway.storage.rollups._SELECT_DAY, gateway.storage.rollups._SELECT_OTHER_VISITORS):
        digest.update(_sqlite_text(per_dialect).encode())
    return digest.hexdigest()[:10]


def _sqlite_text(sql: str | Mapping[Any, str]) -> str:
    """SQLite's statement from SQL kept per dialect (or one text for both)."""
    return sql if isinstance(sql, str) else sql["sqlite"]


def _daily_budgets(rng: random.Random, calendar: Sequence[date], events: int) -> list[int]:
    """Each day's events: growth over the period, quieter weekends, a little noise; they sum to ``events``."""
    span = max(len(calendar) - 1, 1)
    weights = [
        (1 + 0.2 * index / span) * (0.75 if day.weekday() >= 5 else 1.0) * rng.uniform(0.95, 1.05)
        for index, day in enumerate(calendar)
    ]
    total = sum(weights)
    marks = [round(events * share / total) for share in accumulate(weights)]
    return [mark - previous for previous, mark in zip([0, *marks], marks, strict=False)]


def _draws(rng: random.Random, population: Sequence[T], weights: Sequence[float], chunk: int = 4096) -> Iterator[T]:
    """Endless weighted draws, made ``chunk`` at a time (one ``choices`` call serves thousands of events)."""
    cumulative = list(accumulate(weights))
    return chain.from_iterable(iter(lambda: rng.choices(population, cum_weights=cumulative, k=chunk), None))


def _zipf(count: int, s: float) -> list[float]:
    return [1 / rank**s for rank in range(1, count + 1)]


class _Traffic:
    """The precomputed vocabularies and the draws over them, for one seed."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        pages = _pages(rng)
        self.paths = _draws(rng, pages, _zipf(len(pages), 1.1))
        sources = _sources(rng)
        self.sources = _draws(rng, [source for source, _ in sources], [weight for _, weight in sources])
        self.internal = _classified("", f"https://{HOSTNAME}/")
        places = _places(rng)
        self.places = _draws(rng, [place for place, _ in places], [weight for _, weight in places])
        agents = _agents()
        self.agents = _draws(rng, [agent for agent, _ in agents], [weight for _, weight in agents])
        self.screens = {
            "desktop": _draws(rng, ("laptop", "desktop", "tablet", None), (50, 42, 6, 2)),
            "mobile": _draws(rng, ("mobile", "tablet", None), (96, 2, 2)),
            "tablet": _draws(rng, ("tablet", "laptop", None), (85, 13, 2)),
        }
        self.consents = _draws(rng, [consent for consent, _ in _CONSENTS], [weight for _, weight in _CONSENTS])
        customs = [
            (name, json.dumps({key: value}, ensure_ascii=False) if key else "{}")
            for name, _, key, values in _CUSTOM_EVENTS
            for value in values or ("",)
        ]
        custom_weights = [
            weight / max(len(values), 1) for _, weight, _, values in _CUSTOM_EVENTS for _ in values or ("",)
        ]
        self.customs = _draws(rng, customs, custom_weights)
        # 45% bounce, else 2 + geometric(p) with mean 1.91: about 2.6 pageviews a visit overall.
        p = 1 / 2.91
        self.pageviews = _draws(rng, range(1, 41), [45.0, *(55 * p * (1 - p) ** n for n in range(39))])
        self.visits_per_visitor = _draws(rng, (1, 2, 3, 4, 5), (70, 18, 7, 3, 2))
        self.minutes = _draws(rng, range(1440), [_HOURLY[minute // 60] for minute in range(1440)])

    def day(
        self, day: date, budget: int, site_id: str, *, first_visit_id: int
    ) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        """The visits and events of one day, exactly ``budget`` events; visit and event ids follow time,
        as ingest assigns them (the first event of a visit is its lowest id)."""
        rng, expo, rand, paths = self.rng, self.rng.expovariate, self.rng.random, self.paths
        visits: list[_Visit] = []
        while budget > 0:
            visitor = f"{rng.getrandbits(128):032x}"
            agent = next(self.agents)
            person: tuple[object, ...] = (site_id, HOSTNAME, visitor, next(self.consents), *next(self.places), *agent)
            person += (next(self.screens[agent[4]]),)
            count = next(self.visits_per_visitor)
            starts = sorted(next(self.minutes) * 60 * _SECOND_US + int(rand() * 60 * _SECOND_US) for _ in range(count))
            earliest = 0
            for start in starts:
                if not budget:
                    break
                shape: list[tuple[int, str, str, str]] = []  # (offset, name, path, props)
                offset = pageviews = 0
                path = ""
                for _ in range(min(next(self.pageviews), budget)):
                    if pageviews:
                        offset += min(_SECOND_US + int(expo(1 / 59) * _SECOND_US), _MAX_GAP_US)
                    path = next(paths)
                    shape.append((offset, "pageview", path, "{}"))
                    pageviews += 1
                    if rand() < _CUSTOM_SHARE / (1 - _CUSTOM_SHARE) and len(shape) < budget:
                        offset += min(_SECOND_US // 5 + int(expo(1 / 15) * _SECOND_US), _MAX_GAP_US)
                        name, props = next(self.customs)
                        shape.append((offset, name, path, props))
                    if len(shape) >= budget:
                        break
                start = min(max(start, earliest), _DAY_US - 1 - offset)
                if start < earliest:  # no room left today for this visitor's next visit
                    break
                visits.append((start, person, shape, pageviews, path))
                budget -= len(shape)
                earliest = start + offset + _NEXT_VISIT_GAP_US
        return self._rows(day, visits, first_visit_id)

    def _rows(
        self, day: date, visits: list[_Visit], first_visit_id: int
    ) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        """Rows in the column order of ``_INSERT_VISITS`` and ``_INSERT_EVENTS``: what changes from one
        event to the next first, then the visit's values as one shared tuple (a single concatenation)."""
        prefix, hms, internal = day.isoformat() + "T", _HMS, self.internal
        visit_rows: list[tuple[object, ...]] = []
        event_rows: list[tuple[object, ...]] = []
        append = event_rows.append
        visits.sort(key=itemgetter(0))
        for visit_id, (start, person, shape, pageviews, exit_page) in enumerate(visits, first_visit_id):
            common = (visit_id, *person)
            tail = common + next(self.sources)
            for offset, name, path, props in shape:
                at = start + offset
                # What isoformat() gives for a UTC time; microseconds never 0, so never left out.
                append((f"{prefix}{hms[at // _SECOND_US]}.{at % _SECOND_US or 1:06d}+00:00", name, path, props) + tail)
                tail = common + internal
            last = start + shape[-1][0]
            visit_rows.append(
                (
                    visit_id,
                    person[0],
                    person[2],
                    f"{prefix}{hms[start // _SECOND_US]}.{start % _SECOND_US or 1:06d}+00:00",
                    f"{prefix}{hms[last // _SECOND_US]}.{last % _SECOND_US or 1:06d}+00:00",
                    shape[0][2],
                    exit_page,
                    pageviews,
                    len(shape),
                )
            )
        event_rows.sort(key=itemgetter(0))
        return visit_rows, event_rows


def _classified(query: str, referrer: str | None) -> tuple[str | None, ...]:
    """(referrer_host, source, channel, utm_source, utm_medium, utm_campaign, utm_content, utm_term)."""
    found = classify_source(f"https://{HOSTNAME}/?{query}", referrer, own_hosts=frozenset({HOSTNAME}))
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


def _slug(rng: random.Random, words: int) -> str:
    return "-".join(rng.sample(_WORDS, words))


def _pages(rng: random.Random) -> list[str]:
    """5,000 distinct paths, the site's fixed pages first (most popular), the rest shuffled."""
    fixed = (
        "/ /pricing /features /docs /blog /signup /login /about /contact /integrations /changelog /security "
        "/privacy /terms /careers /customers /products /docs/getting-started /docs/api /status"
    ).split()
    sections = ("getting-started", "guides", "api", "sdk", "self-hosting", "integrations", "reference", "faq")
    shapes = [
        *(f"/blog/{_slug(rng, rng.randint(2, 5))}-{n}" for n in range(1, 2_101)),
        *(f"/docs/{rng.choice(sections)}/{_slug(rng, rng.randint(2, 4))}" for _ in range(1_500)),
        *(f"/products/{n}" for n in rng.sample(range(1_000, 10_000), 1_300)),
        *(f"/customers/{_slug(rng, 2)}" for _ in range(200)),
        *(f"/tags/{word}" for word in _WORDS),
    ]
    tail = [path for path in dict.fromkeys(shapes) if path not in fixed]
    rng.shuffle(tail)
    return [*fixed, *tail][:5_000]


def _sources(rng: random.Random) -> list[tuple[tuple[str | None, ...], float]]:
    """(classified source, share in %) for every referrer and tag combination a landing can carry."""
    known = [  # (referrer, share %)
        (None, 35), ("https://www.google.com/", 18), ("https://www.google.de/", 3), ("https://www.google.co.uk/", 2.5),
        ("https://www.google.fr/", 2), ("https://www.google.co.in/", 1.5), ("https://www.google.es/", 1),
        ("https://www.google.com.br/", 1), ("https://www.bing.com/", 3.5), ("https://duckduckgo.com/", 2),
        ("https://www.ecosia.org/", .5), ("https://search.yahoo.com/", .5), ("https://yandex.ru/", .3),
        ("https://www.baidu.com/", .2), ("https://l.facebook.com/", 1.7), ("https://m.facebook.com/", .8),
        ("https://t.co/", 1.5), ("https://www.linkedin.com/", 1.5), ("https://www.reddit.com/", 1.5),
        ("https://news.ycombinator.com/", .5), ("https://www.youtube.com/", .5),
    ]  # fmt: skip
    found = [(_classified("", referrer), share) for referrer, share in known]
    domains = _referring_domains(rng)
    found += [
        (_classified("", f"https://{domain}/"), 9 * w) for domain, w in zip(domains, _shares(2_000, 1.0), strict=True)
    ]
    campaigns = iter(
        [f"newsletter-2026-{n:02d}" for n in range(1, 13)]
        + "product-update onboarding-drip webinar-invite".split()  # email
        + "brand competitors consent-banner gdpr-analytics bing-brand bing-competitors".split()  # paid search
        + "retargeting-q1 b2b-lookalike".split()  # paid social
        + "launch-week case-study feature-friday hiring conference-2026 gdpr-day open-source".split()  # social
        + "partner-program affiliate-spring integration-directory podcast-sponsor review-sites".split()  # referral
        + "comparison-post guest-post ebook-promo black-friday year-in-review".split()
    )
    mail, google, bing = "https://mail.google.com/", "https://www.google.com/", "https://www.bing.com/"
    facebook, linkedin = "https://l.facebook.com/", "https://www.linkedin.com/"
    keywords = ("cookie consent", "gdpr analytics", "plausible alternative", "cookie banner", "privacy analytics")
    kinds = (  # (share %, utm_sources with referrers, medium, campaigns, contents, terms, click id)
        (
            3.5,
            [("newsletter", None), ("newsletter", mail), ("mailchimp", None)],
            "email",
            15,
            ("header", "cta"),
            (),
            "",
        ),
        (2.5, [("google", google)], "cpc", 4, ("ad-a", "ad-b"), keywords, "gclid"),
        (0.5, [("bing", bing)], "cpc", 2, (), keywords[:2], "msclkid"),
        (1.0, [("facebook", facebook), ("linkedin", linkedin)], "paid_social", 2, ("video", "carousel"), (), ""),
        (2.0, [("twitter", "https://t.co/"), ("linkedin", None), ("reddit", None)], "social", 7, ("thread",), (), ""),
        (2.5, [(domain, f"https://{domain}/") for domain in domains[:12]], "referral", 10, ("sidebar",), (), ""),
    )
    for share, senders, medium, campaign_count, contents, terms, click in kinds:
        names = [next(campaigns) for _ in range(campaign_count)]
        combos = list(product(senders, names, (None, *contents), (None, *terms)))
        rng.shuffle(combos)
        for ((utm_source, referrer), campaign, content, term), weight in zip(
            combos, _shares(len(combos), 1.0), strict=True
        ):
            query = f"utm_source={utm_source}&utm_medium={medium}&utm_campaign={campaign}"
            query += (f"&utm_content={content}" if content else "") + (
                f"&utm_term={term.replace(' ', '+')}" if term else ""
            )
            query += f"&{click}=Cj0KCQ" if click else ""
            found.append((_classified(query, referrer), share * weight))
    return found


def _shares(count: int, s: float) -> list[float]:
    weights = _zipf(count, s)
    total = sum(weights)
    return [weight / total for weight in weights]


def _referring_domains(rng: random.Random) -> list[str]:
    """2,000 made-up hosts that the classifier calls referrals (not known, not on the spam list)."""
    tlds = ("com", "io", "org", "net", "dev", "co.uk", "de", "fr", "blog", "app")
    found: dict[str, None] = {}
    while len(found) < 2_000:
        first, second, tld = rng.choice(_WORDS), rng.choice(_WORDS), rng.choice(tlds)
        domain = rng.choice((f"{first}{second}.{tld}", f"{first}-{second}.{tld}", f"blog.{first}{second}.{tld}"))
        if not is_referrer_spam(domain) and _classified("", f"https://{domain}/")[2] == "referral":
            found[domain] = None
    return list(found)


def _places(rng: random.Random) -> list[tuple[tuple[str | None, str | None, str | None], float]]:
    """(country, region, city) with shares: places for the top countries, NULL region/city for some."""
    found: list[tuple[tuple[str | None, str | None, str | None], float]] = [((None, None, None), 1.0)]
    shares = dict(zip(_COUNTRIES[::2], map(float, _COUNTRIES[1::2]), strict=True))
    shares.update(dict.fromkeys(_TAIL_COUNTRIES, 0.03))
    for country, share in shares.items():
        regions = _PLACES.get(country)
        if not regions:
            found.append(((country, None, None), share))
            continue
        found.append(((country, None, None), share * 0.1))
        region_shares = _shares(len(regions), 1.0)
        for (region, cities), region_share in zip(regions.items(), region_shares, strict=True):
            found.append(((country, region, None), share * 0.9 * region_share * 0.1))
            city_names = cities.split(",")
            for city, city_share in zip(city_names, _shares(len(city_names), 1.2), strict=True):
                found.append(((country, region, city), share * 0.9 * region_share * 0.9 * city_share))
    return found


def _agents() -> list[tuple[tuple[str, str, str, str, str], float]]:
    """(browser, browser_version, os, os_version, device) with shares, parsed from real user agents."""
    families = (  # (template, share %, newest version, versions); {k} {K} {m}: repeated tokens
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) {k} Chrome/{v}.0.0.0 Safari/537.36", 24, 126, 10),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {k} Chrome/{v}.0.0.0 Safari/537.36", 9, 126, 8),
        ("Mozilla/5.0 (X11; Linux x86_64) {k} Chrome/{v}.0.0.0 Safari/537.36", 2, 126, 6),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) {k} Chrome/{v}.0.0.0 Safari/537.36", 1, 126, 4),
        ("Mozilla/5.0 (Linux; Android 10; K) {k} Chrome/{v}.0.0.0 {m}", 16, 126, 8),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS {i} like Mac OS X) {K} Version/{s} Mobile/15E148 Safari/604.1", 17, 17, 4),
        ("Mozilla/5.0 (iPad; CPU OS {i} like Mac OS X) {K} Version/{s} Mobile/15E148 Safari/604.1", 3, 17, 3),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {K} Version/{s} Safari/605.1.15", 7, 17, 3),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0", 5, 127, 9),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0", 1.5, 127, 7),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) {k} Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0", 8, 126, 8),
        ("Mozilla/5.0 (Linux; Android {a}; SAMSUNG SM-S911B) {k} SamsungBrowser/{v}.0 Chrome/117.0.0.0 {m}", 3, 25, 4),
        ("Mozilla/5.0 (Linux; Android {a}; SM-X700) {k} Chrome/{v}.0.0.0 Safari/537.36", 1.5, 126, 6),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) {k} Chrome/{c}.0.0.0 Safari/537.36 OPR/{v}.0.0.0", 2, 110, 6),
    )
    found: dict[tuple[str, str, str, str, str], float] = {}
    webkit, safari_kit = "AppleWebKit/537.36 (KHTML, like Gecko)", "AppleWebKit/605.1.15 (KHTML, like Gecko)"
    for template, share, newest, count in families:
        for version, weight in zip(range(newest, newest - count, -1), _shares(count, 1.3), strict=True):
            minor = version % 6
            text = template.format(
                k=webkit,
                K=safari_kit,
                m="Mobile Safari/537.36",
                v=version,
                a=14 - version % 2,
                i=f"{version}_{minor}",
                s=f"{version}.{minor}",
                c=version + 16,
            )
            info = parse_user_agent(text)
            key = (info.browser, info.browser_version, info.os, info.os_version, info.device)
            found[key] = found.get(key, 0.0) + share * weight
    return list(found.items())


def main(argv: list[str] | None = None) -> None:
    """Make one file and print its report as JSON: ``python bench/dashboard_data.py --events 1000000``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 3, 31), help="last day, YYYY-MM-DD")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(".cache/bench/dashboard.sqlite3"))
    options = parser.parse_args(argv)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    report = generate(options.out, events=options.events, days=options.days, end=options.end, seed=options.seed)
    print(json.dumps({**asdict(report), "path": str(report.path)}))


if __name__ == "__main__":
    main()
