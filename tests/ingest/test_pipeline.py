"""The pipeline's steps, in order, and what reaches storage (no IP, no user agent)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.ingest.bots import IgnoreList
from gateway.ingest.event import AnonymousEvent, Dropped, DropReason, IncomingEvent
from gateway.ingest.geo import NO_GEO, Geo
from gateway.ingest.pipeline import PipelineContext, run_pipeline, screen_class
from gateway.ingest.visitor import DailySalts, visitor_id
from tests.conftest import make_settings, site_config

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
IP = "198.51.100.23"


class FakeCountryGeo:
    """A geo lookup that answers from a table (the real adapter has its own tests)."""

    def lookup(self, address: str) -> Geo:
        return Geo("FR", "Île-de-France", "Paris") if address == IP else NO_GEO

    def describe(self) -> str:
        return "table"

    def close(self) -> None:
        return None


def incoming(**changes: Any) -> IncomingEvent:
    base = IncomingEvent(
        site_id="shop",
        name="pageview",
        hostname="shop.example.com",
        pathname="/pricing",
        page_url="https://shop.example.com/pricing?utm_source=newsletter&utm_medium=email&gclid=SECRET123",
        referrer=None,
        screen_width=1280,
        props={},
        consent=None,
        received_at=NOW,
        client_ip=IP,
        user_agent=CHROME,
    )
    return dataclasses.replace(base, **changes)


def context(tmp_path: Path, *, previous: bytes | None = None, **site: Any) -> PipelineContext:
    settings = make_settings(tmp_path, site=site_config(**site))
    salts = DailySalts("2026-03-10", b"s" * 32, previous, NOW + timedelta(hours=1))
    return PipelineContext(
        settings.sites["shop"], FakeCountryGeo(), salts, IgnoreList.parse(settings.sites["shop"].ignore_ips)
    )


def test_a_browser_pageview_is_enriched_and_anonymised(tmp_path: Path) -> None:
    event = run_pipeline(incoming(), context(tmp_path))
    assert isinstance(event, AnonymousEvent)
    assert (event.source, event.channel, event.utm_source, event.utm_medium) == (
        "newsletter",
        "paid",
        "newsletter",
        "email",
    )
    assert (event.browser, event.os, event.device, event.screen) == ("Chrome", "Windows", "desktop", "laptop")
    assert (event.country, event.region, event.city) == ("FR", "Île-de-France", "Paris")
    assert event.visitor_id == visitor_id(b"s" * 32, "shop", IP, CHROME) and event.previous_visitor_id is None
    stored = repr(event)
    for secret in (IP, CHROME, "SECRET123", "gclid"):
        assert secret not in stored


@pytest.mark.parametrize(
    ("changes", "site", "reason"),
    [
        pytest.param({"user_agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}, {}, DropReason.BOT, id="bot"),
        pytest.param({"user_agent": ""}, {}, DropReason.EMPTY_USER_AGENT, id="empty-user-agent"),
        pytest.param({"prefetch_headers": {"sec-purpose": "prefetch"}}, {}, DropReason.PREFETCH, id="prefetch"),
        pytest.param({}, {"ignore_ips": ["198.51.100.0/24"]}, DropReason.IGNORED_NETWORK, id="ignored-network"),
        pytest.param({"referrer": "https://semalt.com/"}, {}, DropReason.REFERRER_SPAM, id="referrer-spam"),
        pytest.param({}, {"analytics_consent": "required"}, DropReason.NO_CONSENT, id="required-consent-missing"),
        pytest.param({"consent": frozenset()}, {"analytics_consent": "required"}, DropReason.NO_CONSENT, id="refused"),
        pytest.param({"gpc": True}, {"analytics_consent": "required"}, DropReason.GPC, id="gpc-without-opt-in"),
        pytest.param(
            {"dnt": True}, {"analytics_consent": "required", "honour_dnt": True}, DropReason.GPC, id="dnt-honoured"
        ),
    ],
)
def test_noise_and_missing_consent_are_dropped_with_a_reason(
    tmp_path: Path, changes: dict[str, Any], site: dict[str, Any], reason: DropReason
) -> None:
    assert run_pipeline(incoming(**changes), context(tmp_path, **site)) == Dropped(reason)


@pytest.mark.parametrize(
    ("changes", "site"),
    [
        pytest.param({"gpc": True}, {}, id="cookieless-counts-gpc-visitors-anonymously"),
        pytest.param({"consent": frozenset({"analytics"})}, {"analytics_consent": "required"}, id="consented"),
        pytest.param(
            {"consent": frozenset({"analytics"}), "gpc": True},
            {"analytics_consent": "required"},
            id="opted-in-with-gpc",
        ),
        pytest.param({"dnt": True}, {"honour_dnt": True}, id="cookieless-counts-dnt-visitors-anonymously"),
    ],
)
def test_counted(tmp_path: Path, changes: dict[str, Any], site: dict[str, Any]) -> None:
    assert isinstance(run_pipeline(incoming(**changes), context(tmp_path, **site)), AnonymousEvent)


def test_in_the_grace_period_the_visitor_is_also_known_under_yesterdays_salt(tmp_path: Path) -> None:
    event = run_pipeline(incoming(), context(tmp_path, previous=b"p" * 32))
    assert isinstance(event, AnonymousEvent)
    assert event.previous_visitor_id == visitor_id(b"p" * 32, "shop", IP, CHROME)
    assert event.previous_visitor_id != event.visitor_id


def test_visitor_ids_differ_by_salt_site_ip_and_user_agent() -> None:
    base = visitor_id(b"s" * 32, "shop", IP, CHROME)
    assert len(base) == 32
    assert base != visitor_id(b"t" * 32, "shop", IP, CHROME)
    assert base != visitor_id(b"s" * 32, "blog", IP, CHROME)
    assert base != visitor_id(b"s" * 32, "shop", "198.51.100.24", CHROME)
    assert base != visitor_id(b"s" * 32, "shop", IP, CHROME + " ")


@pytest.mark.parametrize(
    ("width", "size"),
    [
        (None, None),
        (375, "mobile"),
        (575, "mobile"),
        (576, "tablet"),
        (991, "tablet"),
        (1280, "laptop"),
        (2560, "desktop"),
    ],
)
def test_screen_classes(width: int | None, size: str | None) -> None:
    assert screen_class(width) == size


def test_nothing_personal_in_tags_path_name_or_props_reaches_the_stored_event(tmp_path: Path) -> None:
    """An attacker (or a careless site) puts an email, a phone number and a token everywhere it can."""
    event = run_pipeline(
        incoming(
            name="Signup alice@inbox.test",
            pathname="/welcome/+14155552671",  # a server-side path is not scrubbed by the payload
            page_url="https://shop.example.com/?ref=alice%40inbox.test&utm_campaign=bob@example.org"
            "&utm_content=0612345678&utm_term=550e8400-e29b-41d4-a716-446655440000",
            referrer="https://mail.example.net/read?to=carol@inbox.test",
            props={"email": "dave@inbox.test", "erin@inbox.test": "x", "plan": "pro", "day": "2026-03-10"},
        ),
        context(tmp_path),
    )
    assert isinstance(event, AnonymousEvent)
    assert (event.source, event.utm_source, event.utm_campaign, event.utm_content, event.utm_term) == (
        "[email]",
        "[email]",
        "[email]",
        "[phone]",
        "[token]",
    )
    assert (event.name, event.pathname) == ("Signup [email]", "/welcome/[phone]")
    assert event.props == {"email": "[email]", "[email]": "x", "plan": "pro", "day": "2026-03-10"}
    stored = repr(event)
    for secret in (
        "alice",
        "bob",
        "carol",
        "dave",
        "erin",
        "inbox.test",
        "example.org",
        "@",
        "4155552671",
        "0612345678",
    ):
        assert secret not in stored
