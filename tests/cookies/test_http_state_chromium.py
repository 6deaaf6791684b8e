"""The IETF http-state cases replayed through Debian's Chromium, bare and behind ``ConsentMiddleware``.

The middleware decides which cookies may exist and how long they live; for a cookie it allows it must
never change what the browser stores. So every case's ``Set-Cookie`` headers are served by a real
uvicorn twice — once straight from the app, once through a middleware that allows everything (all
categories consented, unknown cookies allowed) — and Chromium must end up with the same cookies (name,
value, domain, path, flags) and send the same ``Cookie`` header to the case's result URL. Expiry is
left out on purpose: shortening it is the middleware's job (an allowed unknown cookie lives for the
session). Chromium reads headers by RFC 6265bis, so this is what holds our parser to the browser, not
to the older RFC.

The browser resolves the suite's hosts (home.example.org and its neighbours) to 127.0.0.1, so the
Domain cases run as the suite wrote them. The middleware reads real time (SystemClock): the browser
judges Expires dates by the real clock, and a pinned one would disagree with it about which headers
delete.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_state import CASES, MISSING, RFC6265BIS_SENT, case_urls

from gateway.categories import CONSENT_CATEGORIES
from gateway.clock import SystemClock
from gateway.consent.middleware import CONSENT_COOKIE, ConsentMiddleware
from gateway.consent.report import CookieReport
from gateway.consent.token import ConsentTokenCodec
from gateway.cookies.setcookie import parse_cookie_header
from gateway.settings import Settings
from tests.conftest import LiveServer, make_settings, site_config

pytestmark = [pytest.mark.browser, MISSING]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--host-resolver-rules=MAP example.org 127.0.0.1, MAP *.example.org 127.0.0.1",
]
# Header values uvicorn refuses to send (it answers 500 instead): there is nothing to compare.
UNSENDABLE = frozenset("\x00\x01\x02\x03\x04\x05\x06\x07\x08\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17")


async def case_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The suite's server: ``/cookie-parser?N`` sends case N's headers, every other path echoes ``Cookie``.

    The headers come with a redirect to the case's result URL: one navigation instead of two. Chromium
    stores a redirect's cookies before it follows it; on writing, all 220 cases gave the same cookies
    and ``Cookie`` headers either way, in 19 s instead of 32.
    """
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]
    body = b""
    status = 200
    if scope["path"] == "/cookie-parser":
        case = CASES_BY_NUMBER[scope["query_string"].decode("ascii")]
        status = 302
        headers += [(b"set-cookie", header.encode("utf-8")) for header in case["received"]]
        headers.append((b"location", _on_port(case_urls(case)[1], scope["server"][1]).encode("ascii")))
    else:
        body = b"; ".join(value for key, value in scope["headers"] if key == b"cookie")
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


CASES_BY_NUMBER = {case["test"].lower(): case for case in CASES}


class Server(LiveServer):
    """``LiveServer`` on a socket made with IPPROTO_TCP, so that asyncio turns Nagle's algorithm off.

    asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP; LiveServer's is 0, so each
    response on a kept-alive connection waits ~40 ms for a delayed ACK (880 navigations here).
    """

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.socket.close()
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", self.port))


def consenting_to_everything(settings: Settings) -> tuple[ConsentMiddleware, str]:
    """The middleware over the case server, and a token consenting to every category and service."""
    clock = SystemClock()
    middleware = ConsentMiddleware(case_app, settings=settings, site="shop", clock=clock, report=CookieReport(None))
    site = settings.sites["shop"]
    token, _ = ConsentTokenCodec(settings.secret_keys, clock).issue(
        consent_id="chromium-replay",
        site=site,
        allowed=frozenset(CONSENT_CATEGORIES),
        services={service.id: True for service in site.services},
        method="accept_all",
        gpc=False,
    )
    return middleware, token


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


Jar = tuple[tuple[Any, ...], ...]


