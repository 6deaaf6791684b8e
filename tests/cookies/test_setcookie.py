"""``Set-Cookie`` parsing (RFC 6265 section 5.2, nameless cookies by RFC 6265bis), lifetime caps, deletion headers
and ``Cookie`` headers."""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.cookies.dates import format_cookie_date
from gateway.cookies.lifetimes import SESSION, Lifetime
from gateway.cookies.setcookie import (
    SetCookie,
    cap_lifetime,
    deletion_header,
    parse_cookie_header,
    parse_set_cookie,
)

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
THIRTEEN_MONTHS = Lifetime(34186698)
CAPPED = "Max-Age=34186698; Expires=Mon, 15 Feb 2027 04:18:18 GMT"  # NOW + 13 months, both ways
FAR = "Fri, 01 Jan 2100 00:00:00 GMT"
SOON = "Sun, 01 Feb 2026 00:00:00 GMT"
PAST = "Thu, 01 Jan 2015 00:00:00 GMT"
EPOCH_2100 = datetime(2100, 1, 1, tzinfo=UTC)


def _fields(raw: str) -> dict[str, Any]:
    cookie = parse_set_cookie(raw)
    assert cookie is not None
    return {
        "name": cookie.name,
        "value": cookie.value,
        "max_age": cookie.max_age,
        "expires": cookie.expires,
        "domain": cookie.domain,
        "path": cookie.path,
        "secure": cookie.secure,
        "http_only": cookie.http_only,
        "same_site": cookie.same_site,
    }


def _expect(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "a",
        "value": "b",
        "max_age": None,
        "expires": None,
        "domain": None,
        "path": None,
        "secure": False,
        "http_only": False,
        "same_site": None,
    }
    return base | changes


