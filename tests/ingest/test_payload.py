"""parse_event: every field checked, every mistake named."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.ingest.payload import PayloadError, parse_event

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
GOOD = {"s": "shop", "n": "pageview", "u": "https://shop.example.com/pricing?plan=pro#top"}


def parse(raw: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return parse_event(raw, received_at=NOW, client_ip="203.0.113.9", user_agent="UA", headers=headers or {})


def test_short_and_long_keys_read_the_same() -> None:
    long_form = {"site": "shop", "name": "pageview", "url": GOOD["u"], "referrer": "https://t.co/x", "width": 390}
    short = parse({**GOOD, "r": "https://t.co/x", "w": 390})
    assert parse(long_form) == short
    assert (short.hostname, short.pathname, short.screen_width, short.referrer) == (
        "shop.example.com",
        "/pricing",
        390,
        "https://t.co/x",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"s": None}, "'site' is missing", id="missing-site"),
        pytest.param({"n": ""}, "'name' is missing", id="empty-name"),
        pytest.param({"u": 42}, "'url' must be text", id="url-not-text"),
        pytest.param({"u": "/relative/path"}, "absolute http(s) URL", id="relative-url"),
        pytest.param({"u": "javascript:alert(1)"}, "absolute http(s) URL", id="javascript-url"),
        pytest.param({"u": "https://x.example/" + "a" * 2100}, "longer than 2048", id="url-too-long"),
        pytest.param({"n": "sign\nup"}, "control characters", id="name-control-characters"),
        pytest.param({"n": "x" * 121}, "longer than 120", id="name-too-long"),
        pytest.param({"w": "wide"}, "'width' must be", id="width-text"),
        pytest.param({"w": True}, "'width' must be", id="width-boolean"),
        pytest.param({"w": -1}, "'width' must be", id="width-negative"),
        pytest.param({"p": ["a"]}, "'props' must be an object", id="props-list"),
        pytest.param({"p": {str(i): "v" for i in range(31)}}, "at most 30", id="props-31-keys"),
        pytest.param({"p": {"plan": "x" * 301}}, "longer than 300", id="prop-value-301"),
        pytest.param({"p": {"plan": {"nested": 1}}}, "text, a number or true/false", id="prop-nested"),
        pytest.param({"p": {"": "v"}}, "1 to 100 printable", id="prop-empty-key"),
        pytest.param({"c": ["analytics", "tracking"]}, "unknown category 'tracking'", id="consent-unknown"),
        pytest.param({"c": "analytics"}, "'consent' must list", id="consent-text"),
        pytest.param({"x": 1}, "unknown field 'x'", id="unknown-field"),
        pytest.param({"n": "\ud800"}, "not valid Unicode", id="lone-surrogate"),
    ],
)
def test_mistakes_are_named(change: dict[str, Any], message: str) -> None:
    raw = {**GOOD, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(PayloadError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        parse(raw)
    assert raised.value.status == 400


def test_props_become_text_and_consent_a_set() -> None:
    event = parse(
        {**GOOD, "p": {"plan": "pro", "seats": 5, "trial": True}, "c": {"analytics": True, "advertising": False}}
    )
    assert event.props == {"plan": "pro", "seats": "5", "trial": "true"}
    assert event.consent == frozenset({"analytics"})
    assert parse(GOOD).consent is None  # the snippet did not say


def test_signals_and_prefetch_headers_are_read() -> None:
    event = parse(GOOD, {"sec-gpc": "1", "dnt": "1", "sec-purpose": "prefetch", "cookie": "secret"})
    assert event.gpc and event.dnt
    assert event.prefetch_headers == {"sec-purpose": "prefetch"}


def test_control_characters_are_removed_from_urls() -> None:
    event = parse({**GOOD, "u": "https://shop.example.com/a\x00b\x1fc", "r": "https://ref.example/\x07"})
    assert event.pathname == "/abc" and event.referrer == "https://ref.example/"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(["s", "n", "u", "r", "w", "p", "c", "site", "zz"]), json_values, max_size=8))
def test_any_json_object_is_an_event_or_a_payload_error(raw: dict[str, Any]) -> None:
    try:
        parse(raw)
    except PayloadError as error:
        assert error.status == 400 and str(error)


@pytest.mark.parametrize(
    ("url", "pathname"),
    [
        pytest.param("https://shop.example.com/unsubscribe/alice@example.com", "/unsubscribe/[email]", id="email"),
        pytest.param("https://shop.example.com/u/alice%40example.com/", "/u/[email]/", id="encoded-email"),
        pytest.param(
            "https://shop.example.com/reset/550e8400-e29b-41d4-a716-446655440000", "/reset/[token]", id="uuid"
        ),
        pytest.param("https://shop.example.com/call/+14155552671", "/call/[phone]", id="phone"),
        pytest.param("https://shop.example.com/2026-03-10/sale", "/2026-03-10/sale", id="date-stays"),
        pytest.param("https://shop.example.com/p/" + "x" * 1010 + "/bob@example.com", None, id="email-across-the-cut"),
    ],
)
def test_the_kept_path_is_scrubbed_before_it_is_cut(url: str, pathname: str | None) -> None:
    event = parse({**GOOD, "u": url})
    if pathname is not None:
        assert event.pathname == pathname
    assert "@" not in event.pathname and "example.com" not in event.pathname


def test_the_referrer_keeps_its_host_and_loses_what_its_query_names() -> None:
    event = parse({**GOOD, "r": "https://mail.example.org/inbox?u=alice@example.com#tel=0612345678"})
    assert event.referrer == "https://mail.example.org/inbox?u=[email]#tel=[phone]"
