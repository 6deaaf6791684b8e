"""Time to banner and main-thread time of the snippet on the demo page, measured in Chromium.

What is measured: the demo site (``gateway.demo``: blocked scripts, an iframe, a queue stub)
served by a real uvicorn with the gateway on another, opened in Debian's Chromium (headless,
driven by Playwright) in a fresh context each run, so nothing is cached. Two pages in the same
run: the demo page as shipped ("with") and the same HTML without our script tag ("bare").

Reported (medians of ``--runs``): time to banner (navigation start to the banner being in the
shadow root, checked every animation frame), ``load`` event time of both pages, and Chromium's
own main-thread figures (CDP ``Performance.getMetrics``: TaskDuration and ScriptDuration, summed
over the page's life until one second after load) for both and their difference: what the
snippet adds to the visitor's main thread. The last line printed is JSON with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.demo import demo_settings, demo_site

CHROMIUM = "/usr/bin/chromium"
_TAG = re.compile(r'<script src="[^"]*/c\.js"[^>]*></script>')
_WATCH_BANNER = """
(() => {
  const check = () => {
    const root = document.getElementById("cg-root");
    if (root && root.shadowRoot && root.shadowRoot.querySelector("[data-cg=banner]")) {
      window.__cgBanner = performance.now();
    } else {
      requestAnimationFrame(check);
    }
  };
  requestAnimationFrame(check);
})();
"""


class _Server:
    """uvicorn in a thread on 127.0.0.1; the app is set after the port is known."""

    def __init__(self) -> None:
        self.app: Any = None
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(
            uvicorn.Config(self._call, log_level="warning", access_log=False, interface="asgi3")
        )
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.socket])), daemon=True
        )

    async def _call(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def __enter__(self) -> _Server:
        self.thread.start()
        while not self.server.started:
            threading.Event().wait(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def demo_servers(data: Path) -> Iterator[tuple[str, str]]:
    """The gateway, the demo site, and a copy of the demo page without our tag; yields both page URLs."""
    gateway, site = _Server(), _Server()
    settings = demo_settings(data, gateway_url=gateway.url, site_url=site.url)
    gateway.app = create_app(settings)
    demo = demo_site(settings, gateway_url=gateway.url)
    bare_html: dict[str, str] = {}

    async def bare(request: Request) -> Response:
        return HTMLResponse(bare_html["page"])

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    site.app = Starlette(routes=[Route("/bare", bare), Route("/favicon.ico", no_icon)])
    site_routes = site.app

    async def dispatch(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in ("/bare", "/favicon.ico"):
            await site_routes(scope, receive, send)
        else:
            await demo(scope, receive, send)

    site.app = dispatch
    with gateway, site:
        html = httpx.get(site.url + "/").text
        bare_html["page"], found = _TAG.subn("", html)
        if found != 1:
            raise SystemExit("bench: the demo page's script tag was not found")
        yield site.url + "/", site.url + "/bare"


def measure(browser: Any, url: str, *, banner: bool) -> dict[str, float]:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.add_init_script(_WATCH_BANNER)
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(url, wait_until="load")
        if banner:
            page.wait_for_function("() => window.__cgBanner !== undefined", timeout=10_000)
        page.wait_for_timeout(1000)
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        timing = page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd")
        result = {
            "load_ms": float(timing),
            "task_ms": metrics["TaskDuration"] * 1000,
            "script_ms": metrics["ScriptDuration"] * 1000,
        }
        if banner:
            result["banner_ms"] = float(page.evaluate("() => window.__cgBanner"))
        return result
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=9, help="page loads of each kind (default: 9)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        raise SystemExit("bench: Debian's chromium is not installed (`make browser` installs it)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="cg-timing-") as temp, demo_servers(Path(temp)) as (with_url, bare_url):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            runs: dict[str, list[dict[str, float]]] = {"with": [], "bare": []}
            measure(browser, with_url, banner=True)  # warm-up: the gateway's first requests
            for index in range(args.runs):
                for kind in ("with", "bare") if index % 2 == 0 else ("bare", "with"):
                    url = with_url if kind == "with" else bare_url
                    runs[kind].append(measure(browser, url, banner=kind == "with"))
            browser.close()

    def median(kind: str, key: str) -> float:
        return round(statistics.median(run[key] for run in runs[kind]), 1)

    figures = {
        "time_to_banner_ms": median("with", "banner_ms"),
        "load_ms_with": median("with", "load_ms"),
        "load_ms_bare": median("bare", "load_ms"),
        "main_thread_ms_with": median("with", "task_ms"),
        "main_thread_ms_bare": median("bare", "task_ms"),
        "script_ms_with": median("with", "script_ms"),
        "script_ms_bare": median("bare", "script_ms"),
        "runs": args.runs,
    }
    figures["main_thread_added_ms"] = round(figures["main_thread_ms_with"] - figures["main_thread_ms_bare"], 1)
    print(f"Chromium (headless), demo page, medians of {args.runs} fresh loads each, same run:")
    print(f"  time to banner:        {figures['time_to_banner_ms']} ms after navigation start")
    print(f"  load event:            with {figures['load_ms_with']} ms, bare {figures['load_ms_bare']} ms")
    print(
        f"  main-thread tasks:     with {figures['main_thread_ms_with']} ms, bare {figures['main_thread_ms_bare']} ms"
        f" (added {figures['main_thread_added_ms']} ms)"
    )
    print(f"  script execution:      with {figures['script_ms_with']} ms, bare {figures['script_ms_bare']} ms")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
