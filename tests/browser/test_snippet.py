"""The one-tag snippet in real Chromium: banner, dialog, blocking, clearing, Consent Mode, GPC, tracker.

The demo site (``gateway.demo``) embeds ``c.js`` and carries blocked scripts of every category,
a blocked iframe and server-set cookies of every category behind ``ConsentMiddleware``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gateway.cookies.lifetimes import parse_lifetime
from tests.browser.conftest import AXE, CHROME_UA, Demo, Watched, screenshot
from tests.conftest import LiveServer
from tests.stores import query
from tests.waiting import wait_until

pytestmark = pytest.mark.browser
OpenPage = Callable[..., Watched]
BANNER = "#cg-root [data-cg=banner]"
DIALOG = "#cg-root [data-cg=dialog]"
SCRIPT_COOKIES = {"_ga", "_ga_DEMO", "_hjSessionUser_42", "_fbp"}


def _ran(page: Any, which: str) -> str:
    return str(page.locator(f"#ran-{which}").inner_text())


def _decide(page: Any, which: str) -> None:
    """Click "Accept all" or "Reject all" in the banner and wait until the consent cookie is stored."""
    page.locator(f"#cg-root [data-cg={which}]").first.click()
    page.wait_for_function("() => document.cookie.includes('cg_consent=')")


def _consent_updates(page: Any) -> list[dict[str, str]]:
    return list(
        page.evaluate(
            "() => (window.dataLayer || []).filter(e => e[0] === 'consent' && e[1] === 'update').map(e => e[2])"
        )
    )


def _wait_for_script_cookies(page: Any, *, present: bool) -> None:
    """Until every cookie the blocked scripts set is in ``document.cookie`` (or none is): each script runs in turn."""
    names = "document.cookie.split('; ').map(c => c.split('=')[0])"
    test = "every(n => jar.includes(n))" if present else "every(n => !jar.includes(n))"
    page.wait_for_function(f"names => {{ const jar = {names}; return names.{test}; }}", arg=sorted(SCRIPT_COOKIES))


def _first_visit(demo: Demo, open_page: OpenPage, **options: Any) -> Watched:
    watched = open_page(**options)
    watched.page.goto(demo.url)
    watched.page.locator(BANNER).wait_for(state="visible")
    return watched


def test_first_visit_shows_the_banner_and_sets_nothing_but_essential(demo: Demo, open_page: OpenPage) -> None:
    watched = _first_visit(demo, open_page)
    page = watched.page
    assert watched.jar() == {"PHPSESSID"}
    assert _ran(page, "analytics") == "blocked" and _ran(page, "advertising") == "blocked"
    assert _ran(page, "no-analytics") == "not run"  # "!analytics" waits for a decision
    assert page.locator("iframe[data-category]").get_attribute("src") is None
    assert page.locator(".cg-placeholder").count() == 1
    defaults = page.evaluate("() => dataLayer.find(e => e[0] === 'consent' && e[1] === 'default')[2]")
    assert defaults["analytics_storage"] == "denied" and defaults["ad_storage"] == "denied"
    assert defaults["security_storage"] == "granted" and "wait_for_update" in defaults
    # Reject is as visible and easy as accept: same level, same look, one click each.
    accept, reject = (
        page.locator("#cg-root [data-cg=accept-all]").first,
        page.locator("#cg-root [data-cg=reject-all]").first,
    )
    assert accept.get_attribute("class") == reject.get_attribute("class")
    accept_box, reject_box = accept.bounding_box(), reject.bounding_box()
    assert accept_box and reject_box and abs(accept_box["height"] - reject_box["height"]) < 1
    screenshot(page, "snippet-banner")
    assert watched.errors == []


def test_accept_all_runs_blocked_scripts_in_order_loads_iframes_and_their_cookies(
    demo: Demo, open_page: OpenPage
) -> None:
    watched = _first_visit(demo, open_page)
    page = watched.page
    page.locator("#cg-root [data-cg=accept-all]").first.click()
    page.wait_for_function("() => document.getElementById('ran-advertising').textContent.startsWith('ran')")
    assert _ran(page, "functional") == "ran"
    assert page.evaluate("() => window.cgOrder") == "ahx"  # document order, the external one included
    assert page.evaluate("() => document.documentElement.dataset.consent") == "accept_all"  # queued cg("on", ...)
    assert _ran(page, "no-analytics") == "not run"
    assert page.locator("iframe[data-category]").get_attribute("src") == "/embed"
    assert page.locator(".cg-placeholder").count() == 0
    assert SCRIPT_COOKIES | {"cg_consent"} <= watched.jar()
    assert _consent_updates(page)[-1]["analytics_storage"] == "granted"
    assert _consent_updates(page)[-1]["ad_user_data"] == "granted"
    assert not page.locator(BANNER).is_visible()
    page.reload()  # the server now sees the decision: its cookies pass, capped
    assert "Decided (accept_all)" in page.locator("#decision").inner_text()
    assert {"demo_theme", "_trk", "_ar_v4"} <= watched.jar()
    assert not page.locator(BANNER).is_visible()
    assert watched.errors == []


def test_reject_all_keeps_everything_blocked(demo: Demo, open_page: OpenPage) -> None:
    watched = _first_visit(demo, open_page)
    page = watched.page
    page.locator("#cg-root [data-cg=reject-all]").first.click()
    page.wait_for_function("() => document.getElementById('ran-no-analytics').textContent === 'ran'")
    assert _ran(page, "analytics") == "blocked" and _ran(page, "hotjar") == "blocked"
    assert not SCRIPT_COOKIES & watched.jar()
    assert _consent_updates(page)[-1]["analytics_storage"] == "denied"
    page.reload()
    assert watched.jar() == {"PHPSESSID", "cg_consent"}
    assert "Decided (reject_all)" in page.locator("#decision").inner_text()
    assert watched.errors == []


def test_custom_choices_per_category_and_service(demo: Demo, open_page: OpenPage) -> None:
    watched = _first_visit(demo, open_page)
    page = watched.page
    page.locator("#cg-root [data-cg=customize]").first.click()
    page.locator(DIALOG).wait_for(state="visible")
    toggles = page.locator("#cg-root [data-cg-category]")
    assert all(not toggles.nth(i).is_checked() for i in range(toggles.count()))  # nothing pre-ticked
    page.locator("#cg-root [data-cg-category=analytics]").check()
    page.locator("#cg-root [data-cg-service=google-analytics]").check()
    page.locator("#cg-root [data-cg-service=hotjar]").uncheck()
    assert page.locator(DIALOG).get_by_text("_ga", exact=True).count() >= 1  # the cookie list is there
    screenshot(page, "snippet-dialog")
    page.locator("#cg-root [data-cg=save]").first.click()
    page.wait_for_function("() => document.getElementById('ran-analytics').textContent.startsWith('ran')")
    assert _ran(page, "hotjar") == "blocked" and _ran(page, "advertising") == "blocked"
    assert page.evaluate("() => cg.allows('analytics') && !cg.allows('hotjar') && !cg.allows('advertising')")
    page.reload()
    assert "Decided (custom)" in page.locator("#decision").inner_text()
    assert watched.errors == []


def test_withdrawal_deletes_the_categorys_cookies_and_storage(demo: Demo, open_page: OpenPage) -> None:
    watched = _first_visit(demo, open_page)
    page = watched.page
    page.locator("#cg-root [data-cg=accept-all]").first.click()
    _wait_for_script_cookies(page, present=True)  # _fbp comes last: the external ads.js sets it
    assert SCRIPT_COOKIES <= watched.jar()
    assert page.evaluate("() => localStorage.getItem('_hjSession_42')") == "demo"
    page.evaluate("() => cg.show()")
    page.locator(DIALOG).wait_for(state="visible")
    page.locator(f"{DIALOG} [data-cg=reject-all]").click()
    _wait_for_script_cookies(page, present=False)
    assert not SCRIPT_COOKIES & watched.jar()
    assert page.evaluate("() => localStorage.getItem('_hjSession_42')") is None
    assert _consent_updates(page)[-1]["analytics_storage"] == "denied"
    page.reload()  # and the middleware deletes the server-set ones
    assert watched.jar() == {"PHPSESSID", "cg_consent"}
    assert watched.errors == []


def test_global_privacy_control_preselects_denied_and_says_so(demo: Demo, open_page: OpenPage) -> None:
    watched = _first_visit(demo, open_page, gpc=True)
    page = watched.page
    assert "Global Privacy Control" in page.locator(BANNER).inner_text()
    page.locator("#cg-root [data-cg=customize]").first.click()
    assert not page.locator("#cg-root [data-cg-category=analytics]").is_checked()
    assert not page.locator("#cg-root [data-cg-category=advertising]").is_checked()
    page.locator("#cg-root [data-cg=save]").first.click()
    page.wait_for_function("() => document.cookie.includes('cg_consent=')")
    page.reload()
    assert "Decided (gpc)" in page.locator("#decision").inner_text()
    assert "Global Privacy Control is on" in page.locator("#decision").inner_text()
    assert watched.errors == []


def test_a_policy_revision_bump_asks_again(demo: Demo, open_page: OpenPage) -> None:
    watched = _first_visit(demo, open_page)
    page = watched.page
    _decide(page, "accept-all")
    page.reload()
    assert not page.locator(BANNER).is_visible()
    demo.reconfigure(
        lambda s: dataclasses.replace(s, sites={"demo": dataclasses.replace(s.sites["demo"], policy_revision=2)})
    )
    page.reload()
    page.locator(BANNER).wait_for(state="visible")
    assert _ran(page, "analytics") == "blocked"
    assert watched.errors == []


def test_a_tampered_consent_cookie_means_no_decision(demo: Demo, open_page: OpenPage) -> None:
    watched = _first_visit(demo, open_page)
    page = watched.page
    _decide(page, "accept-all")
    token = next(c for c in watched.context.cookies() if c["name"] == "cg_consent")
    watched.context.add_cookies([{**token, "value": token["value"][:-4] + "AAAA"}])
    page.evaluate("() => localStorage.removeItem('cg_state')")
    page.reload()
    page.locator(BANNER).wait_for(state="visible")
    assert _ran(page, "analytics") == "blocked"
    assert "No decision yet (tampered)" in page.locator("#decision").inner_text()
    assert not {"_ga", "_fbp"} & watched.jar()


def test_spa_navigation_and_custom_events_reach_the_pipeline(demo: Demo, open_page: OpenPage) -> None:
    watched = _first_visit(demo, open_page, user_agent=CHROME_UA)
    page = watched.page
    page.locator("#spa-next").click()
    page.evaluate("() => cg.track('Signup', {plan: 'pro'})")
    rows = _wait_for_events(demo, {"/page-2", "Signup"})
    assert ("pageview", "/") in rows and ("pageview", "/page-2") in rows
    assert any(name == "Signup" for name, _ in rows)
    assert watched.errors == []


def _wait_for_events(demo: Demo, wanted: set[str]) -> set[tuple[str, str]]:
    rows: set[tuple[str, str]] = set()

    def arrived() -> set[tuple[str, str]]:
        nonlocal rows
        rows = {
            (name, pathname) for name, pathname in query(demo.settings.database, "SELECT name, pathname FROM events")
        }
        return rows if wanted <= {name for name, _ in rows} | {path for _, path in rows} else set()

    return wait_until(arrived, interval=0.1, message=lambda: f"events {wanted} never arrived; stored: {rows}")


def test_keyboard_only_dialog_traps_focus_and_escape_is_not_consent(demo: Demo, open_page: OpenPage) -> None:
    watched = _first_visit(demo, open_page)
    page = watched.page
    opener = page.locator("button[data-cg-open]")
    opener.focus()
    page.keyboard.press("Enter")
    page.locator(DIALOG).wait_for(state="visible")
    inside = (
        "() => { const root = document.getElementById('cg-root').shadowRoot; "
        "const dialog = root.querySelector('[data-cg=dialog]'); "
        "return !!root.activeElement && dialog.contains(root.activeElement); }"
    )
    assert page.evaluate(inside)
    for _ in range(40):
        page.keyboard.press("Tab")
        assert page.evaluate(inside), "focus left the modal dialog"
    for _ in range(5):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate(inside)
    page.keyboard.press("Escape")
    page.locator(DIALOG).wait_for(state="hidden")
    assert "cg_consent" not in watched.jar()  # Escape is never consent
    assert page.evaluate("() => document.activeElement && document.activeElement.hasAttribute('data-cg-open')")
    page.locator(BANNER).wait_for(state="visible")  # still undecided
    # Keyboard alone can decide too.
    page.locator("#cg-root [data-cg=reject-all]").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.cookie.includes('cg_consent=')")
    assert watched.errors == []


def _axe_violations(page: Any) -> list[str]:
    if not AXE.exists():
        pytest.skip("axe-core is not installed: `make test` installs it from the npm registry into .cache/npm")
    if not page.evaluate("() => typeof axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    results = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.nodes.map(n => JSON.stringify(n.target)).join(' '))"
    )
    return list(results)


def test_axe_finds_no_serious_violations_on_the_banner_and_the_dialog(demo: Demo, open_page: OpenPage) -> None:
    watched = _first_visit(demo, open_page)
    page = watched.page
    assert _axe_violations(page) == []
    page.locator("#cg-root [data-cg=customize]").first.click()
    page.locator(DIALOG).wait_for(state="visible")
    assert _axe_violations(page) == []


def test_languages_follow_data_lang_then_html_lang(demo: Demo, open_page: OpenPage, live_server: Any) -> None:
    pages = _bad_input_site(live_server, demo)
    watched = open_page()
    watched.page.goto(pages.url + "/german")
    watched.page.locator(BANNER).wait_for(state="visible")
    assert watched.page.locator("#cg-root [data-cg=accept-all]").first.inner_text() == "Alle akzeptieren"
    watched.page.goto(pages.url + "/french-by-attribute")
    watched.page.locator(BANNER).wait_for(state="visible")
    assert watched.page.locator("#cg-root [data-cg=reject-all]").first.inner_text() == "Tout refuser"
    assert watched.errors == []


def _bad_input_site(live_server: Any, demo: Demo) -> LiveServer:
    gateway = demo.gateway.url
    tag = f'<script src="{gateway}/c.js" data-site="demo" data-allow-localhost data-allow-webdriver defer'
    blocked = '<script type="text/plain" data-category="analytics">document.title = "analytics ran";</script>'

    def html(body: str, lang: str = "en", headers: dict[str, str] | None = None) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> HTMLResponse:
            return HTMLResponse(f'<!doctype html><html lang="{lang}"><title>t</title>{body}', headers=headers)

        return endpoint

    csp = f"default-src 'self'; script-src 'nonce-r4nd0m' {gateway}; connect-src {gateway}; frame-src 'self'"

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/favicon.ico", no_icon),
        Route("/no-site", html(f'<script src="{gateway}/c.js" defer></script>{blocked}')),
        Route(
            "/unreachable",
            html(
                f'<script src="{gateway}/c.js" data-site="demo" data-allow-localhost data-allow-webdriver defer>'
                f"</script>{blocked}"
            ),
        ),
        Route("/german", html(f"{tag}></script>{blocked}", lang="de-DE")),
        Route(
            "/unblocked-gtag",
            html(
                f'<script src="{gateway}/c.js" data-site="demo" data-allow-localhost data-allow-webdriver></script>'
                "<script>window.dataLayer = window.dataLayer || []; dataLayer.push(['config', 'G-DEMO']);</script>"
            ),
        ),
        Route(
            "/no-defer",
            html(
                f'<script src="{gateway}/c.js" data-site="demo" data-allow-localhost data-allow-webdriver>'
                f"</script>{blocked}<p>body</p>"
            ),
        ),
        Route(
            "/missing-page",
            html(
                '<meta name="cg-status" content="404">'
                f'<script src="{gateway}/c.js" data-site="demo" data-allow-localhost data-allow-webdriver '
                'data-downloads data-404 defer></script><a id="download" href="/files/report.pdf" download>PDF</a>'
            ),
        ),
        Route(
            "/debug-no-allow",
            html(f'<script src="{gateway}/c.js" data-site="demo" data-debug defer></script>{blocked}'),
        ),
        Route("/french-by-attribute", html(f'{tag} data-lang="fr"></script>{blocked}', lang="de")),
        Route(
            "/strict-csp",
            html(
                f'{tag} nonce="r4nd0m"></script>'
                '<script type="text/plain" data-category="analytics" nonce="r4nd0m">'
                'document.title = "analytics ran";</script>',
                headers={"content-security-policy": csp},
            ),
        ),
    ]
    server = live_server(Starlette(routes=routes))
    demo.reconfigure(
        lambda s: dataclasses.replace(
            s,
            sites={
                "demo": dataclasses.replace(s.sites["demo"], origins=(*s.sites["demo"].origins, server.url)),
            },
        )
    )
    return server


def test_a_page_without_data_site_says_so_and_does_nothing_else(
    demo: Demo, open_page: OpenPage, live_server: Any
) -> None:
    pages = _bad_input_site(live_server, demo)
    watched = open_page()
    with watched.page.expect_console_message(lambda message: "data-site" in message.text):  # the snippet gave up
        watched.page.goto(pages.url + "/no-site")
    assert watched.page.locator("#cg-root").count() == 0
    assert watched.page.title() == "t"
    assert any("data-site" in error for error in watched.errors)
    assert not any(error.startswith("uncaught") for error in watched.errors)


def test_an_unreachable_gateway_breaks_nothing(demo: Demo, open_page: OpenPage, live_server: Any) -> None:
    pages = _bad_input_site(live_server, demo)
    watched = open_page()
    demo.gateway_app.app = _scripts_only(demo.gateway_app.app)  # the script loads; every API call fails
    with watched.page.expect_console_message(lambda message: "gateway unreachable" in message.text):
        watched.page.goto(pages.url + "/unreachable")  # the snippet tried, failed and said so
    assert watched.page.title() == "t"  # the blocked script stayed blocked
    assert watched.page.locator(BANNER).count() == 0
    assert not any(error.startswith("uncaught") for error in watched.errors)
    assert watched.page.evaluate("() => typeof cg === 'undefined' || !cg.allows || cg.allows('analytics') === false")


def _scripts_only(app: Any) -> Any:
    async def unavailable(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].endswith(".js"):
            await app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"down"})

    return unavailable


def test_a_strict_content_security_policy_with_a_nonce_works(demo: Demo, open_page: OpenPage, live_server: Any) -> None:
    pages = _bad_input_site(live_server, demo)
    watched = open_page()
    watched.page.goto(pages.url + "/strict-csp")
    watched.page.locator(BANNER).wait_for(state="visible")
    watched.page.locator("#cg-root [data-cg=accept-all]").first.click()
    watched.page.wait_for_function("() => document.title === 'analytics ran'")
    assert not [e for e in watched.errors if "Content Security Policy" in e]


def test_the_privacy_center_from_the_dialog_and_back(demo: Demo, open_page: OpenPage) -> None:
    watched = _first_visit(demo, open_page)
    page = watched.page
    if AXE.exists():  # an init script, as the privacy center's own CSP refuses injected tags
        watched.context.add_init_script(path=str(AXE))
    page.locator("#cg-root [data-cg=accept-all]").first.click()
    _wait_for_script_cookies(page, present=True)  # all set, so the withdrawal below has something to delete
    page.evaluate("() => cg.show()")
    page.locator(DIALOG).get_by_role("link", name="Your consent history").click()
    # The token travels in the fragment (never to a server), then into the page's POST form.
    history = page.locator("[data-cg=history] tbody tr")
    history.first.wait_for()
    assert history.count() == 1 and "Accepted all" in history.first.inner_text()
    assert "#token=" not in page.url and "token=" not in page.url
    assert _axe_violations(page) == []
    screenshot(page, "privacy-center")
    page.locator("[data-cg=withdraw]").click()
    page.locator("[data-cg=return]").wait_for()
    assert page.locator("[data-cg=history] tbody tr").count() == 2
    page.locator("[data-cg=return]").click()  # back on the site with the withdrawal's token
    page.wait_for_function("() => !location.hash && cg.state() && cg.state().method === 'withdraw'")
    _wait_for_script_cookies(page, present=False)
    assert not SCRIPT_COOKIES & watched.jar()
    page.reload()
    assert "Decided (withdraw)" in page.locator("#decision").inner_text()
    assert watched.errors == []


def test_served_from_the_sites_own_origin_under_a_path(tmp_path: Any, open_page: OpenPage) -> None:
    """Ad-blocker resilience: the gateway mounted inside the site's ASGI app at /cg."""
    from contextlib import asynccontextmanager

    from starlette.routing import Mount

    from gateway.app import create_app
    from gateway.demo import demo_settings
    from tests.browser.conftest import Deferred

    outer = Deferred()
    server = LiveServer(outer)
    settings = demo_settings(tmp_path, gateway_url=server.url + "/cg", site_url=server.url)
    gateway = create_app(settings)
    page_html = (
        '<!doctype html><html lang="en"><title>own</title>'
        '<script src="/cg/c.js" data-site="demo" data-allow-localhost data-allow-webdriver defer></script>'
        '<script type="text/plain" data-category="analytics">document.title = "analytics ran";</script>'
    )

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse(page_html)

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        async with gateway.router.lifespan_context(gateway):  # a mounted app's lifespan is the host's to run
            yield

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    outer.app = Starlette(
        routes=[Route("/", home), Route("/favicon.ico", no_icon), Mount("/cg", app=gateway)], lifespan=lifespan
    )
    with server:
        watched = open_page(user_agent=CHROME_UA)
        watched.page.goto(server.url + "/")
        watched.page.locator(BANNER).wait_for(state="visible")
        watched.page.locator("#cg-root [data-cg=accept-all]").first.click()
        watched.page.wait_for_function("() => document.title === 'analytics ran'")
        assert "cg_consent" in watched.jar()

        def stored() -> int:
            return int(query(settings.database, "SELECT count(*) FROM events")[0][0])

        wait_until(stored, interval=0.1, message="the pageview never reached /cg/api/event")
        assert watched.errors == []


