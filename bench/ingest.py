"""Accepted events per second of ``POST /api/event``, against a bare 202 endpoint, in one run.

What is measured: the gateway (``create_app``, the bundled GeoLite2 reader, a fresh SQLite file per
round) served by a real uvicorn (one worker, no access log) on 127.0.0.1, against a bare Starlette
endpoint on the same stack that reads the body and answers 202 (``bench/ingest_apps.py``).

How: ``wrk`` in a separate process posts 512 different events in turn (``bench/ingest.lua``):
pageviews and custom events over a dozen paths, search/social/referral/internal referrers, UTM
tags and ad click ids, props, screen widths, consent snapshots, and 20 real browser user agents
(no bots, so every event is counted). Before timing, a debug gateway is sent each of the 512 once
and must store all of them (nothing dropped). Rounds alternate bare/gateway (the order flips each
round) because the machine is shared and noisy; each run is a warm-up, then ``--seconds`` measured.

Reported: accepted (2xx) events/s of both and the ratio of medians; the gateway's p50/p99
latency (wrk --latency, median over rounds); acknowledged events (every 2xx, warm-up included)
against rows in the database after the server stopped ("lost" = acknowledged but not stored: must
be 0; a few more rows than acknowledgements are requests wrk cut off at the end of a run, stored
but never answered); the gateway's peak RSS (VmHWM, read before it stops). Targets: ratio >= 0.5,
lost == 0, rss < 150 MB (the server's peak plus its child processes' peaks: the gateway, as ``serve``
runs it, writes events from a child process). Also the server's CPU µs per accepted event (from
/proc): ``loop``, the main thread where the event loop runs, ``threads``, all the others (the SQLite
writer thread when there is one, the reader), and ``children``, its child processes (the event
writer process, multiprocessing's resource tracker), to say where the time goes; on PostgreSQL in a
throwaway cluster also ``database``, the server's processes (the postmaster and what it started). The last line
printed is JSON:
``{"bare_rps", "ingest_rps", "ratio", "p50_ms", "p99_ms", "acknowledged", "stored", "lost", "rss_mb",
"cpu_us": {"gateway": {"children", "loop", "threads"[, "database"]}, "bare": {...}}, "rounds", "seconds", "writer"}``.
``--writer thread`` measures the gateway with the writer thread instead of the writer process.

``--store postgresql`` (bench/stores.py) runs every gateway on a database of its own on PostgreSQL (a
throwaway cluster unless ``--database-url`` names a server) and then also measures two gateway nodes
sharing one database against one node (``--no-two-nodes`` skips it). The JSON adds ``store``,
``storage_mb_per_million_events`` (the stored rounds' database size, median) and, for two nodes,
``one_node_rps``, ``two_nodes_rps`` and ``two_nodes_ratio``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from ingest_apps import SETTINGS_ENV, SITE, WRITER_ENV
from rounds import add_round_options, check_round_options, free_port
from stores import BenchStore, add_store_options, bench_store, children_of, cpu_ticks

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LUA = BENCH_DIR / "ingest.lua"
TARGET_RATIO = 0.5
TARGET_RSS_MB = 150
PAGE = "https://shop.example.com"
_RESULT_RE = re.compile(r"CG_RESULT accepted=(\d+) busy=(\d+) other=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+)")
_SOCKET_ERRORS_RE = re.compile(r"Socket errors:.*")

#: Real browsers as they announced themselves in 2024; none is a bot, headless or a library.
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/127.0 "
    "Mobile/15E148 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile "
    "Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile "
    "Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 "
    "Chrome/121.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 "
    "Edg/126.0.2592.68",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
    "Safari/537.36 Edg/126.0.2592.68",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 "
    "OPR/111.0.0.0",
    "Mozilla/5.0 (Linux; Android 13; moto g power (2023)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 "
    "Mobile Safari/537.36",
)
_PATHS = (
    "/",
    "/pricing",
    "/blog/how-we-count-visitors",
    "/docs/install",
    "/docs/configuration",
    "/products/trail-boots",
    "/products/rain-jacket",
    "/cart",
    "/checkout",
    "/about",
    "/contact",
)
_REFERRERS = (
    None,
    "https://www.google.com/",
    "https://www.google.de/",
    "https://duckduckgo.com/",
    "https://www.bing.com/search?q=trail+boots",
    "https://news.ycombinator.com/item?id=40000000",
    "https://www.reddit.com/r/selfhosted/comments/abc123/",
    "https://l.facebook.com/",
    "https://blog.example.org/review-of-the-year",
    "https://shop.example.com/",
    None,
    None,
    "https://github.com/example/project",
)
_QUERIES = (
    "",
    "",
    "?utm_source=newsletter&utm_medium=email&utm_campaign=spring-sale",
    "?utm_source=google&utm_medium=cpc&utm_campaign=brand&utm_term=boots&gclid=Cj0KCQjw",
    "?ref=producthunt",
    "?utm_source=mastodon&utm_medium=social",
    "?q=boots&page=2",
)
_EVENTS: tuple[tuple[str, dict[str, Any] | None], ...] = (
    ("pageview", None),
    ("pageview", None),
    ("pageview", None),
    ("pageview", None),
    ("Signup", {"plan": "pro", "seats": 5}),
    ("Add to cart", {"sku": "TB-42", "price": 129.0}),
    ("pageview", None),
    ("Download", {"file": "install-guide.pdf"}),
    ("Outbound Link: Click", {"url": "https://github.com/example/project"}),
)
_WIDTHS = (390, 412, 768, 820, 1280, 1366, 1440, 1920, 2560, None, 1536)


def build_requests(count: int) -> list[tuple[str, str]]:
    """``count`` (user agent, JSON body) pairs; each field cycles with its own period, so they mix."""
    found = []
    for index in range(count):
        name, props = _EVENTS[index % len(_EVENTS)]
        body: dict[str, Any] = {
            "s": SITE,
            "n": name,
            "u": PAGE + _PATHS[index % len(_PATHS)] + _QUERIES[index % len(_QUERIES)],
        }
        if referrer := _REFERRERS[index % len(_REFERRERS)]:
            body["r"] = referrer
        if (width := _WIDTHS[index % len(_WIDTHS)]) is not None:
            body["w"] = width
        if props:
            body["p"] = props
        if index % 4 == 0:
            body["c"] = ["functional", "analytics"]
        found.append((USER_AGENTS[index % len(USER_AGENTS)], json.dumps(body, separators=(",", ":"))))
    return found


@dataclass(frozen=True, slots=True)
class Options:
    rounds: int
    seconds: int
    warmup: int
    connections: int
    requests: int
    writer: str
    store: str = "sqlite"
    database_url: str | None = None
    two_nodes: bool = False


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_round_options(parser, other="gateway")
    parser.add_argument("--requests", type=int, default=512, help="distinct events wrk cycles through (default: 512)")
    parser.add_argument(
        "--writer",
        choices=("process", "thread"),
        default="process",
        help="who writes the events: a child process, as serve runs it (default), or the writer thread",
    )
    add_store_options(parser)
    parser.add_argument(
        "--two-nodes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also measure two gateway nodes on one database against one node (default: on for postgresql)",
    )
    args = parser.parse_args(argv)
    check_round_options(parser, args)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    two_nodes = args.store == "postgresql" if args.two_nodes is None else args.two_nodes
    if two_nodes and args.store != "postgresql":
        parser.error("--two-nodes needs --store postgresql (nodes share a database server)")
    return Options(
        args.rounds,
        args.seconds,
        args.warmup,
        args.connections,
        args.requests,
        args.writer,
        args.store,
        args.database_url,
        two_nodes,
    )


def write_settings(path: Path, database: str, *, debug: bool = False) -> Path:
    raw = {
        "secret_keys": ["bench-secret-key"],
        "database": database,
        "debug": debug,
        "sites": {SITE: {"name": "Bench shop", "origins": [PAGE]}},
    }
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


@dataclass(slots=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]

    def thread_cpu_ticks(self) -> dict[str, int]:
        """User + system CPU clock ticks so far: ``loop`` (the main thread, where the event loop runs),
        ``threads`` (every other thread together: the SQLite writer, the reader, to_thread) and
        ``children`` (the child processes: the event writer process)."""
        ticks = {"loop": 0, "threads": 0, "children": 0}
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text(encoding="ascii", errors="replace")
            except OSError:  # the thread ended meanwhile
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks["loop" if task.name == str(self.process.pid) else "threads"] += int(fields[11]) + int(fields[12])
        ticks["children"] = sum(cpu_ticks(child) for child in children_of(self.process.pid))
        return ticks

    def peak_rss_mb(self) -> float:
        """VmHWM: the most resident memory the process, plus each of its children, has held so far."""
        kilobytes = 0
        for pid in (self.process.pid, *children_of(self.process.pid)):
            try:
                status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
            except OSError:
                continue
            kilobytes += int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1))  # type: ignore[union-attr]
        return kilobytes / 1024


@contextmanager
def running_server(factory: str, settings_file: Path, log_dir: Path, writer: str = "process") -> Iterator[Server]:
    """uvicorn serving ``ingest_apps:<factory>`` in its own process; stopped gracefully (SIGTERM) on exit."""
    port = free_port()
    log_path = log_dir / f"uvicorn-{factory}-{port}.log"
    command = [sys.executable, "-m", "uvicorn", f"ingest_apps:{factory}", "--factory", "--app-dir", str(BENCH_DIR)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    env = {**os.environ, SETTINGS_ENV: str(settings_file), WRITER_ENV: writer}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            server = Server(f"http://127.0.0.1:{port}", process)
            _wait_until_answering(server, log_path)
            yield server
        finally:
            process.terminate()  # the gateway drains its write queue before it exits
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    if process.returncode not in (0, -15):
        raise SystemExit(f"bench: uvicorn {factory} exited with {process.returncode}:\n{log_path.read_text()}")


def _wait_until_answering(server: Server, log_path: Path) -> None:
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"bench: uvicorn exited with {server.process.returncode}:\n{log_path.read_text()}")
        try:
            httpx.get(server.url + "/", timeout=1)  # any answer will do (both say 404 here)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"bench: uvicorn did not answer on {server.url} within 30 s:\n{log_path.read_text()}")


def verify_events(requests: list[tuple[str, str]], directory: Path, writer: str, store: BenchStore) -> None:
    """Fail loudly unless a debug gateway stores every one of the benchmark's events (no drop, no error)."""
    database = store.new_database("verify")
    settings_file = write_settings(directory / "verify.json", database, debug=True)
    with (
        running_server("gateway", settings_file, directory, writer) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        for agent, body in requests:
            answer = http.post("/api/event", content=body, headers={"user-agent": agent, "content-type": "text/plain"})
            if answer.status_code != 202 or "x-consent-gateway-dropped" in answer.headers:
                dropped = answer.headers.get("x-consent-gateway-dropped")
                raise SystemExit(f"bench: {body} from {agent!r} answered {answer.status_code} {answer.text} {dropped}")
    stored = store.count_events(database)
    browsers = store.scalar(database, "SELECT count(DISTINCT browser) FROM events")
    names = store.scalar(database, "SELECT count(DISTINCT name) FROM events")
    channels = store.scalar(database, "SELECT count(DISTINCT channel) FROM events")
    if stored != len(requests):
        raise SystemExit(f"bench: {len(requests)} events acknowledged but {stored} stored")
    print(
        f"verified: {stored} distinct events all stored; {browsers} browsers, {names} event names, {channels} channels"
    )


@dataclass(frozen=True, slots=True)
class WrkResult:
    accepted: int
    busy: int
    other: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def accepted_per_second(self) -> float:
        return self.accepted / self.seconds


def run_wrk(url: str, requests_file: Path, *, seconds: int, connections: int) -> WrkResult:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(LUA)]
    command += [url, "--", str(requests_file)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    match = _RESULT_RE.search(completed.stdout)
    if completed.returncode != 0 or match is None:
        raise SystemExit(f"bench: wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    if socket_errors := _SOCKET_ERRORS_RE.search(completed.stdout):
        print(f"  wrk: {socket_errors.group(0)}")
    accepted, busy, other, duration_us, p50_us, p99_us = (int(group) for group in match.groups())
    if other:
        raise SystemExit(f"bench: {other} answers were neither 2xx nor 503:\n{completed.stdout}")
    return WrkResult(accepted, busy, other, duration_us / 1e6, p50_us / 1000, p99_us / 1000)


@dataclass(frozen=True, slots=True)
class Round:
    measured: WrkResult
    acknowledged: int  # every 2xx of the warm-up and the measurement
    stored: int | None  # rows after the server stopped (the gateway only)
    rss_mb: float
    #: CPU µs per accepted event of each of the server's threads during the measured run.
    cpu_us: dict[str, float]
    #: Events per write transaction (group commit), warm-up included; None for bare.
    batch_events: float | None = None


def measure(
    factory: str, options: Options, directory: Path, requests_file: Path, index: int, store: BenchStore
) -> Round:
    database = store.new_database(f"round-{index}-{factory}")
    settings_file = write_settings(directory / f"round-{index}.json", database)
    with running_server(factory, settings_file, directory, options.writer) as server:
        warm = None
        if options.warmup:
            warm = run_wrk(server.url, requests_file, seconds=options.warmup, connections=options.connections)
        before, database_before = server.thread_cpu_ticks(), store.server_cpu_ticks()
        measured = run_wrk(server.url, requests_file, seconds=options.seconds, connections=options.connections)
        after, database_after = server.thread_cpu_ticks(), store.server_cpu_ticks()
        if database_before is not None and database_after is not None:
            before["database"], after["database"] = database_before, database_after
        rss_mb = server.peak_rss_mb()
        batch_events = _mean_batch(server.url) if factory == "gateway" else None
    acknowledged = measured.accepted + (warm.accepted if warm else 0)
    stored = store.count_events(database) if factory == "gateway" else None
    if factory == "gateway" and stored:
        store.sizes.append((stored, store.size_bytes(database)))
    cpu_us = _cpu_us_per_event(before, after, measured.accepted)
    return Round(measured, acknowledged, stored, rss_mb, cpu_us, batch_events)


def measure_nodes(
    count: int, options: Options, directory: Path, requests_file: Path, index: int, store: BenchStore
) -> float:
    """Accepted events/s of ``count`` gateway nodes sharing one database, each under its own wrk
    (the connections split between them), summed."""
    database = store.new_database(f"nodes-{count}-{index}")
    settings_file = write_settings(directory / f"nodes-{count}-{index}.json", database)
    with ExitStack() as stack:
        servers = [
            stack.enter_context(running_server("gateway", settings_file, directory, options.writer))
            for _ in range(count)
        ]
        connections = max(1, options.connections // count)

        def load(server: Server, seconds: int) -> WrkResult:
            return run_wrk(server.url, requests_file, seconds=seconds, connections=connections)

        with ThreadPoolExecutor(count) as pool:
            if options.warmup:
                list(pool.map(lambda server: load(server, options.warmup), servers))
            results = list(pool.map(lambda server: load(server, options.seconds), servers))
    return sum(result.accepted_per_second for result in results)


def _mean_batch(url: str) -> float | None:
    """Events per commit so far, from the gateway's own /metrics counters."""
    values = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("consent_gateway_write_batches_total", "consent_gateway_write_batch_events_total"):
            values[name] = float(value)
    batches = values.get("consent_gateway_write_batches_total")
    return values["consent_gateway_write_batch_events_total"] / batches if batches else None


def _cpu_us_per_event(before: dict[str, int], after: dict[str, int], events: int) -> dict[str, float]:
    us_per_tick = 1e6 / os.sysconf("SC_CLK_TCK")
    return {
        name: round((ticks - before.get(name, 0)) * us_per_tick / max(events, 1), 1) for name, ticks in after.items()
    }


def _median_cpu(rounds: list[Round]) -> dict[str, float]:
    names = sorted({name for r in rounds for name in r.cpu_us})
    return {name: round(statistics.median(r.cpu_us.get(name, 0.0) for r in rounds), 1) for name in names}


def _format_cpu(cpu_us: dict[str, float]) -> str:
    return ", ".join(f"{name} {us:.0f}" for name, us in cpu_us.items())


def _stack() -> str:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn {uvicorn.__version__} (auto picks loop={loop}, http={http}), Python {sys.version.split()[0]}"


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed (`make bench` installs Debian's wrk)")
    requests = build_requests(options.requests)
    bare: list[Round] = []
    ingest: list[Round] = []
    nodes: dict[int, list[float]] = {1: [], 2: []}
    with (
        tempfile.TemporaryDirectory(prefix="cg-bench-ingest-") as temp,
        bench_store(options.store, Path(temp), options.database_url) as store,
    ):
        directory = Path(temp)
        requests_file = directory / "requests.tsv"
        requests_file.write_text("".join(f"{agent}\t{body}\n" for agent, body in requests), encoding="utf-8")
        print(_stack())
        print(
            f"wrk -t1 -c{options.connections} --latency, {options.warmup} s warm-up + {options.seconds} s measured, "
            f"{options.rounds} rounds alternating bare/gateway, {len(requests)} distinct events, "
            f"{len(USER_AGENTS)} user agents ({os.cpu_count()} CPUs, shared), events written by the writer "
            f"{options.writer}, store {options.store}",
            flush=True,
        )
        verify_events(requests, directory, options.writer, store)

        for index in range(options.rounds):
            order = ("bare", "gateway") if index % 2 == 0 else ("gateway", "bare")
            for factory in order:
                result = measure(factory, options, directory, requests_file, index, store)
                (bare if factory == "bare" else ingest).append(result)
            b, g = bare[-1].measured, ingest[-1].measured
            print(
                f"round {index + 1}/{options.rounds}: bare {b.accepted_per_second:>8,.0f}/s   "
                f"gateway {g.accepted_per_second:>8,.0f}/s (p50 {g.p50_ms:.1f} ms, p99 {g.p99_ms:.1f} ms, "
                f"503s {g.busy})   ratio {g.accepted_per_second / b.accepted_per_second:.3f}   "
                f"acknowledged {ingest[-1].acknowledged} stored {ingest[-1].stored}   "
                f"rss {ingest[-1].rss_mb:.0f} MB (bare {bare[-1].rss_mb:.0f} MB)   "
                f"events per commit {ingest[-1].batch_events or 0:.1f}\n"
                f"  CPU µs/event: gateway {_format_cpu(ingest[-1].cpu_us)}; bare {_format_cpu(bare[-1].cpu_us)}",
                flush=True,
            )
        if options.two_nodes:
            for index in range(options.rounds):
                for count in (1, 2) if index % 2 == 0 else (2, 1):
                    nodes[count].append(measure_nodes(count, options, directory, requests_file, index, store))
                print(
                    f"nodes round {index + 1}/{options.rounds}: one node {nodes[1][-1]:>8,.0f}/s   "
                    f"two nodes {nodes[2][-1]:>8,.0f}/s   ratio {nodes[2][-1] / nodes[1][-1]:.3f}",
                    flush=True,
                )
        mb_per_million = store.mb_per_million_events()

    bare_rps = statistics.median(r.measured.accepted_per_second for r in bare)
    ingest_rps = statistics.median(r.measured.accepted_per_second for r in ingest)
    ratio = ingest_rps / bare_rps
    p50_ms = statistics.median(r.measured.p50_ms for r in ingest)
    p99_ms = statistics.median(r.measured.p99_ms for r in ingest)
    acknowledged = sum(r.acknowledged for r in ingest)
    stored = sum(r.stored or 0 for r in ingest)
    lost = sum(max(0, r.acknowledged - (r.stored or 0)) for r in ingest)
    rss_mb = max(r.rss_mb for r in ingest)
    bare_p50 = statistics.median(r.measured.p50_ms for r in bare)
    print(f"median bare:    {bare_rps:,.0f} events/s (p50 {bare_p50:.1f} ms)")
    print(f"median gateway: {ingest_rps:,.0f} events/s (p50 {p50_ms:.1f} ms, p99 {p99_ms:.1f} ms)")
    gateway_cpu, bare_cpu = _median_cpu(ingest), _median_cpu(bare)
    print(f"median CPU µs per event by thread: gateway {_format_cpu(gateway_cpu)}; bare {_format_cpu(bare_cpu)}")
    print(f"ratio of medians: {ratio:.3f} (target: ratio >= {TARGET_RATIO}: {_verdict(ratio >= TARGET_RATIO)})")
    print(
        f"acknowledged {acknowledged}, stored {stored}, lost {lost} (target: lost == 0: {_verdict(lost == 0)}; "
        f"{stored - acknowledged + lost} stored but cut off by wrk before their answer)"
    )
    print(f"peak RSS: {rss_mb:.1f} MB (target: rss < {TARGET_RSS_MB} MB: {_verdict(rss_mb < TARGET_RSS_MB)})")
    result = {
        "bare_rps": round(bare_rps, 1),
        "ingest_rps": round(ingest_rps, 1),
        "ratio": round(ratio, 4),
        "p50_ms": round(p50_ms, 2),
        "p99_ms": round(p99_ms, 2),
        "acknowledged": acknowledged,
        "stored": stored,
        "lost": lost,
        "rss_mb": round(rss_mb, 1),
        "cpu_us": {"gateway": gateway_cpu, "bare": bare_cpu},
        "rounds": options.rounds,
        "seconds": options.seconds,
        "writer": options.writer,
        "store": options.store,
        "storage_mb_per_million_events": mb_per_million,
    }
    if options.two_nodes:
        one, two = statistics.median(nodes[1]), statistics.median(nodes[2])
        print(f"two nodes on one database: {two:,.0f} events/s against one node's {one:,.0f} ({two / one:.3f}x)")
        result.update(one_node_rps=round(one, 1), two_nodes_rps=round(two, 1), two_nodes_ratio=round(two / one, 4))
    if mb_per_million is not None:
        print(f"storage: {mb_per_million} MB per million events ({options.store})")
    print(json.dumps(result))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
