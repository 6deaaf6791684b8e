"""How fast the dashboard answers on a busy site: the 30-day overview and each breakdown, at 1M and 10M events.

What is measured: the real page, ``GET /dashboard/bench?period=30d`` (and
``/dashboard/bench/breakdown/DIMENSION?period=30d``), answered by ``create_app`` in this process
through httpx's ASGI transport with a signed-in session: the queries, the k-anonymity folding, the
SVG chart and the Jinja2 rendering, everything but the network. The app is created as ``serve``
creates it (``freeze_heap``: the garbage collector's thresholds included). The data is synthetic traffic
(``bench/dashboard_data.py``: 60 days, ~5,000 pages on a Zipf curve, ~2,000 referring domains,
~200 countries, real user agents), generated once per size and cached under ``.cache/bench``.

The baseline, same run: the overview's questions (top line, both series, the panels' breakdowns)
asked of ``Stats(raw_events=True)``, which reads every day cell from raw events, one day at a time
with the rollups' own SQL, and remembers nothing; its top line must equal the rollups' (checked,
figure by figure, against the same questions asked of the rollups). No page is rendered there.
(A filter that "keeps every event" no longer does it: the privacy floor resolves ``page!=`` a
page nobody viewed to "always true" and answers from the rollups.)

On PostgreSQL (``--store postgresql``; a throwaway cluster under ``.cache/postgres`` unless
``--database-url``, bench/stores.py): the same generated SQLite file is copied into a fresh database by
``gateway.storage.migrate.copy_store`` (what ``consent-gateway migrate-store`` runs: COPY in batches),
``ANALYZE``d, and the same requests measured; the load's parts are printed. The rollups and stored
visits come with the copy, as an operator's do (``migrate-store`` proves they equal the source's);
``--rebuild-rollups`` rebuilds the rollups with PostgreSQL's own SQL first (``rebuild_all``, as the
generator does on SQLite; every day's stored visits are then built again too). It is off by default:
at 1M events it took over a minute a day on a loaded machine, an hour for the 60 days.

Reported: the first request's time (cold: the sums of settled days are not remembered yet, see
``gateway/stats/sums.py``), then median and p95 over ``--runs`` requests after two warm-ups (p95 is
the 19th of 20); the raw overview once per size (it takes tens of seconds at 10M). Target: the 30-day overview at 10M
events under 150 ms p95 (goal 100 ms). The last line is JSON: ``{"store", "overview_p95_ms_1m",
"overview_p95_ms_10m", "raw_p95_ms_10m", "breakdowns_p95_ms_10m": {...}, "filtered_first_ms_10m",
"filtered_p95_ms_10m", "mb_per_million_events_10m", ...}``. ``--rounds N`` measures the same loaded data N
times (a new app each time, so each first request is cold for the gateway, though not for the OS's
page cache) and reports each figure's median over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import re
import sqlite3
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from dashboard_data import MIN_VISITORS, cached_database
from stores import BenchStore, add_store_options, bench_store

from gateway import create_app
from gateway.accounts.passwords import hash_password
from gateway.accounts.sessions import SESSION_COOKIE, Sessions
from gateway.clock import FixedClock
from gateway.settings import Settings, settings_from_dict
from gateway.stats.figures import Figures
from gateway.stats.period import Interval, parse_interval, parse_period
from gateway.stats.query import Stats, StatsQuery
from gateway.storage import visit_days
from gateway.storage.location import PostgresUrl
from gateway.storage.migrate import copy_store
from gateway.storage.rollups import day_bounds, rebuild_all
from gateway.storage.store import Store, open_store
from gateway.storage.users import add_user, get_user
from gateway.web.dashboard_view import PANELS

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"
END = date(2026, 3, 31)
NOW = datetime(2026, 3, 31, 15, 0, tzinfo=UTC)
TARGET_P95_MS = 150
BREAKDOWNS = (
    "page",
    "entry_page",
    "exit_page",
    "source",
    "channel",
    "referrer",
    "utm_campaign",
    "country",
    "region",
    "city",
    "browser",
    "browser_version",
    "os",
    "device",
    "screen",
    "event",
)
#: The filtered 30-day overviews: one "is", two "is" filters, and one "is not" (visit dimensions: stored visits).
FILTERED_VIEWS: dict[str, tuple[str, ...]] = {
    "one_is": ("source==Google",),
    "two_is": ("country==DE", "device==mobile"),
    "is_not": ("country!=US",),
}
_TOP_LINE_RE = re.compile(r'class="metric-value">([^<]+)<')


def bench_settings(database: str) -> Settings:
    """The bench site on ``database`` (a SQLite path or a PostgreSQL URL)."""
    return settings_from_dict(
        {
            "secret_keys": ["bench-secret-key-bench-secret-key"],
            "database": database,
            "rollup_interval": "1d",  # nothing arrives: keep the maintenance task quiet
            "sites": {"bench": {"name": "Bench", "origins": ["https://shop.example.com"]}},
        },
        source="bench",
    )


async def session_cookie(settings: Settings) -> str:
    """A signed-in session of a bench user (created once in the cached file)."""
    database = await open_store(settings.database).open()
    try:
        user = await get_user(database, "bench")
        if user is None:
            await add_user(database, "bench", hash_password("bench password 1"), is_admin=True, now=NOW)
            user = await get_user(database, "bench")
        assert user is not None
        return (await Sessions(database, settings.secret_keys).start(user.id, NOW, network=None))[1]
    finally:
        await database.close()


async def timed(fetch: Callable[[], Awaitable[httpx.Response]], runs: int) -> tuple[list[float], httpx.Response]:
    """``runs`` timings after a first request and two warm-ups; the first's time comes first in the list."""
    started = time.perf_counter()
    response = await fetch()
    first = (time.perf_counter() - started) * 1000
    for _ in range(2 if runs > 1 else 0):  # warm-up: the page cache and SQLite's statement cache
        response = await fetch()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await fetch()
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{response.request.url}: {response.status_code} {response.text[:300]}")
    return [first, *times], response


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def data_file(events: int, days: int, *, reuse: bool) -> Path:
    """The generated traffic's SQLite file. ``reuse``: take a file generated earlier for the same size and
    days whatever the digest of the code that made it (a change of the rollups' SQL text that keeps their
    figures would otherwise regenerate 10M events for ~20 minutes; ``raw_matches`` still compares them)."""
    if reuse:
        found = sorted(CACHE.glob(f"dashboard-{events}ev-{days}d-{END.isoformat()}-s1-*.sqlite3"))
        if found:
            print(f"reusing {found[-1].name} (--reuse-data: its digest is not checked)")
            return found[-1]
    return cached_database(events, days=days, end=END, folder=CACHE)


