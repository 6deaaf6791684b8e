"""The IETF http-state conformance suite (``parser.json``) run through an RFC 6265 user agent model.

(a) The model, parsing with ``parse_set_cookie``, must send back exactly the cookies the suite
expects: our parser reads headers the way browsers do. (b) Feeding the model the headers after
``cap_lifetime`` must send exactly the same cookies, in the same order: a lifetime cap changes how
long a cookie lives, never which cookie a browser stores.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from browser_model import UserAgent

from gateway.cookies.lifetimes import SESSION, Lifetime
from gateway.cookies.setcookie import cap_lifetime, parse_set_cookie

DATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "http-state"
PARSER_CASES = DATA / "parser.json"

# The suite's Expires dates were written around 2011 (0002 expects 2019 to be in the future).
NOW = datetime(2011, 1, 1, tzinfo=UTC)
THIRTEEN_MONTHS = Lifetime(34186698)
# The suite's harness set cookies from /cookie-parser?NNNN (default-path "/") and read them back on
# /cookie-parser-result?NNNN (e.g. ATTRIBUTE0023 sends a cookie with Path=/cookie-parser-result);
# "sent-to" overrides the second URL and is relative to it.
SET_URL = "http://home.example.org:8888/cookie-parser?{test}"
RESULT_URL = "http://home.example.org:8888/cookie-parser-result?{test}"

# Cases whose expectations no RFC 6265 user agent meets; the suite itself names them DISABLED_*.
OBSOLETE = {
    "DISABLED_CHROMIUM0022": "expects old Chromium's truncation of the value at NUL ('BB'); RFC 6265 5.2 keeps "
    "every octet of the value (and RFC 6265bis ignores the whole header)",
    "DISABLED_CHROMIUM0023": "expects old Chromium's truncation of the value at CR ('BB'); RFC 6265 5.2 keeps "
    "every octet of the value (and RFC 6265bis ignores the whole header)",
    "DISABLED_PATH0029": "expects the request path /f%6Fo/ to be percent-decoded to /foo/ before path-match; "
    "RFC 6265 5.1.4 path-matches the path as requested",
}


def _load_cases() -> list[dict[str, Any]]:
    if not PARSER_CASES.is_file():
        return []
    cases: list[dict[str, Any]] = json.loads(PARSER_CASES.read_text(encoding="utf-8"))
    return cases


CASES = _load_cases()
MISSING = pytest.mark.skipif(
    not CASES, reason=f"http-state conformance data not found at {PARSER_CASES} (a checkout of ../shared/testdata)"
)


def _urls(case: dict[str, Any]) -> tuple[str, str]:
    number = case["test"].lower()
    result_url = RESULT_URL.format(test=number)
    return SET_URL.format(test=number), urljoin(result_url, case.get("sent-to", result_url))


def _sent(case: dict[str, Any], headers: list[str]) -> list[tuple[str, str]]:
    set_url, result_url = _urls(case)
    agent = UserAgent(now=NOW)
    for header in headers:
        agent.receive(set_url, header)
    return agent.cookies_for(result_url)


def _capped(headers: list[str], allowed: Lifetime) -> list[str]:
    """What the gateway forwards: each header capped, or as received when it may stay or does not parse."""
    forwarded = []
    for header in headers:
        cookie = parse_set_cookie(header)
        rewritten = None if cookie is None else cap_lifetime(cookie, allowed, NOW)
        forwarded.append(header if rewritten is None else rewritten)
    return forwarded


def _params(*, mark_obsolete: bool) -> list[Any]:
    if not CASES:
        return [pytest.param({}, id="no-data")]
    params = []
    for case in CASES:
        reason = OBSOLETE.get(case["test"])
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason and mark_obsolete else []
        params.append(pytest.param(case, id=case["test"], marks=marks))
    return params


@MISSING
@pytest.mark.parametrize("case", _params(mark_obsolete=True))
def test_user_agent_sends_what_the_suite_expects(case: dict[str, Any]) -> None:
    expected = [(cookie["name"], cookie["value"]) for cookie in case["sent"]]
    assert _sent(case, case["received"]) == expected


@MISSING
@pytest.mark.parametrize(
    "allowed", [pytest.param(THIRTEEN_MONTHS, id="13-month-cap"), pytest.param(SESSION, id="session-cap")]
)
@pytest.mark.parametrize("case", _params(mark_obsolete=False))
def test_capping_lifetimes_keeps_every_cookie_sent(case: dict[str, Any], allowed: Lifetime) -> None:
    assert _sent(case, _capped(case["received"], allowed)) == _sent(case, case["received"])


@MISSING
def test_caps_do_rewrite_some_suite_headers() -> None:
    """Guards (b) against passing vacuously: the suite has long-lived cookies that both caps shorten."""
    for allowed in (THIRTEEN_MONTHS, SESSION):
        headers = [header for case in CASES for header in case["received"]]
        assert sum(a != b for a, b in zip(_capped(headers, allowed), headers, strict=True)) >= 5
