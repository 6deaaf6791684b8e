"""The snippet keeps the server's promises, in real Chromium (issue 10).

* Its requests carry none of the site's cookies, also when the gateway shares the site's origin or
  site (cookies ignore ports: a gateway on another port of the same host receives them all).
* GPC turned on after a decision refuses analytics and advertising in the browser exactly as
  ``ConsentMiddleware`` does on the server, unless the visitor opted in while sending GPC.
* ``data-hash`` makes each hash route its own page; without it fragments are never sent nor stored.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from gateway.app import create_app
from gateway.demo import demo_settings, demo_site
from gateway.settings import Settings
from gateway.storage.location import DatabaseLocation
from tests.browser.conftest import CHROME_UA, GPC_SCRIPT, Deferred, Demo, Watched
from tests.conftest import LiveServer
from tests.stores import query
from tests.waiting import wait_until

pytestmark = pytest.mark.browser
OpenPage = Callable[..., Watched]
BANNER = "#cg-root [data-cg=banner]"
#: The snippet's own calls to the gateway (the <script src> itself is the site's tag, not the snippet's).
SNIPPET_CALLS = ("/api/event", "/api/config/", "/consent")
REFUSED_BY_GPC = ("analytics_storage", "ad_storage", "ad_user_data", "ad_personalization")


@dataclass(slots=True)
class Call:
    """One request the gateway received: what the browser really sent, headers and body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)


