"""The crawl's rules on plain text: which links are the site's pages, sitemaps and their indexes, robots.txt."""

from __future__ import annotations

import asyncio
from html import escape

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.scan.crawl import (
    MAX_SITEMAPS,
    Frontier,
    page_url,
    parse_robots,
    parse_sitemap,
    robots_allow,
    site_hosts,
    sitemap_pages,
)

START = "https://www.shop.example/"
HOSTS = site_hosts(START)


def test_site_hosts_are_the_host_and_its_www_twin() -> None:
    assert site_hosts("https://www.shop.example/a") == {"www.shop.example", "shop.example"}
    assert site_hosts("https://shop.example") == {"www.shop.example", "shop.example"}
    assert site_hosts("http://127.0.0.1:8000/") == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/about", "https://www.shop.example/about"),
        ("about#team", "https://www.shop.example/about"),
        ("#top", "https://www.shop.example/"),
        ("https://shop.example/cart?x=1", "https://shop.example/cart?x=1"),
        ("http://www.shop.example/plain", "http://www.shop.example/plain"),  # http and https on default ports
        ("https://WWW.Shop.Example/Case", "https://www.shop.example/Case"),
        ("https://other.example/", None),
        ("https://cdn.shop.example/x", None),  # another host of the same domain is not the site
        ("https://www.shop.example:8443/", None),  # another port is another server
        ("/files/terms.pdf", None),
        ("/img/logo.PNG", None),
        ("mailto:shop@example.org", None),
        ("javascript:alert(1)", None),
        ("https://www.shop.example:99999/", None),  # a malformed port
        ("http://[::1/", None),
    ],
    ids=lambda value: str(value),
)
def test_page_url_keeps_the_sites_pages_only(href: str, expected: str | None) -> None:
    assert page_url(href, base=START, start_url=START, hosts=HOSTS) == expected


def test_page_url_on_a_port_keeps_that_port_only() -> None:
    start = "http://www.shop.test:8123/"
    hosts = site_hosts(start)
    assert page_url("/a", base=start, start_url=start, hosts=hosts) == "http://www.shop.test:8123/a"
    assert page_url("http://www.shop.test:9000/a", base=start, start_url=start, hosts=hosts) is None
    assert page_url("http://www.shop.test/a", base=start, start_url=start, hosts=hosts) is None


def test_a_sitemap_index_lists_sitemaps_and_a_urlset_lists_pages() -> None:
    index = parse_sitemap(
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        "<sitemap><loc>https://www.shop.example/a.xml</loc></sitemap>"
        "<sitemap><loc> https://www.shop.example/b.xml?x=1&amp;y=2 </loc></sitemap></sitemapindex>"
    )
    assert index.sitemaps == ("https://www.shop.example/a.xml", "https://www.shop.example/b.xml?x=1&y=2")
    assert index.pages == ()
    urlset = parse_sitemap(
        "<urlset><url><loc><![CDATA[https://www.shop.example/p]]></loc><lastmod>2026-01-01</lastmod></url></urlset>"
    )
    assert urlset.pages == ("https://www.shop.example/p",)


def test_a_sitemap_that_is_not_xml_lists_nothing() -> None:
    assert parse_sitemap("<html><body>Not found</body></html>") == parse_sitemap("") == parse_sitemap("\x00\x01")


_PATHS = st.lists(st.text(alphabet="abcxyz0129-_/.~&<>\"'?=", max_size=30), max_size=20)


@given(_PATHS)
def test_every_listed_page_is_read_back(paths: list[str]) -> None:
    urls = [f"https://www.shop.example/{path}" for path in paths]
    text = "<urlset>" + "".join(f"<url><loc>{escape(url)}</loc></url>" for url in urls) + "</urlset>"
    assert list(parse_sitemap(text).pages) == [url.strip() for url in urls]


@given(st.text(max_size=400))
def test_any_text_parses_without_raising(text: str) -> None:
    sitemap = parse_sitemap(text)
    assert all(isinstance(location, str) and location for location in sitemap.pages + sitemap.sitemaps)
    robots_allow(parse_robots(text), START + "x")


ROBOTS = """User-agent: *
Disallow: /checkout

User-agent: Consent-Gateway-Scanner/2.0
Disallow: /private
Allow: /private/open
Disallow: /*.php$
Disallow: /search?

Sitemap: https://www.shop.example/extra-sitemap.xml
"""


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/", True),
        ("/checkout", True),
        ("/private", False),
        ("/private/x", False),
        ("/private/open", True),  # the longer Allow wins whatever the order
        ("/a/index.php", False),
        ("/a/index.php5", True),
        ("/search?q=x", False),
        ("/search", True),
    ],
)
def test_robots_rules_for_our_agent(path: str, allowed: bool) -> None:
    """Our own group applies (not "*": a named group replaces it, RFC 9309 2.2.1), its longest match decides."""
    assert robots_allow(parse_robots(ROBOTS), "https://www.shop.example" + path) is allowed


def test_no_robots_txt_allows_everything() -> None:
    assert robots_allow(None, START + "private")


def test_the_star_group_applies_when_we_have_none() -> None:
    robots = parse_robots("User-agent: googlebot\nDisallow: /\n\nUser-agent: *\nDisallow: /tmp\nAllow: /tmp/ok\n")
    assert not robots.allows(START + "tmp/x") and robots.allows(START + "tmp/ok") and robots.allows(START)


def _fetcher(files: dict[str, str], asked: list[str]):  # type: ignore[no-untyped-def]
    async def fetch_text(url: str) -> str | None:
        asked.append(url)
        return files.get(url)

    return fetch_text


def test_sitemaps_follow_indexes_and_robots_lines_each_once() -> None:
    base = "https://www.shop.example"
    files = {
        f"{base}/sitemap.xml": f"<sitemapindex><sitemap><loc>{base}/pages.xml</loc></sitemap>"
        f"<sitemap><loc>{base}/sitemap.xml</loc></sitemap></sitemapindex>",  # itself again: read once
        f"{base}/pages.xml": f"<urlset><url><loc>{base}/a</loc></url></urlset>",
        f"{base}/extra-sitemap.xml": f"<urlset><url><loc>{base}/b</loc></url></urlset>",
    }
    asked: list[str] = []
    pages = asyncio.run(sitemap_pages(START, parse_robots(ROBOTS), _fetcher(files, asked)))
    assert pages == [f"{base}/b", f"{base}/a"] or pages == [f"{base}/a", f"{base}/b"]
    assert sorted(asked) == sorted(set(asked)) and len(asked) == 3


def test_an_endless_chain_of_indexes_stops() -> None:
    asked: list[str] = []

    async def fetch_text(url: str) -> str:
        asked.append(url)
        return f"<sitemapindex><sitemap><loc>{url}x</loc></sitemap></sitemapindex>"

    assert asyncio.run(sitemap_pages(START, None, fetch_text)) == []
    assert len(asked) == MAX_SITEMAPS


def test_the_frontier_visits_each_page_once_in_order_and_counts_robots_exclusions() -> None:
    frontier = Frontier(START, HOSTS, parse_robots(ROBOTS))
    frontier.add([START, "/a", "/a#x", "/private/b", "https://elsewhere.example/", "/a"], base=START)
    frontier.add(["/c", "/a"], base=START + "a")
    assert [frontier.next() for _ in range(4)] == [START, START + "a", START + "c", None]
    assert frontier.excluded == [START + "private/b"]