def load_postgres(path: Path, store: BenchStore, name: str, *, rebuild_rollups: bool = False) -> str:
    """A fresh PostgreSQL database holding the SQLite file's rows, planned (and rolled up); its URL."""
    url = store.new_database(name)
    started = time.perf_counter()
    report = copy_store(path, PostgresUrl(url), batch_rows=20_000)
    copied = time.perf_counter() - started
    print(
        f"  loaded into PostgreSQL: {report.rows:,} rows in {copied:.0f} s ({report.rows / copied:,.0f} rows/s; "
        + ", ".join(f"{table.table} {table.seconds:.0f} s" for table in report.copied if table.seconds >= 1)
        + ")",
        flush=True,
    )
    started = time.perf_counter()
    _analyze(url)
    analyzed = time.perf_counter() - started
    print(f"  ANALYZE {analyzed:.0f} s", flush=True)
    if rebuild_rollups:
        started = time.perf_counter()
        days = asyncio.run(_roll_up_postgres(url))
        rolled_up = time.perf_counter() - started
        _analyze(url)
        print(f"  rollups of {days} days rebuilt with PostgreSQL's SQL in {rolled_up:.0f} s", flush=True)
    return url


def _analyze(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("ANALYZE")


async def _roll_up_postgres(url: str) -> int:
    """The generator's rollups (UTC, "(other)" visitors for the site's k), on the PostgreSQL store."""
    database = await open_store(PostgresUrl(url)).open()
    try:
        return await database.write(lambda connection: rebuild_all(connection, "bench", floors={"bench": MIN_VISITORS}))
    finally:
        await database.close()


@contextlib.asynccontextmanager
async def _collector_restored() -> AsyncIterator[None]:
    """The garbage collector as it was before the app froze the heap (the bench runs in-process, the
    tests too)."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


async def measure(events: int, database: str, runs: int, *, raw: bool = True) -> dict[str, object]:
    """One round of requests against ``database`` (already loaded with ``events`` events)."""
    settings = bench_settings(database)
    print(f"{events:,} events on {settings.database}", flush=True)
    cookie = await session_cookie(settings)
    # As `serve` creates it (gateway/app.py, freeze_heap): with the interpreter's default collector
    # thresholds a full collection ran every few requests once the caches held ~450,000 objects, and
    # its 65-165 ms were the p95 of warm pages; `serve` never ran with those thresholds.
    app = create_app(settings, clock=FixedClock(NOW), freeze_heap=True)
    async with _collector_restored(), app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        cookies = {SESSION_COOKIE: cookie}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", cookies=cookies) as client:

            def page(path: str, **params: str) -> Callable[[], Awaitable[httpx.Response]]:
                return lambda: client.get(path, params={"period": "30d", **params})

            (first_overview, *overview), response = await timed(page("/dashboard/bench"), runs)
            top_line = _TOP_LINE_RE.findall(response.text)
            breakdowns = {}
            for dimension in BREAKDOWNS:
                (_, *times), _ = await timed(page(f"/dashboard/bench/breakdown/{dimension}"), runs)
                breakdowns[dimension] = times
            started = time.perf_counter()
            await build_visits(settings)
            build_s = time.perf_counter() - started
            filtered = {}
            for name, filters in FILTERED_VIEWS.items():
                filtered[name], _ = await timed(
                    lambda f=filters: client.get(  # type: ignore[misc]
                        "/dashboard/bench", params=[("period", "30d"), *(("f", text) for text in f)]
                    ),
                    runs,
                )
    raw_ms, raw_matches = 0.0, True
    if raw:
        raw_ms, raw_matches = await raw_overview(settings)
    result: dict[str, object] = {
        "overview_first_ms": round(first_overview, 1),
        "overview_median_ms": round(statistics.median(overview), 1),
        "overview_p95_ms": round(p95(overview), 1),
        "raw_ms": round(raw_ms, 1),
        "raw_matches": raw_matches,
        "breakdowns_p95_ms": {d: round(p95(t), 1) for d, t in breakdowns.items()},
        "breakdowns_median_ms": {d: round(statistics.median(t), 1) for d, t in breakdowns.items()},
        "top_line": top_line,
        "visits_build_s": round(build_s, 1),
        "filtered_first_ms": {name: round(times[0], 1) for name, times in filtered.items()},
        "filtered_p95_ms": {name: round(p95(times[1:]), 1) for name, times in filtered.items()},
        "filtered_median_ms": {name: round(statistics.median(times[1:]), 1) for name, times in filtered.items()},
    }
    print(
        f"  overview (30 days): first request {result['overview_first_ms']} ms (nothing remembered yet), "
        f"then median {result['overview_median_ms']} ms, p95 {result['overview_p95_ms']} ms"
    )
    print(f"  stored visits built (as maintenance does after rolling up): {result['visits_build_s']} s")
    for name, filters in FILTERED_VIEWS.items():
        print(
            f"  filtered overview {' & '.join(filters)}: first {result['filtered_first_ms'][name]} ms, "  # type: ignore[index]
            f"median {result['filtered_median_ms'][name]} ms, p95 {result['filtered_p95_ms'][name]} ms"  # type: ignore[index]
        )
    print(f"  same overview from raw events: {result['raw_ms']} ms (top line equal: {result['raw_matches']})")
    for dimension in BREAKDOWNS:
        print(
            f"  breakdown {dimension:<16} median {result['breakdowns_median_ms'][dimension]:>7} ms"  # type: ignore[index]
            f"  p95 {result['breakdowns_p95_ms'][dimension]:>7} ms"  # type: ignore[index]
        )
    return result


async def build_visits(settings: Settings) -> None:
    """Each day's stored visits (``gateway.storage.visit_days``), as maintenance builds them after the
    rollups: the filtered views' first request then reads them instead of building them."""
    site = settings.sites["bench"]
    store: Store = await open_store(settings.database).open()
    try:
        first, last = (END - timedelta(days=90)).isoformat(), END.isoformat()
        for day, generation in await visit_days.stale_days(store, site.id, first, last):
            start, stop = day_bounds(date.fromisoformat(day), site.zone)
            await visit_days.build_day(store, site.id, day, generation, start, stop)
    finally:
        await store.close()


async def raw_overview(settings: Settings) -> tuple[float, bool]:
    """The overview's questions from raw events (ms), and whether its top line equals the rollups'."""
    site = settings.sites["bench"]
    period = parse_period({"period": "30d"}, NOW.date())
    query = StatsQuery(site, period)
    interval = parse_interval({}, period)
    database = await open_store(settings.database).open()
    try:
        started = time.perf_counter()
        raw = await _overview(Stats(database, FixedClock(NOW), raw_events=True), query, interval)
        raw_ms = (time.perf_counter() - started) * 1000
        rollups = await _overview(Stats(database, FixedClock(NOW)), query, interval)
    finally:
        await database.close()
    return raw_ms, raw == rollups


async def _overview(stats: Stats, query: StatsQuery, interval: Interval) -> Figures:
    """What the overview page asks (``gateway/web/dashboard.py``), each panel on its first tab."""
    aggregate = await stats.aggregate(query)
    await stats.timeseries(query, interval)
    await stats.timeseries(query, interval, previous=True)
    for _, _, tabs in PANELS:
        await stats.breakdown(query, tabs[0])
    return aggregate.current


def label(events: int) -> str:
    return f"{events // 1_000_000}m" if events >= 1_000_000 else f"{events // 1000}k"


def median_of(values: list[object]) -> float:
    return round(statistics.median(float(value) for value in values), 1)  # type: ignore[arg-type]


def summarise(name: str, rounds: list[dict[str, object]], on_disk: int, events: int) -> dict[str, object]:
    """The JSON keys of one size: each figure the median over the rounds (one round: its own figure)."""

    def per_view(key: str) -> dict[str, float]:
        return {view: median_of([r[key][view] for r in rounds]) for view in FILTERED_VIEWS}  # type: ignore[index]

    first, p95s, medians = per_view("filtered_first_ms"), per_view("filtered_p95_ms"), per_view("filtered_median_ms")
    return {
        f"overview_p95_ms_{name}": median_of([r["overview_p95_ms"] for r in rounds]),
        f"overview_median_ms_{name}": median_of([r["overview_median_ms"] for r in rounds]),
        f"overview_first_ms_{name}": median_of([r["overview_first_ms"] for r in rounds]),
        f"raw_p95_ms_{name}": rounds[0]["raw_ms"],  # one run (the first round): its own p95
        f"raw_matches_{name}": rounds[0]["raw_matches"],
        f"breakdowns_p95_ms_{name}": {
            dimension: median_of([r["breakdowns_p95_ms"][dimension] for r in rounds])  # type: ignore[index]
            for dimension in BREAKDOWNS
        },
        f"filtered_first_ms_{name}": max(first.values()),
        f"filtered_p95_ms_{name}": max(p95s.values()),
        f"filtered_by_view_{name}": {
            "first_ms": first,
            "median_ms": medians,
            "p95_ms": p95s,
            "visits_build_s": rounds[0]["visits_build_s"],
            "rounds": [
                {
                    "first_ms": r["filtered_first_ms"],
                    "p95_ms": r["filtered_p95_ms"],
                    "overview_p95_ms": r["overview_p95_ms"],
                }
                for r in rounds
            ],
        },
        f"mb_per_million_events_{name}": round(on_disk / events * 1e6 / 1e6, 1) if events else None,
    }


def bytes_on_disk(store: BenchStore, database: str) -> int:
    """What the database takes: the SQLite file checkpointed (its WAL folded in), or pg_database_size."""
    if store.kind == "sqlite":
        with contextlib.closing(sqlite3.connect(database)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            page_size, pages, free = (
                connection.execute(f"PRAGMA {pragma}").fetchone()[0]
                for pragma in ("page_size", "page_count", "freelist_count")
            )
        return int(page_size * (pages - free))  # free pages are reused, not storage the events need
    return store.size_bytes(database)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000], help="sizes to measure")
    parser.add_argument("--runs", type=int, default=20, help="timed requests per page (after 2 warm-ups)")
    parser.add_argument("--rounds", type=int, default=1, help="measure the loaded data this many times (medians)")
    parser.add_argument("--days", type=int, default=60, help="days of traffic generated")
    add_store_options(parser)
    parser.add_argument(
        "--rebuild-rollups", action="store_true", help="postgresql: rebuild the copied rollups with its own SQL"
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the raw-events baseline (minutes at 10M)")
    parser.add_argument(
        "--reuse-data", action="store_true", help="use a cached data file of the same size whatever its code digest"
    )
    args = parser.parse_args()
    summary: dict[str, object] = {"store": args.store}
    with bench_store(args.store, CACHE, args.database_url) as store:
        for events in args.events:
            name = label(events)
            started = time.perf_counter()
            path = data_file(events, args.days, reuse=args.reuse_data)
            ready = time.perf_counter() - started
            print(
                f"{events:,} events: data file ready in {ready:.0f} s ({path.stat().st_size / 1e6:,.0f} MB)", flush=True
            )
            database = (
                str(path)
                if store.kind == "sqlite"
                else load_postgres(path, store, f"dashboard_{name}", rebuild_rollups=args.rebuild_rollups)
            )
            rounds = []
            for index in range(args.rounds):
                raw = not args.no_raw and index == 0
                rounds.append(asyncio.run(measure(events, database, args.runs, raw=raw)))
            on_disk = bytes_on_disk(store, database)  # after the rounds: with every day's stored visits built
            store.sizes.append((events, on_disk))
            print(f"  {on_disk / 1e6:,.0f} MB on disk: {on_disk / events:,.0f} bytes per event", flush=True)
            summary.update(summarise(name, rounds, on_disk, events))
    largest = label(max(args.events))
    met = float(summary[f"overview_p95_ms_{largest}"]) < TARGET_P95_MS  # type: ignore[arg-type]
    print(
        f"target: 30-day overview p95 < {TARGET_P95_MS} ms at {largest} on {args.store}: {'met' if met else 'NOT met'}"
    )
    summary["target_met"] = met
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
