"""Which pages a scan visits: the site's sitemaps and robots.txt, then same-site links, within bounds.

Nothing here drives a browser: fetching is injected (``FetchText``), so the crawl's rules — what is the
site, what robots.txt forbids our agent, where to stop — are tested on plain text.
"""

from __future__ import annotations

import functools
import html
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

#: The token robots.txt rules are matched on (the user agent ends with "consent-gateway-scanner/VERSION").
ROBOTS_AGENT = "consent-gateway-scanner"
#: How many sitemap files one scan reads (an index of indexes cannot send it around forever).
MAX_SITEMAPS = 20
#: Bytes of one sitemap or robots.txt read; the sitemap protocol caps a file at 50 MB, a scan needs far less.
MAX_TEXT_BYTES = 5_000_000
#: Links to these are downloads, not pages: a scan loads HTML.
_NOT_PAGES = re.compile(
    r"\.(pdf|zip|gz|tgz|rar|7z|exe|dmg|msi|jpe?g|png|gif|webp|svg|ico|mp[34]|webm|mov|avi|wav|ogg|"
    r"docx?|xlsx?|pptx?|csv|xml|json|txt|css|js|woff2?|ttf)$",
    re.IGNORECASE,
)
_LOC = re.compile(r"<loc>\s*(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?\s*</loc>", re.IGNORECASE | re.DOTALL)

#: ``await fetch_text(url)``: the body of a successful (2xx) answer, or None (missing, failed, not text).
FetchText = Callable[[str], Awaitable[str | None]]


def site_hosts(url: str) -> frozenset[str]:
    """The start URL's host and its www./bare twin: a site served on both is one site."""
    host = (urlsplit(url).hostname or "").lower()
    twin = host[4:] if host.startswith("www.") else f"www.{host}"
    return frozenset({host, twin}) if host.count(".") >= 1 and not _is_address(host) else frozenset({host})


def _is_address(host: str) -> bool:
    return bool(re.fullmatch(r"[\d.]+|\[?[0-9a-f:]+\]?", host))


def page_url(href: str, *, base: str, start_url: str, hosts: frozenset[str]) -> str | None:
    """``href`` (as found on ``base``) as a page of the site to visit, or None: another site or port, not
    http(s), a download. The fragment is dropped (it is the same page)."""
    try:
        parts = urlsplit(urljoin(base, href.strip()))
        start = urlsplit(start_url)
        port, start_port = parts.port, start.port
    except ValueError:  # a malformed port or IPv6 literal: not a page we can visit
        return None
    if parts.scheme not in {"http", "https"} or (parts.hostname or "").lower() not in hosts:
        return None
    # Another port is another server (the gateway beside the site); http and https on their defaults are one site.
    if (port or start_port) and (port or _default_port(parts.scheme)) != (start_port or _default_port(start.scheme)):
        return None
    if _NOT_PAGES.search(parts.path):
        return None
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


@dataclass(frozen=True, slots=True)
class Sitemap:
    """What one sitemap file lists: pages (a ``<urlset>``) or further sitemaps (a ``<sitemapindex>``)."""

    pages: tuple[str, ...] = ()
    sitemaps: tuple[str, ...] = ()


def parse_sitemap(text: str) -> Sitemap:
    """The ``<loc>`` entries of a sitemap (sitemaps.org protocol 0.9), read without an XML parser: a
    sitemap comes from the site scanned, and entity expansion is not something a scan should risk."""
    locations = tuple(html.unescape(loc).strip() for loc in _LOC.findall(text[:MAX_TEXT_BYTES]))
    locations = tuple(loc for loc in locations if loc)
    if re.search(r"<(?:\w+:)?sitemapindex[\s>]", text[:4096], re.IGNORECASE):
        return Sitemap(sitemaps=locations)
    return Sitemap(pages=locations)


@dataclass(frozen=True, slots=True)
class Robots:
    """robots.txt's rules for our agent (RFC 9309): our own group(s), else "*"'s; the longest matching
    pattern decides and Allow wins a tie (2.2.2). ``urllib.robotparser`` takes the first match instead."""

    rules: tuple[tuple[bool, str], ...] = ()  # (allow, pattern)
    sitemaps: tuple[str, ...] = ()

    def allows(self, url: str) -> bool:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        verdict, longest = True, -1
        for allow, pattern in self.rules:
            if pattern and len(pattern) >= longest and _robots_pattern(pattern).match(target):
                if len(pattern) > longest or allow:
                    verdict, longest = allow, len(pattern)
        return verdict


@functools.lru_cache(maxsize=256)  # patterns of one robots.txt, matched against every page; bounded, pure
def _robots_pattern(pattern: str) -> re.Pattern[str]:
    anchored = pattern.endswith("$")
    body = ".*".join(re.escape(part) for part in (pattern[:-1] if anchored else pattern).split("*"))
    return re.compile(body + ("$" if anchored else ""))


def parse_robots(text: str) -> Robots:
    groups: dict[str, list[tuple[bool, str]]] = {}
    sitemaps: list[str] = []
    agents: list[str] = []
    in_rules = False
    for raw in text[:MAX_TEXT_BYTES].splitlines():
        key, colon, value = raw.split("#", 1)[0].partition(":")
        key, value = key.strip().lower(), value.strip()
        if not colon:
            continue
        if key == "user-agent":
            if in_rules:  # a user-agent line after rules starts a new group
                agents, in_rules = [], False
            agents.append(value.split("/")[0].strip().lower())  # the product token, without a version
            for agent in agents:
                groups.setdefault(agent, [])
        elif key in {"allow", "disallow"}:
            in_rules = True
            for agent in agents:
                groups[agent].append((key == "allow", value))
        elif key == "sitemap" and value:
            sitemaps.append(value)
    rules = groups.get(ROBOTS_AGENT, groups.get("*", []))
    return Robots(rules=tuple(rules), sitemaps=tuple(sitemaps))


def robots_allow(robots: Robots | None, url: str) -> bool:
    return robots is None or robots.allows(url)


async def sitemap_pages(start_url: str, robots: Robots | None, fetch_text: FetchText) -> list[str]:
    """Every page listed by the site's sitemaps: /sitemap.xml and robots.txt's ``Sitemap:`` lines, following
    sitemap indexes (at most ``MAX_SITEMAPS`` files, each once)."""
    queue = deque([urljoin(start_url, "/sitemap.xml"), *(robots.sitemaps if robots else ())])
    read: set[str] = set()
    pages: list[str] = []
    while queue and len(read) < MAX_SITEMAPS:
        location = queue.popleft()
        if location in read:
            continue
        read.add(location)
        text = await fetch_text(location)
        if text is None:
            continue
        sitemap = parse_sitemap(text)
        queue.extend(sitemap.sitemaps)
        pages.extend(sitemap.pages)
    return pages


@dataclass(slots=True)
class Frontier:
    """The pages still to visit, in order, each once; robots.txt's exclusions counted for the report."""

    start_url: str
    hosts: frozenset[str]
    robots: Robots | None = None
    queued: deque[str] = field(default_factory=deque)
    seen: set[str] = field(default_factory=set)
    excluded: list[str] = field(default_factory=list)

    def add(self, hrefs: Iterable[str], *, base: str) -> None:
        for href in hrefs:
            url = page_url(href, base=base, start_url=self.start_url, hosts=self.hosts)
            if url is None or url in self.seen:
                continue
            self.seen.add(url)
            if robots_allow(self.robots, url):
                self.queued.append(url)
            else:
                self.excluded.append(url)

    def next(self) -> str | None:
        return self.queued.popleft() if self.queued else None
