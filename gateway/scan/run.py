"""The whole scan: robots.txt and sitemaps first, then each page in each consent state, within bounds.

Playwright is an optional extra (``consent-gateway[scan]``) and Chromium comes from the system; both are
looked for only when a scan starts, so the gateway itself never needs them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urljoin, urlsplit

from gateway.clock import Clock
from gateway.scan.browse import BrowseOptions, PageResult, fetch_text, visit_page
from gateway.scan.crawl import ROBOTS_AGENT, Frontier, parse_robots, site_hosts, sitemap_pages
from gateway.scan.observations import Crawl, PageVisit

CHROMIUM = "/usr/bin/chromium"
#: Headless, and nothing of Chromium's own traffic (updates, safe browsing) mixed into the site's requests.
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
_DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
INSTALL_HINT = (
    "the scanner needs Playwright and Chromium: pip install 'consent-gateway[scan]' and apt-get install chromium"
)
#: How many URLs a note lists before it says "and N more".
_LISTED = 10


def scanner_user_agent() -> str:
    """A desktop Chrome's user agent with our product token: sites serve what visitors get, and robots.txt
    (and logs) can still tell the scanner apart."""
    try:
        release = version("consent-gateway")
    except PackageNotFoundError:  # a checkout run without installing
        release = "dev"
    return f"{_DESKTOP_CHROME} {ROBOTS_AGENT}/{release}"


class ScanError(Exception):
    """The scan could not run at all (no Playwright or Chromium, the start page unreachable): one line."""


@dataclass(frozen=True, slots=True)
class ScanOptions:
    url: str
    pages: int = 50
    time_limit: float = 600.0  # seconds
    user_agent: str = ""  # empty: scanner_user_agent()
    browser_args: tuple[str, ...] = ()  # more Chromium flags (tests map host names with --host-resolver-rules)
    executable: str = CHROMIUM

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not a web address to scan: {self.url!r} (give http:// or https:// and a host)")
        if re.search(r"[\x00-\x20\x7f]", self.url):
            raise ValueError("the address to scan contains spaces or control characters")
        if self.pages < 1:
            raise ValueError("--pages must be at least 1")
        if self.time_limit <= 0:
            raise ValueError("--time-limit must be more than 0 seconds")


def _listed(urls: list[str]) -> str:
    more = f" and {len(urls) - _LISTED} more" if len(urls) > _LISTED else ""
    return ", ".join(urls[:_LISTED]) + more


async def scan(options: ScanOptions, *, clock: Clock, progress: Callable[[int, int, str], None] | None = None) -> Crawl:
    """Crawl ``options.url``'s site and visit each page in the three consent states (one state when the page
    has no banner of ours). ``progress(done, total, url)`` after each page; total grows as links are found."""
    try:
        from playwright.async_api import async_playwright
    except ImportError as error:
        raise ScanError(INSTALL_HINT) from error
    started = clock.now()
    deadline = started + timedelta(seconds=options.time_limit)
    start_url = urljoin(options.url, urlsplit(options.url).path or "/")
    hosts = site_hosts(start_url)
    browse = BrowseOptions(user_agent=options.user_agent or scanner_user_agent())
    notes: list[str] = []
    visits: list[PageVisit] = []
    pages: list[str] = []
    snippet_hosts: set[str] = set()
    no_banner: list[str] = []
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(
                executable_path=options.executable, args=[*CHROMIUM_ARGS, *options.browser_args]
            )
        except Exception as error:  # noqa: BLE001 - Chromium missing or unable to start
            raise ScanError(f"could not start Chromium at {options.executable}: {INSTALL_HINT}") from error
        try:
            fetcher = await browser.new_context(user_agent=browse.user_agent)
            robots_text = await fetch_text(fetcher, urljoin(start_url, "/robots.txt"))
            robots = parse_robots(robots_text) if robots_text is not None else None
            frontier = Frontier(start_url, hosts, robots)
            frontier.add([start_url], base=start_url)
            frontier.add(await sitemap_pages(start_url, robots, lambda url: fetch_text(fetcher, url)), base=start_url)
            await fetcher.close()
            while len(pages) < options.pages and (url := frontier.next()) is not None:
                if pages and clock.now() >= deadline:  # the start page is always visited
                    frontier.queued.appendleft(url)
                    notes.append(f"stopped at the time limit ({options.time_limit:g} s) after {len(pages)} pages")
                    break
                first = await visit_page(browser, url, "none", hosts=hosts, options=browse, now=clock.now())
                results: list[PageResult] = [first]
                frontier.add(first.links, base=url)
                if first.visit.banner:
                    for state in ("rejected", "accepted"):
                        results.append(
                            await visit_page(browser, url, state, hosts=hosts, options=browse, now=clock.now())
                        )
                elif first.visit.error is None:
                    no_banner.append(url)
                pages.append(url)
                visits.extend(result.visit for result in results)
                snippet_hosts.update(
                    (urlsplit(result.snippet_url).hostname or "").lower() for result in results if result.snippet_url
                )
                if progress is not None:
                    progress(len(pages), min(options.pages, len(pages) + len(frontier.queued)), url)
        finally:
            await browser.close()
    if visits and not any(visit.error is None for visit in visits):
        raise ScanError(f"could not load {pages[0]}: {visits[0].error}")
    if not pages:
        raise ScanError(f"nothing to scan: robots.txt disallows {start_url} for {ROBOTS_AGENT}")
    if frontier.queued and len(pages) >= options.pages:
        notes.append(f"stopped at {options.pages} pages; {len(frontier.queued)} more were found and not visited")
    if frontier.excluded:
        notes.append(
            f"robots.txt excluded {len(frontier.excluded)} pages for {ROBOTS_AGENT}: {_listed(frontier.excluded)}"
        )
    if no_banner:
        notes.append(
            f"no consent banner of ours on {len(no_banner)} pages, so they were visited before a decision only: "
            f"{_listed(no_banner)}"
        )
    own = snippet_hosts - hosts - {""}
    if own:
        notes.append(f"the consent gateway's host ({', '.join(sorted(own))}) counts as the site's own")
        hosts = hosts | own
        visits = [replace(v, requests=tuple(r for r in v.requests if r.host not in own)) for v in visits]
    failed = [f"{visit.url} ({visit.state}): {visit.error}" for visit in visits if visit.error]
    if failed:
        notes.append(f"{len(failed)} visits failed: {'; '.join(failed[:_LISTED])}")
    return Crawl(
        start_url=start_url,
        site_hosts=hosts,
        pages=tuple(pages),
        visits=tuple(visits),
        started_at=started,
        finished_at=clock.now(),
        notes=tuple(notes),
    )