def test_the_iframe_placeholder_offers_to_allow_its_category(demo: Demo, open_page: OpenPage) -> None:
    watched = _first_visit(demo, open_page)
    page = watched.page
    placeholder = page.locator(".cg-placeholder")
    assert "Advertising" in placeholder.inner_text()
    placeholder.get_by_role("button").click()
    page.wait_for_function("() => document.querySelector('iframe[data-category]').getAttribute('src') === '/embed'")
    assert page.evaluate("() => cg.allows('advertising') && !cg.allows('analytics')")
    assert page.locator(".cg-placeholder").count() == 0
    assert watched.errors == []


def test_the_tracker_skips_automation_and_localhost_unless_allowed(
    demo: Demo, open_page: OpenPage, live_server: Any
) -> None:
    pages = _bad_input_site(live_server, demo)
    watched = open_page(user_agent=CHROME_UA)
    sent: list[str] = []
    watched.page.on("request", lambda request: sent.append(request.url) if "/api/event" in request.url else None)
    skipped: list[str] = []
    watched.page.on("console", lambda message: skipped.append(message.text) if "skipped" in message.text else None)
    with watched.page.expect_console_message(lambda message: "skipped:" in message.text):  # the pageview's fate
        watched.page.goto(pages.url + "/debug-no-allow")
    watched.page.locator(BANNER).wait_for(state="visible")  # consent still works
    assert sent == []
    assert any("skipped: localhost" in text for text in skipped)


