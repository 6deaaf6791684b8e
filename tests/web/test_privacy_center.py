"""``/privacy``: a visitor sees, changes, downloads and erases their own consent records, and nothing else."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import create_app
from tests.conftest import SITE_ORIGIN, LiveServer, make_settings
from tests.stores import database_location, query

pytestmark = pytest.mark.integration
Start = Callable[[Any], LiveServer]
ALL = {"functional": True, "analytics": True, "advertising": True}


class Center:
    def __init__(self, tmp_path: Path, start: Start) -> None:
        self.server = start(create_app(make_settings(tmp_path)))
        self.http = httpx.Client(base_url=self.server.url, timeout=10)

    def token(self, choices: dict[str, bool] = ALL) -> str:
        response = self.http.post("/consent", json={"site": "shop", "revision": 1, "choices": choices})
        self.http.cookies.clear()
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def post(self, **form: str) -> httpx.Response:
        response = self.http.post("/privacy", data={"site": "shop", **form})
        self.http.cookies.clear()
        return response


@pytest.fixture
def center(tmp_path: Path, live_server: Start) -> Iterator[Center]:
    center = Center(tmp_path, live_server)
    with center.http:
        yield center


def test_without_a_token_the_page_says_nothing_is_stored_and_is_locked_down(center: Center) -> None:
    page = center.http.get("/privacy", params={"site": "shop"})
    assert page.status_code == 200 and 'data-cg="none"' in page.text
    policy = page.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)  # type: ignore[union-attr]
    assert f'<script nonce="{nonce}">' in page.text and "default-src 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"


def test_the_token_shows_the_visitors_own_history(center: Center) -> None:
    token = center.token()
    page = center.post(token=token, action="view")
    assert page.status_code == 200
    assert page.text.count("<tr>") == 2  # the header row and one decision
    assert "Accepted all" in page.text


def test_changing_choices_appends_a_record_and_links_back_with_the_new_token(center: Center) -> None:
    token = center.token()
    page = center.post(token=token, action="save", **{"category.analytics": "on"})
    assert page.status_code == 200 and page.text.count("<tr>") == 3
    link = re.search(r'href="([^"]+)" data-cg="return"', page.text).group(1)  # type: ignore[union-attr]
    assert link.startswith(SITE_ORIGIN + "/#cg_consent=")
    new_token = link.split("#cg_consent=", 1)[1]
    state = center.http.get("/consent", params={"site": "shop", "token": new_token}).json()["state"]
    assert state["categories"] == {"essential": True, "functional": False, "analytics": True, "advertising": False}
    assert (
        state["consent_id"]
        == center.http.get("/consent", params={"site": "shop", "token": token}).json()["state"]["consent_id"]
    )


def test_withdrawal_and_export(center: Center) -> None:
    token = center.token()
    withdrawn = center.post(token=token, action="withdraw")
    assert "Withdrawn" in withdrawn.text
    export = center.post(token=token, action="export")
    assert export.headers["content-disposition"].startswith("attachment")
    methods = [record["method"] for record in export.json()["records"]]
    assert methods == ["accept_all", "withdraw"]


def test_erasure_leaves_only_a_tombstone(center: Center, tmp_path: Path) -> None:
    token = center.token()
    page = center.post(token=token, action="erase")
    assert page.status_code == 200 and "erased" in page.text
    assert center.post(token=token, action="export").json()["records"] == []  # nothing links to them any more
    rows = query(
        database_location(tmp_path / "gateway.sqlite3"),
        "SELECT consent_id, method, ip_network, page_path FROM consent_records",
    )
    assert rows and all(consent_id.startswith("erased-") for consent_id, *_ in rows)
    assert ("erase", None, None) in {(method, ip, path) for _, method, ip, path in rows}
    assert all(ip is None and path is None for _, _, ip, path in rows)


def test_a_forged_token_reaches_nothing(center: Center) -> None:
    token = center.token()
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    page = center.post(token=forged, action="export")
    assert page.headers["content-type"].startswith("text/html") and 'data-cg="none"' in page.text
    assert center.post(token=forged, action="erase").status_code == 200
    assert len(center.post(token=token, action="export").json()["records"]) == 1  # untouched


def test_cross_site_posts_and_bad_input_are_refused_clearly(center: Center) -> None:
    token = center.token()
    cross = center.http.post(
        "/privacy", data={"site": "shop", "token": token, "action": "erase"}, headers={"origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    fetched = center.http.post(
        "/privacy", data={"site": "shop", "token": token, "action": "erase"}, headers={"sec-fetch-site": "cross-site"}
    )
    assert fetched.status_code == 403
    assert len(center.post(token=token, action="export").json()["records"]) == 1
    assert center.post(token=token, action="<script>alert(1)</script>").status_code == 400
    assert "<script>alert(1)</script>" not in center.post(token=token, action="<script>alert(1)</script>").text
    assert center.http.post("/privacy", content=b"site=shop&token=" + b"x" * 5000).status_code == 413
    assert center.http.post("/privacy", content=b"site=\xff\xfe").status_code == 400
    assert center.http.get("/privacy", params={"site": "<b>nope</b>"}).status_code == 404


def test_the_page_speaks_the_visitors_language(center: Center) -> None:
    page = center.http.get("/privacy", params={"site": "shop", "lang": "de"})
    assert '<html lang="de">' in page.text and "Ihre Datenschutz" in page.text
    accepted = center.http.get("/privacy", params={"site": "shop"}, headers={"accept-language": "fr-CH,fr;q=0.9"})
    assert '<html lang="fr">' in accepted.text
