"""The served scripts and the site configuration they load, on a real uvicorn."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import create_app
from gateway.clock import FixedClock
from gateway.consent.texts import LANGUAGES, pick_language, shipped_texts
from gateway.ingest.geo import NO_GEO, Geo, NullGeo
from gateway.settings import SettingsError
from gateway.storage.location import DatabaseLocation
from gateway.web.snippets import build_bundles, script_tag, strip_js
from tests.conftest import SITE_ORIGIN, LiveServer, make_settings, site_config
from tests.privacy.stored import stored_bytes
from tests.stores import query
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
Start = Callable[[Any], LiveServer]


@pytest.fixture
def gateway(tmp_path: Path, live_server: Start) -> Iterator[httpx.Client]:
    site = site_config(
        banner={"position": "box", "theme": {"--cg-accent": "#0b57d0"}, "texts": {"de": {"button.accept_all": "Ja"}}},
        storage={"analytics": ["_hjSession*"]},
    )
    server = live_server(create_app(make_settings(tmp_path, site=site)))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def test_the_bundle_is_served_short_cached_and_at_an_immutable_versioned_url(gateway: httpx.Client) -> None:
    bundles = build_bundles()
    short = gateway.get("/c.js", headers={"accept-encoding": "identity"})
    assert short.status_code == 200 and short.content == bundles.consent.body
    assert short.headers["content-type"].startswith("text/javascript")
    assert "max-age=300" in short.headers["cache-control"]
    assert short.headers["access-control-allow-origin"] == "*"  # SRI with crossorigin="anonymous" needs it
    pinned = gateway.get(bundles.consent.versioned_path, headers={"accept-encoding": "identity"})
    assert pinned.content == bundles.consent.body and "immutable" in pinned.headers["cache-control"]
    digest = base64.b64encode(hashlib.sha384(pinned.content).digest()).decode()
    assert bundles.consent.integrity == f"sha384-{digest}"
    assert gateway.get("/c.0123456789ab.js").status_code == 404  # an old version is not silently swapped


def test_gzip_and_etags(gateway: httpx.Client) -> None:
    raw = httpx.get(str(gateway.base_url) + "/t.js", headers={"accept-encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.content == build_bundles().tracker.body  # httpx decoded the gzip body
    again = gateway.get("/t.js", headers={"if-none-match": raw.headers["etag"]})
    assert again.status_code == 304 and not again.content


def test_budgets_tracker_and_whole_bundle_gzipped() -> None:
    bundles = build_bundles()
    assert len(gzip.compress(bundles.tracker.body, 9)) <= 1536, "tracker over 1.5 KB gzipped"
    assert len(gzip.compress(bundles.consent.body, 9)) <= 8192, "consent + UI + CSS + texts + tracker over 8 KB"


def test_the_bundle_inlines_css_texts_and_version_and_lists_what_is_sent() -> None:
    body = build_bundles().consent.body.decode()
    assert body.startswith("/*!") and "__CG_" not in body
    assert json.dumps(shipped_texts("en")["button.reject_all"]) in body
    assert body.rstrip().endswith("})();")


def test_strip_js_drops_comment_lines_and_indentation_only() -> None:
    source = "// a comment\n  var a = 1;\n\n    // another\n  var url = 'https://x';\n"
    assert strip_js(source) == "var a = 1;\nvar url = 'https://x';"


def test_script_tag_pins_the_version_with_integrity() -> None:
    bundles = build_bundles()
    tag = script_tag(bundles, "https://consent.example.com/", "shop")
    assert f'src="https://consent.example.com{bundles.consent.versioned_path}"' in tag
    assert f'integrity="{bundles.consent.integrity}"' in tag and 'crossorigin="anonymous"' in tag


def test_site_config_lists_categories_services_cookies_texts_and_look(gateway: httpx.Client) -> None:
    response = gateway.get("/api/config/shop", params={"lang": "de-AT"}, headers={"origin": SITE_ORIGIN})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == SITE_ORIGIN
    config = response.json()
    assert config["lang"] == "de" and config["texts"]["button.accept_all"] == "Ja"  # the site's override
    assert config["texts"]["button.reject_all"] == shipped_texts("de")["button.reject_all"]
    by_id = {category["id"]: category for category in config["categories"]}
    assert list(by_id) == ["essential", "functional", "analytics", "advertising"]
    assert by_id["essential"]["required"] and not by_id["analytics"]["required"]
    assert [s["id"] for s in by_id["analytics"]["services"]] == ["google-analytics", "hotjar"]
    assert any(cookie["name"] == "shop_theme" for cookie in by_id["functional"]["cookies"])  # the site's own rule
    assert "_ga" in by_id["analytics"]["clear"] and "cg_consent" not in by_id["analytics"]["clear"]
    assert by_id["analytics"]["storage"] == ["_hjSession*"]
    assert config["banner"] == {"position": "box", "theme": {"--cg-accent": "#0b57d0"}}
    assert config["endpoints"] == {
        "consent": "consent",
        "event": "api/event",
        "privacy": "privacy?site=shop",
        "cookies": "api/cookies",
    }
    assert config["known"] == "^(?:cg_consent|shop_theme)$"  # declared names the snippet does not report


def test_site_config_refuses_unknown_sites_and_foreign_origins(gateway: httpx.Client) -> None:
    assert gateway.get("/api/config/nope").status_code == 404
    assert gateway.get("/api/config/<script>").status_code == 404
    assert gateway.get("/api/config/shop", headers={"origin": "https://evil.example"}).status_code == 403


@pytest.mark.parametrize(
    ("requested", "expected"),
    [("de-AT", "de"), ("FR", "fr"), ("pt_BR", "pt"), ("lt", "lt"), ("xx", "en"), ("", "en"), (None, "en")],
)
def test_language_choice(requested: str | None, expected: str) -> None:
    assert pick_language(requested) == expected


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_every_text_with_its_placeholders(language: str) -> None:
    english, texts = (
        shipped_texts("en"),
        json.loads(
            (Path(__file__).resolve().parents[2] / "consent_ui" / "i18n" / f"{language}.json").read_text("utf-8")
        ),
    )
    assert set(texts) == set(english)
    for key, text in english.items():
        for placeholder in ("{category}", "{site}"):
            assert (placeholder in text) == (placeholder in texts[key]), (language, key)


@pytest.mark.parametrize(
    ("banner", "message"),
    [
        ({"position": "top"}, "banner.position"),
        ({"theme": {"color": "red"}}, "banner.theme.color"),
        ({"theme": {"--cg-bg": "red;}</style>"}}, "banner.theme.--cg-bg"),
        ({"texts": {"xx": {"button.accept_all": "OK"}}}, "banner.texts.xx"),
        ({"texts": {"de": {"button.nope": "OK"}}}, "banner.texts.de.button.nope"),
        ({"texts": {"de": {"button.accept_all": ""}}}, "banner.texts.de.button.accept_all"),
    ],
)
def test_bad_banner_settings_are_one_clear_error(tmp_path: Path, banner: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=f"sites.shop.{message}"):
        make_settings(tmp_path, site=site_config(banner=banner))


def test_site_config_revalidates_with_an_etag(gateway: httpx.Client) -> None:
    first = gateway.get("/api/config/shop", params={"lang": "fr"})
    assert first.status_code == 200 and first.headers["etag"]
    again = gateway.get("/api/config/shop", params={"lang": "fr"}, headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and not again.content
    other = gateway.get("/api/config/shop", params={"lang": "de"}, headers={"if-none-match": first.headers["etag"]})
    assert other.status_code == 200 and other.json()["lang"] == "de"  # another language, another body


# --- banner impressions (b=1) ---------------------------------------------------------------------

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


class TableGeo:
    """A geo lookup that answers from a table (the MaxMind adapter has its own tests)."""

    def lookup(self, address: str) -> Geo:
        return Geo("FR", None, None) if address == "127.0.0.1" else NO_GEO

    def describe(self) -> str:
        return "table"

    def close(self) -> None:
        return None


def impressions(database: DatabaseLocation) -> list[tuple[Any, ...]]:
    return list(query(database, "SELECT * FROM banner_impressions ORDER BY site_id, day, country, device"))


def test_b1_counts_a_banner_impression_per_day_country_and_device_and_a_304_counts_too(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    clock = FixedClock(datetime(2026, 3, 10, 23, 59, 55, tzinfo=UTC))
    with (
        LiveServer(create_app(settings, clock=clock, geo=TableGeo())) as server,
        httpx.Client(base_url=server.url, timeout=10, headers={"origin": SITE_ORIGIN, "user-agent": FIREFOX}) as http,
    ):
        plain = http.get("/api/config/shop", params={"lang": "fr"})  # a stored decision: no b=1, not counted
        shown = http.get("/api/config/shop", params={"lang": "fr", "b": "1"})
        assert shown.status_code == 200 and shown.content == plain.content
        assert {k: shown.headers[k] for k in ("etag", "cache-control")} == {
            k: plain.headers[k] for k in ("etag", "cache-control")
        }  # as cacheable as before
        revalidated = http.get(
            "/api/config/shop", params={"lang": "fr", "b": "1"}, headers={"if-none-match": shown.headers["etag"]}
        )
        assert revalidated.status_code == 304  # the snippet revalidates on every page: still one banner shown
        http.get("/api/config/shop", params={"lang": "de", "b": "1"}, headers={"user-agent": IPHONE})
        http.get("/api/config/shop", params={"b": "1"}, headers={"user-agent": GOOGLEBOT})  # a crawler: not counted
        http.get("/api/config/shop", params={"b": "yes"})  # only b=1 counts
        assert http.get("/api/config/nope", params={"b": "1"}).status_code == 404
        assert (
            http.get("/api/config/shop", params={"b": "1"}, headers={"origin": "https://evil.example"}).status_code
            == 403
        )
        clock.advance(5)  # 2026-03-11 00:00:00 UTC
        http.get("/api/config/shop", params={"b": "1"})
        assert impressions(settings.database) == []  # counted in memory; written at most every 10 s
    # Shutdown writes what is pending.
    assert impressions(settings.database) == [
        ("shop", "2026-03-10", "FR", "desktop", 2),
        ("shop", "2026-03-10", "FR", "mobile", 1),
        ("shop", "2026-03-11", "FR", "desktop", 1),
    ]
    assert b"127.0.0.1" not in stored_bytes(settings.database)  # the address served the country lookup in memory only


def test_impressions_are_written_from_the_request_path_every_10_seconds(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    clock = FixedClock(datetime(2026, 3, 10, 9, 30, tzinfo=UTC))
    with (
        LiveServer(create_app(settings, clock=clock, geo=NullGeo())) as server,
        httpx.Client(base_url=server.url, timeout=10, headers={"user-agent": IPHONE}) as http,
    ):
        http.get("/api/config/shop", params={"b": "1"})
        clock.advance(10)
        http.get("/api/config/shop", params={"b": "1"})  # starts a background flush of both
        wait_until(lambda: impressions(settings.database), message="the background flush never wrote")
        assert impressions(settings.database) == [("shop", "2026-03-10", "", "mobile", 2)]
        http.get("/api/config/shop", params={"b": "1"})
    assert impressions(settings.database) == [("shop", "2026-03-10", "", "mobile", 3)]
