"""Scrubbing personal-looking text: each rule as a table row, and properties an attacker cannot break."""

from __future__ import annotations

import string
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ingest.scrub import EMAIL, IP, PHONE, TOKEN, scrub_props, scrub_text, scrub_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("alice@example.com", EMAIL, id="email"),
        pytest.param("x alice.b+tag@mail.example.co.uk y", f"x {EMAIL} y", id="email-in-text"),
        pytest.param("alice%40example.com", EMAIL, id="email-url-encoded"),
        pytest.param("alice%2540example.com", EMAIL, id="email-encoded-twice"),
        pytest.param("ALICE%40EXAMPLE.COM", EMAIL, id="email-capitals"),
        pytest.param("mailto:bob@example.org?subject=hi", f"mailto:{EMAIL}?subject=hi", id="email-in-mailto"),
        pytest.param("z@q.io.alice@example.com", EMAIL, id="email-chained"),
        pytest.param("jürgen@beispiel.de", EMAIL, id="email-non-ascii"),
        pytest.param("@handle", "@handle", id="handle-is-no-email"),
        pytest.param("a@b", "a@b", id="no-dotted-domain"),
        pytest.param("+14155552671", PHONE, id="phone-e164"),
        pytest.param("+33 6 12 34 56 78", PHONE, id="phone-international-spaced"),
        pytest.param("+1 (415) 555-2671", PHONE, id="phone-us-area-code"),
        pytest.param("(415) 555-2671", PHONE, id="phone-us-national"),
        pytest.param("06 12 34 56 78", PHONE, id="phone-fr-pairs"),
        pytest.param("0612345678", PHONE, id="phone-bare-digits"),
        pytest.param("020 7946 0958", PHONE, id="phone-uk"),
        pytest.param("415.555.2671", PHONE, id="phone-dots"),
        pytest.param("612 345 678", PHONE, id="phone-es-triples"),
        pytest.param("call 0612345678: now", f"call {PHONE}: now", id="phone-before-colon"),
        pytest.param("user_0612345678", f"user_{PHONE}", id="phone-after-underscore"),
        pytest.param("2026-03-10 06 12 34 56 78", f"2026-03-10 {PHONE}", id="phone-after-date"),
        pytest.param("4111 1111 1111 1111", TOKEN, id="card-number"),
        pytest.param("81.2.69.142", IP, id="ipv4"),
        pytest.param("2026-03-10", "2026-03-10", id="date-iso"),
        pytest.param("2026-03-10 12:30", "2026-03-10 12:30", id="date-and-time"),
        pytest.param("2026-03-10T12:30:00Z", "2026-03-10T12:30:00Z", id="timestamp-iso"),
        pytest.param("10.03.2026", "10.03.2026", id="date-european"),
        pytest.param("10/03/2026", "10/03/2026", id="date-slashes"),
        pytest.param("1299.99", "1299.99", id="price"),
        pytest.param("12345.678", "12345.678", id="decimal"),
        pytest.param("1 299 000", "1 299 000", id="amount-grouped"),
        pytest.param("$1,299,000.00", "$1,299,000.00", id="amount-commas"),
        pytest.param("order 123456", "order 123456", id="short-id"),
        pytest.param("v1.2.3", "v1.2.3", id="version"),
        pytest.param("550e8400-e29b-41d4-a716-446655440000", TOKEN, id="uuid"),
        pytest.param(
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            TOKEN,
            id="jwt",
        ),
        pytest.param("/reset/5f2b8c9e1a3d4e6f7a8b9c0d1e2f3a4b/", f"/reset/{TOKEN}/", id="hex-token-in-path"),
        pytest.param("k=dQw4w9WgXcQ-a1B2c3D4e5F6g7H8", f"k={TOKEN}", id="base64url-token"),
        pytest.param("how-to-configure-nginx-2024-edition", "how-to-configure-nginx-2024-edition", id="slug"),
        pytest.param("spring2024sale", "spring2024sale", id="campaign-name"),
        pytest.param("analytics.example-site.com", "analytics.example-site.com", id="host-is-no-jwt"),
        pytest.param("<script>alert(1)</script>", "<script>alert(1)</script>", id="html-untouched"),
        pytest.param("'; DROP TABLE events; --", "'; DROP TABLE events; --", id="sql-untouched"),
        pytest.param("", "", id="empty"),
    ],
)
def test_personal_looking_text_becomes_a_marker_and_the_rest_stays(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


def test_a_url_keeps_its_host_and_path_and_loses_what_its_query_and_fragment_name() -> None:
    url = "https://news.example.org/2026/03/story?from=alice@example.com&page=2#tel=+14155552671"
    assert scrub_url(url) == f"https://news.example.org/2026/03/story?from={EMAIL}&page=2#tel={PHONE}"
    assert scrub_url("https://news.example.org/2026-03-10/story") == "https://news.example.org/2026-03-10/story"


def test_props_keys_and_values_are_scrubbed_and_clean_props_come_back_unchanged() -> None:
    clean = {"plan": "pro", "step": "2"}
    assert scrub_props(clean) is clean
    assert scrub_props({"plan": "pro", "bob@example.com": "+14155552671"}) == {"plan": "pro", EMAIL: PHONE}


_LOCAL = st.text(string.ascii_letters + string.digits + "._%+-'", min_size=1, max_size=64).filter(
    lambda local: local[-1].isalnum() or local[-1] in "_"
)
_LABEL = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=20)
_TLD = st.text(string.ascii_lowercase, min_size=2, max_size=10)
EMAILS = st.builds(
    lambda local, labels, tld, at: f"{local}{at}{'.'.join(labels)}.{tld}",
    _LOCAL,
    st.lists(_LABEL, min_size=1, max_size=4),
    _TLD,
    st.sampled_from(["@", "%40", "%2540"]),
)
HOSTILE = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list("@%40.-+() :/?&=#'\";<>\x00\x1f\x7f\u202e0123456789")),
    ),
    max_size=300,
)


