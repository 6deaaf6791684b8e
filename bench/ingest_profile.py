"""Where the time of one accepted event goes, in microseconds per stage, without a server.

A tight loop over the exact Python work ``POST /api/event`` does per event, on the 512 bodies and
20 user agents of ``bench/ingest.py``: JSON decode, ``parse_event``, each pipeline step,
``anonymise``, then ``insert_events`` in batches of 64 inside ``BEGIN IMMEDIATE ... COMMIT`` on a
temporary SQLite file (the writer's settings: WAL, ``synchronous=NORMAL``). With ``--store
postgresql`` the writer stage is ``store_events`` through ``run_batch`` on a writer connection, as
the event writer process runs it, on a database of its own (a throwaway cluster unless
``--database-url``), and ``server_us`` adds the server's CPU per event (its backend, from /proc,
when the server runs on this machine). It leaves out uvicorn,
asyncio and the GIL hand-offs between the event loop and the writer thread; ``bench/ingest.py``
reports those as per-thread CPU under wrk.

Each stage is timed on its own: this thread's CPU time (``thread_time_ns``, so other processes on a
shared machine do not count, and neither does waiting for the disk) around a whole pass of the stage
over every event; a pass is repeated ``--repeat`` times and the fastest is kept, because interference
(caches, frequency) only ever adds time. ``--profile`` prints the
cProfile of one pass of the whole path instead. The client address is 127.0.0.1, as under wrk
(``--public-ips`` uses a spread of public addresses, so geo lookups miss the cache). The last line
printed is JSON: ``{"events", "batch", "stages_us": {stage: µs per event}, "request_us",
"writer_us", "total_us", "store"[, "server_us"]}``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ingest import build_requests, write_settings  # noqa: E402
from ingest_apps import SITE, ingest_settings  # noqa: E402
from stores import BenchStore, add_store_options, bench_store, cpu_ticks  # noqa: E402

from gateway.ingest.bots import IgnoreList  # noqa: E402
from gateway.ingest.event import AnonymousEvent, Dropped, IncomingEvent  # noqa: E402
from gateway.ingest.geo import open_geo  # noqa: E402
from gateway.ingest.payload import parse_event  # noqa: E402
from gateway.ingest.pipeline import STEPS, Draft, PipelineContext, anonymise, run_pipeline  # noqa: E402
from gateway.ingest.visitor import DailySalts  # noqa: E402
from gateway.storage.db import _apply_migrations  # noqa: E402
from gateway.storage.events import insert_events, store_events  # noqa: E402
from gateway.storage.location import parse_database  # noqa: E402
from gateway.storage.store import check_store, open_store  # noqa: E402
from gateway.web.errors import decode_json_object  # noqa: E402

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a fixed instant: timings must not depend on the date
REQUEST_STAGES = ("decode_json", "parse_event", *(step.__name__ for step in STEPS), "anonymise")


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events per pass (default: 20000)")
    parser.add_argument("--batch", type=int, default=64, help="events per insert_events transaction (default: 64)")
    parser.add_argument("--repeat", type=int, default=5, help="passes per stage; the fastest counts (default: 5)")
    parser.add_argument("--public-ips", action="store_true", help="spread public client addresses (geo misses)")
    parser.add_argument("--profile", action="store_true", help="print cProfile of one pass instead of timings")
    add_store_options(parser)
    return parser.parse_args(argv)


def _addresses(count: int, public: bool) -> list[str]:
    if not public:
        return ["127.0.0.1"] * count
    # documentation-free, routable /16s of large providers; the same address repeats like a visitor's would
    return [
        f"{(81, 92, 151, 185)[i % 4]}.{(i * 7) % 250 + 1}.{(i * 13) % 250}.{(i * 31) % 250 + 1}" for i in range(count)
    ]


class _Bench:
    def __init__(self, directory: Path, count: int, public_ips: bool, store: BenchStore) -> None:
        database = store.new_database("profile")
        settings = ingest_settings(write_settings(directory / "settings.json", database))
        site = settings.sites[SITE]
        salts = DailySalts(START.date().isoformat(), secrets.token_bytes(32), None, START + timedelta(days=1))
        self.context = PipelineContext(
            site=site, geo=open_geo(settings.geoip_database), salts=salts, ignore=IgnoreList.parse(site.ignore_ips)
        )
        requests = build_requests(512)
        self.bodies = [requests[i % len(requests)][1].encode() for i in range(count)]
        self.agents = [requests[i % len(requests)][0] for i in range(count)]
        self.addresses = _addresses(count, public_ips)
        self.times = [START + timedelta(microseconds=250 * i) for i in range(count)]
        self.headers = [{"user-agent": agent, "content-type": "text/plain", "host": "gw"} for agent in self.agents]
        self.kind = store.kind
        if store.kind == "postgresql":
            location = parse_database(database)
            check_store(location)  # the schema
            self.postgres = open_store(location)
            self.writer: Any = self.postgres.connect_writer()
            self.backend: int | None = int(self.writer.raw.info.backend_pid)
            return
        self.backend = None
        _apply_migrations(Path(database))
        self.connection = sqlite3.connect(database, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")

    def decode(self) -> list[dict[str, Any]]:
        return [decode_json_object(body) for body in self.bodies]

    def parse(self, raws: list[dict[str, Any]]) -> list[IncomingEvent]:
        return [
            parse_event(raw, received_at=now, client_ip=ip, user_agent=headers.get("user-agent", ""), headers=headers)
            for raw, now, ip, headers in zip(raws, self.times, self.addresses, self.headers, strict=True)
        ]

    def store(self, events: list[AnonymousEvent], batch: int) -> None:
        if self.kind == "postgresql":
            for start in range(0, len(events), batch):
                chunk = events[start : start + batch]
                self.postgres.run_batch(self.writer, partial(store_events, events=chunk, outbox=(), now=None))
            return
        connection = self.connection
        for start in range(0, len(events), batch):
            connection.execute("BEGIN IMMEDIATE")
            insert_events(connection, events[start : start + batch])
            connection.execute("COMMIT")

    def reset(self) -> None:
        """Empty the tables between passes, so every pass opens the same visits."""
        connection = self.writer if self.kind == "postgresql" else self.connection
        for table in ("events", "visits", "rollup_dirty"):
            connection.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    def server_ticks(self) -> int | None:
        """The PostgreSQL backend's user + system CPU clock ticks so far (None: SQLite, or not on this machine)."""
        return None if self.backend is None else cpu_ticks(self.backend)


