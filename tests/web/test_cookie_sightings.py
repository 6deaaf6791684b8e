"""``POST /api/cookies`` on a real uvicorn: names counted as seen by script, every bad input refused clearly."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import create_app
from gateway.clock import FixedClock
from gateway.settings import Settings
from gateway.storage.cookie_report import CookieTally, cookie_report
from gateway.web.cookie_sightings import MAX_NAME_LENGTH, MAX_NAMES
from gateway.web.snippets import listed_sightings
from tests.conftest import SITE_ORIGIN, LiveServer, make_settings
from tests.stores import open_test_store

pytestmark = pytest.mark.integration
NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
#: What the snippet sends: a JSON string as text/plain (no CORS preflight), without credentials.
PLAIN = {"content-type": "text/plain;charset=UTF-8", "origin": SITE_ORIGIN}


class Gateway:
    """The gateway on a pinned clock (the rate limit does not refill), and its cookie report read after it stops."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.settings: Settings = make_settings(tmp_path)
        self.server = LiveServer(create_app(self.settings, clock=FixedClock(NOW))).__enter__()
        self.client = httpx.Client(base_url=self.server.url, timeout=10)

    def post(self, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post("/api/cookies", content=content, headers=PLAIN if headers is None else headers)

    def report(self) -> dict[str, CookieTally]:
        """Stop the gateway (its shutdown writes what it counted), then read the report."""
        self.close()

        async def read() -> list[CookieTally]:
            db = await open_test_store(self.tmp_path / "gateway.sqlite3").open()
            try:
                return await cookie_report(db, "shop")
            finally:
                await db.close()

        return {tally.name: tally for tally in asyncio.run(read())}

    def close(self) -> None:
        self.client.close()
        self.server.__exit__()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    running = Gateway(tmp_path)
    yield running
    if running.server.thread.is_alive():
        running.close()


def test_names_are_counted_as_seen_by_script_and_classified_with_the_catalog(gateway: Gateway) -> None:
    first = gateway.post({"s": "shop", "c": ["_hjid", "analytics_thing", "_hjid"]})
    assert first.status_code == 202, first.text
    assert first.headers["access-control-allow-origin"] == SITE_ORIGIN and first.content == b""
    assert gateway.post({"s": "shop", "c": ["analytics_thing"]}).status_code == 202
    # A server (no Origin) may report too, as it may post events.
    assert gateway.post({"s": "shop", "c": ["_ga"]}, headers={"content-type": "text/plain"}).status_code == 202
    report = gateway.report()
    assert {name: (t.times_seen_by_script, t.category, t.seen_by) for name, t in report.items()} == {
        "_hjid": (1, "analytics", "script"),  # once: a name repeated in one report counts once
        "analytics_thing": (2, None, "script"),
        "_ga": (1, "analytics", "script"),
    }


def test_the_preflight_admits_the_sites_origins_only(gateway: Gateway) -> None:
    asked = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    allowed = gateway.client.options("/api/cookies", headers={"origin": SITE_ORIGIN, **asked})
    assert allowed.status_code == 204 and allowed.headers["access-control-allow-origin"] == SITE_ORIGIN
    assert (
        gateway.client.options("/api/cookies", headers={"origin": "https://evil.example", **asked}).status_code == 403
    )


BAD_INPUTS: list[tuple[str, Any, int, str]] = [
    ("empty body", b"", 400, "the body is empty"),
    ("not JSON", b"{s: shop", 400, "not valid JSON"),
    ("not UTF-8", b'{"s": "shop", "c": ["\xff"]}', 400, "not valid UTF-8"),
    ("not an object", ["_ga"], 400, "expected a JSON object"),
    ("no site", {"c": ["_ga"]}, 404, "'s' must name a configured site"),
    ("unknown site", {"s": "nope", "c": ["_ga"]}, 404, "unknown site 'nope'"),
    ("site not a string", {"s": ["shop"], "c": ["_ga"]}, 404, "unknown site"),
    ("no names", {"s": "shop"}, 400, "'c' must be a non-empty list"),
    ("empty names", {"s": "shop", "c": []}, 400, "'c' must be a non-empty list"),
    ("names not a list", {"s": "shop", "c": "_ga"}, 400, "'c' must be a non-empty list"),
    ("too many names", {"s": "shop", "c": [f"n{i}" for i in range(MAX_NAMES + 1)]}, 400, f"at most {MAX_NAMES}"),
    ("a name not a string", {"s": "shop", "c": ["_ga", 7]}, 400, "c[1] is not a cookie name"),
    ("an empty name", {"s": "shop", "c": [""]}, 400, "c[0] is not a cookie name"),
    ("HTML", {"s": "shop", "c": ["<script>alert(1)</script>"]}, 400, "character 1 (U+003C) is not allowed"),
    ("a value", {"s": "shop", "c": ["_hjid=SECRETVALUE"]}, 400, "character 6 (U+003D) is not allowed"),
    ("a control character", {"s": "shop", "c": ["a\x00b"]}, 400, "c[0] is not a cookie name"),
    ("a newline", {"s": "shop", "c": ["a\r\nSet-Cookie: x"]}, 400, "c[0] is not a cookie name"),
    ("a space", {"s": "shop", "c": ["a b"]}, 400, "c[0] is not a cookie name"),
    ("non-ASCII", {"s": "shop", "c": ["café"]}, 400, "c[0] is not a cookie name"),
    ("too long", {"s": "shop", "c": ["x" * (MAX_NAME_LENGTH + 1)]}, 400, f"found {MAX_NAME_LENGTH + 1} characters"),
    ("too large", {"s": "shop", "c": ["x" * 5000]}, 413, "larger than 4096 bytes"),
]


@pytest.mark.parametrize(("body", "status", "says"), [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_with_a_clear_error_and_nothing_is_counted(
    gateway: Gateway, body: Any, status: int, says: str
) -> None:
    response = gateway.post(body)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]
    assert not any(echo in response.text for echo in ("<script>", "SECRETVALUE", "\x00", "Set-Cookie"))  # never echoed
    assert gateway.report() == {}


def test_a_foreign_origin_is_refused(gateway: Gateway) -> None:
    response = gateway.post({"s": "shop", "c": ["_ga"]}, headers={**PLAIN, "origin": "https://evil.example"})
    assert response.status_code == 403 and "not allowed for site 'shop'" in response.json()["error"]
    assert gateway.report() == {}


def test_a_flood_from_one_network_is_slowed_with_retry_after(gateway: Gateway) -> None:
    answers = [gateway.post({"s": "shop", "c": [f"flood{i}"]}) for i in range(25)]
    statuses = [answer.status_code for answer in answers]
    assert statuses[:20] == [202] * 20 and set(statuses[20:]) == {429}  # a burst of 20, then the clock stands still
    limited = answers[-1]
    assert int(limited.headers["retry-after"]) >= 1 and "too many cookie reports" in limited.json()["error"]
    assert limited.headers["access-control-allow-origin"] == SITE_ORIGIN  # the site's script can read why
    assert len(gateway.report()) == 20


def test_the_endpoint_is_in_the_site_config_the_snippet_loads(gateway: Gateway) -> None:
    config = gateway.client.get("/api/config/shop", headers={"origin": SITE_ORIGIN}).json()
    assert config["endpoints"]["cookies"] == "api/cookies"
    known = re.compile(config["known"])  # the snippet's RegExp; Python reads this pattern the same
    assert known.match("shop_theme") and known.match("cg_consent")
    assert not known.match("_hjid") and not known.match("shop_themeX")


def test_the_banner_lists_a_name_only_scripts_reported_once_k_page_loads_did() -> None:
    """One post to /api/cookies must not put a cookie on the site's public banner: a script-only name waits
    for k reports; a name the middleware saw in a Set-Cookie (kept or blocked) is listed at once."""

    def tally(name: str, *, set_: int = 0, blocked: int = 0, script: int = 0) -> CookieTally:
        return CookieTally("shop", name, "analytics", set_, blocked, 0, None, NOW, NOW, script)

    report = [
        tally("_hjid", script=4),
        tally("_ga", script=5),
        tally("_fbp", blocked=1),
        tally("_trk", set_=1, script=1),
    ]
    assert listed_sightings(report, 5) == {"_ga", "_fbp", "_trk"}
    assert listed_sightings(report, 4) == {"_hjid", "_ga", "_fbp", "_trk"}
