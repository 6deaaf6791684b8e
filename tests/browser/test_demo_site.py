"""The demo a new user opens first, in real Chromium: decide, and watch the cookie jar follow."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.demo import demo_settings, demo_site
from tests.conftest import REPO, LiveServer

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "test-output" / "screenshots"


class _Deferred:
    """An ASGI app set after the server has its port (the settings need the site's origin)."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str]]:
    gateway_app, site_app = _Deferred(), _Deferred()
    gateway, site = LiveServer(gateway_app), LiveServer(site_app)
    settings = demo_settings(tmp_path, gateway_url=gateway.url, site_url=site.url)
    gateway_app.app = create_app(settings)
    site_app.app = demo_site(settings, gateway_url=gateway.url)
    with gateway, site:
        yield gateway.url, site.url


def _jar(context: Any) -> set[str]:
    return {cookie["name"] for cookie in context.cookies()}


def test_the_cookie_jar_follows_the_visitors_decision(browser: Any, demo: tuple[str, str]) -> None:
    _, site_url = demo
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    page.goto(site_url + "/")
    assert _jar(context) == {"PHPSESSID"}
    assert "No decision yet" in page.locator("#decision").inner_text()

    with page.expect_navigation():
        page.get_by_role("button", name="Accept all").click()
    page.reload()  # the first page after deciding carries the token; its cookies now pass
    assert _jar(context) == {"PHPSESSID", "cg_consent", "demo_theme", "_ga", "_trk", "_fbp", "_ar_v4"}
    ga = next(c for c in context.cookies() if c["name"] == "_ga")
    lifetime_days = (ga["expires"] - page.evaluate("Date.now() / 1000")) / 86400
    assert 390 < lifetime_days < 400  # asked 2 years, capped to 13 months
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "demo-accepted.png"), full_page=True)

    assert page.get_by_label("analytics").is_checked()  # the form shows the current decision
    page.get_by_label("analytics").uncheck()
    page.get_by_label("advertising").uncheck()
    with page.expect_navigation():
        page.get_by_role("button", name="Save my choices").click()
    page.reload()
    assert _jar(context) == {"PHPSESSID", "cg_consent", "demo_theme"}  # withdrawn categories deleted

    with page.expect_navigation():
        page.get_by_role("button", name="Withdraw consent").click()
    page.reload()
    assert _jar(context) == {"PHPSESSID", "cg_consent"}
    assert "withdraw" in page.locator("#decision").inner_text()
    assert errors == []
    context.close()