def replay(browser: Any, port: int, token: str, cases: list[dict[str, Any]] = CASES) -> dict[str, tuple[bytes, Jar]]:
    """Each case's ``Cookie`` header at its result URL and the cookies Chromium then holds, by case."""
    here = f"http://home.example.org:{port}"
    seen: dict[str, tuple[bytes, Jar]] = {}
    context = browser.new_context()
    page = context.new_page()
    try:
        for case in cases:
            if any(not UNSENDABLE.isdisjoint(header) for header in case["received"]):
                continue
            context.clear_cookies()
            # The visitor's consent, in both replays so that both jars start (and stay) alike.
            context.add_cookies([{"name": CONSENT_COOKIE, "value": token, "url": here + "/"}])
            set_url, result_url = (_on_port(url, port) for url in case_urls(case))
            response = page.goto(set_url)  # redirected to result_url
            assert response is not None and response.status == 200 and response.url.lower() == result_url.lower(), case[
                "test"
            ]
            jar = tuple(
                sorted(
                    (c["name"], c["value"], c["domain"], c["path"], c["secure"], c["httpOnly"], c["sameSite"])
                    for c in context.cookies()
                )
            )
            seen[case["test"]] = (response.body(), jar)
    finally:
        context.close()
    return seen


def _on_port(url: str, port: int) -> str:
    """The suite's URL (port 8888 on some example.org host) on the replay server's port."""
    return url.replace(":8888/", f":{port}/", 1)


def _shown(seen: tuple[bytes, Jar]) -> str:
    """A replay's result for a failure message, the visitor's consent cookie left out."""
    header, jar = seen
    sent = [pair for pair in parse_cookie_header(header.decode("utf-8")) if pair[0] != CONSENT_COOKIE]
    return f"Cookie {sent} jar {[cookie for cookie in jar if cookie[0] != CONSENT_COOKIE]}"


def test_chromium_stores_the_same_cookies_behind_the_middleware(browser: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, site=site_config(unknown_cookies="allow"))
    middleware, token = consenting_to_everything(settings)
    with Server(case_app) as bare, Server(middleware) as gated:
        expected = replay(browser, bare.port, token)
        got = replay(browser, gated.port, token)
    assert len(expected) >= len(CASES) - 2  # only the NUL and CR cases cannot be served
    differing = [
        f"{test}: bare {_shown(expected[test])}\n    gated {_shown(got[test])}"
        for test in expected
        if got.get(test) != expected[test]
    ]
    assert not differing, f"{len(differing)} of {len(expected)} cases differ:\n" + "\n".join(differing)
    # The nameless cases are not vacuous: Chromium stores these cookies, and sends what the model expects.
    nameless = {
        test: [pair for pair in parse_cookie_header(expected[test][0].decode("utf-8")) if pair[0] != CONSENT_COOKIE]
        for test in RFC6265BIS_SENT
    }
    assert nameless == RFC6265BIS_SENT


def test_nameless_cookies_reach_no_browser_while_unknown_cookies_are_blocked(browser: Any, tmp_path: Path) -> None:
    """The attack: leave the name out so the cookie cannot be classified. It stays unknown, so it is blocked."""
    settings = make_settings(tmp_path, site=site_config(unknown_cookies="block"))
    middleware, token = consenting_to_everything(settings)
    nameless = [case for case in CASES if case["test"] in RFC6265BIS_SENT]
    with Server(middleware) as gated:
        seen = replay(browser, gated.port, token, nameless)
    assert sorted(seen) == sorted(RFC6265BIS_SENT)
    leaked = {
        test: _shown((header, jar))
        for test, (header, jar) in seen.items()
        if any(cookie[0] == "" for cookie in jar) or any(not name for name, _ in parse_cookie_header(header.decode()))
    }
    assert not leaked


def test_a_stored_nameless_cookie_is_deleted_while_unknown_cookies_are_blocked(browser: Any, tmp_path: Path) -> None:
    """Set before the policy (here: by the bare server on the same host), it goes on the next gated response."""
    settings = make_settings(tmp_path, site=site_config(unknown_cookies="block"))
    middleware, token = consenting_to_everything(settings)
    context = browser.new_context()
    try:
        with Server(case_app) as bare, Server(middleware) as gated:
            page = context.new_page()
            page.goto(f"http://home.example.org:{bare.port}/cookie-parser?0004")  # Set-Cookie: foo
            assert [(c["name"], c["value"]) for c in context.cookies()] == [("", "foo")]
            response = page.goto(f"http://home.example.org:{gated.port}/cookie-parser-result?0004")
            assert response is not None and response.body() == b"foo"  # the browser sent it once more
            assert context.cookies() == []
    finally:
        context.close()
