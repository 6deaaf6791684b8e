"""The scan report's HTML page: self-contained, every observed string escaped, readable and printable."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from gateway.scan.observations import SeenRequest, SeenStorageKey
from gateway.scan.report import ScanReport, build_report
from gateway.scan.report_html import render_html
from tests.scan.crawls import ABOUT, HOME, cookie, crawl, shop_settings, the_shop, visit

CHROMIUM = "/usr/bin/chromium"
HOSTILE_COOKIE = "<script>alert(1)</script>"
QUOTED_PAGE = "https://www.shop.test/search?q=\"a\"&x='b'<i>"
HOSTILE_KEY = "<img src=x onerror=alert(2)>"


class _Page(HTMLParser):
    """Every tag and attribute of a page, and the text of its style elements."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in_style = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)


def hostile_report() -> ScanReport:
    settings = shop_settings()
    crawled = crawl(
        visit(
            QUOTED_PAGE,
            "none",
            cookie(HOSTILE_COOKIE, days=3, url=QUOTED_PAGE),
            storage=(SeenStorageKey("localStorage", HOSTILE_KEY, "https://www.shop.test"),),
            requests=(SeenRequest("https://www.google-analytics.com/g?<b>", "www.google-analytics.com", "script"),),
        ),
        visit(HOME, "none", cookie("_ga", days=400)),
        notes=("robots.txt: <u>1</u> page excluded",),
    )
    return build_report(crawled, site=settings.site("shop"), settings=settings)


def test_the_page_loads_nothing_and_links_only_to_the_scanned_pages() -> None:
    report = hostile_report()
    page = _Page(render_html(report))
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "base", "form", "video", "audio", "svg"}
    for tag, attrs in page.tags:
        assert not {name for name in attrs if name.startswith("on")}, (tag, attrs)
        assert not {"src", "srcset", "action", "poster", "background", "style"} & set(attrs), (tag, attrs)
        if "href" in attrs:
            assert tag == "a" and attrs["href"] in report.pages, attrs
    styles = "".join(page.styles)
    assert "url(" not in styles and "@import" not in styles and "@font-face" not in styles
    csp = [attrs["content"] for tag, attrs in page.tags if attrs.get("http-equiv") == "Content-Security-Policy"]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"]
    links = [attrs["href"] for tag, attrs in page.tags if tag == "a"]
    assert QUOTED_PAGE in links and HOME in links


def test_every_observed_string_is_escaped_and_reads_back_as_text() -> None:
    html = render_html(hostile_report())
    for raw in (HOSTILE_COOKIE, HOSTILE_KEY, "<u>1</u>", "<i>", "g?<b>"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    text = "".join(_Page(html).text)
    for shown in (HOSTILE_COOKIE, HOSTILE_KEY, QUOTED_PAGE, "robots.txt: <u>1</u> page excluded"):
        assert shown in text


def test_a_page_that_is_not_http_is_text_not_a_link() -> None:
    report = replace(hostile_report(), pages=("javascript:alert(3)", "data:text/html,x", HOME))
    page = _Page(render_html(report))
    links = [attrs["href"] for tag, attrs in page.tags if tag == "a"]
    assert links and all(link == HOME for link in links)
    assert "javascript:alert(3)" in "".join(page.text)


def test_sections_in_order_with_violations_first() -> None:
    settings = shop_settings()
    html = render_html(build_report(the_shop(), site=settings.site("shop"), settings=settings))
    ids = [attrs["id"] for tag, attrs in _Page(html).tags if tag == "section"]
    assert ids == ["summary", "violations", "cookies", "storage", "third-parties", "pages", "notes"]
    text = " ".join("".join(_Page(html).text).split())
    assert "4 violations found." in text
    assert text.index("Before any decision (2)") < text.index("Lifetime over its cap (1)") < text.index("Analytics (1)")
    assert '[[sites.shop.cookies]] name = "_ga"' in text  # the ready block, under its cookie
    assert ABOUT in text


def test_a_clean_scan_says_so() -> None:
    settings = shop_settings()
    report = build_report(
        crawl(visit(HOME, "none", cookie("shop_session"))), site=settings.site("shop"), settings=settings
    )
    text = " ".join("".join(_Page(render_html(report)).text).split())
    assert "No violation found." in text and "No request went to another host." in text


def test_an_operator_template_folder_may_replace_it(tmp_path: Path) -> None:
    settings = shop_settings()
    report = build_report(the_shop(), site=settings.site("shop"), settings=settings)
    (tmp_path / "scan_report.html").write_text("Scan of {{ report.url }}: {{ summary.violations }}")
    assert render_html(report, templates=tmp_path) == f"Scan of {HOME}: 4"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.mark.browser
def test_chromium_shows_it_without_a_request_or_a_script_and_prints_it(browser: Any, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_html(hostile_report()), encoding="utf-8")
    page = browser.new_page()
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(path.as_uri(), wait_until="load", timeout=60_000)
    assert requests == [path.as_uri()]
    assert dialogs == []
    assert HOSTILE_COOKIE in page.inner_text("#cookies")
    assert page.locator("#violations tr").count() > 1
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


def test_times_and_duration_are_shown() -> None:
    settings = shop_settings()
    report = build_report(the_shop(), site=settings.site("shop"), settings=settings)
    longer = replace(report, finished_at=report.started_at + timedelta(minutes=12, seconds=5))
    text = " ".join("".join(_Page(render_html(longer)).text).split())
    assert "2026-12-02 10:00:00 UTC to 2026-12-02 10:12:05 UTC (12 min 5 s)" in text