@given(HOSTILE)
@settings(max_examples=400)
def test_scrubbing_twice_changes_nothing(text: str) -> None:
    once = scrub_text(text)
    assert scrub_text(once) == once


@given(HOSTILE)
@settings(max_examples=400)
def test_a_value_grows_by_at_most_a_sixth(text: str) -> None:
    assert len(scrub_text(text)) <= len(text) + len(text) // 6


@given(EMAILS, HOSTILE, HOSTILE)
@settings(max_examples=400)
def test_an_email_embedded_anywhere_is_removed(email: str, before: str, after: str) -> None:
    scrubbed = scrub_text(before + email + after)
    assert email not in scrubbed
    domain = email.rsplit("@", 1)[-1].rsplit("%40", 1)[-1]
    assert not any(f"{at}{domain}" in scrubbed for at in ("@", "%40"))


@given(st.from_regex(r"\+[1-9][0-9]{6,13}", fullmatch=True), HOSTILE, HOSTILE)
@settings(max_examples=200)
def test_an_e164_number_between_separators_is_removed(number: str, before: str, after: str) -> None:
    scrubbed = scrub_text(f"{before} {number} {after}")
    assert number not in scrubbed and number[1:] not in scrubbed


@given(HOSTILE)
def test_hostile_text_keeps_its_control_characters_and_markup_outside_matches(text: str) -> None:
    scrubbed = scrub_text(text)
    for char in '<>";\x00\x1f\x7f\u202e':
        assert scrubbed.count(char) == text.count(char)


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param("a" * 1000 + "%40" * 1000, id="many-encoded-at-after-a-long-local-part"),
        pytest.param("a@" * 2000, id="many-at"),
        pytest.param("1 " * 2000 + "x", id="many-digit-groups"),
        pytest.param("a." * 2000 + "@", id="many-labels"),
        pytest.param("aaaaaaaa." * 500, id="many-jwt-like-parts"),
        pytest.param("a1" * 2000, id="one-long-token"),
    ],
)
def test_scrubbing_stays_fast_on_text_built_to_backtrack(attack: str) -> None:
    started = time.perf_counter()
    scrub_text(attack)
    assert time.perf_counter() - started < 0.5
