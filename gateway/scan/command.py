"""``consent-gateway scan URL``: scan a site, print a summary, write JSON and HTML, and fail on violations.

The exit status is for CI: 0 no violation, 1 violations, 2 the scan could not run (bad arguments, no
Playwright or Chromium, the site unreachable), each failure one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from gateway.clock import SystemClock
from gateway.scan.report import ScanReport, build_report
from gateway.scan.run import CHROMIUM, ScanError, ScanOptions, scan
from gateway.settings import load_settings

#: How many violations the summary lists before "and N more" (the JSON and HTML have them all).
_SHOWN = 20
_BAR = 30


def add_scan_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], None],
) -> None:
    scan_parser = commands.add_parser(
        "scan",
        help="scan a site in Chromium for cookies, storage and third parties in each consent state",
        description="Crawl a site (sitemaps, links, robots.txt) in Chromium, visit each page before a decision, "
        "after 'Reject all' and after 'Accept all', and report what it sets. Exit status: 0 no violation, "
        "1 violations, 2 the scan could not run.",
    )
    scan_parser.add_argument("url", help="the page to start from, e.g. https://www.example.com/")
    scan_parser.add_argument("--pages", type=int, default=50, help="visit at most this many pages (default: 50)")
    scan_parser.add_argument(
        "--time-limit", type=float, default=600.0, metavar="SECONDS", help="stop after this long (default: 600)"
    )
    scan_parser.add_argument("--site", help="judge against this configured site's cookie rules and lifetime caps")
    config_option(scan_parser)
    scan_parser.add_argument("--json", type=Path, dest="json_path", metavar="FILE", help="write the JSON report")
    scan_parser.add_argument("--html", type=Path, dest="html_path", metavar="FILE", help="write the HTML report")
    scan_parser.add_argument(
        "--chromium-arg",
        action="append",
        default=[],
        dest="chromium_args",
        metavar="ARG",
        help="one more Chromium flag, e.g. --chromium-arg='--host-resolver-rules=MAP *.test 127.0.0.1'",
    )
    scan_parser.add_argument("--chromium", default=CHROMIUM, help=f"the Chromium executable (default: {CHROMIUM})")
    scan_parser.set_defaults(run=run_scan_command)


def run_scan_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    site = None
    if args.site is not None:
        site = settings.sites.get(args.site)
        if site is None:
            return _fail(f"unknown site {args.site!r} (configured: {', '.join(sorted(settings.sites)) or 'none'})")
    try:
        options = ScanOptions(
            url=args.url,
            pages=args.pages,
            time_limit=args.time_limit,
            browser_args=tuple(args.chromium_args),
            executable=args.chromium,
        )
        crawl = asyncio.run(scan(options, clock=SystemClock(), progress=_progress(sys.stderr)))
    except (ValueError, ScanError) as error:
        return _fail(str(error))
    report = build_report(crawl, site=site, settings=settings)
    try:
        if args.json_path is not None:
            text = json.dumps(report.to_json(), indent=2, ensure_ascii=False)
            args.json_path.write_text(text + "\n", encoding="utf-8")
        if args.html_path is not None:
            from gateway.scan.report_html import render_html

            args.html_path.write_text(render_html(report), encoding="utf-8")
    except OSError as error:
        return _fail(f"cannot write the report: {error}")
    _summary(report, sys.stdout)
    return 1 if report.violations else 0


def _fail(message: str) -> int:
    print(f"consent-gateway: error: {message}", file=sys.stderr)
    return 2


def _progress(stream: TextIO) -> Callable[[int, int, str], None]:
    """A bar redrawn in place on a terminal; one line per page otherwise (a CI log)."""
    terminal = stream.isatty()

    def show(done: int, total: int, url: str) -> None:
        if terminal:
            filled = _BAR * done // max(total, 1)
            stream.write(f"\r[{'#' * filled}{'.' * (_BAR - filled)}] {done}/{total} {_printable(url)[-60:]:<60}")
            if done >= total:
                stream.write("\n")
        else:
            stream.write(f"scanned {done}/{total} {_printable(url)}\n")
        stream.flush()

    return show


def _printable(text: str) -> str:
    """What the scanned site wrote (URLs, cookie names), with control characters shown, not obeyed, on a terminal."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _summary(report: ScanReport, out: TextIO) -> None:
    counts = report.summary
    out.write(
        f"Scanned {counts['pages']} pages of {_printable(report.url)}: {counts['cookies']} cookies "
        f"({counts['unknown_cookies']} unknown), {counts['third_parties']} third-party hosts, "
        f"{counts['violations']} violations.\n"
    )
    for note in report.notes:
        out.write(f"note: {_printable(note)}\n")
    for violation in report.violations[:_SHOWN]:
        what = _printable(violation.name if violation.name is not None else violation.host or "")
        out.write(f"violation: {violation.kind} ({violation.state}) {what} on {_printable(violation.page)}: ")
        out.write(f"{_printable(violation.detail)}\n")
    if len(report.violations) > _SHOWN:
        out.write(f"... and {len(report.violations) - _SHOWN} more violations (see the JSON or HTML report)\n")