def test_outbound_link_clicks_are_counted_when_asked(demo: Demo, open_page: OpenPage) -> None:
    watched = _first_visit(demo, open_page, user_agent=CHROME_UA)
    page = watched.page
    page.route("https://example.org/**", lambda route: route.fulfill(body="elsewhere"))
    page.locator("#outbound").click()
    rows = _wait_for_events(demo, {"Outbound Link: Click"})
    assert ("Outbound Link: Click", "/") in rows


def test_downloads_and_404_pages_are_counted_when_asked(demo: Demo, open_page: OpenPage, live_server: Any) -> None:
    pages = _bad_input_site(live_server, demo)
    watched = open_page(user_agent=CHROME_UA)
    page = watched.page
    page.route("**/files/**", lambda route: route.fulfill(body="%PDF-1.4", content_type="application/pdf"))
    page.goto(pages.url + "/missing-page")
    page.locator("#download").click()
    rows = _wait_for_events(demo, {"404", "File Download"})
    assert ("404", "/missing-page") in rows and ("File Download", "/missing-page") in rows


def test_an_expired_decision_asks_again(demo: Demo, open_page: OpenPage) -> None:
    demo.reconfigure(
        lambda s: dataclasses.replace(
            s,
            sites={"demo": dataclasses.replace(s.sites["demo"], consent_lifetime_accept=parse_lifetime("2s"))},
        )
    )
    watched = _first_visit(demo, open_page)
    page = watched.page
    _decide(page, "accept-all")
    page.wait_for_timeout(2500)  # the thing under test: 2 s pass for real (the token was issued before this)
    page.reload()
    page.locator(BANNER).wait_for(state="visible")
    assert "cg_consent" not in watched.jar() and _ran(page, "analytics") == "blocked"
    assert watched.errors == []


