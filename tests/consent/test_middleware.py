"""ConsentMiddleware against a raw ASGI app: what reaches the browser for each decision."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import FixedClock
from gateway.consent.middleware import SCOPE_KEY, ConsentMiddleware
from gateway.consent.report import CookieReport
from gateway.consent.token import ConsentTokenCodec
from gateway.cookies.catalog import CookieCatalog, make_rule
from gateway.cookies.lifetimes import parse_lifetime
from gateway.cookies.setcookie import parse_set_cookie
from gateway.settings import Settings
from gateway.storage.cookie_report import cookie_report
from gateway.storage.store import open_store
from tests.conftest import make_settings, site_config

YEAR = 365 * 86400
CATALOG = CookieCatalog(
    [
        make_rule("PHPSESSID", "essential", parse_lifetime("session"), vendor="PHP"),
        make_rule("csrftoken", "essential", parse_lifetime("1y"), vendor="Django"),
        make_rule("is_returning", "functional", parse_lifetime("5y")),
        make_rule("_ga", "analytics", parse_lifetime("2y"), vendor="Google", service="google-analytics"),
        make_rule("_ga_*", "analytics", parse_lifetime("2y"), vendor="Google", service="google-analytics"),
        make_rule("__utmb", "analytics", parse_lifetime("30m")),
        make_rule("_hjSession_*", "analytics", parse_lifetime("30m"), vendor="Hotjar", service="hotjar"),
        make_rule("_ar_v4", "advertising", parse_lifetime("6y")),
        make_rule("_fbp", "advertising", parse_lifetime("90d")),
        make_rule("sessionid", "advertising", parse_lifetime("1y"), domain="instagram.com"),
        make_rule("sessionid", "essential", parse_lifetime("2w")),
    ]
)


def raw_app(set_cookies: list[str], *, body: bytes = b"hello", status: int = 200) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/plain"), (b"x-app", b"kept")]
        headers += [(b"set-cookie", value.encode("latin-1")) for value in set_cookies]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        app.last_scope = scope  # type: ignore[attr-defined]

    return app


class Harness:
    def __init__(self, settings: Settings, clock: FixedClock, app: Any) -> None:
        self.clock = clock
        self.settings = settings
        self.report = CookieReport(None)
        self.app = app
        self.middleware = ConsentMiddleware(
            app, settings=settings, site="shop", catalog=CATALOG, clock=clock, report=self.report
        )
        self.codec = ConsentTokenCodec(settings.secret_keys, clock)

    def token(self, *categories: str, services: dict[str, bool] | None = None, gpc: bool = False) -> str:
        method = "accept_all" if len(categories) == 3 else "reject_all" if not categories else "custom"
        token, _ = self.codec.issue(
            consent_id="visitor-1",
            site=self.settings.sites["shop"],
            allowed=frozenset(categories),  # type: ignore[arg-type]
            services=services or {},
            method=method,
            gpc=gpc,
        )
        return token

    def request(self, *, cookies: str = "", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [(b"host", b"www.shop.example.com"), *(headers or [])]
            + ([(b"cookie", cookies.encode())] if cookies else []),
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        asyncio.run(self.middleware(scope, receive, send))
        start = sent[0]
        return {
            "status": start["status"],
            "headers": start["headers"],
            "set_cookies": [v.decode("latin-1") for k, v in start["headers"] if k == b"set-cookie"],
            "body": b"".join(m.get("body", b"") for m in sent[1:]),
            "scope": scope,
        }


@pytest.fixture
def harness(tmp_path: Path, clock: FixedClock) -> Harness:
    return Harness(make_settings(tmp_path), clock, raw_app(EVERY_CATEGORY))


EVERY_CATEGORY = [
    "PHPSESSID=abc; Path=/; HttpOnly",
    "is_returning=1; Max-Age=157680000; Path=/",
    "_ga=GA1.1.1.1; Max-Age=63072000; Path=/; Domain=shop.example.com",
    "_ar_v4=x; Max-Age=189216000; Path=/",
    "mystery=1; Path=/",
]


def names(set_cookies: list[str]) -> list[str]:
    return [parse_set_cookie(value).name for value in set_cookies if "Max-Age=0" not in value]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("categories", "expected"),
    [
        pytest.param(None, ["PHPSESSID"], id="no-decision-only-essential"),
        pytest.param((), ["PHPSESSID"], id="reject-all-only-essential"),
        pytest.param(("functional",), ["PHPSESSID", "is_returning"], id="custom-functional"),
        pytest.param(("analytics",), ["PHPSESSID", "_ga"], id="custom-analytics"),
        pytest.param(
            ("functional", "analytics", "advertising"),
            ["PHPSESSID", "is_returning", "_ga", "_ar_v4"],
            id="accept-all-but-unknown-blocked",
        ),
    ],
)
def test_cookies_pass_only_with_their_category_consent(harness: Harness, categories: Any, expected: list[str]) -> None:
    cookies = "" if categories is None else f"cg_consent={harness.token(*categories)}"
    result = harness.request(cookies=cookies)
    assert names(result["set_cookies"]) == expected


def test_unknown_cookies_pass_as_session_cookies_when_the_site_allows_them(tmp_path: Path, clock: FixedClock) -> None:
    settings = make_settings(tmp_path, site=site_config(unknown_cookies="allow"))
    harness = Harness(settings, clock, raw_app(["mystery=1; Max-Age=999999; Path=/"]))
    result = harness.request()
    assert result["set_cookies"] == ["mystery=1; Path=/"]


@pytest.mark.parametrize(
    ("header", "expected_max_age"),
    [
        pytest.param("_ga=1; Max-Age=63072000; Path=/", 34186698, id="analytics-2y-capped-to-13-months"),
        pytest.param("__utmb=1; Max-Age=86400", 1800, id="declared-30m-caps-a-day"),
        pytest.param("is_returning=1; Max-Age=999999999", 157784760, id="functional-capped-to-declared-5y"),
        pytest.param("_ar_v4=1; Max-Age=189216000", 34186698, id="advertising-6y-capped-to-13-months"),
        pytest.param("_fbp=1; Max-Age=3600", 3600, id="shorter-than-allowed-kept"),
    ],
)
def test_lifetimes_are_capped_to_the_shorter_of_declared_and_category_cap(
    harness: Harness, header: str, expected_max_age: int
) -> None:
    harness.app = raw_app([header])
    harness.middleware.app = harness.app
    result = harness.request(cookies=f"cg_consent={harness.token('functional', 'analytics', 'advertising')}")
    (value,) = result["set_cookies"]
    cookie = parse_set_cookie(value)
    assert cookie is not None and cookie.max_age == expected_max_age
    assert cookie.expires is None or cookie.expires == harness.clock.now() + timedelta(seconds=expected_max_age)


def test_a_session_declared_cookie_loses_its_expiry(harness: Harness) -> None:
    harness.middleware.app = raw_app(["PHPSESSID=abc; Max-Age=86400; Expires=Wed, 01 Jan 2031 00:00:00 GMT; Path=/"])
    (value,) = harness.request()["set_cookies"]
    assert value == "PHPSESSID=abc; Path=/"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("_ga=; Max-Age=0; Path=/", id="max-age-zero"),
        pytest.param("_ga=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/", id="past-expires"),
        pytest.param("mystery=; Max-Age=-1", id="negative-max-age-unknown-cookie"),
    ],
)
def test_deletions_always_pass_untouched(harness: Harness, header: str) -> None:
    harness.middleware.app = raw_app([header])
    assert harness.request()["set_cookies"] == [header]


def test_request_cookies_of_withdrawn_categories_get_deleted_on_every_parent_domain(harness: Harness) -> None:
    harness.middleware.app = raw_app([])
    token = harness.token("functional")
    result = harness.request(cookies=f"cg_consent={token}; _ga=GA1.2.3; is_returning=1; csrftoken=x; mystery=1")
    deletions = [parse_set_cookie(v) for v in result["set_cookies"]]
    assert all(c is not None and c.max_age == 0 for c in deletions)
    by_name: dict[str, list[str | None]] = {}
    for cookie in deletions:
        assert cookie is not None
        by_name.setdefault(cookie.name, []).append(cookie.domain)
    # allowed (functional, essential) and the consent cookie itself are never deleted
    assert set(by_name) == {"_ga", "mystery"}
    assert by_name["_ga"] == [None, "www.shop.example.com", "shop.example.com", "example.com"]


def test_no_decision_means_non_essential_request_cookies_are_deleted(harness: Harness) -> None:
    harness.middleware.app = raw_app([])
    result = harness.request(cookies="PHPSESSID=1; _fbp=fb.1.2")
    assert {parse_set_cookie(v).name for v in result["set_cookies"]} == {"_fbp"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        pytest.param({}, ["_ga", "_hjSession_42"], id="services-follow-their-category"),
        pytest.param({"hotjar": False}, ["_ga"], id="one-service-refused-inside-an-allowed-category"),
        pytest.param({"google-analytics": False, "hotjar": False}, [], id="all-services-refused"),
    ],
)
def test_per_service_choices_apply_to_the_services_cookies(
    harness: Harness, services: dict[str, bool], expected: list[str]
) -> None:
    harness.middleware.app = raw_app(["_ga=1; Max-Age=60", "_hjSession_42=1; Max-Age=60"])
    result = harness.request(cookies=f"cg_consent={harness.token('analytics', services=services)}")
    assert names(result["set_cookies"]) == expected


@pytest.mark.parametrize(
    ("token_gpc", "expected"),
    [
        pytest.param(False, ["PHPSESSID", "is_returning"], id="gpc-newer-than-the-decision-opts-out"),
        pytest.param(True, ["PHPSESSID", "is_returning", "_ga", "_ar_v4"], id="explicit-opt-in-while-sending-gpc"),
    ],
)
def test_global_privacy_control_opts_out_of_analytics_and_advertising(
    harness: Harness, token_gpc: bool, expected: list[str]
) -> None:
    token = harness.token("functional", "analytics", "advertising", gpc=token_gpc)
    result = harness.request(cookies=f"cg_consent={token}", headers=[(b"sec-gpc", b"1")])
    assert names(result["set_cookies"]) == expected
    assert result["scope"][SCOPE_KEY].gpc is True


def test_dnt_counts_only_when_the_site_honours_it(tmp_path: Path, clock: FixedClock) -> None:
    for honour, expected in (
        (False, ["PHPSESSID", "is_returning", "_ga", "_ar_v4"]),
        (True, ["PHPSESSID", "is_returning"]),
    ):
        harness = Harness(make_settings(tmp_path, site=site_config(honour_dnt=honour)), clock, raw_app(EVERY_CATEGORY))
        token = harness.token("functional", "analytics", "advertising")
        result = harness.request(cookies=f"cg_consent={token}", headers=[(b"dnt", b"1")])
        assert names(result["set_cookies"]) == expected


@pytest.mark.parametrize(
    ("make_cookie", "reason"),
    [
        pytest.param(lambda h: h.token("analytics")[:-3] + "abc", "tampered", id="tampered-signature"),
        pytest.param(lambda h: "not-a-token", "tampered", id="garbage"),
        pytest.param(lambda h: "x" * 5000, "tampered", id="oversized"),
        pytest.param(lambda h: "", "tampered", id="empty"),
    ],
)
def test_a_bad_token_means_no_decision_never_an_error(harness: Harness, make_cookie: Any, reason: str) -> None:
    result = harness.request(cookies=f"cg_consent={make_cookie(harness)}")
    assert result["status"] == 200
    assert names(result["set_cookies"]) == ["PHPSESSID"]
    decision = result["scope"][SCOPE_KEY]
    assert not decision.has_decision and decision.reason == reason


def test_an_expired_token_means_no_decision(harness: Harness) -> None:
    token = harness.token("analytics")
    harness.clock.advance(timedelta(days=183))
    decision = harness.request(cookies=f"cg_consent={token}")["scope"][SCOPE_KEY]
    assert decision.reason == "expired" and not decision.allows("analytics")


def test_a_token_that_expires_between_two_identical_requests_stops_counting(harness: Harness) -> None:
    cookies = f"cg_consent={harness.token('analytics')}; _ga=GA1.1.1.1"
    first = harness.request(cookies=cookies)
    assert first["scope"][SCOPE_KEY].allows("analytics") and "_ga" in names(first["set_cookies"])
    harness.clock.advance(timedelta(days=183))  # the same Cookie header, now behind an expired token
    second = harness.request(cookies=cookies)
    assert second["scope"][SCOPE_KEY].reason == "expired"
    assert "_ga" not in names(second["set_cookies"])
    assert any(value.startswith("_ga=; Max-Age=0") for value in second["set_cookies"])  # and the stale one goes


def test_a_forged_token_is_checked_again_on_every_request(harness: Harness) -> None:
    forged = harness.token("analytics", "advertising")[:-2] + "xx"
    for _ in range(2):
        decision = harness.request(cookies=f"cg_consent={forged}")["scope"][SCOPE_KEY]
        assert not decision.has_decision and decision.reason == "tampered"


def test_a_policy_revision_bump_asks_again(tmp_path: Path, clock: FixedClock) -> None:
    old = Harness(make_settings(tmp_path), clock, raw_app(EVERY_CATEGORY))
    token = old.token("analytics")
    bumped = Harness(make_settings(tmp_path, site=site_config(policy_revision=2)), clock, raw_app(EVERY_CATEGORY))
    result = bumped.request(cookies=f"cg_consent={token}")
    assert result["scope"][SCOPE_KEY].reason == "revision"
    assert names(result["set_cookies"]) == ["PHPSESSID"]


def test_the_decision_is_published_for_the_app(harness: Harness) -> None:
    decision = harness.request(cookies=f"cg_consent={harness.token('analytics')}")["scope"][SCOPE_KEY]
    assert decision.allows("analytics") and decision.allows("google-analytics") and decision.allows("essential")
    assert not decision.allows("advertising") and not decision.allows("no-such-service")


def test_body_status_and_other_headers_are_untouched(harness: Harness) -> None:
    harness.middleware.app = raw_app(EVERY_CATEGORY, body=b"<html>body</html>", status=404)
    result = harness.request()
    assert result["status"] == 404
    assert result["body"] == b"<html>body</html>"
    assert [(k, v) for k, v in result["headers"] if k != b"set-cookie"] == [
        (b"content-type", b"text/plain"),
        (b"x-app", b"kept"),
    ]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="empty"),
        pytest.param("=novalue", id="empty-name"),
        pytest.param("noequals", id="no-equals-sign"),
        pytest.param("a=b; Max-Age=banana; Expires=never", id="garbage-attributes"),
        pytest.param("\x00\x01=\x7f; Domain=..", id="control-characters"),
        pytest.param("é=ü; Path=/ünïcode", id="latin-1"),
    ],
)
def test_a_malformed_set_cookie_from_the_app_never_breaks_the_response(harness: Harness, header: str) -> None:
    harness.middleware.app = raw_app([header, "PHPSESSID=ok"])
    result = harness.request()
    assert result["status"] == 200
    assert "PHPSESSID=ok" in result["set_cookies"]


def test_a_third_partys_rule_never_classifies_a_first_party_cookie(harness: Harness) -> None:
    harness.middleware.app = raw_app(["sessionid=abc; Path=/; HttpOnly"])
    assert harness.request()["set_cookies"] == ["sessionid=abc; Path=/; HttpOnly"]


def test_streaming_bodies_pass_chunk_by_chunk(harness: Harness) -> None:
    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"set-cookie", b"_ga=1")]})
        for part in (b"one", b"two", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    harness.middleware.app = streaming
    result = harness.request()
    assert result["set_cookies"] == [] and result["body"] == b"onetwothree"


def test_websockets_pass_through(harness: Harness) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        await send({"type": "websocket.accept"})

    harness.middleware.app = app
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(harness.middleware({"type": "websocket", "headers": []}, receive, send))
    assert seen == ["websocket"] and sent == [{"type": "websocket.accept"}]


def test_the_cookie_report_is_written_in_batches_and_at_shutdown(tmp_path: Path, clock: FixedClock) -> None:
    settings = make_settings(tmp_path)

    async def scenario() -> list[Any]:
        db = await open_store(settings.database).open()
        report = CookieReport(db, flush_interval=timedelta(hours=1))
        middleware = ConsentMiddleware(
            raw_app(EVERY_CATEGORY), settings=settings, site="shop", catalog=CATALOG, clock=clock, report=report
        )
        for _ in range(2):
            await _call(middleware)
        clock.advance(timedelta(seconds=1.5))  # uses are counted per second: counts must carry over
        await _call(middleware)
        assert await cookie_report(db, "shop") == []  # nothing written per request

        async def lifespan_receive() -> dict[str, Any]:
            return {"type": "lifespan.shutdown"}

        async def lifespan_app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "lifespan.shutdown.complete"})

        middleware.app = lifespan_app
        await middleware({"type": "lifespan"}, lifespan_receive, _ignore)
        rows = await cookie_report(db, "shop")
        await db.close()
        return rows

    rows = {row.name: row for row in asyncio.run(scenario())}
    assert rows["_ga"].category == "analytics" and rows["_ga"].times_set == 3 and rows["_ga"].times_blocked == 3
    assert rows["_ga"].last_seen - rows["_ga"].first_seen == timedelta(seconds=1.5)
    assert rows["mystery"].category is None and rows["mystery"].times_blocked == 3
    assert rows["PHPSESSID"].times_blocked == 0 and rows["PHPSESSID"].longest_asked is None
    assert rows["_ar_v4"].longest_asked == 189216000


async def _ignore(message: Any) -> None:
    return None


async def _call(middleware: ConsentMiddleware) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    await middleware({"type": "http", "headers": [(b"host", b"shop.example.com")]}, receive, _ignore)


def test_an_unknown_site_is_a_clear_error_at_startup(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown site 'nope'.*shop"):
        ConsentMiddleware(raw_app([]), settings=make_settings(tmp_path), site="nope", catalog=CATALOG)
