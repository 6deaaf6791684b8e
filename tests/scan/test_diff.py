"""What changed between two scan reports (gateway/scan/diff.py), table-driven over format-1 reports."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.scan.diff import ScanDiff, diff_reports

URL = "https://shop.example.com/"


def cookie(name: str, *, domain: str = ".shop.example.com", path: str = "/", category: str | None = "analytics",
           states: tuple[str, ...] = ("accepted",)) -> dict[str, Any]:  # fmt: skip
    return {
        "name": name,
        "domain": domain,
        "path": path,
        "category": category,
        "classified_by": "catalog" if category else None,
        "declared": category is not None,
        "set_by": "script",
        "set_by_url": f"{URL}app.js",
        "expires_days": 390.0,
        "http_only": False,
        "secure": True,
        "same_site": "Lax",
        "states": list(states),
        "pages": [URL],
        "suggestion": None if category else {"category": "analytics", "source": "catalog", "description": "maybe"},
        "config": None if category else f'[[sites.shop.cookies]]\nname = "{name}"\n',
    }


def host(name: str, category: str | None = "analytics") -> dict[str, Any]:
    return {"host": name, "category": category, "classified_by": "trackers" if category else None,
            "loaded": ["script"], "states": ["accepted"], "pages": [URL]}  # fmt: skip


def violation(kind: str, *, name: str | None = None, host: str | None = None, state: str = "none",
              page: str = URL, what: str = "cookie") -> dict[str, Any]:  # fmt: skip
    return {"kind": kind, "what": what, "name": name, "host": host, "state": state, "page": page,
            "detail": f"{name or host} {kind}"}  # fmt: skip


def report(*, cookies: tuple[dict[str, Any], ...] = (), third_parties: tuple[dict[str, Any], ...] = (),
           violations: tuple[dict[str, Any], ...] = (), storage: tuple[dict[str, Any], ...] = (),
           pages: tuple[str, ...] = (URL,)) -> dict[str, Any]:  # fmt: skip
    """A report in the documented format (consent-gateway-scan/1)."""
    return {
        "format": "consent-gateway-scan/1",
        "url": URL,
        "site": "shop",
        "started_at": "2026-03-10T09:00:00+00:00",
        "finished_at": "2026-03-10T09:01:00+00:00",
        "banner": True,
        "states_scanned": ["none", "rejected", "accepted"],
        "notes": [],
        "pages": list(pages),
        "cookies": list(cookies),
        "storage": list(storage),
        "third_parties": list(third_parties),
        "violations": list(violations),
        "summary": {
            "pages": len(pages),
            "cookies": len(cookies),
            "unknown_cookies": sum(c["category"] is None for c in cookies),
            "third_parties": len(third_parties),
            "violations": len(violations),
        },  # fmt: skip
    }


def names(entries: tuple[Any, ...], key: str = "name") -> list[str]:
    return [entry[key] for entry in entries]


GA = cookie("_ga")
FBP = cookie("_fbp", category="advertising")
BEFORE = violation("before_decision", name="_ga")
TRACKER = violation("after_reject", host="www.google-analytics.com", state="rejected", what="request")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(report(cookies=(GA,)), report(cookies=(GA,)), {}, id="unchanged"),
        pytest.param(report(), report(cookies=(GA, FBP)), {"new_cookies": ["_fbp", "_ga"]}, id="new-cookies-sorted"),
        pytest.param(report(cookies=(GA, FBP)), report(cookies=(FBP,)), {"gone_cookies": ["_ga"]}, id="gone-cookie"),
        # a cookie is (name, domain, path): the same name on another domain or path is another cookie
        pytest.param(
            report(cookies=(GA,)),
            report(cookies=(cookie("_ga", domain="shop.example.com"),)),
            {"new_cookies": ["_ga"], "gone_cookies": ["_ga"]},
            id="same-name-other-domain",
        ),  # fmt: skip
        pytest.param(
            report(cookies=(GA,)),
            report(cookies=(cookie("_ga", path="/shop"),)),
            {"new_cookies": ["_ga"], "gone_cookies": ["_ga"]},
            id="same-name-other-path",
        ),  # fmt: skip
        # what a cookie is classified as, or the states it was seen in, is not a new cookie
        pytest.param(
            report(cookies=(GA,)),
            report(cookies=(cookie("_ga", category=None, states=("none",)),)),
            {},
            id="attributes-changed",
        ),  # fmt: skip
        pytest.param(
            report(third_parties=(host("a.example"),)),
            report(third_parties=(host("b.example"), host("a.example", None))),
            {"new_third_parties": ["b.example"]},
            id="new-host",
        ),  # fmt: skip
        pytest.param(
            report(third_parties=(host("a.example"), host("b.example"))),
            report(),
            {"gone_third_parties": ["a.example", "b.example"]},
            id="gone-hosts",
        ),  # fmt: skip
        pytest.param(
            report(violations=(BEFORE,)),
            report(violations=(BEFORE, TRACKER)),
            {"new_violations": [TRACKER]},
            id="new-violation",
        ),  # fmt: skip
        pytest.param(
            report(violations=(BEFORE, TRACKER)),
            report(violations=(TRACKER,)),
            {"fixed_violations": [BEFORE]},
            id="fixed-violation",
        ),  # fmt: skip
        # the same violation found on another page of the site is neither new nor fixed
        pytest.param(
            report(violations=(BEFORE,)),
            report(violations=(violation("before_decision", name="_ga", page=f"{URL}about"),)),
            {},
            id="violation-on-another-page",
        ),  # fmt: skip
        # ... but in another state it is another violation
        pytest.param(
            report(violations=(BEFORE,)),
            report(violations=(violation("before_decision", name="_ga", state="rejected"),)),
            {
                "new_violations": [violation("before_decision", name="_ga", state="rejected")],
                "fixed_violations": [BEFORE],
            },
            id="violation-in-another-state",
        ),  # fmt: skip
        pytest.param(
            None,
            report(cookies=(GA,), third_parties=(host("a.example"),), violations=(BEFORE,)),
            {"new_cookies": ["_ga"], "new_third_parties": ["a.example"], "new_violations": [BEFORE]},
            id="first-scan",
        ),  # fmt: skip
    ],
)
def test_what_changed(old: dict[str, Any] | None, new: dict[str, Any], expected: dict[str, list[Any]]) -> None:
    diff = diff_reports(old, new)
    seen = {
        "new_cookies": names(diff.new_cookies),
        "gone_cookies": names(diff.gone_cookies),
        "new_third_parties": names(diff.new_third_parties, "host"),
        "gone_third_parties": names(diff.gone_third_parties, "host"),
        "new_violations": list(diff.new_violations),
        "fixed_violations": list(diff.fixed_violations),
    }
    assert seen == {key: expected.get(key, []) for key in seen}
    assert diff.unchanged is (not expected)


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"cookies": None, "third_parties": "x", "violations": 3},
        {"cookies": ["not an object", 7, None], "third_parties": [[]], "violations": [{"kind": 5}]},
        {"cookies": [{"name": None, "domain": ["x"]}]},
    ],
    ids=["empty", "wrong-types", "wrong-entries", "wrong-fields"],
)
def test_a_malformed_report_compares_without_an_error(broken: dict[str, Any]) -> None:
    """A stored report is data: one that is damaged or from elsewhere never breaks the page."""
    diff = diff_reports(broken, report(cookies=(GA,)))
    assert names(diff.new_cookies) == ["_ga"]
    assert isinstance(diff_reports(report(cookies=(GA,)), broken), ScanDiff)
