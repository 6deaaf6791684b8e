"""``/consent`` on a real uvicorn: decisions become proof rows in a real database and signed tokens.

The clock is pinned, so issue times and expiries are exact; the database (a SQLite file or a
PostgreSQL database) is read back directly, as an auditor would (tests/stores.py ``query``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import create_app
from gateway.clock import FixedClock
from gateway.consent.token import ConsentTokenCodec
from gateway.ingest.geo import NO_GEO, Geo, GeoLookup
from gateway.settings import Settings
from gateway.storage.location import DatabaseLocation
from tests.conftest import SITE_ORIGIN, LiveServer, make_settings, site_config
from tests.stores import query

pytestmark = pytest.mark.integration

SIX_MONTHS = timedelta(seconds=6 * 2629746)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
ALL = {"functional": True, "analytics": True, "advertising": True}
NONE = {"functional": False, "analytics": False, "advertising": False}
Start = Callable[[Any], LiveServer]


class Gateway:
    """One ``create_app`` on a live server, an HTTP client without a cookie jar, and its database."""

    def __init__(self, settings: Settings, clock: FixedClock, start: Start, *, geo: GeoLookup | None = None) -> None:
        self.settings, self.clock = settings, clock
        self.server = start(create_app(settings, clock=clock, geo=geo))
        self.url = self.server.url
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        response = self.http.request(method, path, **options)
        self.http.cookies.clear()  # every test says which cookie it sends
        return response

    def decide(
        self, choices: dict[str, bool] | None = None, *, headers: dict[str, str] | None = None, **body: Any
    ) -> httpx.Response:
        body = {"site": "shop", "revision": 1, "choices": ALL if choices is None else choices, **body}
        response = self.request("POST", "/consent", json=body, headers=headers or {})
        assert response.status_code == 201, response.text
        return response

    def token(self, choices: dict[str, bool] | None = None, **body: Any) -> str:
        return str(self.decide(choices, **body).json()["token"])

    def show(self, token: str | None = None, *, site: str = "shop", via: str = "query") -> httpx.Response:
        params = {"site": site}
        headers = {}
        if token is not None and via == "query":
            params["token"] = token
        elif token is not None:
            headers["cookie"] = f"cg_consent={token}"
        return self.request("GET", "/consent", params=params, headers=headers)

    def records(self) -> list[dict[str, Any]]:
        return records(self.settings.database)

    def close(self) -> None:
        self.http.close()


def records(database: DatabaseLocation) -> list[dict[str, Any]]:
    rows = query(database, "SELECT * FROM consent_records ORDER BY seq")
    found = [dict(zip(row.keys(), row, strict=True)) for row in rows]
    for row in found:
        row["categories"], row["services"] = json.loads(row["categories"]), json.loads(row["services"])
    return found


def table_exists(database: DatabaseLocation) -> bool:
    """Still there after hostile input: reading it fails if a statement built from the text had dropped it."""
    return bool(query(database, "SELECT count(*) FROM consent_records"))


def cookie_attributes(header: str) -> tuple[str, str, dict[str, str]]:
    pair, *attributes = [part.strip() for part in header.split(";")]
    name, _, value = pair.partition("=")
    parsed = {}
    for attribute in attributes:
        key, _, text = attribute.partition("=")
        parsed[key.lower()] = text
    return name, value, parsed


@pytest.fixture
def gateway(settings: Settings, clock: FixedClock, live_server: Start) -> Iterator[Gateway]:
    gateway = Gateway(settings, clock, live_server)
    yield gateway
    gateway.close()


@pytest.fixture
def roomy_gateway(tmp_path: Path, clock: FixedClock, live_server: Start) -> Iterator[Gateway]:
    """Room for a 10,000-character page path (the default body limit is 4096 bytes)."""
    gateway = Gateway(make_settings(tmp_path, max_body_bytes=65536), clock, live_server)
    yield gateway
    gateway.close()


# --- recording a decision -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "method", "categories", "services", "gpc"),
    [
        pytest.param({"choices": ALL, "services": {"google-analytics": True, "hotjar": True}}, {}, "accept_all",
                     ALL, {"google-analytics": True, "hotjar": True}, False, id="accept all"),
        pytest.param({"choices": NONE}, {}, "reject_all", NONE, {}, False, id="reject all"),
        pytest.param({"choices": {"analytics": True}, "services": {"hotjar": False}}, {}, "custom",
                     {"functional": False, "analytics": True, "advertising": False}, {"hotjar": False}, False,
                     id="custom: analytics without hotjar"),
        pytest.param({"choices": {}, "method": "gpc"}, {"sec-gpc": "1"}, "gpc", NONE, {}, True,
                     id="gpc from the Sec-GPC header"),
        pytest.param({"choices": ALL, "method": "accept_all"}, {"sec-gpc": "1"}, "accept_all", ALL, {}, True,
                     id="an explicit opt-in while sending GPC is recorded with the signal"),
    ],
)  # fmt: skip
def test_a_decision_is_answered_and_recorded(
    gateway: Gateway,
    clock: FixedClock,
    body: dict[str, Any],
    headers: dict[str, str],
    method: str,
    categories: dict[str, bool],
    services: dict[str, bool],
    gpc: bool,
) -> None:
    response = gateway.decide(
        headers={"user-agent": FIREFOX, **headers},
        language="de-CH",
        page="/checkout?email=anna@example.com#pay",
        **body,
    )
    answer = response.json()
    expiry = clock.now() + SIX_MONTHS
    assert response.status_code == 201
    assert answer["token"] and answer["expires_at"] == expiry.isoformat() == "2026-09-09T00:24:36+00:00"
    state = answer["state"]
    assert state == {
        "consent_id": state["consent_id"],
        "site": "shop",
        "revision": 1,
        "categories": {"essential": True, **categories},
        "services": services,
        "method": method,
        "gpc": gpc,
        "issued_at": "2026-03-10T09:30:00+00:00",
        "expires_at": expiry.isoformat(),
    }
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", state["consent_id"])
    [row] = gateway.records()
    assert row == {
        "seq": row["seq"],
        "consent_id": state["consent_id"],
        "site_id": "shop",
        "recorded_at": "2026-03-10T09:30:00+00:00",
        "method": method,
        "policy_revision": 1,
        "banner_hash": row["banner_hash"],
        "categories": categories,
        "services": services,
        "gpc": int(gpc),
        "language": "de-CH",
        "page_path": "/checkout",
        "ip_network": "127.0.0.0/24",
        "ua_family": "Firefox",
        "expires_at": expiry.isoformat(),
        "erased": 0,
        "country": None,  # 127.0.0.1: no country
        "device": "desktop",
        "revision_hash": row["banner_hash"],  # the banner shown, stored once (policy_revisions)
    }
    assert re.fullmatch(r"[0-9a-f]{64}", row["banner_hash"])


def test_the_banner_hash_follows_what_was_shown(gateway: Gateway) -> None:
    gateway.decide(language="en")
    gateway.decide(language="en")
    gateway.decide(language="fr")
    english, again, french = (row["banner_hash"] for row in gateway.records())
    assert english == again != french


@pytest.mark.sqlite_only(reason="scans the SQLite file's bytes (PostgreSQL's files belong to its server)")
def test_a_raw_ip_address_never_reaches_the_database_file(gateway: Gateway, tmp_path: Path) -> None:
    token = gateway.token(headers={"user-agent": FIREFOX}, page="/")
    gateway.show(token)
    gateway.request("POST", "/consent/withdraw", json={"site": "shop", "token": token, "page": "/privacy"})
    assert [row["ip_network"] for row in gateway.records()] == ["127.0.0.0/24", "127.0.0.0/24"]
    files = sorted(tmp_path.glob(f"{gateway.settings.database.name}*"))
    assert gateway.settings.database in files
    content = b"".join(path.read_bytes() for path in files)  # the main file, its WAL and shared memory
    assert b"127.0.0.0/24" in content  # the scan does see what was written
    assert b"127.0.0.1" not in content


class TableGeo:
    """A geo lookup that answers from a table (the MaxMind adapter has its own tests)."""

    def __init__(self, countries: dict[str, str]) -> None:
        self.countries = countries

    def lookup(self, address: str) -> Geo:
        return Geo(self.countries[address], None, None) if address in self.countries else NO_GEO

    def describe(self) -> str:
        return "table"

    def close(self) -> None:
        return None


@pytest.mark.sqlite_only(reason="scans the SQLite file's bytes (PostgreSQL's files belong to its server)")
def test_country_and_device_are_recorded_for_the_consent_report(
    settings: Settings, clock: FixedClock, live_server: Start
) -> None:
    gateway = Gateway(settings, clock, live_server, geo=TableGeo({"127.0.0.1": "FR"}))
    try:
        token = gateway.token(headers={"user-agent": IPHONE})
        gateway.request(
            "POST", "/consent/withdraw", json={"site": "shop", "token": token}, headers={"user-agent": FIREFOX}
        )
        gateway.decide(NONE)
    finally:
        gateway.close()
    assert [(row["method"], row["country"], row["device"]) for row in gateway.records()] == [
        ("accept_all", "FR", "mobile"),
        ("withdraw", "FR", "desktop"),
        ("reject_all", "FR", "other"),  # httpx's own user agent: neither a browser nor a known bot
    ]
    content = b"".join(path.read_bytes() for path in settings.database.parent.glob(settings.database.name + "*"))
    assert b"127.0.0.1" not in content  # the full address served the lookup in memory only


def test_a_same_origin_caller_gets_the_consent_cookie(gateway: Gateway) -> None:
    response = gateway.decide()
    [header] = response.headers.get_list("set-cookie")
    name, value, attributes = cookie_attributes(header)
    assert (name, value) == ("cg_consent", response.json()["token"])
    assert attributes["path"] == "/"
    assert attributes["samesite"].lower() == "lax"
    assert attributes["max-age"] == str(int(SIX_MONTHS.total_seconds()))
    assert "domain" not in attributes  # stays on the host that set it
    assert "secure" not in attributes  # plain http on 127.0.0.1
    assert "httponly" not in attributes  # the snippet reads it
    assert "access-control-allow-origin" not in response.headers


def test_a_caller_naming_the_gateways_own_origin_is_same_origin(gateway: Gateway) -> None:
    response = gateway.decide(headers={"origin": gateway.url})
    assert response.headers.get_list("set-cookie")
    assert "access-control-allow-origin" not in response.headers


def test_an_allowed_cross_origin_caller_gets_cors_and_no_cookie(gateway: Gateway) -> None:
    response = gateway.decide(headers={"origin": SITE_ORIGIN})
    assert response.headers["access-control-allow-origin"] == SITE_ORIGIN
    assert "origin" in response.headers["vary"].lower()
    assert response.headers.get_list("set-cookie") == []
    assert response.json()["token"]


@pytest.mark.parametrize(
    ("present", "same_id"),
    [
        pytest.param(lambda token: {"headers": {"cookie": f"cg_consent={token}"}}, True, id="the cookie"),
        pytest.param(lambda token: {"body": {"token": token}}, True, id="the body token"),
        pytest.param(
            lambda token: {"body": {"token": token}, "headers": {"cookie": "cg_consent=junk"}},
            True,
            id="the body token wins over the cookie",
        ),
        pytest.param(lambda token: {"body": {"token": "x" + token}}, False, id="a tampered token starts afresh"),
        pytest.param(lambda token: {}, False, id="no token starts afresh"),
    ],
)
def test_a_second_decision_keeps_the_visitors_consent_id(
    gateway: Gateway, present: Callable[[str], dict[str, Any]], same_id: bool
) -> None:
    first = gateway.decide(NONE).json()
    presented = present(first["token"])
    second = gateway.decide(ALL, headers=presented.get("headers"), **presented.get("body", {})).json()
    rows = gateway.records()
    assert [row["method"] for row in rows] == ["reject_all", "accept_all"]
    assert (second["state"]["consent_id"] == first["state"]["consent_id"]) is same_id
    assert (rows[0]["consent_id"] == rows[1]["consent_id"]) is same_id
    assert rows[1]["consent_id"] == second["state"]["consent_id"]


def test_a_renewal_after_expiry_keeps_the_consent_id(gateway: Gateway, clock: FixedClock) -> None:
    first = gateway.decide(NONE).json()
    clock.advance(SIX_MONTHS + timedelta(days=1))
    second = gateway.decide(ALL, token=first["token"]).json()
    assert second["state"]["consent_id"] == first["state"]["consent_id"]
    assert second["state"]["issued_at"] == clock.now().isoformat()


# --- refusing bad input ---------------------------------------------------------------------------

GOOD = {"site": "shop", "revision": 1, "choices": ALL}


def body_of(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("content", "headers", "status", "message"),
    [
        pytest.param(b'{"site": "shop",', {}, 400, "the body is not valid JSON: Expecting property name",
                     id="malformed JSON"),
        pytest.param(b'{"site": "\xff\xfe"}', {}, 400, "the body is not valid UTF-8", id="invalid UTF-8"),
        pytest.param(b"[1, 2]", {}, 400, "expected a JSON object, found list", id="a JSON array"),
        pytest.param(b'"shop"', {}, 400, "expected a JSON object, found str", id="a JSON string"),
        pytest.param(b"", {}, 400, "the body is empty: expected a JSON object", id="an empty body"),
        pytest.param(body_of({**GOOD, "page": "/" + "a" * 5000}), {}, 413, "the body is larger than 4096 bytes",
                     id="a body over max_body_bytes with content-length"),
        # A list, not iter(...): httpx streams any iterable, and a list can be sent again by the [postgresql] run.
        pytest.param([b" " * 1000] * 5 + [body_of(GOOD)], {}, 413, "the body is larger than 4096 bytes",
                     id="a streamed body over max_body_bytes"),
        pytest.param(body_of({"site": "shop", "choices": ALL}), {}, 400, "'revision' must be the policy revision",
                     id="a missing revision"),
        pytest.param(body_of({**GOOD, "revision": "1"}), {}, 400, "(a number), found '1'", id="revision as text"),
        pytest.param(body_of({**GOOD, "site": "blog"}), {}, 404, "unknown site 'blog'", id="an unknown site"),
        pytest.param(body_of({"revision": 1}), {}, 404, "unknown site None", id="no site"),
        pytest.param(body_of({**GOOD, "site": ["shop"]}), {}, 404, "unknown site ['shop']", id="site as a list"),
        pytest.param(body_of(GOOD), {"origin": "https://evil.example"}, 403,
                     "origin 'https://evil.example' is not allowed for site 'shop'", id="an origin not allowed"),
        pytest.param(body_of({**GOOD, "choices": {"tracking": True}}), {}, 400, "unknown category 'tracking'",
                     id="a choice for an unknown category"),
        pytest.param(body_of({**GOOD, "choices": {"essential": False}}), {}, 400,
                     "essential cookies cannot be refused", id="essential refused"),
        pytest.param(body_of({**GOOD, "services": {"meta-pixel": True}}), {}, 400,
                     "unknown service 'meta-pixel' for site 'shop'", id="an unknown service"),
        pytest.param(body_of({**GOOD, "choices": {"analytics": "yes"}}), {}, 400,
                     "choices.analytics must be true or false, found 'yes'", id="a non-boolean choice"),
        pytest.param(body_of({**GOOD, "method": "accept_all", "choices": {**ALL, "advertising": False}}), {}, 400,
                     "method 'accept_all' but some choices are false", id="accept_all with a false choice"),
        pytest.param(body_of({**GOOD, "method": "gpc", "choices": {}}), {}, 400,
                     "method 'gpc' needs the Global Privacy Control signal", id="gpc without the GPC signal"),
        pytest.param(body_of({**GOOD, "method": "gpc", "choices": {}}), {"sec-gpc": "0"}, 400,
                     "needs the Global Privacy Control signal", id="gpc with Sec-GPC 0"),
        pytest.param(body_of({**GOOD, "revision": 0}), {}, 409,
                     "policy revision 0 is outdated; the current revision is 1", id="an outdated revision"),
        pytest.param(body_of({**GOOD, "tracking": True}), {}, 400, "unknown field 'tracking'", id="an unknown field"),
        pytest.param(body_of({**GOOD, "page": "/a\r\nSet-Cookie: x=1"}), {}, 400, "'page' contains control characters",
                     id="control characters in the page"),
        pytest.param(b'{"site": "shop", "revision": 1, "page": "/\\ud800"}', {}, 400, "'page' is not valid Unicode",
                     id="a lone surrogate in the page"),
        pytest.param(body_of({**GOOD, "language": "<script>alert(1)</script>"}), {}, 400,
                     "'language' must be a language tag", id="html in the language"),
        pytest.param(body_of({**GOOD, "language": "en'; DROP TABLE consent_records; --"}), {}, 400,
                     "'language' must be a language tag", id="sql in the language"),
        pytest.param(body_of({**GOOD, "language": "en\n"}), {}, 400, "'language' must be a language tag",
                     id="a newline after the language"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_a_reason_and_writes_nothing(
    gateway: Gateway, content: Any, headers: dict[str, str], status: int, message: str
) -> None:
    response = gateway.request("POST", "/consent", content=content, headers={"content-type": "text/plain", **headers})
    assert response.status_code == status
    assert message in response.json()["error"]
    assert response.headers.get_list("set-cookie") == []
    assert gateway.records() == []
    assert table_exists(gateway.settings.database)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"[" * 30_000 + b"]" * 30_000, "the body is not valid JSON: nested too deeply",
                     id="JSON nested too deeply"),
        pytest.param(b'{"site": "shop", "revision": ' + b"9" * 5000 + b"}", "the body is not valid JSON",
                     id="a number over Python's digit limit"),
    ],
)  # fmt: skip
def test_json_python_cannot_read_is_a_client_error_not_a_crash(
    roomy_gateway: Gateway, content: bytes, message: str
) -> None:
    response = roomy_gateway.request("POST", "/consent", content=content)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert roomy_gateway.records() == []


def test_an_allowed_origin_can_read_the_error(gateway: Gateway) -> None:
    response = gateway.request(
        "POST", "/consent", json={**GOOD, "choices": {"essential": False}}, headers={"origin": SITE_ORIGIN}
    )
    assert response.status_code == 400
    assert response.headers["access-control-allow-origin"] == SITE_ORIGIN


@pytest.mark.parametrize(
    ("page", "stored"),
    [
        pytest.param("/<script>alert(1)</script>", "/<script>alert(1)</script>", id="html is stored as text"),
        pytest.param("/'; DROP TABLE consent_records; --", "/'; DROP TABLE consent_records; --",
                     id="sql is stored as text"),
        pytest.param("/x'); DELETE FROM consent_records; --?q=1", "/x'); DELETE FROM consent_records; --",
                     id="sql before a query string"),
        pytest.param("/" + "a" * 9_999, "/" + "a" * 511, id="a 10,000-character path is cut to 512"),
        pytest.param("/search?q=anna@example.com&token=abc", "/search", id="the query string is never stored"),
        pytest.param("/caf\u00e9/\U0001f36a", "/caf\u00e9/\U0001f36a", id="unicode is stored as it is"),
    ],
)  # fmt: skip
def test_hostile_pages_are_stored_as_inert_text(roomy_gateway: Gateway, page: str, stored: str) -> None:
    roomy_gateway.decide(page=page, language="en")
    roomy_gateway.decide(page="/next")
    assert [row["page_path"] for row in roomy_gateway.records()] == [stored, "/next"]
    assert table_exists(roomy_gateway.settings.database)


# --- reading a decision back ----------------------------------------------------------------------


@pytest.mark.parametrize("via", ["query", "cookie"])
def test_a_valid_token_reads_back_as_the_decision(gateway: Gateway, via: str) -> None:
    decided = gateway.decide({"analytics": True}, services={"hotjar": False}).json()
    response = gateway.show(decided["token"], via=via)
    assert response.status_code == 200
    assert response.json() == {"decision": True, "reason": "valid", "state": decided["state"]}


def test_no_token_is_no_decision(gateway: Gateway) -> None:
    assert gateway.show().json() == {"decision": False, "reason": "missing", "state": None}


def flip_first(token: str) -> str:
    return ("f" if token[0] != "f" else "e") + token[1:]


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(flip_first, id="a changed payload"),
        pytest.param(lambda token: token.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAAAAA", id="a forged signature"),
        pytest.param(lambda token: token.rsplit(".", 1)[0], id="no signature"),
        pytest.param(lambda token: "not-a-token", id="garbage"),
        pytest.param(lambda token: token + "A" * 2000, id="an oversized token"),
    ],
)
def test_a_tampered_token_is_no_decision_not_an_error(gateway: Gateway, spoil: Callable[[str], str]) -> None:
    response = gateway.show(spoil(gateway.token()))
    assert response.status_code == 200
    assert response.json() == {"decision": False, "reason": "tampered", "state": None}


def test_a_token_signed_with_an_unknown_key_is_tampered(gateway: Gateway, clock: FixedClock, tmp_path: Path) -> None:
    other = make_settings(tmp_path, secret_keys=["someone-elses-key"])
    token, _ = ConsentTokenCodec(other.secret_keys, clock).issue(
        consent_id="x" * 22, site=other.sites["shop"], allowed=frozenset({"analytics"}), services={},
        method="custom", gpc=False,
    )  # fmt: skip
    assert gateway.show(token).json()["reason"] == "tampered"


def test_a_token_stamped_in_the_future_is_tampered(gateway: Gateway, clock: FixedClock) -> None:
    ahead = FixedClock(clock.now() + timedelta(hours=1))
    site = gateway.settings.sites["shop"]
    token, _ = ConsentTokenCodec(gateway.settings.secret_keys, ahead).issue(
        consent_id="x" * 22, site=site, allowed=frozenset(), services={}, method="reject_all", gpc=False
    )
    assert gateway.show(token).json()["reason"] == "tampered"


@pytest.mark.parametrize(
    ("later", "decision", "reason"),
    [
        pytest.param(SIX_MONTHS - timedelta(seconds=1), True, "valid", id="valid one second before six months"),
        pytest.param(SIX_MONTHS, False, "expired", id="expired at six months"),
        pytest.param(timedelta(days=400), False, "expired", id="expired long after"),
    ],
)
def test_a_decision_expires_after_the_consent_lifetime(
    gateway: Gateway, clock: FixedClock, later: timedelta, decision: bool, reason: str
) -> None:
    token = gateway.token()
    clock.advance(later)
    answer = gateway.show(token).json()
    assert (answer["decision"], answer["reason"]) == (decision, reason)


def test_a_policy_revision_bump_asks_again(
    gateway: Gateway, tmp_path: Path, clock: FixedClock, live_server: Start
) -> None:
    token = gateway.token()
    bumped = Gateway(make_settings(tmp_path, site=site_config(policy_revision=2)), clock, live_server)
    try:
        assert bumped.show(token).json() == {"decision": False, "reason": "revision", "state": None}
        outdated = bumped.request("POST", "/consent", json=GOOD)
        assert outdated.status_code == 409
        assert "the current revision is 2" in outdated.json()["error"]
        renewed = bumped.decide(revision=2, token=token).json()
        assert bumped.show(renewed["token"]).json()["decision"] is True
    finally:
        bumped.close()
    assert [row["policy_revision"] for row in records(gateway.settings.database)] == [1, 2]


def test_a_token_of_another_site_is_not_this_sites_decision(
    tmp_path: Path, clock: FixedClock, live_server: Start
) -> None:
    blog = site_config(name="Blog", origins=["https://blog.example.com"])
    gateway = Gateway(make_settings(tmp_path, sites={"shop": site_config(), "blog": blog}), clock, live_server)
    try:
        blog_token = gateway.token(site="blog")
        assert gateway.show(blog_token, site="shop").json() == {
            "decision": False,
            "reason": "other_site",
            "state": None,
        }
        assert gateway.show(blog_token, site="blog").json()["decision"] is True
        second = gateway.decide(site="shop", token=blog_token).json()  # another site's token links nothing
        assert second["state"]["consent_id"] != gateway.show(blog_token, site="blog").json()["state"]["consent_id"]
    finally:
        gateway.close()


def test_keys_rotate_old_tokens_stay_valid(tmp_path: Path, clock: FixedClock, live_server: Start) -> None:
    old = Gateway(make_settings(tmp_path, secret_keys=["first-key"]), clock, live_server)
    rotated = Gateway(make_settings(tmp_path, secret_keys=["first-key", "second-key"]), clock, live_server)
    try:
        old_token, new_token = old.token(), rotated.token()
        assert rotated.show(old_token).json()["decision"] is True
        assert old.show(new_token).json()["reason"] == "tampered"  # signed by a key it does not have
    finally:
        old.close()
        rotated.close()


@pytest.mark.parametrize(
    ("params", "headers", "status", "message"),
    [
        pytest.param({"site": "blog"}, {}, 404, "unknown site", id="an unknown site"),
        pytest.param({}, {}, 404, "unknown site", id="no site"),
        pytest.param({"site": "shop"}, {"origin": "https://evil.example"}, 403, "origin is not allowed",
                     id="an origin not allowed"),
    ],
)  # fmt: skip
def test_reading_a_decision_refuses_what_it_cannot_answer(
    gateway: Gateway, params: dict[str, str], headers: dict[str, str], status: int, message: str
) -> None:
    response = gateway.request("GET", "/consent", params=params, headers=headers)
    assert response.status_code == status
    assert message in response.json()["error"]


# --- withdrawing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["body", "cookie"])
def test_withdrawal_appends_a_refusal_under_the_same_id(gateway: Gateway, clock: FixedClock, via: str) -> None:
    first = gateway.decide(ALL, services={"hotjar": True}).json()
    clock.advance(timedelta(days=10))
    body: dict[str, Any] = {"site": "shop", "page": "/privacy?email=anna@example.com"}
    headers = {"user-agent": FIREFOX}
    if via == "body":
        body["token"] = first["token"]
    else:
        headers["cookie"] = f"cg_consent={first['token']}"
    response = gateway.request("POST", "/consent/withdraw", json=body, headers=headers)
    assert response.status_code == 200
    answer = response.json()
    assert answer["token"] != first["token"]
    assert answer["state"]["consent_id"] == first["state"]["consent_id"]
    assert answer["state"]["method"] == "withdraw"
    assert answer["state"]["categories"] == {"essential": True, **NONE}
    assert answer["state"]["services"] == {}
    assert answer["expires_at"] == (clock.now() + SIX_MONTHS).isoformat()
    shown = gateway.show(answer["token"]).json()
    assert shown["decision"] is True  # a decision: everything refused, no banner needed
    assert shown["state"]["categories"] == {"essential": True, **NONE}
    accepted, withdrawn = gateway.records()
    assert withdrawn["consent_id"] == accepted["consent_id"] == first["state"]["consent_id"]
    assert (withdrawn["method"], withdrawn["categories"], withdrawn["services"]) == ("withdraw", NONE, {})
    assert withdrawn["recorded_at"] == clock.now().isoformat()
    assert withdrawn["page_path"] == "/privacy"
    assert (withdrawn["ip_network"], withdrawn["ua_family"]) == ("127.0.0.0/24", "Firefox")
    assert accepted["method"] == "accept_all"  # the earlier decision is still there, unchanged


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        pytest.param({"site": "shop"}, {}, 400, "no valid consent token was presented", id="without a token"),
        pytest.param({"site": "shop", "token": "not-a-token"}, {}, 400, "no valid consent token",
                     id="with a tampered token"),
        pytest.param({"site": "shop"}, {"cookie": "cg_consent=junk"}, 400, "no valid consent token",
                     id="with a junk cookie"),
        pytest.param({"site": "blog", "token": "x"}, {}, 404, "unknown site 'blog'", id="for an unknown site"),
        pytest.param({"site": "shop"}, {"origin": "https://evil.example"}, 403, "is not allowed",
                     id="from an origin not allowed"),
    ],
)  # fmt: skip
def test_withdrawal_without_a_decision_writes_nothing(
    gateway: Gateway, body: dict[str, Any], headers: dict[str, str], status: int, message: str
) -> None:
    response = gateway.request("POST", "/consent/withdraw", json=body, headers=headers)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert gateway.records() == []


def test_withdrawal_refuses_a_page_that_is_not_a_path(gateway: Gateway) -> None:
    token = gateway.token()
    response = gateway.request(
        "POST", "/consent/withdraw", json={"site": "shop", "token": token, "page": "/a\nb"}, headers={}
    )
    assert response.status_code == 400
    assert "'page' contains control characters" in response.json()["error"]
    assert [row["method"] for row in gateway.records()] == ["accept_all"]


def test_withdrawal_from_another_sites_token_writes_nothing(
    tmp_path: Path, clock: FixedClock, live_server: Start
) -> None:
    blog = site_config(name="Blog", origins=["https://blog.example.com"])
    gateway = Gateway(make_settings(tmp_path, sites={"shop": site_config(), "blog": blog}), clock, live_server)
    try:
        blog_token = gateway.token(site="blog")
        response = gateway.request("POST", "/consent/withdraw", json={"site": "shop", "token": blog_token})
        assert response.status_code == 400
        assert [row["site_id"] for row in gateway.records()] == ["blog"]
    finally:
        gateway.close()


# --- preflight and operations ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/consent", "/consent/withdraw"])
def test_a_preflight_from_an_allowed_origin_is_answered(gateway: Gateway, path: str) -> None:
    response = gateway.request(
        "OPTIONS",
        path,
        headers={
            "origin": SITE_ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == SITE_ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"].lower()
    assert int(response.headers["access-control-max-age"]) > 0


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"origin": "https://evil.example"}, id="another origin"),
        pytest.param({"origin": "https://shop.example.com.evil.example"}, id="an origin that only starts alike"),
        pytest.param({}, id="no origin"),
    ],
)
def test_a_preflight_from_another_origin_is_refused(gateway: Gateway, headers: dict[str, str]) -> None:
    response = gateway.request("OPTIONS", "/consent", headers={"access-control-request-method": "POST", **headers})
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


def test_healthz_reports_the_database(gateway: Gateway) -> None:
    response = gateway.request("GET", "/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert gateway.request("HEAD", "/healthz").status_code == 200


def test_the_gpc_support_resource(gateway: Gateway) -> None:
    response = gateway.request("GET", "/.well-known/gpc.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert answer["gpc"] is True
    assert isinstance(date.fromisoformat(answer["lastUpdate"]), date)
    assert datetime.fromisoformat(answer["lastUpdate"]).year >= 2025