# --- parse_set_cookie: tables ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty-header"),
        pytest.param(" \t ", id="whitespace-only"),
        pytest.param("=", id="lone-equals-sign"),
        pytest.param(" = \t; Path=/", id="empty-name-and-value"),
        pytest.param(";a=b", id="nothing-before-the-first-semicolon"),
        pytest.param("=a=b", id="nameless-value-holding-an-equals-sign"),
        pytest.param("__Host-x", id="nameless-value-like-a-host-prefix"),
        pytest.param("=__secure-x; Secure", id="nameless-value-like-a-secure-prefix-any-case"),
        pytest.param("a=" + "b" * 4096, id="name-and-value-over-4096"),
        pytest.param("b" * 4097, id="nameless-value-over-4096"),
    ],
)
def test_parse_set_cookie_ignores_what_a_browser_ignores(raw: str) -> None:
    assert parse_set_cookie(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("a=b", _expect(), id="name-value-only"),
        pytest.param(" \ta \t= \tb\t ", _expect(), id="name-and-value-trimmed-of-wsp"),
        pytest.param("a=\u00a0b", _expect(value="\u00a0b"), id="only-sp-and-htab-are-trimmed"),
        pytest.param("a=", _expect(value=""), id="empty-value"),
        pytest.param("a=b=c", _expect(value="b=c"), id="value-runs-from-the-first-equals-sign"),
        pytest.param('a="b c"', _expect(value='"b c"'), id="quotes-are-part-of-the-value"),
        pytest.param("a=b, c=d", _expect(value="b, c=d"), id="comma-does-not-split-cookies"),
        pytest.param("a=b;", _expect(), id="trailing-semicolon"),
        pytest.param("a=b; ; ;;", _expect(), id="empty-attributes-skipped"),
        pytest.param("a=b; Version=1; Comment=x; Priority=High", _expect(), id="unknown-attributes-ignored"),
        pytest.param(
            "a=b; mAX-aGE=5; pAtH=/x; DOMAIN=Example.COM; SECURE; httponly; samesite=lax",
            _expect(max_age=5, path="/x", domain="example.com", secure=True, http_only=True, same_site="Lax"),
            id="attribute-names-are-case-insensitive",
        ),
        pytest.param("a=b;\tMax-Age \t=\t 7 ", _expect(max_age=7), id="attribute-name-and-value-trimmed"),
        pytest.param("a=b; Max-Age=5; Max-Age=10", _expect(max_age=10), id="last-max-age-wins"),
        pytest.param("a=b; Max-Age=5; Max-Age=1x", _expect(max_age=5), id="invalid-max-age-keeps-the-earlier-one"),
        pytest.param("a=b; Max-Age=+5", _expect(), id="max-age-with-plus-sign-ignored"),
        pytest.param("a=b; Max-Age=5.0", _expect(), id="fractional-max-age-ignored"),
        pytest.param("a=b; Max-Age=50,399", _expect(), id="max-age-with-comma-ignored"),
        pytest.param("a=b; Max-Age=", _expect(), id="empty-max-age-ignored"),
        pytest.param("a=b; Max-Age=-", _expect(), id="max-age-of-a-lone-minus-ignored"),
        pytest.param("a=b; Max-Age=--1", _expect(), id="max-age-with-two-minus-signs-ignored"),
        pytest.param("a=b; Max-Age=\u0663", _expect(), id="max-age-of-non-ascii-digits-ignored"),
        pytest.param("a=b; Max-Age=-1", _expect(max_age=-1), id="negative-max-age-kept"),
        pytest.param("a=b; Max-Age=0010", _expect(max_age=10), id="max-age-leading-zeros"),
        pytest.param("a=b; Max-Age=" + "9" * 5000, _expect(max_age=10**15), id="huge-max-age-clamped"),
        pytest.param("a=b; Max-Age", _expect(), id="max-age-without-value-ignored"),
        pytest.param(f"a=b; Expires={FAR}", _expect(expires=EPOCH_2100), id="expires-read"),
        pytest.param(
            f"a=b; Expires={FAR}; Expires=junk", _expect(expires=EPOCH_2100), id="unparseable-expires-ignored"
        ),
        pytest.param(
            f"a=b; Expires={PAST}; Expires={FAR}", _expect(expires=EPOCH_2100), id="last-parseable-expires-wins"
        ),
        pytest.param("a=b; Domain=.Example.COM", _expect(domain="example.com"), id="domain-leading-dot-and-case"),
        pytest.param("a=b; Domain=example.com; Domain=", _expect(domain="example.com"), id="empty-domain-ignored"),
        pytest.param("a=b; Domain=", _expect(), id="only-an-empty-domain-means-host-only"),
        pytest.param("a=b; Domain=example.com; Domain=.", _expect(), id="domain-of-a-dot-means-host-only"),
        pytest.param("a=b; Domain=a.com; Domain=b.com", _expect(domain="b.com"), id="last-domain-wins"),
        pytest.param("a=b; Domain=..a.com", _expect(domain=".a.com"), id="only-one-leading-dot-removed"),
        pytest.param("a=b; Path=/x/y", _expect(path="/x/y"), id="path-read"),
        pytest.param("a=b; Path=x", _expect(), id="path-without-leading-slash-means-default"),
        pytest.param("a=b; Path=", _expect(), id="empty-path-means-default"),
        pytest.param("a=b; Path=/x; Path=y", _expect(), id="last-path-wins-even-when-invalid"),
        pytest.param("a=b; Path=/x; Path=/y", _expect(path="/y"), id="last-path-wins"),
        pytest.param("a=b; Secure=no", _expect(secure=True), id="secure-with-any-value"),
        pytest.param('a=b; "Secure"', _expect(), id="quoted-attribute-name-is-unknown"),
        pytest.param('a=b; x="1; Secure; y="', _expect(secure=True), id="semicolon-inside-quotes-still-splits"),
        pytest.param("a=b; HttpOnly=false", _expect(http_only=True), id="httponly-with-any-value"),
        pytest.param("a=b; SameSite=STRICT", _expect(same_site="Strict"), id="samesite-case-insensitive"),
        pytest.param("a=b; SameSite=None", _expect(same_site="None"), id="samesite-none"),
        pytest.param("a=b; SameSite=bogus", _expect(same_site="Default"), id="unknown-samesite-means-default"),
    ],
)
def test_parse_set_cookie_follows_rfc6265_5_2(raw: str, expected: dict[str, Any]) -> None:
    assert _fields(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("foo", _expect(name="", value="foo"), id="no-equals-sign-is-all-value"),
        pytest.param("=bar", _expect(name="", value="bar"), id="empty-name"),
        pytest.param(" \t=bar", _expect(name="", value="bar"), id="name-of-whitespace-only"),
        pytest.param(" \tfoo \t", _expect(name="", value="foo"), id="value-trimmed-of-wsp"),
        pytest.param("foo; a=b", _expect(name="", value="foo"), id="equals-sign-only-in-an-attribute"),
        pytest.param('"foo;bar"=baz', _expect(name="", value='"foo'), id="semicolon-ends-the-pair-even-in-quotes"),
        pytest.param(
            "foo; Max-Age=60; Path=/x; Secure",
            _expect(name="", value="foo", max_age=60, path="/x", secure=True),
            id="attributes-read-as-for-any-cookie",
        ),
        pytest.param("=__Hostx", _expect(name="", value="__Hostx"), id="prefix-needs-its-dash"),
        pytest.param("b" * 4096, _expect(name="", value="b" * 4096), id="value-of-4096"),
        pytest.param("a=" + "b" * 4095 + " ", _expect(value="b" * 4095), id="name-and-value-of-4096-after-trimming"),
    ],
)
def test_parse_set_cookie_reads_nameless_cookies_by_rfc6265bis_5_6(raw: str, expected: dict[str, Any]) -> None:
    assert _fields(raw) == expected


