"""Real Chromium (Debian's, driven by Playwright) against the gateway and the demo site on real uvicorns."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.demo import demo_settings, demo_site
from gateway.settings import Settings
from tests.conftest import REPO, LiveServer

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "test-output" / "screenshots"
AXE = REPO / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
#: A desktop Chrome's user agent: the pipeline (rightly) drops "HeadlessChrome" as a bot.
CHROME_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
#: How long a page action or wait may take before the test fails: Playwright's 30 s is short when both cores are
#: busy (Chromium's renderer competes with the servers); a passing test never waits it out.
BROWSER_WAIT_MS = 60_000
GPC_SCRIPT = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true});"


class Deferred:
    """An ASGI app set after the server has its port (the settings need the site's origin)."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class Demo:
    """The gateway and the demo site, each on its own uvicorn; the gateway can be swapped (new settings)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.gateway_app, self.site_app = Deferred(), Deferred()
        self.gateway, self.site = LiveServer(self.gateway_app), LiveServer(self.site_app)
        self.settings = demo_settings(tmp_path, gateway_url=self.gateway.url, site_url=self.site.url)
        self.gateway_app.app = create_app(self.settings)
        self.site_app.app = demo_site(self.settings, gateway_url=self.gateway.url)

    @property
    def url(self) -> str:
        return self.site.url + "/"

    def reconfigure(self, change: Callable[[Settings], Settings]) -> None:
        """Restart the gateway on its port with new settings (a policy revision bump, a new origin)."""
        self.settings = change(self.settings)
        self.gateway.__exit__()
        self.gateway_app = Deferred()
        self.gateway_app.app = create_app(self.settings)
        self.gateway = LiveServer(self.gateway_app, port=self.gateway.port).__enter__()
        self.site_app.app = demo_site(self.settings, gateway_url=self.gateway.url)


def chromium() -> Iterator[Any]:
    """Debian's chromium under Playwright, headless; skips the test when it is not installed."""
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
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path)
    with running.gateway, running.site:
        yield running


class Watched:
    """A page whose console errors and uncaught exceptions are collected: tests assert there are none."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def jar(self) -> set[str]:
        return {cookie["name"] for cookie in self.context.cookies()}


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Watched]]:
    contexts: list[Any] = []

    def open_page(*, gpc: bool = False, user_agent: str | None = None) -> Watched:
        context = browser.new_context(extra_http_headers={"Sec-GPC": "1"} if gpc else None, user_agent=user_agent)
        context.set_default_timeout(BROWSER_WAIT_MS)
        if gpc:
            context.add_init_script(GPC_SCRIPT)
        contexts.append(context)
        return Watched(context)

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)
