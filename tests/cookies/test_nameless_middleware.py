"""Nameless cookies through ``ConsentMiddleware``: judged like any unknown cookie, forwarded byte for byte.

Browsers store ``Set-Cookie: foo`` as a cookie with an empty name (RFC 6265bis 5.6), so the middleware
must too: an unknown cookie under the site's policy, capped to the session when let through, deleted
when the policy does not allow it. These sit with the parser's tests because the rules are the
parser's; the Chromium replay (test_http_state_chromium.py) shows the browser agrees.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.categories import CONSENT_CATEGORIES
from gateway.clock import FixedClock
from gateway.consent.middleware import ConsentMiddleware
from gateway.consent.report import CookieReport
from gateway.consent.token import ConsentTokenCodec
from gateway.cookies.setcookie import parse_set_cookie
from gateway.settings import Settings
from gateway.storage.cookie_report import CookieTally, cookie_report
from gateway.storage.store import open_store
from tests.conftest import make_settings, site_config

HOST = b"www.shop.example.com"
EPOCH = "Expires=Thu, 01 Jan 1970 00:00:00 GMT"


def raw_app(set_cookies: list[str]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"set-cookie", value.encode("latin-1")) for value in set_cookies]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _settings(tmp_path: Path, unknown: str) -> Settings:
    return make_settings(tmp_path, site=site_config(unknown_cookies=unknown))


def _consent_to_everything(settings: Settings, clock: FixedClock) -> str:
    site = settings.sites["shop"]
    token, _ = ConsentTokenCodec(settings.secret_keys, clock).issue(
        consent_id="visitor-1",
        site=site,
        allowed=frozenset(CONSENT_CATEGORIES),
        services={service.id: True for service in site.services},
        method="accept_all",
        gpc=False,
    )
    return token


async def _request(middleware: ConsentMiddleware, cookie: str) -> list[str]:
    """The ``Set-Cookie`` values the browser receives for one request carrying ``cookie``."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"host", HOST), (b"cookie", cookie.encode("latin-1"))]
    await middleware({"type": "http", "method": "GET", "path": "/", "headers": headers}, receive, send)
    return [value.decode("latin-1") for key, value in sent[0]["headers"] if key == b"set-cookie"]


def forwarded(
    tmp_path: Path, clock: FixedClock, set_cookies: list[str], *, unknown: str, cookie: str = ""
) -> list[str]:
    """What reaches the browser when the app sends ``set_cookies`` to a visitor who consented to everything."""
    settings = _settings(tmp_path, unknown)
    token = _consent_to_everything(settings, clock)
    middleware = ConsentMiddleware(
        raw_app(set_cookies), settings=settings, site="shop", clock=clock, report=CookieReport(None)
    )
    return asyncio.run(_request(middleware, f"cg_consent={token}" + (f"; {cookie}" if cookie else "")))


NAMELESS = ["foo; Path=/", "=bar; Path=/x", " \t=baz"]


def test_nameless_cookies_cannot_slip_past_a_block_on_unknown_cookies(tmp_path: Path, clock: FixedClock) -> None:
    """Consent to every category does not let an unclassified cookie through: a missing name changes nothing."""
    assert forwarded(tmp_path, clock, [*NAMELESS, "PHPSESSID=ok; Path=/"], unknown="block") == ["PHPSESSID=ok; Path=/"]


def test_allowed_nameless_cookies_pass_byte_for_byte(tmp_path: Path, clock: FixedClock) -> None:
    assert forwarded(tmp_path, clock, NAMELESS, unknown="allow") == NAMELESS


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("foo; Max-Age=99999999; Path=/", "foo; Path=/", id="bare-value"),
        pytest.param(" =foo ;Path=/; Expires=Fri, 01 Jan 2100 00:00:00 GMT", " =foo ;Path=/", id="empty-name"),
    ],
)
def test_a_capped_nameless_cookie_keeps_its_pair(tmp_path: Path, clock: FixedClock, header: str, expected: str) -> None:
    """An allowed unknown cookie lives for the session; the browser must still store the same name and value."""
    assert forwarded(tmp_path, clock, [header], unknown="allow") == [expected]
    before, after = parse_set_cookie(header), parse_set_cookie(expected)
    assert before is not None and after is not None
    assert (after.name, after.value, after.path, after.expiry(clock.now())) == ("", "foo", "/", None)
    assert (before.name, before.value) == (after.name, after.value)


def test_a_nameless_deletion_from_the_app_passes(tmp_path: Path, clock: FixedClock) -> None:
    assert forwarded(tmp_path, clock, ["foo; Max-Age=0"], unknown="block") == ["foo; Max-Age=0"]


def test_a_stored_nameless_cookie_is_deleted_when_unknown_cookies_are_blocked(
    tmp_path: Path, clock: FixedClock
) -> None:
    """The browser sends a nameless cookie as its bare value; deleting it needs a value, or it is ignored."""
    deletions = forwarded(tmp_path, clock, [], unknown="block", cookie="tracker")
    assert deletions == [
        f"=deleted; Max-Age=0; {EPOCH}; Path=/",
        f"=deleted; Max-Age=0; {EPOCH}; Path=/; Domain=www.shop.example.com",
        f"=deleted; Max-Age=0; {EPOCH}; Path=/; Domain=shop.example.com",
        f"=deleted; Max-Age=0; {EPOCH}; Path=/; Domain=example.com",
    ]
    for header in deletions:
        cookie = parse_set_cookie(header)
        assert cookie is not None and cookie.name == "" and cookie.is_deletion(clock.now())


def test_a_nameless_cookie_is_not_deleted_when_allowed_or_just_set(tmp_path: Path, clock: FixedClock) -> None:
    assert forwarded(tmp_path, clock, [], unknown="allow", cookie="tracker") == []
    # Unknown cookies blocked, but the app sets one in this response: the browser keeps nothing either way,
    # and a deletion would only add a header.
    assert forwarded(tmp_path / "b", clock, ["foo; Max-Age=0"], unknown="block", cookie="tracker") == ["foo; Max-Age=0"]


IGNORED = ["", " \t", "=", " = ; Path=/", "=a=b", "__Host-x; Secure; Path=/", "=__secure-x"]


def test_headers_the_browser_ignores_are_dropped_and_not_reported(tmp_path: Path, clock: FixedClock) -> None:
    """They set nothing, so the cookie report must not list them as a (nameless) cookie either."""
    settings = _settings(tmp_path, "allow")
    token = _consent_to_everything(settings, clock)

    async def scenario() -> tuple[list[str], list[CookieTally]]:
        db = await open_store(settings.database).open()
        report = CookieReport(db, flush_interval=timedelta(hours=1))
        middleware = ConsentMiddleware(
            raw_app([*IGNORED, "foo"]), settings=settings, site="shop", clock=clock, report=report
        )
        received = await _request(middleware, f"cg_consent={token}")
        middleware.app = _lifespan_app
        await middleware({"type": "lifespan"}, _shutdown, _ignore)  # shutdown writes the report
        rows = await cookie_report(db, "shop")
        await db.close()
        return received, rows

    received, rows = asyncio.run(scenario())
    assert received == ["foo"]
    assert [(row.name, row.category, row.times_set, row.times_blocked) for row in rows] == [("", None, 1, 0)]


async def _lifespan_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "lifespan.shutdown.complete"})


async def _shutdown() -> dict[str, Any]:
    return {"type": "lifespan.shutdown"}


async def _ignore(message: Any) -> None:
    return None
