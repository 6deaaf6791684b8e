"""Declared cookie lifetimes: ``"session"``, ``"30m"``, ``"90d"``, ``"13mo"``, ``"5y"``.

Months and years are Gregorian averages (30.436875 and 365.2425 days) so that
``"12mo" == "1y"`` and a cookie declared "13 months" meets a 13-month cap exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNIT_SECONDS: dict[str, int] = {
    "s": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "mo": 2629746,
    "y": 31556952,
}
_LIFETIME_RE = re.compile(r"^\s*(\d{1,6})\s*(s|min|m|h|d|w|mo|y)\s*$")
_NAMES = (("y", 31556952), ("mo", 2629746), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


@dataclass(frozen=True, slots=True, order=True)
class Lifetime:
    """How long a cookie may live; ``seconds is None`` means until the browser session ends."""

    seconds: int | None

    @property
    def is_session(self) -> bool:
        return self.seconds is None

    def __str__(self) -> str:
        if self.seconds is None:
            return "session"
        for unit, size in _NAMES:
            if self.seconds % size == 0 and self.seconds >= size:
                return f"{self.seconds // size}{unit}"
        return f"{self.seconds}s"

    def describe(self) -> str:
        """A human reading such as "13 months" or "end of session"."""
        if self.seconds is None:
            return "end of session"
        words = {"y": "year", "mo": "month", "w": "week", "d": "day", "h": "hour", "m": "minute", "s": "second"}
        text = str(self)
        number, unit = re.match(r"(\d+)(\D+)", text).groups()  # type: ignore[union-attr]
        return f"{number} {words[unit]}{'' if number == '1' else 's'}"


SESSION = Lifetime(None)


def parse_lifetime(text: str) -> Lifetime:
    """Read ``"session"`` or a number with a unit (s, m/min, h, d, w, mo, y).

    Raises ``ValueError`` with the accepted forms, so config errors can say what is expected.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a lifetime string such as '30m', '90d', '13mo' or 'session', found {text!r}")
    if text.strip().lower() == "session":
        return SESSION
    match = _LIFETIME_RE.match(text.lower())
    if not match:
        raise ValueError(f"expected a lifetime such as 'session', '30m', '90d', '13mo' or '5y', found {text!r}")
    number, unit = match.groups()
    return Lifetime(int(number) * _UNIT_SECONDS[unit])


def shorter(a: Lifetime, b: Lifetime) -> Lifetime:
    """The stricter of two lifetimes; a session lifetime is shorter than any duration."""
    if a.seconds is None or b.seconds is None:
        return SESSION
    return a if a.seconds <= b.seconds else b