def recording(app: Any, calls: list[Call]) -> Any:
    """Wrap an ASGI app so every HTTP request it receives is kept, as received (server-side capture)."""

    async def record(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        call = Call(scope["method"], scope["path"], headers)
        calls.append(call)

        async def receive_and_keep() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                call.body.extend(message.get("body", b""))
            return message

        await app(scope, receive_and_keep, send)

    return record


def _snippet_calls(calls: list[Call]) -> list[Call]:
    return [call for call in list(calls) if any(part in call.path for part in SNIPPET_CALLS)]


def _wait_for_call(calls: list[Call], condition: Callable[[Call], bool], what: str) -> Call:
    return wait_until(
        lambda: next((call for call in list(calls) if condition(call)), None),
        message=lambda: f"the gateway never received {what}; it received {[c.path for c in calls]}",
    )


def _event_named(name: str) -> Callable[[Call], bool]:
    def matches(call: Call) -> bool:
        if call.method != "POST" or not call.path.endswith("/api/event") or not call.body:
            return False
        return bool(json.loads(bytes(call.body)).get("n") == name)

    return matches


def _stored_pages(database: DatabaseLocation, wanted: set[str]) -> set[str]:
    """The stored pageview paths, once ``wanted`` are among them (the write buffer commits in batches)."""

    def pages() -> set[str]:
        return {row[0] for row in query(database, "SELECT pathname FROM events WHERE name = 'pageview'")}

    return wait_until(
        lambda: (found := pages()) >= wanted and found,
        message=lambda: f"pageviews of {wanted} never arrived; stored: {pages()}",
    )


def _consent_updates(page: Any) -> list[dict[str, str]]:
    return list(
        page.evaluate(
            "() => (window.dataLayer || []).filter(e => e[0] === 'consent' && e[1] === 'update').map(e => e[2])"
        )
    )


def _ran(page: Any, which: str) -> str:
    return str(page.locator(f"#ran-{which}").inner_text())


def _accept_all(page: Any) -> None:
    page.locator(BANNER).wait_for(state="visible")
    page.locator("#cg-root [data-cg=accept-all]").first.click()
    page.wait_for_function("() => document.cookie.includes('cg_consent=')")
    page.wait_for_function("() => document.getElementById('ran-advertising').textContent.startsWith('ran')")


# --- a gateway on the site's own origin ----------------------------------------------------------

_HASH_SPA = """<!doctype html><html lang="en"><title>hash app</title>
<script src="/cg/c.js" data-site="demo" data-allow-localhost data-allow-webdriver{hash} defer></script>
<a id="home" href="#/home">Home</a> <a id="settings" href="#/settings">Settings</a>"""


@dataclass(frozen=True, slots=True)
class OwnOrigin:
    url: str
    settings: Settings
    calls: list[Call]


@pytest.fixture
def own_origin(tmp_path: Path) -> Iterator[OwnOrigin]:
    """The demo site at ``/`` and the gateway at ``/cg`` on one uvicorn: one origin, so one cookie jar.

    ``/app`` is a hash-routed single-page app tagged with ``data-hash``; ``/anchors`` the same without it.
    """
    outer = Deferred()
    server = LiveServer(outer)
    settings = demo_settings(tmp_path, gateway_url=server.url + "/cg", site_url=server.url)
    gateway = create_app(settings)
    calls: list[Call] = []

    def page(html: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> HTMLResponse:
            return HTMLResponse(html)

        return endpoint

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with gateway.router.lifespan_context(gateway):  # a mounted app's lifespan is the host's to run
            yield

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    outer.app = Starlette(
        routes=[
            Route("/favicon.ico", no_icon),
            Route("/app", page(_HASH_SPA.format(hash=" data-hash"))),
            Route("/anchors", page(_HASH_SPA.format(hash=""))),
            Mount("/cg", app=recording(gateway, calls)),
            Mount("/", app=demo_site(settings, gateway_url=server.url + "/cg")),
        ],
        lifespan=lifespan,
    )
    with server:
        yield OwnOrigin(server.url, settings, calls)


def _assert_no_cookie_went_along(watched: Watched, calls: list[Call]) -> None:
    """Accept all (the jar then holds the session and consent cookies), reload, track: no call carries them."""
    page = watched.page
    _accept_all(page)
    assert {"PHPSESSID", "cg_consent", "_ga"} <= watched.jar()
    page.reload()  # the config request now leaves a jar with the consent cookie in it
    page.wait_for_function("() => window.cg && cg.state && cg.state() && cg.state().method === 'accept_all'")
    page.evaluate("() => cg.track('Signup', {plan: 'pro'})")
    event = _wait_for_call(calls, _event_named("Signup"), "the Signup event")
    assert event.headers.get("content-type", "").startswith("text/plain")  # a simple request: no preflight
    sent = _snippet_calls(calls)
    assert {"/api/event", "/api/config/", "/consent"} <= {p for p in SNIPPET_CALLS for c in sent if p in c.path}
    with_cookies = [f"{c.method} {c.path}: {c.headers['cookie']}" for c in sent if "cookie" in c.headers]
    assert with_cookies == [], "the snippet sent the site's cookies"
    assert watched.errors == []


def test_no_request_of_the_snippet_carries_cookies_on_the_sites_own_origin(
    own_origin: OwnOrigin, open_page: OpenPage
) -> None:
    watched = open_page(user_agent=CHROME_UA)
    watched.page.goto(own_origin.url + "/")
    _assert_no_cookie_went_along(watched, own_origin.calls)


def test_no_request_of_the_snippet_carries_cookies_to_a_gateway_on_the_same_site(
    demo: Demo, open_page: OpenPage
) -> None:
    """The demo's gateway listens on another port of 127.0.0.1: same site, and cookies ignore ports."""
    calls: list[Call] = []
    demo.gateway_app.app = recording(demo.gateway_app.app, calls)
    watched = open_page(user_agent=CHROME_UA)
    watched.page.goto(demo.url)
    _assert_no_cookie_went_along(watched, calls)


def test_hash_routes_are_pages_with_data_hash(own_origin: OwnOrigin, open_page: OpenPage) -> None:
    watched = open_page(user_agent=CHROME_UA)
    page = watched.page
    page.goto(own_origin.url + "/app#/home")
    page.locator("#settings").click()
    pages = _stored_pages(own_origin.settings.database, {"/app#/home", "/app#/settings"})
    assert "/app" not in pages  # never the route-less path: a hash route is the page
    assert watched.errors == []


def test_without_data_hash_fragments_are_neither_sent_nor_stored(own_origin: OwnOrigin, open_page: OpenPage) -> None:
    watched = open_page(user_agent=CHROME_UA)
    page = watched.page
    page.goto(own_origin.url + "/anchors#/home")
    page.locator("#settings").click()
    page.evaluate("() => cg.track('Signup')")
    _wait_for_call(own_origin.calls, _event_named("Signup"), "the Signup event")
    assert _stored_pages(own_origin.settings.database, {"/anchors"}) == {"/anchors"}
    events = [json.loads(bytes(c.body)) for c in _snippet_calls(own_origin.calls) if c.path.endswith("/api/event")]
    assert events and all("#" not in event["u"] for event in events)
    assert watched.errors == []


# --- GPC: the browser decides as the gateway does ------------------------------------------------


def _server_set_cookies(watched: Watched, url: str) -> dict[str, str]:
    """The Set-Cookie headers the site (behind ConsentMiddleware) answers this browser with, by name."""
    response = watched.context.request.get(url)
    return {
        header["value"].split("=", 1)[0]: header["value"]
        for header in response.headers_array
        if header["name"].lower() == "set-cookie"
    }


def _is_deletion(set_cookie: str) -> bool:
    lowered = set_cookie.lower()
    return "max-age=0" in lowered or "expires=thu, 01 jan 1970" in lowered


def test_gpc_sent_after_an_acceptance_refuses_analytics_and_advertising_as_the_server_does(
    demo: Demo, open_page: OpenPage
) -> None:
    watched = open_page(user_agent=CHROME_UA)
    page = watched.page
    page.goto(demo.url)
    _accept_all(page)
    page.reload()  # the server allowed them before GPC
    page.wait_for_function("() => document.getElementById('ran-analytics').textContent.startsWith('ran')")
    assert {"_ga", "_fbp", "_trk", "_ar_v4", "demo_theme"} <= watched.jar()

    watched.context.add_init_script(GPC_SCRIPT)  # navigator.globalPrivacyControl = true from now on
    watched.context.set_extra_http_headers({"Sec-GPC": "1"})
    page.reload()
    # "!analytics" runs once a decision is applied that refuses analytics: the snippet has decided.
    page.wait_for_function("() => document.getElementById('ran-no-analytics').textContent === 'ran'")
    for which in ("analytics", "hotjar", "advertising"):
        assert _ran(page, which) == "blocked", f"the {which} tag ran under GPC"
    assert _ran(page, "functional") == "ran"  # GPC is no blanket refusal
    assert page.locator("iframe[data-category=advertising]").get_attribute("src") is None
    assert page.evaluate("() => [cg.allows('analytics'), cg.allows('advertising'), cg.allows('functional')]") == [
        False,
        False,
        True,
    ]
    update = _consent_updates(page)[-1]
    assert {key: update[key] for key in REFUSED_BY_GPC} == dict.fromkeys(REFUSED_BY_GPC, "denied")
    assert update["functionality_storage"] == "granted"
    page.wait_for_function("() => !/(^|; )(_ga|_fbp|_trk|_ar_v4)=/.test(document.cookie)")  # cleared
    assert "demo_theme" in watched.jar()

    # The server agrees: its page says so, and it sets no analytics or advertising cookie any more.
    decision = page.locator("#decision").inner_text()
    assert "Decided (accept_all)" in decision and "Global Privacy Control is on" in decision
    answered = _server_set_cookies(watched, demo.url)
    assert "demo_theme" in answered and not _is_deletion(answered["demo_theme"])
    for name in ("_ga", "_trk", "_fbp", "_ar_v4"):
        assert name not in answered or _is_deletion(answered[name]), f"the middleware set {name} under GPC"
    assert not {"_ga", "_fbp", "_trk", "_ar_v4"} & watched.jar()
    assert watched.errors == []


def test_an_opt_in_made_while_sending_gpc_stands_in_the_browser_and_on_the_server(
    demo: Demo, open_page: OpenPage
) -> None:
    watched = open_page(gpc=True, user_agent=CHROME_UA)
    page = watched.page
    page.goto(demo.url)
    _accept_all(page)
    page.reload()
    page.wait_for_function("() => document.getElementById('ran-analytics').textContent.startsWith('ran')")
    assert _ran(page, "advertising").startswith("ran")
    update = _consent_updates(page)[-1]
    assert {key: update[key] for key in REFUSED_BY_GPC} == dict.fromkeys(REFUSED_BY_GPC, "granted")
    assert "Global Privacy Control is on" in page.locator("#decision").inner_text()
    assert {"_trk", "_ar_v4"} <= watched.jar()  # set by the middleware on the reload
    assert watched.errors == []
