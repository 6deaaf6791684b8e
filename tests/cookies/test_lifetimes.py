from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.cookies.lifetimes import SESSION, Lifetime, parse_lifetime, shorter


@pytest.mark.parametrize(
    ("text", "seconds", "shown"),
    [
        pytest.param("session", None, "session", id="session"),
        pytest.param("Session", None, "session", id="session-any-case"),
        pytest.param("30m", 1800, "30m", id="minutes"),
        pytest.param("30min", 1800, "30m", id="min-spelling"),
        pytest.param("24h", 86400, "1d", id="hours-normalise"),
        pytest.param("90d", 7776000, "90d", id="days"),
        pytest.param("13mo", 34186698, "13mo", id="months-gregorian-average"),
        pytest.param("12mo", 31556952, "1y", id="twelve-months-is-a-year"),
        pytest.param("5y", 157784760, "5y", id="years"),
        pytest.param("1000d", 86400000, "1000d", id="thousand-days"),
    ],
)
def test_lifetimes_read_and_print(text: str, seconds: int | None, shown: str) -> None:
    lifetime = parse_lifetime(text)
    assert lifetime.seconds == seconds
    assert str(lifetime) == shown


@pytest.mark.parametrize("text", ["", "forever", "13", "mo", "-5d", "1.5y", "5 years ago", "1e9s"])
def test_bad_lifetimes_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="expected a lifetime"):
        parse_lifetime(text)


def test_describe_reads_like_a_person() -> None:
    assert parse_lifetime("13mo").describe() == "13 months"
    assert parse_lifetime("1y").describe() == "1 year"
    assert SESSION.describe() == "end of session"


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9))
def test_shorter_is_the_minimum_and_session_is_shortest(a: int, b: int) -> None:
    assert shorter(Lifetime(a), Lifetime(b)).seconds == min(a, b)
    assert shorter(Lifetime(a), SESSION) == SESSION == shorter(SESSION, Lifetime(b))


@given(st.integers(min_value=1, max_value=999999), st.sampled_from(["s", "m", "h", "d", "w", "mo", "y"]))
def test_printing_then_reading_gives_the_same_lifetime(number: int, unit: str) -> None:
    lifetime = parse_lifetime(f"{number}{unit}")
    assert parse_lifetime(str(lifetime)) == lifetime