def test_parse_set_cookie_keeps_the_raw_header() -> None:
    raw = " a = b ;Path=/ "
    cookie = parse_set_cookie(raw)
    assert cookie is not None
    assert cookie.raw is raw


# --- expiry and is_deletion -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expiry", "deletion"),
    [
        pytest.param("a=b", None, False, id="no-lifetime-is-a-session-cookie"),
        pytest.param("a=b; Max-Age=60", NOW + timedelta(seconds=60), False, id="max-age-counts-from-now"),
        pytest.param(f"a=b; Expires={FAR}", EPOCH_2100, False, id="expires-is-absolute"),
        pytest.param(f"a=b; Max-Age=60; Expires={FAR}", NOW + timedelta(seconds=60), False, id="max-age-beats-expires"),
        pytest.param(f"a=b; Expires={FAR}; Max-Age=60", NOW + timedelta(seconds=60), False, id="in-either-order"),
        pytest.param("a=b; Max-Age=0", datetime.min.replace(tzinfo=UTC), True, id="max-age-0-deletes"),
        pytest.param("a=b; Max-Age=-5", datetime.min.replace(tzinfo=UTC), True, id="negative-max-age-deletes"),
        pytest.param(f"a=b; Expires={PAST}", datetime(2015, 1, 1, tzinfo=UTC), True, id="past-expires-deletes"),
        pytest.param(f"a=b; Max-Age=0; Expires={FAR}", datetime.min.replace(tzinfo=UTC), True, id="max-age-0-wins"),
        pytest.param(f"a=b; Expires={PAST}; Max-Age=60", NOW + timedelta(seconds=60), False, id="past-expires-loses"),
        pytest.param("a=b; Max-Age=" + "9" * 40, datetime.max.replace(tzinfo=UTC), False, id="huge-max-age-clamps"),
    ],
)
def test_expiry_and_deletion(raw: str, expiry: datetime | None, deletion: bool) -> None:
    cookie = parse_set_cookie(raw)
    assert cookie is not None
    assert cookie.expiry(NOW) == expiry
    assert cookie.is_deletion(NOW) is deletion


def test_expires_equal_to_now_is_a_deletion() -> None:
    cookie = parse_set_cookie(f"a=b; Expires={format_cookie_date(NOW)}")
    assert cookie is not None
    assert cookie.is_deletion(NOW)