def test_a_tag_without_defer_in_the_head_works_too(demo: Demo, open_page: OpenPage, live_server: Any) -> None:
    pages = _bad_input_site(live_server, demo)
    watched = open_page()
    watched.page.goto(pages.url + "/no-defer")
    watched.page.locator(BANNER).wait_for(state="visible")
    watched.page.locator("#cg-root [data-cg=accept-all]").first.click()
    watched.page.wait_for_function("() => document.title === 'analytics ran'")
    assert watched.errors == []


def test_a_modal_banner_with_the_sites_colours_and_texts(demo: Demo, open_page: OpenPage) -> None:
    from gateway.settings import BannerSettings

    banner = BannerSettings(
        position="modal",
        theme={"--cg-accent": "#6a1b9a"},
        texts={"en": {"banner.title": "Cookies on the demo shop"}},
    )
    demo.reconfigure(
        lambda s: dataclasses.replace(s, sites={"demo": dataclasses.replace(s.sites["demo"], banner=banner)})
    )
    watched = _first_visit(demo, open_page)
    page = watched.page
    modal = page.locator(BANNER)
    assert modal.get_attribute("role") == "dialog" and modal.get_attribute("aria-modal") == "true"
    assert "Cookies on the demo shop" in modal.inner_text()  # the site's own text
    accent = page.evaluate("() => getComputedStyle(document.getElementById('cg-root')).getPropertyValue('--cg-accent')")
    assert accent.strip() == "#6a1b9a"
    inside = "() => { const r = document.getElementById('cg-root').shadowRoot; return !!r.activeElement; }"
    assert page.evaluate(inside)  # focus moved into the modal
    for _ in range(10):
        page.keyboard.press("Tab")
        assert page.evaluate(inside), "focus left the modal banner"
    assert _axe_violations(page) == []
    screenshot(page, "snippet-modal")
    _decide(page, "reject-all")
    assert watched.errors == []


def test_consent_mode_defaults_precede_an_unblocked_google_tag_placed_after_ours(
    demo: Demo, open_page: OpenPage, live_server: Any
) -> None:
    pages = _bad_input_site(live_server, demo)
    watched = open_page()
    watched.page.goto(pages.url + "/unblocked-gtag")
    order = watched.page.evaluate("() => dataLayer.map(entry => entry[0] + ':' + entry[1])")
    assert order.index("consent:default") < order.index("config:G-DEMO")
