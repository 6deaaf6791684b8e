"""Events are values: equal when their fields are, hashable, and their repr never shows the client."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.ingest.event import IncomingEvent
from tests.events import anonymous_event

AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _incoming(client_ip: str) -> IncomingEvent:
    return IncomingEvent(
        site_id="shop",
        name="pageview",
        hostname="shop.example.com",
        pathname="/",
        page_url="https://shop.example.com/",
        referrer=None,
        screen_width=None,
        props={},
        consent=None,
        received_at=AT,
        client_ip=client_ip,
        user_agent="Mozilla/5.0 (X11; Linux x86_64)",
    )


def test_events_compare_by_value() -> None:
    assert anonymous_event(AT, "v", "/a") == anonymous_event(AT, "v", "/a")
    assert anonymous_event(AT, "v", "/a") != anonymous_event(AT, "v", "/b")
    assert _incoming("203.0.113.7") == _incoming("203.0.113.7")


def test_events_hash_like_frozen_dataclasses() -> None:
    event = anonymous_event(AT, "v", "/a", props=(), consent=frozenset({"analytics"}))
    assert hash(event) == hash(anonymous_event(AT, "v", "/a", props=(), consent=frozenset({"analytics"})))


def test_the_repr_of_an_incoming_event_leaves_out_the_address_and_user_agent() -> None:
    text = repr(_incoming("203.0.113.7"))
    assert "203.0.113.7" not in text
    assert "Mozilla" not in text
