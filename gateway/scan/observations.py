"""What one crawl saw, before any judgement: the contract between the browser side of the scanner
(``gateway.scan.crawl`` and ``gateway.scan.browse``, which fill these) and the report side
(``gateway.scan.report``, which classifies them, finds violations and writes JSON and HTML).

Plain frozen dataclasses, no Playwright types: a report can be built (and tested) from a crawl
recorded anywhere, and the dashboard's stored scans never depend on the browser being installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

#: The three states a page is visited in, each in a fresh browser context.
State = Literal["none", "rejected", "accepted"]
STATES: tuple[State, ...] = ("none", "rejected", "accepted")


@dataclass(frozen=True, slots=True)
class SeenCookie:
    """A cookie in the browser's jar after the page settled (attributes as the jar holds them)."""

    name: str
    domain: str  # as the jar has it: "shop.example" (host-only) or ".example" (domain cookie)
    path: str
    expires: datetime | None  # None: a session cookie
    http_only: bool
    secure: bool
    same_site: str | None  # "Strict" | "Lax" | "None" | None
    set_by: Literal["header", "script"]
    #: The response URL whose Set-Cookie set it, or the script URL that wrote document.cookie
    #: (the page's URL for an inline script; "" when unknown).
    set_by_url: str


@dataclass(frozen=True, slots=True)
class SeenStorageKey:
    kind: Literal["localStorage", "sessionStorage"]
    key: str
    origin: str  # the frame's origin, "https://shop.example"


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """A request to a host other than the site's own."""

    url: str
    host: str
    resource_type: str  # Playwright's: "script", "image", "xhr", "fetch", "document" (an iframe), ...


@dataclass(frozen=True, slots=True)
class PageVisit:
    """One page in one state, in a fresh browser context."""

    url: str
    state: State
    #: Whether our banner was found (and, for "rejected"/"accepted", clicked) on this page.
    banner: bool
    cookies: tuple[SeenCookie, ...]
    storage: tuple[SeenStorageKey, ...]
    requests: tuple[SeenRequest, ...]
    error: str | None = None  # the page failed to load: what went wrong, in one line


@dataclass(frozen=True, slots=True)
class Crawl:
    """A whole scan's observations."""

    start_url: str
    #: The site's own hosts (the start URL's host and its www./bare twin); every other host is a third party.
    site_hosts: frozenset[str]
    pages: tuple[str, ...]  # the URLs visited, in order
    visits: tuple[PageVisit, ...]
    started_at: datetime
    finished_at: datetime
    #: Things the report must say (robots.txt excluded 3 pages, stopped at the time limit, no banner found...).
    notes: tuple[str, ...] = ()
