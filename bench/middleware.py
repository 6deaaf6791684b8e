"""Requests per second of a Starlette site, bare and behind ``ConsentMiddleware``, in one run.

What is measured: the sample site of ``bench/apps.py`` (four ``Set-Cookie`` per response: the
essential ``PHPSESSID``, functional ``is_returning`` 5y, analytics ``_ga`` 2y, advertising ``_fbp``
90d) served by a real uvicorn (one worker, no access log, the loop and HTTP parser uvicorn picks)
on 127.0.0.1, once bare and once wrapped in ``ConsentMiddleware`` with the shipped catalog.

How: every request carries a valid consent token accepting functional and analytics cookies (not
advertising) plus the site's ``_ga`` and ``is_returning`` cookies, so the middleware does its
realistic work: verify the token, classify four cookies, keep two, cap ``_ga`` to 13 months and
drop ``_fbp``. Before timing, one request checks that it really does. Load comes from ``wrk`` in
a separate process (a warm-up, then ``--seconds`` of measurement per server start). Rounds
alternate bare/with (the order flips each round) because the machine is shared and noisy; the
medians and the ratio of medians are reported. Target: ratio >= 0.85. The last line printed is
JSON: ``{"bare_rps", "with_rps", "ratio", "rounds", "seconds"}``.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from apps import SETTINGS_ENV, SITE, bench_settings
from rounds import add_round_options, check_round_options, free_port

from gateway.clock import SystemClock
from gateway.consent.middleware import CONSENT_COOKIE
from gateway.consent.token import ConsentTokenCodec, new_consent_id
from gateway.settings import Settings

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
TARGET_RATIO = 0.85
#: 13 months (the analytics cap) in seconds: what ``_ga``'s 2 years must be cut to.
CAPPED_GA_MAX_AGE = 34186698
_RPS_RE = re.compile(r"^\s*Requests/sec:\s*([\d.]+)", re.MULTILINE)
_NON_2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")
_SOCKET_ERRORS_RE = re.compile(r"Socket errors:.*")


@dataclass(frozen=True, slots=True)
class Options:
    rounds: int
    seconds: int
    warmup: int
    connections: int
    catalog_wait: float


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_round_options(parser, other="with")
    parser.add_argument(
        "--catalog-wait", type=float, default=600, help="seconds to wait for config/cookies.toml (default: 600)"
    )
    args = parser.parse_args(argv)
    check_round_options(parser, args)
    return Options(args.rounds, args.seconds, args.warmup, args.connections, args.catalog_wait)


def raw_settings(directory: Path) -> dict[str, Any]:
    return {
        "secret_keys": ["bench-secret-key"],
        "database": str(directory / "gateway.sqlite3"),
        # settings_from_dict does not merge config/gateway.toml: repeat its default caps (13 months).
        "sites": {
            SITE: {
                "name": "Bench shop",
                "origins": ["http://127.0.0.1"],
                "lifetime_caps": {"analytics": "13mo", "advertising": "13mo"},
            }
        },
    }


def wait_for_catalog(settings: Settings, timeout: float) -> None:
    """The shipped catalog may still be being written by someone else: wait for it, then retry."""
    deadline = time.perf_counter() + timeout
    announced = False
    while not settings.catalog.is_file():
        if time.perf_counter() > deadline:
            raise SystemExit(f"bench: {settings.catalog} did not appear within {timeout:.0f} s")
        if not announced:
            print(f"waiting for {settings.catalog} ...", flush=True)
            announced = True
        time.sleep(5)


def consent_cookie_header(settings: Settings) -> str:
    site = settings.site(SITE)
    assert site is not None
    codec = ConsentTokenCodec(settings.secret_keys, SystemClock())
    token, _ = codec.issue(
        consent_id=new_consent_id(),
        site=site,
        allowed=frozenset({"functional", "analytics"}),
        services={},
        method="custom",
        gpc=False,
    )
    return f"_ga=GA1.1.1234567890.1767225600; is_returning=1; {CONSENT_COOKIE}={token}"


@contextmanager
def running_server(factory: str, settings_file: Path, log_dir: Path) -> Iterator[tuple[str, int]]:
    """uvicorn serving ``apps:<factory>`` in its own process; yields its URL once it answers."""
    port = free_port()
    log_path = log_dir / f"uvicorn-{factory}-{port}.log"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        f"apps:{factory}",
        "--factory",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    env = {**os.environ, SETTINGS_ENV: str(settings_file)}
    url = f"http://127.0.0.1:{port}/"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_answering(url, process, log_path)
            yield url, process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_answering(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: uvicorn exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: uvicorn did not answer on {url} within 30 s:\n{log_path.read_text()}")


def verify_enforcement(url: str, cookie_header: str) -> None:
    """Fail loudly unless the wrapped server keeps, caps and blocks as the consent says."""
    with_token = httpx.get(url, headers={"Cookie": cookie_header}).headers.get_list("set-cookie")
    names = sorted(header.split("=", 1)[0] for header in with_token)
    ga = next((header for header in with_token if header.startswith("_ga=")), "")
    if names != ["PHPSESSID", "_ga", "is_returning"] or f"Max-Age={CAPPED_GA_MAX_AGE}" not in ga:
        raise SystemExit(f"bench: the middleware did not enforce consent as expected: {with_token}")
    without_token = httpx.get(url).headers.get_list("set-cookie")
    if [header.split("=", 1)[0] for header in without_token] != ["PHPSESSID"]:
        raise SystemExit(f"bench: without a consent token only PHPSESSID may be set, got: {without_token}")
    print(f"verified: _ga capped to Max-Age={CAPPED_GA_MAX_AGE}, _fbp dropped; without a token only PHPSESSID")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc): robust to other load on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, cookie_header: str, *, seconds: int, connections: int) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-H", f"Cookie: {cookie_header}", url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = _RPS_RE.search(output)
    if match is None:
        raise SystemExit(f"bench: no Requests/sec in wrk's output:\n{output}")
    non_2xx = _NON_2XX_RE.search(output)
    if non_2xx is not None and int(non_2xx.group(1)) > 0:
        raise SystemExit(f"bench: {non_2xx.group(1)} responses were not 2xx/3xx:\n{output}")
    socket_errors = _SOCKET_ERRORS_RE.search(output)
    if socket_errors is not None:
        print(f"  wrk: {socket_errors.group(0)}")
    return float(match.group(1))


def measure(
    factory: str, options: Options, settings_file: Path, log_dir: Path, cookie_header: str
) -> tuple[float, float]:
    """Requests/s, and the server's CPU microseconds per request, over the measured run."""
    with running_server(factory, settings_file, log_dir) as (url, pid):
        if options.warmup:
            run_wrk(url, cookie_header, seconds=options.warmup, connections=options.connections)
        before = cpu_seconds(pid)
        rps = run_wrk(url, cookie_header, seconds=options.seconds, connections=options.connections)
        cpu = cpu_seconds(pid) - before
        return rps, cpu / (rps * options.seconds) * 1e6


