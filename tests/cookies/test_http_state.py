"""The IETF http-state conformance suite (``parser.json``) run through an RFC 6265 user agent model.

(a) The model, parsing with ``parse_set_cookie``, must send back exactly the cookies the suite
expects (by RFC 6265bis where it departs from the suite: nameless cookies): our parser reads headers
the way browsers do. (b) Feeding the model the headers after
``cap_lifetime`` must send exactly the same cookies, in the same order: a lifetime cap changes how
long a cookie lives, never which cookie a browser stores.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from browser_model import UserAgent
from http_state import CASES, MISSING, case_urls, expected_sent

from gateway.cookies.lifetimes import SESSION, Lifetime
from gateway.cookies.setcookie import cap_lifetime, parse_set_cookie

# The suite's Expires dates were written around 2011 (0002 expects 2019 to be in the future).
NOW = datetime(2011, 1, 1, tzinfo=UTC)
THIRTEEN_MONTHS = Lifetime(34186698)
# Cases whose expectations no RFC 6265 user agent meets; the suite itself names them DISABLED_*.
OBSOLETE = {
    "DISABLED_CHROMIUM0022": "expects old Chromium's truncation of the value at NUL ('BB'); RFC 6265 5.2 keeps "
    "every octet of the value (and RFC 6265bis ignores the whole header)",
    "DISABLED_CHROMIUM0023": "expects old Chromium's truncation of the value at CR ('BB'); RFC 6265 5.2 keeps "
    "every octet of the value (and RFC 6265bis ignores the whole header)",
    "DISABLED_PATH0029": "expects the request path /f%6Fo/ to be percent-decoded to /foo/ before path-match; "
    "RFC 6265 5.1.4 path-matches the path as requested",
}


def _sent(case: dict[str, Any], headers: list[str]) -> list[tuple[str, str]]:
    set_url, result_url = case_urls(case)
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
    assert _sent(case, case["received"]) == expected_sent(case)


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