# --- cap_lifetime: tables -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "allowed", "expected"),
    [
        pytest.param(
            "_ga=GA1.1.123.456; Max-Age=63072000; Path=/; Domain=example.com; SameSite=Lax",
            THIRTEEN_MONTHS,
            f"_ga=GA1.1.123.456; Path=/; Domain=example.com; SameSite=Lax; {CAPPED}",
            id="longer-max-age-capped",
        ),
        pytest.param(
            f"id=1; Expires={FAR}; Secure", THIRTEEN_MONTHS, f"id=1; Secure; {CAPPED}", id="longer-expires-capped"
        ),
        pytest.param(
            f"id=1; Expires={FAR}; Path=/; max-age=99999999",
            THIRTEEN_MONTHS,
            f"id=1; Path=/; {CAPPED}",
            id="both-present-both-replaced",
        ),
        pytest.param(
            f"id=1; Max-Age=99999999; Expires={SOON}",
            THIRTEEN_MONTHS,
            f"id=1; {CAPPED}",
            id="long-max-age-with-short-expires-capped-since-max-age-wins",
        ),
        pytest.param(
            f"id=1; Max-Age=abc; expires=junk; Expires={FAR}",
            THIRTEEN_MONTHS,
            f"id=1; {CAPPED}",
            id="ignored-max-age-and-expires-go-too",
        ),
        pytest.param("id=1; Max-Age=99999999;", THIRTEEN_MONTHS, f"id=1; {CAPPED}", id="no-double-semicolon"),
        pytest.param(
            ' \tid = "a b" ;  path=/x ;Max-Age=99999999;  SameSite=None ; Secure',
            THIRTEEN_MONTHS,
            f' \tid = "a b" ;  path=/x ;  SameSite=None ; Secure; {CAPPED}',
            id="name-value-and-other-attributes-byte-identical",
        ),
        pytest.param("id=1; Max-Age=3600; Path=/", THIRTEEN_MONTHS, None, id="shorter-max-age-untouched"),
        pytest.param("id=1; Max-Age=34186698", THIRTEEN_MONTHS, None, id="max-age-equal-to-the-cap-untouched"),
        pytest.param(f"id=1; Expires={SOON}", THIRTEEN_MONTHS, None, id="shorter-expires-untouched"),
        pytest.param(f"id=1; Max-Age=60; Expires={FAR}", THIRTEEN_MONTHS, None, id="short-max-age-wins-over-expires"),
        pytest.param("id=1; Path=/", THIRTEEN_MONTHS, None, id="session-cookie-never-lengthened"),
        pytest.param(
            f"id=1; Max-Age=60; Path=/; Expires={FAR}; HttpOnly",
            SESSION,
            "id=1; Path=/; HttpOnly",
            id="session-cap-removes-max-age-and-expires",
        ),
        pytest.param("id=1; Max-Age=60", SESSION, "id=1", id="session-cap-even-for-a-short-life"),
        pytest.param("id=1; Path=/", SESSION, None, id="session-cookie-meets-a-session-cap"),
        pytest.param("id=; Max-Age=0; Path=/", THIRTEEN_MONTHS, None, id="deletion-by-max-age-0-untouched"),
        pytest.param("id=; Max-Age=-1", THIRTEEN_MONTHS, None, id="deletion-by-negative-max-age-untouched"),
        pytest.param(f"id=; Expires={PAST}", THIRTEEN_MONTHS, None, id="deletion-by-past-expires-untouched"),
        pytest.param("id=; Max-Age=0", SESSION, None, id="deletion-untouched-by-a-session-cap"),
        pytest.param(f"id=; Expires={PAST}", SESSION, None, id="past-expires-untouched-by-a-session-cap"),
        pytest.param(
            "id=1; Max-Age=60", Lifetime(0), f"id=1; Max-Age=0; Expires={format_cookie_date(NOW)}", id="zero-cap"
        ),
    ],
)
def test_cap_lifetime(raw: str, allowed: Lifetime, expected: str | None) -> None:
    cookie = parse_set_cookie(raw)
    assert cookie is not None
    assert cap_lifetime(cookie, allowed, NOW) == expected


def test_cap_lifetime_never_overflows() -> None:
    cookie = parse_set_cookie("id=1; Max-Age=" + "9" * 30)
    assert cookie is not None
    end_of_time = "Expires=Fri, 31 Dec 9999 23:59:59 GMT"
    assert cap_lifetime(cookie, Lifetime(999999 * 31556952), NOW) == f"id=1; Max-Age=31556920443048; {end_of_time}"
    late = datetime(9999, 12, 31, tzinfo=UTC)
    assert cap_lifetime(cookie, THIRTEEN_MONTHS, late) == f"id=1; Max-Age=34186698; {end_of_time}"