def _best(repeat: int, run: Callable[[], object], before: Callable[[], object] | None = None) -> tuple[float, Any]:
    """The fastest of ``repeat`` runs in CPU nanoseconds of this thread, and the last run's result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.thread_time_ns()
        result = run()
        best = min(best, time.thread_time_ns() - started)
    return best, result


def _best_store(bench: _Bench, events: list[AnonymousEvent], batch: int, repeat: int) -> tuple[float, float | None]:
    """The writer stage: the fastest pass in this thread's CPU nanoseconds, and the PostgreSQL
    backend's CPU nanoseconds during that pass (None when it cannot be read)."""
    best, server = float("inf"), None
    nanoseconds_per_tick = 1e9 / os.sysconf("SC_CLK_TCK")
    for _ in range(repeat):
        bench.reset()
        ticks_before = bench.server_ticks()
        started = time.thread_time_ns()
        bench.store(events, batch)
        elapsed = time.thread_time_ns() - started
        ticks_after = bench.server_ticks()
        if elapsed < best:
            best = elapsed
            if ticks_before is not None and ticks_after is not None:
                server = (ticks_after - ticks_before) * nanoseconds_per_tick
    return best, server


def _profile(bench: _Bench, batch: int) -> None:
    def whole() -> None:
        events = []
        for raw, now, ip, headers in zip(bench.decode(), bench.times, bench.addresses, bench.headers, strict=True):
            incoming = parse_event(
                raw, received_at=now, client_ip=ip, user_agent=headers["user-agent"], headers=headers
            )
            result = run_pipeline(incoming, bench.context)
            assert not isinstance(result, Dropped)  # noqa: S101 - the bench's events are all counted
            events.append(result)
        bench.store(events, batch)

    whole()  # warm the caches, as a running server has them
    bench.reset()
    profiler = cProfile.Profile()
    profiler.runcall(whole)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main(argv: list[str] | None = None) -> int:
    options = _options(argv)
    with ExitStack() as stack:
        temp = stack.enter_context(tempfile.TemporaryDirectory(prefix="cg-ingest-profile-"))
        store = stack.enter_context(bench_store(options.store, Path(temp), options.database_url))
        bench = _Bench(Path(temp), options.events, options.public_ips, store)
        if bench.kind == "postgresql":
            stack.callback(bench.writer.close)
        if options.profile:
            _profile(bench, options.batch)
            return 0
        count, repeat = options.events, options.repeat
        timings: dict[str, float] = {}
        timings["decode_json"], raws = _best(repeat, bench.decode)
        timings["parse_event"], incoming = _best(repeat, lambda: bench.parse(raws))
        drafts = [Draft(event) for event in incoming]
        for step in STEPS:
            fresh = [Draft(d.incoming, d.source, d.agent, d.geo) for d in drafts]
            timings[step.__name__], out = _best(
                repeat, lambda step=step, fresh=fresh: [step(d, bench.context) for d in fresh]
            )
            if any(isinstance(d, Dropped) for d in out):
                raise SystemExit(f"profile: {step.__name__} dropped a bench event")
            drafts = out
        timings["anonymise"], events = _best(repeat, lambda: [anonymise(d, bench.context) for d in drafts])
        timings["insert_events"], server_ns = _best_store(bench, events, options.batch, repeat)
        stages = {name: ns / count / 1000 for name, ns in timings.items()}
        request_us = sum(stages[name] for name in REQUEST_STAGES)
        writer_us = stages["insert_events"]
        print(
            f"{count} events, batches of {options.batch}, fastest of {repeat} passes, "
            f"store {bench.kind}, pid {os.getpid()}"
        )
        for name, us in stages.items():
            print(f"  {name:<18} {us:8.2f} µs/event")
        print(f"  {'request path':<18} {request_us:8.2f} µs/event (decode .. anonymise)")
        print(f"  {'writer':<18} {writer_us:8.2f} µs/event (insert_events + commit)")
        result: dict[str, Any] = {
            "events": count,
            "batch": options.batch,
            "stages_us": {name: round(us, 2) for name, us in stages.items()},
            "request_us": round(request_us, 2),
            "writer_us": round(writer_us, 2),
            "total_us": round(request_us + writer_us, 2),
            "store": bench.kind,
        }
        if server_ns is not None:
            result["server_us"] = round(server_ns / count / 1000, 2)
            print(f"  {'server':<18} {result['server_us']:8.2f} µs/event (the PostgreSQL backend, same passes)")
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
