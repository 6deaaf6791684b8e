"""Recorded crawls of a small shop for the report tests: observations built by hand, no browser."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.scan.observations import Crawl, PageVisit, SeenCookie, SeenRequest, SeenStorageKey, State
from gateway.settings import Settings, settings_from_dict

START = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
END = START + timedelta(minutes=3)
HOME = "https://www.shop.test/"
ABOUT = "https://www.shop.test/about"
SHOP_SITE: dict[str, Any] = {
    "origins": ["https://www.shop.test"],
    "cookies": [
        {"name": "shop_session", "category": "essential", "lifetime": "session", "vendor": "Shop"},
        {"name": "shop_theme", "category": "functional", "lifetime": "1y", "vendor": "Shop"},
    ],
    "storage": {"functional": ["shop_recent*"]},
}


def shop_settings(site: Mapping[str, Any] | None = None, **top: Any) -> Settings:
    return settings_from_dict({"sites": {"shop": dict(site if site is not None else SHOP_SITE)}, **top}, source="test")


def cookie(
    name: str, *, days: float | None = None, by: str = "script", domain: str = "www.shop.test", url: str = ""
) -> SeenCookie:
    expires = None if days is None else END + timedelta(days=days)
    return SeenCookie(name, domain, "/", expires, by == "header", True, "Lax", by, url or HOME)  # type: ignore[arg-type]


def visit(
    url: str,
    state: State,
    *cookies: SeenCookie,
    storage: tuple[SeenStorageKey, ...] = (),
    requests: tuple[SeenRequest, ...] = (),
    banner: bool = True,
    error: str | None = None,
) -> PageVisit:
    return PageVisit(url, state, banner, cookies, storage, requests, error)


def crawl(*visits: PageVisit, notes: tuple[str, ...] = ()) -> Crawl:
    pages = tuple(dict.fromkeys(v.url for v in visits))
    return Crawl(HOME, frozenset({"www.shop.test", "shop.test"}), pages, visits, START, END, notes)


GA = SeenRequest("https://www.google-analytics.com/g/collect?v=2", "www.google-analytics.com", "fetch")
FONTS = SeenRequest("https://fonts.example-cdn.test/a.woff2", "fonts.example-cdn.test", "font")


def the_shop() -> Crawl:
    """A shop whose analytics tag fires before consent on the home page and respects "Reject all"."""
    session = cookie("shop_session", by="header")
    return crawl(
        visit(HOME, "none", session, cookie("_ga", days=400), requests=(GA, FONTS)),
        visit(HOME, "rejected", session, cookie("cg_consent", days=180), requests=(FONTS,)),
        visit(
            HOME,
            "accepted",
            session,
            cookie("cg_consent", days=180),
            cookie("_ga", days=400),
            cookie("shop_theme", days=365),
            storage=(
                SeenStorageKey("localStorage", "cg_state", "https://www.shop.test"),
                SeenStorageKey("localStorage", "shop_recent_items", "https://www.shop.test"),
            ),
            requests=(GA,),
        ),
        visit(ABOUT, "none", session),
        visit(ABOUT, "rejected", session),
        visit(ABOUT, "accepted", session, cookie("cg_consent", days=180)),
    )