# --- deletion_header and parse_cookie_header ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({"name": "_ga"}, "_ga=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/", id="root-path"),
        pytest.param(
            {"name": "_ga", "domain": "example.com"},
            "_ga=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Domain=example.com",
            id="with-domain",
        ),
        pytest.param(
            {"name": "sid", "path": "/shop"},
            "sid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/shop",
            id="with-path",
        ),
        pytest.param(
            {"name": ""},
            "=deleted; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/",
            id="nameless-needs-a-value-or-the-browser-ignores-it",
        ),
    ],
)
def test_deletion_header(kwargs: dict[str, Any], expected: str) -> None:
    header = deletion_header(**kwargs)
    assert header == expected
    cookie = parse_set_cookie(header)
    assert cookie is not None
    assert cookie.is_deletion(NOW)
    assert (cookie.name, cookie.path, cookie.domain) == (kwargs["name"], kwargs.get("path", "/"), kwargs.get("domain"))


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"name": " a"}, id="whitespace-around-the-name"),
        pytest.param({"name": "a=b"}, id="equals-sign-in-name"),
        pytest.param({"name": "a;b"}, id="semicolon-in-name"),
        pytest.param({"name": "a\r\nSet-Cookie: x"}, id="header-injection-in-name"),
        pytest.param({"name": "a", "path": "/;Domain=evil.example"}, id="semicolon-in-path"),
        pytest.param({"name": "a", "domain": "example.com\n"}, id="newline-in-domain"),
    ],
)
def test_deletion_header_refuses_what_would_break_the_header(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="cannot build"):
        deletion_header(**kwargs)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("a=b; c=d", [("a", "b"), ("c", "d")], id="pairs-in-order"),
        pytest.param("a=b;c=d", [("a", "b"), ("c", "d")], id="no-space-after-semicolon"),
        pytest.param(" a = b ;\tc=d\t", [("a", "b"), ("c", "d")], id="whitespace-trimmed"),
        pytest.param("a=b=c", [("a", "b=c")], id="value-keeps-later-equals-signs"),
        pytest.param('a="x y"', [("a", '"x y"')], id="quotes-kept"),
        pytest.param("a=", [("a", "")], id="empty-value"),
        pytest.param("a=1; a=2", [("a", "1"), ("a", "2")], id="duplicates-kept"),
        pytest.param("junk; a=b", [("", "junk"), ("a", "b")], id="bare-value-is-a-nameless-cookie"),
        pytest.param("=x; a=b", [("", "x"), ("a", "b")], id="empty-name-is-a-nameless-cookie"),
        pytest.param("a=b; = ;c=d", [("a", "b"), ("c", "d")], id="empty-name-and-value-skipped"),
        pytest.param(";;; ;", [], id="only-separators"),
        pytest.param("", [], id="empty-header"),
    ],
)
def test_parse_cookie_header(header: str, expected: list[tuple[str, str]]) -> None:
    assert parse_cookie_header(header) == expected


# --- properties -----------------------------------------------------------------------------------------------

HEADER_FRAGMENTS = st.sampled_from(
    [
        *'=; \t,"-.\x00\r\u00e9\u0130\u212a',
        "a",
        "b",
        "max-age",
        "Max-Age",
        "expires",
        "Expires",
        "domain",
        "path",
        "secure",
        "httponly",
        "samesite",
        "0",
        "-1",
        "99",
        "9" * 30,
        "/",
        ".",
        FAR,
        PAST,
        "Jan",
        "12:00:00",
    ]
)
HEADER_LIKE = st.lists(HEADER_FRAGMENTS, max_size=20).map("".join)