def _stack() -> str:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn {uvicorn.__version__} (auto picks loop={loop}, http={http}), Python {sys.version.split()[0]}"


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed (`make bench` installs Debian's wrk)")
    with tempfile.TemporaryDirectory(prefix="cg-bench-") as temp:
        directory = Path(temp)
        settings_file = directory / "settings.json"
        settings_file.write_text(json.dumps(raw_settings(directory)), encoding="utf-8")
        settings = bench_settings(settings_file)
        wait_for_catalog(settings, options.catalog_wait)
        cookie_header = consent_cookie_header(settings)
        print(_stack())
        print(
            f"wrk -t1 -c{options.connections}, {options.warmup} s warm-up + {options.seconds} s measured, "
            f"{options.rounds} rounds alternating bare/with ({os.cpu_count()} CPUs, shared)",
            flush=True,
        )
        with running_server("with_middleware", settings_file, directory) as (url, _):
            verify_enforcement(url, cookie_header)

        bare: list[float] = []
        wrapped: list[float] = []
        bare_cpu: list[float] = []
        wrapped_cpu: list[float] = []
        for index in range(options.rounds):
            order = ("bare", "with_middleware") if index % 2 == 0 else ("with_middleware", "bare")
            for factory in order:
                rps, cpu_us = measure(factory, options, settings_file, directory, cookie_header)
                (bare if factory == "bare" else wrapped).append(rps)
                (bare_cpu if factory == "bare" else wrapped_cpu).append(cpu_us)
            print(
                f"round {index + 1}/{options.rounds}: bare {bare[-1]:>9,.0f} req/s ({bare_cpu[-1]:.0f} us CPU/req)   "
                f"with {wrapped[-1]:>9,.0f} req/s ({wrapped_cpu[-1]:.0f} us CPU/req)   "
                f"ratio {wrapped[-1] / bare[-1]:.3f}",
                flush=True,
            )

    bare_rps = statistics.median(bare)
    with_rps = statistics.median(wrapped)
    ratio = with_rps / bare_rps
    print(f"median bare: {bare_rps:,.0f} req/s")
    print(f"median with: {with_rps:,.0f} req/s")
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"ratio of medians: {ratio:.3f} (target: ratio >= {TARGET_RATIO}: {verdict})")
    cpu_ratio = statistics.median(bare_cpu) / statistics.median(wrapped_cpu)
    print(
        f"server CPU per request: bare {statistics.median(bare_cpu):.0f} us, "
        f"with {statistics.median(wrapped_cpu):.0f} us"
        f" (throughput per CPU-second ratio {cpu_ratio:.3f}; less sensitive to other load on the machine)"
    )
    result = {
        "bare_rps": round(bare_rps, 1),
        "with_rps": round(with_rps, 1),
        "ratio": round(ratio, 4),
        "bare_cpu_us_per_request": round(statistics.median(bare_cpu), 1),
        "with_cpu_us_per_request": round(statistics.median(wrapped_cpu), 1),
        "cpu_ratio": round(cpu_ratio, 4),
        "rounds": options.rounds,
        "seconds": options.seconds,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
