"""Cookies set by scripts, found by the snippet in real Chromium, reach the cookie report: names only, never values.

The demo site with the gateway (tests/browser/conftest.py). Once the page has loaded, a script sets
two cookies the site does not declare (``_hjid``, which the catalog knows, and ``analytics_thing``,
which it does not) and the one it declares (``demo_theme``). (A tag that ran before the page loaded
would lose them at once: the middleware deletes undecided categories' cookies on the next response.)
Every request the browser sends to the gateway is captured as the browser sent it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.storage.store import Store
from gateway.storage.users import add_user
from tests.browser.conftest import CHROME_UA, Demo, Watched, screenshot
from tests.web.test_dashboard_auth import PASSWORD, PASSWORD_HASH, on_database

pytestmark = pytest.mark.browser
OpenPage = Callable[..., Watched]
BANNER = "#cg-root [data-cg=banner]"
SECRETS = ("SECRETVALUE", "SECRETTHING", "SECRETTHEME", "SECRETLATE", "SECRETAGAIN")
PAGE_SCRIPT = """() => {
  document.cookie = "_hjid=SECRETVALUE; Path=/";
  document.cookie = "analytics_thing=SECRETTHING; Path=/";
  document.cookie = "demo_theme=SECRETTHEME; Path=/";
}"""


def _is_report(request: Any) -> bool:
    return request.method == "POST" and request.url.endswith("/api/cookies")


def _reports(name: str) -> Callable[[Any], bool]:
    return lambda request: _is_report(request) and name in _names(request)


def _decide_again(page: Any) -> None:
    """Save the preferences dialog unchanged: a decision, after which the snippet checks the cookies at once."""
    page.evaluate("() => cg.show()")
    page.locator("#cg-root [data-cg=save]").first.click()


def _names(request: Any) -> list[str]:
    body = json.loads(request.post_data)
    assert set(body) == {"s", "c"} and body["s"] == "demo"
    return list(body["c"])


def test_script_set_cookie_names_reach_the_cookie_report_and_no_value_is_ever_sent(
    demo: Demo, open_page: OpenPage
) -> None:
    watched = open_page(user_agent=CHROME_UA)
    page = watched.page
    sent: list[Any] = []  # every request to the gateway, as the browser sent it
    page.on("request", lambda request: sent.append(request) if request.url.startswith(demo.gateway.url) else None)

    page.goto(demo.url)
    page.locator(BANNER).wait_for(state="visible")

    # A page script sets cookies; the snippet's next check (3 s after load, or the decision's) reports
    # the undeclared ones. The demo declares PHPSESSID and demo_theme: never reported.
    with page.expect_request(_reports("_hjid")) as scripted:
        page.evaluate(PAGE_SCRIPT)
        page.locator("#cg-root [data-cg=reject-all]").first.click()
    assert sorted(_names(scripted.value)) == ["_hjid", "analytics_thing"]

    # A later cookie is reported at the next check (each decision checks at once, 1 s and 5 s later);
    # a name this page load reported before is not sent again, though its value changed.
    with page.expect_request(_reports("late_cookie")) as late:
        page.evaluate("() => { document.cookie = 'late_cookie=SECRETLATE; Path=/'; }")
        page.evaluate("() => { document.cookie = '_hjid=SECRETAGAIN; Path=/'; }")
        _decide_again(page)
    assert _names(late.value) == ["late_cookie"]

    # A new page load reports what it finds again, each name once.
    with page.expect_request(_reports("_hjid")) as again:
        page.reload()
        page.wait_for_function("() => window.cg && window.cg.state && window.cg.state() !== null")
        page.evaluate(PAGE_SCRIPT)
        _decide_again(page)
    assert sorted(_names(again.value)) == ["_hjid", "analytics_thing"]
    names_sent = [name for request in sent if _is_report(request) for name in _names(request)]
    assert names_sent.count("_hjid") == 2 and names_sent.count("late_cookie") == 1  # once per page load
    assert not {"demo_theme", "PHPSESSID", "cg_consent"} & set(names_sent)  # declared, and the gateway's own

    jar = {cookie["name"]: cookie["value"] for cookie in watched.context.cookies()}
    values = [value for name, value in jar.items() if name != "cg_consent" and len(value) >= 4] + list(SECRETS)
    assert len([request for request in sent if _is_report(request)]) >= 3
    for request in sent:
        # The snippet's own requests omit credentials (loading c.js is the page's <script> tag).
        if request.resource_type == "fetch":
            assert "cookie" not in request.all_headers(), request.url
        seen = request.url + (request.post_data or "")
        leaked = [value for value in values if value in seen]
        assert not leaked, (request.url, leaked)
    assert watched.errors == []

    # The cookie report: the names marked as seen by script, an unknown one a click from classifying it.
    async def ann(db: Store) -> None:
        await add_user(db, "ann", PASSWORD_HASH, is_admin=True, now=datetime.now(UTC))

    with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs on this thread
        thread.submit(on_database, demo.settings, ann).result()
    page.goto(demo.gateway.url + "/login")
    page.locator("#name").fill("ann")
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(demo.gateway.url + "/dashboard")
    page.goto(demo.gateway.url + "/dashboard/demo/cookies")
    rows = {
        row.locator("th code").inner_text(): row
        for row in page.locator("table.breakdown tbody tr").all()
        if row.locator("th code").count()
    }
    assert rows["_hjid"].locator("[data-seen-by]").get_attribute("data-seen-by") == "script"
    assert rows["analytics_thing"].locator("[data-seen-by]").get_attribute("data-seen-by") == "script"
    assert rows["late_cookie"].locator("[data-seen-by]").get_attribute("data-seen-by") == "script"
    # The middleware's own counts (PHPSESSID's, demo_theme's) come with its next flush; the snippet never reports
    # these declared names, so they can only ever read "header".
    seen_by = {name: row.locator("[data-seen-by]").get_attribute("data-seen-by") for name, row in rows.items()}
    assert seen_by.get("demo_theme", "header") == "header" and seen_by.get("PHPSESSID", "header") == "header"
    classify = rows["analytics_thing"].get_by_role("link", name="Classify")
    assert "name=analytics_thing" in (classify.get_attribute("href") or "")
    assert not any(secret in page.content() for secret in SECRETS)
    screenshot(page, "cookie-report-script-cookies")
    classify.click()
    page.wait_for_url("**/cookies/classify?name=analytics_thing")