@given(st.text() | HEADER_LIKE)
@example("a=b; Max-Age=" + "9" * 10000)
@example("a=b; Expires=" + "1" * 10000)
def test_parsers_never_raise(text: str) -> None:
    cookie = parse_set_cookie(text)
    if cookie is not None:
        cookie.expiry(NOW)
        cookie.is_deletion(NOW)
        cap_lifetime(cookie, THIRTEEN_MONTHS, NOW)
        cap_lifetime(cookie, SESSION, NOW)
    parse_cookie_header(text)


TOKEN = st.text(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=12)
COOKIE_OCTETS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\')
VALUE = st.text(COOKIE_OCTETS, max_size=16) | st.text(COOKIE_OCTETS, max_size=16).map(lambda text: f'"{text}"')
# A nameless cookie's value: no '=' (the browser refuses it) and no __Secure-/__Host- start (likewise).
NAMELESS_VALUE = (VALUE | st.text(string.ascii_letters + string.digits + "_-", max_size=12)).filter(
    lambda value: bool(value) and "=" not in value and not value.lower().startswith(("__secure-", "__host-"))
)
LABEL = st.text(string.ascii_letters + string.digits, min_size=1, max_size=8)
PATH_TEXT = st.text("".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != ";"), max_size=12).map(lambda p: "/" + p)
WSP = st.sampled_from(["", " ", "  ", "\t"])
MOMENT = st.builds(
    lambda day, clock: datetime.combine(day, clock.replace(microsecond=0), tzinfo=UTC),
    st.dates(min_value=date(1601, 1, 1), max_value=date(9999, 12, 31)),
    st.times(),
)


@dataclass(frozen=True, slots=True)
class Generated:
    """A valid Set-Cookie header and what RFC 6265 (RFC 6265bis for a nameless one) says a browser reads from it."""

    raw: str
    name: str
    value: str
    domain: str | None
    path: str | None
    secure: bool
    http_only: bool
    same_site: str | None


@st.composite
def generated_cookies(draw: st.DrawFn) -> Generated:
    form = draw(st.sampled_from(["named", "bare-value", "empty-name"]))
    if form == "named":
        name, value = draw(TOKEN), draw(VALUE)
        raw = f"{draw(WSP)}{name}{draw(WSP)}={draw(WSP)}{value}{draw(WSP)}"
    else:  # RFC 6265bis 5.6: "foo" and "=foo" both set the nameless cookie "foo"
        name, value = "", draw(NAMELESS_VALUE)
        equals = f"{draw(WSP)}={draw(WSP)}" if form == "empty-name" else draw(WSP)
        raw = f"{equals}{value}{draw(WSP)}"
    domain = path = same_site = None
    secure = http_only = False
    for kind in draw(
        st.lists(
            st.sampled_from(["domain", "path", "secure", "httponly", "samesite", "max-age", "expires", "unknown"]),
            max_size=8,
        )
    ):
        spelling = draw(st.sampled_from([kind, kind.upper(), kind.title()]))
        if kind == "domain":
            host = ".".join(draw(st.lists(LABEL, min_size=1, max_size=3)))
            text = draw(st.sampled_from([host, "." + host]))
            domain = host.lower()
        elif kind == "path":
            text = path = draw(PATH_TEXT)
        elif kind == "samesite":
            text = same_site = draw(st.sampled_from(["Strict", "Lax", "None"]))
        elif kind == "max-age":
            text = str(draw(st.integers(min_value=-(10**6), max_value=10**11)))
        elif kind == "expires":
            text = format_cookie_date(draw(MOMENT))
        elif kind == "unknown":
            spelling, text = draw(st.sampled_from([("Version", "1"), ("Priority", "High"), ("Comment", "x=y")]))
        else:
            secure = secure or kind == "secure"
            http_only = http_only or kind == "httponly"
            raw += f";{draw(WSP)}{spelling}{draw(WSP)}"
            continue
        raw += f";{draw(WSP)}{spelling}{draw(WSP)}={draw(WSP)}{text}{draw(WSP)}"
    if draw(st.booleans()):
        raw += ";"
    return Generated(raw, name, value, domain, path, secure, http_only, same_site)


