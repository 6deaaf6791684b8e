"""``Expires`` dates: the RFC 6265 section 5.1.1 reader against the http-state examples, and the writer."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.cookies.dates import format_cookie_date, parse_cookie_date

DATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "http-state"
EXAMPLE_FILES = ("dates-examples.json", "dates-bsd-examples.json")


def _load_examples() -> list[Any]:
    """Every case of both files; the BSD one opens with a '//' licence comment that JSON does not allow."""
    if not DATA.is_dir():
        return [pytest.param(None, None, id="no-data", marks=pytest.mark.skip(reason=f"no http-state data at {DATA}"))]
    params = []
    for name in EXAMPLE_FILES:
        lines = (DATA / name).read_text(encoding="utf-8").splitlines()
        cases = json.loads("\n".join(line for line in lines if not line.lstrip().startswith("//")))
        params += [pytest.param(case["test"], case["expected"], id=f"{name}:{case['test']}") for case in cases]
    return params


@pytest.mark.parametrize(("text", "expected"), _load_examples())
def test_http_state_date_examples(text: str, expected: str | None) -> None:
    parsed = parse_cookie_date(text)
    if expected is None:
        assert parsed is None
    else:
        assert parsed is not None
        assert format_cookie_date(parsed) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Sun, 06 Nov 1994 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC), id="imf-fixdate"),
        pytest.param("Sunday, 06-Nov-94 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC), id="rfc-850"),
        pytest.param("Sun Nov  6 08:49:37 1994", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC), id="asctime"),
        pytest.param("1 jan 70 0:0:0", datetime(1970, 1, 1, tzinfo=UTC), id="two-digit-year-70-means-1970"),
        pytest.param("1 jan 99 0:0:0", datetime(1999, 1, 1, tzinfo=UTC), id="two-digit-year-99-means-1999"),
        pytest.param("1 jan 00 0:0:0", datetime(2000, 1, 1, tzinfo=UTC), id="two-digit-year-00-means-2000"),
        pytest.param("1 jan 69 0:0:0", datetime(2069, 1, 1, tzinfo=UTC), id="two-digit-year-69-means-2069"),
        pytest.param("1 jan 1601 0:0:0", datetime(1601, 1, 1, tzinfo=UTC), id="year-1601-is-the-earliest"),
        pytest.param("1 jan 1600 0:0:0", None, id="year-before-1601-fails"),
        pytest.param("31 dec 9999 23:59:59", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), id="year-9999-reads"),
        pytest.param("1 jan 12345 0:0:0", None, id="five-digit-year-is-no-year"),
        pytest.param("1 jan 2000 24:00:00", None, id="hour-over-23-fails"),
        pytest.param("1 jan 2000 00:60:00", None, id="minute-over-59-fails"),
        pytest.param("1 jan 2000 00:00:60", None, id="second-over-59-fails"),
        pytest.param("0 jan 2000 00:00:00", None, id="day-zero-fails"),
        pytest.param("32 jan 2000 00:00:00", None, id="day-over-31-fails"),
        pytest.param("31 apr 2000 00:00:00", None, id="day-that-does-not-exist-fails"),
        pytest.param("29 feb 2001 00:00:00", None, id="29-february-of-a-common-year-fails"),
        pytest.param("29 feb 2004 00:00:00", datetime(2004, 2, 29, tzinfo=UTC), id="29-february-of-a-leap-year"),
        pytest.param("1 jan 2000", None, id="missing-time-fails"),
        pytest.param("jan 2000 00:00:00", None, id="missing-day-fails"),
        pytest.param("1 2000 00:00:00", None, id="missing-month-fails"),
        pytest.param("1 jan 00:00:00", None, id="missing-year-fails"),
        pytest.param("1 JANUARY 2000 1:2:3", datetime(2000, 1, 1, 1, 2, 3, tzinfo=UTC), id="month-prefix-any-case"),
        pytest.param("1 ja 2000 1:2:3", None, id="month-needs-three-letters"),
        pytest.param("123:00:00 1 jan 2000", None, id="three-digit-time-field-is-no-time"),
        pytest.param("1 jan 2000 12:00:00x", datetime(2000, 1, 1, 12, tzinfo=UTC), id="time-may-trail-non-digits"),
        pytest.param("1 jan 2000 12:00:000", None, id="time-may-not-trail-a-third-digit"),
        pytest.param("1x jan 2000 12:00:00", datetime(2000, 1, 1, 12, tzinfo=UTC), id="day-may-trail-non-digits"),
        pytest.param("1 jan 2000 1:2:3 4:5:6", datetime(2000, 1, 1, 1, 2, 3, tzinfo=UTC), id="first-time-wins"),
        pytest.param("1 jan 2000 1:2:3 5 feb 2001", datetime(2000, 1, 1, 1, 2, 3, tzinfo=UTC), id="first-fields-win"),
        pytest.param("1\x1cjan 2000 1:2:3", None, id="x1c-is-not-a-delimiter"),
        pytest.param("1 jan 2000 1:2:3 +0500", datetime(2000, 1, 1, 1, 2, 3, tzinfo=UTC), id="zones-are-ignored"),
        pytest.param("\u0661 jan 2000 1:2:3", None, id="non-ascii-digits-are-no-digits"),
        pytest.param("", None, id="empty-fails"),
    ],
)
def test_parse_cookie_date_follows_rfc6265_5_1_1(text: str, expected: datetime | None) -> None:
    assert parse_cookie_date(text) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(datetime(1970, 1, 1, tzinfo=UTC), "Thu, 01 Jan 1970 00:00:00 GMT", id="epoch"),
        pytest.param(
            datetime(2027, 2, 15, 4, 18, 18, 999999, tzinfo=UTC),
            "Mon, 15 Feb 2027 04:18:18 GMT",
            id="fraction-of-a-second-dropped",
        ),
        pytest.param(
            datetime.fromisoformat("2027-02-15T06:18:18+02:00"),
            "Mon, 15 Feb 2027 04:18:18 GMT",
            id="other-zone-converted-to-gmt",
        ),
        pytest.param(datetime(1601, 1, 1, tzinfo=UTC), "Mon, 01 Jan 1601 00:00:00 GMT", id="four-digit-year-1601"),
    ],
)
def test_format_cookie_date_writes_imf_fixdate(moment: datetime, expected: str) -> None:
    assert format_cookie_date(moment) == expected


def _literal_rfc6265_date(text: str) -> datetime | None:
    """Section 5.1.1 transcribed step by step, character by character: the reference the fast parser must equal."""

    def is_delimiter(char: str) -> bool:
        code = ord(char)
        return (
            code == 0x09 or 0x20 <= code <= 0x2F or 0x3B <= code <= 0x40 or 0x5B <= code <= 0x60 or 0x7B <= code <= 0x7E
        )

    def digits(token: str, start: int) -> int:
        end = start
        while end < len(token) and token[end] in "0123456789":
            end += 1
        return end - start

    tokens, current = [], ""
    for char in text:
        if is_delimiter(char):
            tokens.append(current)
            current = ""
        else:
            current += char
    tokens = [token for token in [*tokens, current] if token]
    time = day = month = year = None
    months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    for token in tokens:
        if time is None:
            first = digits(token, 0)
            if 1 <= first <= 2 and token[first : first + 1] == ":":
                second = digits(token, first + 1)
                at = first + 1 + second
                if 1 <= second <= 2 and token[at : at + 1] == ":" and 1 <= digits(token, at + 1) <= 2:
                    third = digits(token, at + 1)
                    time = (int(token[:first]), int(token[first + 1 : at]), int(token[at + 1 : at + 1 + third]))
                    continue
        if day is None and 1 <= digits(token, 0) <= 2:
            day = int(token[: digits(token, 0)])
            continue
        if month is None and token[:3].lower() in months:
            month = months.index(token[:3].lower()) + 1
            continue
        if year is None and 2 <= digits(token, 0) <= 4:
            year = int(token[: digits(token, 0)])
            continue
    if time is None or day is None or month is None or year is None:
        return None
    year += 1900 if 70 <= year <= 99 else 2000 if 0 <= year <= 69 else 0
    if not 1 <= day <= 31 or year < 1601 or time[0] > 23 or time[1] > 59 or time[2] > 59:
        return None
    try:
        return datetime(year, month, day, *time, tzinfo=UTC)
    except ValueError:
        return None


DATE_FRAGMENTS = st.sampled_from(
    [
        *" ,-:/\t\x1cx\u00e9\u0661",
        *"GMT Jan feb DEC Sun 0 1 9 12 29 31 69 70 99 1601 2024 9999 23:59:59 1:2:3 12:".split(),
    ]
)
DATE_LIKE = st.lists(DATE_FRAGMENTS, max_size=14).map("".join)
MOMENTS = st.builds(
    lambda day, clock: datetime.combine(day, clock.replace(microsecond=0), tzinfo=UTC),
    st.dates(min_value=date(1601, 1, 1), max_value=date(9999, 12, 31)),
    st.times(),
)


@given(st.text() | DATE_LIKE)
@example("Thu, 12-Aug-2007 20:61:99999999999 GMT")
@example("1" * 5000)
def test_parse_cookie_date_never_raises(text: str) -> None:
    result = parse_cookie_date(text)
    assert result is None or result.tzinfo is UTC


@given(DATE_LIKE | st.text() | MOMENTS.map(format_cookie_date))
@example("Wed, 01 Jan 0050 00:00:00 GMT")
@example("Mon, 31 Feb 2024 00:00:00 GMT")
def test_parse_cookie_date_equals_a_literal_reading_of_the_rfc(text: str) -> None:
    assert parse_cookie_date(text) == _literal_rfc6265_date(text)


@given(MOMENTS)
@example(datetime(1601, 1, 1, tzinfo=UTC))
@example(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
def test_format_then_parse_round_trips(moment: datetime) -> None:
    assert parse_cookie_date(format_cookie_date(moment)) == moment
