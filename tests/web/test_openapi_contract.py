"""The stats API against its own OpenAPI document, by schemathesis: what the document allows is answered, what it
forbids is a 400, and every answer (status, content type, headers, body) is one the document describes.

Every built-in check runs, on requests made from the whole document (examples, coverage and fuzzing phases, valid
and invalid data) and sent with the shop's API key to the real app on uvicorn. The site is configured with a
filtered-query limit out of reach, so a 429 (still documented, tested in tests/web/test_rate_limit.py) cannot
pass for a contract failure.

OpenAPI cannot tie one query parameter to another, so the rules between them are stated in the document's words
(a custom period needs ``from`` and ``to``, ``to`` not before ``from``, at most ``MAX_DAYS`` days, ...). They are
restated here, independently of the code, only to keep the generator's *valid* requests valid; the 400 each one
answers is asserted in tests/web/test_stats_api.py.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import settings
from schemathesis import Case as AnyCase

from gateway.consent.export import MAX_DAYS as EXPORT_MAX_DAYS
from gateway.stats.period import MAX_DAYS
from gateway.web.openapi import CONSENT_LOG_PATH, OPENAPI_PATH, openapi_document
from tests.module_stores import store_kind_per_module  # noqa: F401 - the server is built once per store
from tests.web.test_stats_api import NOW, Api

pytestmark = pytest.mark.integration
Case = AnyCase[Any]
#: The most days each named period can cover.
_NAMED_LENGTHS = {"today": 1, "yesterday": 1, "7d": 7, "30d": 30, "month": 31, "last_month": 31, "year": 366}


def rule_between_parameters_broken(query: Mapping[str, Any]) -> str | None:
    """Which of the document's worded rules between parameters ``query`` breaks, if any."""
    days = {}
    for name in ("from", "to"):
        if name in query:
            try:
                days[name] = date.fromisoformat(query[name])
            except ValueError:
                return "a day of year 0 (RFC 3339 has one; the calendar starts at year 1)"
    period = query.get("period", "30d")
    if period != "custom":
        length = _NAMED_LENGTHS[period]
    elif len(days) < 2:
        return "a custom period needs from and to"
    else:
        first, last = days["from"], days["to"]
        length = (last - first).days + 1
        if last < first:
            return "to before from"
        if length > MAX_DAYS:
            return f"more than {MAX_DAYS} days"
        if first - date.min <= timedelta(days=length) or last >= date.max:
            return "too close to the ends of the calendar"
    if query.get("interval") == "hour" and length > 7:
        return "hours over more than 7 days"
    return None


def export_rule_broken(query: Mapping[str, Any]) -> str | None:
    """Which worded rule of the consent log export ``query`` breaks, if any."""
    try:
        first, last = date.fromisoformat(query["from"]), date.fromisoformat(query["to"])
    except (KeyError, ValueError):
        return "from and to are days"
    if last < first:
        return "to before from"
    if (last - first).days + 1 > EXPORT_MAX_DAYS:
        return f"more than {EXPORT_MAX_DAYS} days"
    if first == date.min or last == date.max:
        return "too close to the ends of the calendar"
    if query.get("revisions") == "1" and query.get("format") != "json":
        return "revisions in CSV"
    return None


def valid_by_the_worded_rules(context: schemathesis.HookContext, case: Case) -> bool:
    """Valid data stays valid by the worded rules too; invalid data is kept as generated."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return True
    if case.operation.path == CONSENT_LOG_PATH:
        return export_rule_broken(case.query or {}) is None
    return rule_between_parameters_broken(case.query or {}) is None


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> Iterator[Api]:
    """The traffic of tests/web/test_stats_api.py, k = 2, the clock pinned, filtered queries not limited."""
    with Api(tmp_path_factory.mktemp("contract")) as shared:
        yield shared


SCHEMA = schemathesis.openapi.from_dict(openapi_document())
# Every request asks about the one site the key reads: other ids answer 404 or 403 (covered in
# tests/web/test_stats_api.py) and would leave every parameter after site_id untested.
SCHEMA.config.update(parameters={"query.site_id": "shop", "path.site_id": "shop"})
SCHEMA.hook("filter_case")(valid_by_the_worded_rules)


#: What schemathesis puts in the Authorization header for the shop's key, swapped for the key as each request
#: leaves: some cases (the coverage phase's) are made when the tests are collected, before the key exists.
KEY_MARK = "Bearer the-shop-key"


@SCHEMA.auth(refresh_interval=None)
class ShopKey:
    """The shop's API key as schemathesis' own authentication, so the ignored-auth check knows it is meant and
    probes each operation without it and with a wrong one; cases meant to lack it go without.
    """

    def get(self, case: Case, context: schemathesis.AuthContext) -> str:
        return KEY_MARK

    def set(self, case: Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = data


@dataclass
class Contract:
    url: str
    authorization: str
    #: Statuses answered, so the run shows it reached the figures (200) and the rules (400), not only 401s.
    statuses: Counter[int] = field(default_factory=Counter)
    #: Statuses of the consent log export, which answers CSV or JSON when it answers 200.
    export_statuses: Counter[int] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def contract(api: Api) -> Iterator[Contract]:
    shared = Contract(api.server.url, f"Bearer {api.shop_key}")
    yield shared
    assert {200, 400} <= set(shared.statuses), shared.statuses
    assert {200, 400} <= set(shared.export_statuses), shared.export_statuses


def test_the_document_served_is_the_one_built(api: Api) -> None:
    served = httpx.get(f"{api.server.url}{OPENAPI_PATH}", timeout=30)
    assert json.loads(served.text) == openapi_document()
    assert api.settings.filtered_query_limit == 100_000  # no 429 can stand in for an answer


@SCHEMA.parametrize()
@settings(max_examples=40, derandomize=True, deadline=None)
def test_every_answer_keeps_the_documented_contract(case: Case, contract: Contract) -> None:
    if case.headers and case.headers.get("Authorization") == KEY_MARK:
        case.headers["Authorization"] = contract.authorization
    response = case.call_and_validate(base_url=contract.url)
    contract.statuses[response.status_code] += 1
    if case.operation.path == CONSENT_LOG_PATH:
        contract.export_statuses[response.status_code] += 1


def test_the_worded_rules_are_the_ones_the_api_enforces(api: Api) -> None:
    """The test's restatement of the rules between parameters is no looser than the API (else it hides answers)."""
    today = NOW.date().isoformat()
    for query, broken in [
        ({"period": "custom", "from": today}, "a custom period needs from and to"),
        ({"period": "custom", "from": today, "to": "2026-03-01"}, "to before from"),
        ({"period": "custom", "from": "2020-01-01", "to": today}, f"more than {MAX_DAYS} days"),
        ({"period": "custom", "from": "0001-01-01", "to": "0001-01-01"}, "too close to the ends of the calendar"),
        ({"period": "custom", "from": "9999-12-31", "to": "9999-12-31"}, "too close to the ends of the calendar"),
        ({"period": "30d", "interval": "hour"}, "hours over more than 7 days"),
    ]:
        assert rule_between_parameters_broken(query) == broken
        response = api.get("/api/v1/stats/timeseries", **query)
        assert response.status_code == 400, (query, response.text)
    assert rule_between_parameters_broken({"period": "7d", "from": "0000-01-01"}) is not None
    assert api.get("/api/v1/stats/aggregate", period="7d", **{"from": "0000-01-01"}).status_code == 400
    assert rule_between_parameters_broken({"period": "7d", "interval": "hour"}) is None
    assert api.get("/api/v1/stats/timeseries", period="7d", interval="hour").status_code == 200