def _other_attributes(raw: str) -> list[str]:
    """The name-value pair and every attribute but Max-Age and Expires, as received; blank ones at the end dropped."""
    parts = raw.split(";")
    kept = parts[:1] + [
        part for part in parts[1:] if part.split("=")[0].strip(" \t").lower() not in ("max-age", "expires")
    ]
    while len(kept) > 1 and not kept[-1].strip(" \t"):
        kept.pop()
    return kept


def _identity(cookie: SetCookie | Generated) -> tuple[Any, ...]:
    return (cookie.name, cookie.value, cookie.domain, cookie.path, cookie.secure, cookie.http_only, cookie.same_site)


ALLOWED = st.sampled_from([SESSION, Lifetime(0), THIRTEEN_MONTHS]) | st.builds(
    Lifetime, st.integers(min_value=0, max_value=20 * 366 * 86400)
)
NOWS = st.builds(
    lambda day, clock: datetime.combine(day, clock, tzinfo=UTC),
    st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 1, 1)),
    st.times(),
)


@given(generated_cookies())
def test_parse_recovers_generated_cookies(generated: Generated) -> None:
    cookie = parse_set_cookie(generated.raw)
    assert cookie is not None
    assert _identity(cookie) == _identity(generated)


@given(generated_cookies(), ALLOWED, NOWS)
def test_cap_lifetime_keeps_the_cookie_and_bounds_its_life(
    generated: Generated, allowed: Lifetime, now: datetime
) -> None:
    cookie = parse_set_cookie(generated.raw)
    assert cookie is not None
    expiry = cookie.expiry(now)
    limit = None if allowed.seconds is None else now + timedelta(seconds=allowed.seconds)
    rewritten = cap_lifetime(cookie, allowed, now)
    if rewritten is None:  # left alone only when it already fits (or deletes, or is a session cookie)
        assert expiry is None or expiry <= now or (limit is not None and expiry <= limit)
        return
    capped = parse_set_cookie(rewritten)
    assert capped is not None
    assert _identity(capped) == _identity(cookie)
    assert _other_attributes(rewritten) == _other_attributes(generated.raw)  # byte for byte, in order
    new_expiry = capped.expiry(now)
    if limit is None:
        assert new_expiry is None
    else:
        assert new_expiry is not None and new_expiry <= limit
        assert capped.expires is not None and capped.expires <= limit
    assert cap_lifetime(capped, allowed, now) is None  # idempotent


@given(generated_cookies(), ALLOWED, NOWS)
@example(Generated("foo; Max-Age=99999999", "", "foo", None, None, False, False, None), SESSION, NOW)
@example(Generated(" =foo ;Max-Age=99999999", "", "foo", None, None, False, False, None), THIRTEEN_MONTHS, NOW)
def test_a_rewritten_header_keeps_its_name_value_pair_byte_for_byte(
    generated: Generated, allowed: Lifetime, now: datetime
) -> None:
    """What the middleware forwards is the app's pair, untouched, so a nameless cookie stays nameless."""
    cookie = parse_set_cookie(generated.raw)
    assert cookie is not None
    rewritten = cap_lifetime(cookie, allowed, now)
    forwarded = generated.raw if rewritten is None else rewritten
    assert forwarded.split(";")[0] == generated.raw.split(";")[0]
    again = parse_set_cookie(forwarded)
    assert again is not None and (again.name, again.value) == (generated.name, generated.value)


@given(st.lists(generated_cookies(), max_size=6))
def test_cookie_header_round_trip(cookies: list[Generated]) -> None:
    """A browser sends each cookie as name=value, a nameless one as its bare value (RFC 6265bis 5.8.3)."""
    header = "; ".join(f"{c.name}={c.value}" if c.name else c.value for c in cookies)
    assert parse_cookie_header(header) == [(c.name, c.value) for c in cookies]


@given(generated_cookies())
def test_deletion_header_deletes_the_cookie_it_names(generated: Generated) -> None:
    """A deletion must name the cookie's name, domain and path (5.3 step 11), nameless cookies included."""
    header = deletion_header(generated.name, path=generated.path or "/", domain=generated.domain)
    deletion = parse_set_cookie(header)
    assert deletion is not None and deletion.is_deletion(NOW)
    assert (deletion.name, deletion.path, deletion.domain) == (generated.name, generated.path or "/", generated.domain)
