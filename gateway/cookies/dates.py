"""Cookie dates: the lenient ``Expires`` reader of RFC 6265 section 5.1.1 and the IMF-fixdate writer.

Browsers read ``Expires`` with this exact algorithm, not with an HTTP-date grammar, so the gateway
must too: a date we reject but a browser accepts (or the reverse) would make us misjudge how long a
cookie lives.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

# delimiter = %x09 / %x20-2F / %x3B-40 / %x5B-60 / %x7B-7E (section 5.1.1); every other character, including
# every non-ASCII one, is a non-delimiter. (str.split() would be wrong: its whitespace is another set.)
_DELIMITERS = "\t" + "".join(chr(c) for c in (*range(0x20, 0x30), *range(0x3B, 0x41), *range(0x5B, 0x61)))
_DELIMITERS += "".join(chr(c) for c in range(0x7B, 0x7F))
_NON_DELIMITER = f"[^{re.escape(_DELIMITERS)}]"
# One regex pass finds each date-token and tells what it can be (faster than scanning characters in Python):
# group 1-3: a time (hms-time followed by a non-digit or the end, as the time production wants);
# group 4: any other token starting with DIGITs (a day-of-month or year candidate); group 5: the rest
# (only a month can start with a letter). DIGIT is [0-9]: \d and int() would also take "٣" or "²".
_DATE_TOKEN = re.compile(
    f"([0-9]{{1,2}}):([0-9]{{1,2}}):([0-9]{{1,2}})(?![0-9]){_NON_DELIMITER}*"
    f"|([0-9]+){_NON_DELIMITER}*"
    f"|({_NON_DELIMITER}+)"
)
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Only U+212A KELVIN SIGN lowercases to a lone ASCII letter ("k"), and no month name holds a "k",
# so str.lower() is as good as an ASCII-only case fold here.
_MONTHS = {name.lower(): number for number, name in enumerate(_MONTH_NAMES, start=1)}
# The IMF-fixdate most servers send. The general algorithm reads it the same way (day name, day,
# month, year, time, "GMT"), so matching it whole first is only a shortcut.
_IMF_FIXDATE = re.compile(
    f"(?:{'|'.join(_DAY_NAMES)}), ([0-9]{{2}}) ({'|'.join(_MONTH_NAMES)}) ([0-9]{{4}}) "
    "([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)
_TWO_DIGITS = tuple(f"{number:02d}" for number in range(100))


def parse_cookie_date(text: str) -> datetime | None:
    """The moment an ``Expires`` value names, read exactly as RFC 6265 section 5.1.1 says; None when it fails.

    Tokens are tried in order as time, day-of-month, month and year, each found once; two-digit years
    70-99 mean 19xx and 0-69 mean 20xx; out-of-range fields, years before 1601 and impossible dates
    (30 February) fail. Never raises, whatever the text.
    """
    fixdate = _IMF_FIXDATE.fullmatch(text)
    if fixdate is not None:
        day_text, month_name, year_text, hour_text, minute_text, second_text = fixdate.groups()
        return _checked_date(
            int(year_text),
            _MONTHS[month_name.lower()],
            int(day_text),
            int(hour_text),
            int(minute_text),
            int(second_text),
        )
    time: tuple[int, int, int] | None = None
    day: int | None = None
    month: int | None = None
    year: int | None = None
    for hour_text, minute_text, second_text, digits, word in _DATE_TOKEN.findall(text):
        if word:
            if month is None:
                month = _MONTHS.get(word[:3].lower())
        elif hour_text and time is None:
            time = int(hour_text), int(minute_text), int(second_text)
        else:
            # Not (or no longer) a time: its leading DIGITs may still be a day-of-month (1*2DIGIT)
            # or a year (2*4DIGIT), each followed by a non-digit; a time's hour field is such a run.
            number = hour_text or digits
            if day is None and len(number) <= 2:
                day = int(number)
            elif year is None and 2 <= len(number) <= 4:
                year = int(number)
    if time is None or day is None or month is None or year is None:
        return None
    return _checked_date(year, month, day, *time)


def _checked_date(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime | None:
    """Steps 3-7 of 5.1.1: widen two-digit years, reject out-of-range fields and dates that do not exist."""
    if 70 <= year <= 99:
        year += 1900
    elif year <= 69:
        year += 2000
    if not 1 <= day <= 31 or year < 1601 or hour > 23 or minute > 59 or second > 59:
        return None
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # no such date, such as 31 April
        return None


def format_cookie_date(moment: datetime) -> str:
    """``moment`` as an IMF-fixdate (RFC 6265 section 4.1.1, sane-cookie-date), e.g. "Thu, 01 Jan 1970 00:00:00 GMT".

    Day and month names come from tables, not strftime, whose names follow the process locale.
    A naive ``moment`` is taken to be UTC already.
    """
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(UTC)
    two = _TWO_DIGITS
    return (
        f"{_DAY_NAMES[moment.weekday()]}, {two[moment.day]} {_MONTH_NAMES[moment.month - 1]} {moment.year:04d} "
        f"{two[moment.hour]}:{two[moment.minute]}:{two[moment.second]} GMT"
    )
