"""The IETF http-state conformance cases (``parser.json``), shared by the model and the Chromium replays.

The data lives beside the repository (``../shared/testdata``); without it the tests that need it skip
and say where they looked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

DATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "http-state"
PARSER_CASES = DATA / "parser.json"

# The suite's harness set cookies from /cookie-parser?NNNN (default-path "/") and read them back on
# /cookie-parser-result?NNNN (e.g. ATTRIBUTE0023 sends a cookie with Path=/cookie-parser-result);
# "sent-to" overrides the second URL and is relative to it.
ORIGIN = "http://home.example.org:8888"
SET_URL = ORIGIN + "/cookie-parser?{test}"
RESULT_URL = ORIGIN + "/cookie-parser-result?{test}"


# Where RFC 6265bis departs from the suite, which was written for RFC 6265: a pair without '=' or with
# an empty name sets a nameless cookie (RFC 6265bis 5.6 steps 3-4) that the browser sends back as its
# bare value (5.8.3). What Chromium 156 sends; test_http_state_chromium checks it on every run.
RFC6265BIS_SENT: dict[str, list[tuple[str, str]]] = {
    "0004": [("", "foo")],
    "0021": [("a", "b"), ("", "x"), ("c", "d")],
    "0023": [("", "foo")],
    "0024": [("", "foo")],
    "0025": [("", "foo")],
    "0026": [("", "foo")],
    "0027": [("", "bar")],
    "0028": [("", "foo")],
    "CHROMIUM0009": [("", "BLAHHH")],
    "CHROMIUM0010": [("", '"BLA\\"HHH"')],
    "CHROMIUM0012": [("", "ABC")],
    "MOZILLA0012": [("test", '"fubar! = foo'), ("", "five")],
    "MOZILLA0014": [("", "six")],
    "MOZILLA0015": [("", "seven")],
    "MOZILLA0016": [("", "eight")],
    "MOZILLA0017": [("", "eight"), ("test", "six")],
    "NAME0023": [("", "foo")],
    "NAME0028": [("", "a")],
    "NAME0031": [("", '"foo')],
    "NAME0032": [("", '"foo\\"bar')],
    "NAME0033": [("", "aaa")],
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


def case_urls(case: dict[str, Any]) -> tuple[str, str]:
    """The URL the case's headers come from and the URL whose ``Cookie`` header the case checks."""
    number = case["test"].lower()
    result_url = RESULT_URL.format(test=number)
    return SET_URL.format(test=number), urljoin(result_url, case.get("sent-to", result_url))


def expected_sent(case: dict[str, Any]) -> list[tuple[str, str]]:
    """The (name, value) pairs a browser sends to the case's result URL, by RFC 6265bis."""
    return RFC6265BIS_SENT.get(case["test"], [(cookie["name"], cookie["value"]) for cookie in case["sent"]])
