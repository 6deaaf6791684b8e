"""Personal-looking text out of what we keep: emails, phone numbers, IP addresses and long tokens.

A site's URLs and props carry whatever its developers put there: ``?ref=alice@example.com``,
a password-reset token in the path, a phone number typed into a search box that becomes a
prop. Stored, such a value is personal data (GDPR art. 4(1)); forwarded, it leaves our hands;
and once five visitors arrive with it, it passes the privacy floor and becomes a dashboard row.
So every text value that is stored or forwarded goes through :func:`scrub_text` first, which
replaces each such substring with a fixed marker and leaves everything else as it was.

The rules (README "What is scrubbed" lists them for users):

- an email address, ``@`` also written ``%40`` or ``%2540`` -> ``[email]``;
- a phone number: 7 to 15 digits, optionally after ``+`` or in ``(area)`` groups, separated by
  single spaces, dots or hyphens -> ``[phone]``; a date (``2026-03-10``, ``10.03.2026``), a
  decimal (``12345.678``), a thousands-grouped amount (``1 299 000``) and shorter numbers stay;
- more than 15 digits in such groups (a card number) -> ``[token]``;
- an IPv4 address -> ``[ip]``;
- a token: a UUID, a JWT-shaped ``a.b.c`` of base64url parts, or a run of 24 or more
  letters, digits, ``-``, ``_``, ``+`` (and ``=`` padding) that switches between letters and digits at least
  four times (hex and base64 secrets do; slugs such as ``how-to-2024`` do not), or holds 16
  digits in a row -> ``[token]``.

Each replaced piece is at least 6 characters and a marker at most 7, so a value grows by at
most a sixth; the markers match no rule, so scrubbing twice changes nothing. The work is
linear in the length of the value: no pattern can backtrack over the whole of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Final

EMAIL: Final = "[email]"
PHONE: Final = "[phone]"
IP: Final = "[ip]"
TOKEN: Final = "[token]"  # noqa: S105 - a marker, not a password

_MAX_LOCAL = 64  # RFC 5321 4.5.3.1.1; also keeps "x%40%40%40..." from costing the square of its length
_MIN_EMAIL = 6  # a@b.co: shorter is not an address (and the marker must not grow a value much)
_MIN_PHONE_DIGITS, _MAX_PHONE_DIGITS = 7, 15  # E.164 allows at most 15 digits
_MIN_TOKEN = 24
_MIN_TRANSITIONS = 4
_DIGIT_RUN_TOKEN = 16

_HAS_DIGIT = _DIGIT = re.compile(r"[0-9]")
_MIN_ADDRESS_DIGITS = 4  # 1.2.3.4; a phone number has 7
_TRANSITION = re.compile(r"[^\W\d_](?=[0-9])|[0-9](?=[^\W\d_])")
_AT = re.compile(r"@|%(?:25)?40")
_LOCAL_CHARS = frozenset("._%+-'")  # with letters and digits: what an address's local part is made of
_DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)+")
_UUID = re.compile(r"(?<![0-9A-Za-z])[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}(?![0-9A-Za-z])")
_JWT = re.compile(r"(?<![\w.-])[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}(?![\w-])")
_TOKEN_RUN = re.compile(rf"[A-Za-z0-9_+-]{{{_MIN_TOKEN},}}={{0,2}}")  # base64 pads with = at the end
_LONG_DIGITS = re.compile(rf"[0-9]{{{_DIGIT_RUN_TOKEN}}}")
# Digit groups joined by one separator (or a parenthesised area code); judged whole by _phone_or_keep.
_NUMBER = re.compile(
    r"(?<![0-9A-Za-z.])(?:\+ ?)?(?:\([0-9]{1,5}\)|[0-9]+)(?:(?:[ .-]|(?<=\))|(?=\())(?:\([0-9]{1,5}\)|[0-9]+))*"
    r"(?![0-9A-Za-z])"
)
_DATE = re.compile(r"[0-9]{4}([-./])[0-9]{1,2}\1[0-9]{1,2}|[0-9]{1,2}([-./])[0-9]{1,2}\2[0-9]{4}")
# 1 299 000 and 12.500.000 are amounts; 612 345 678 is a Spanish mobile number.
_GROUPED_AMOUNT = re.compile(r"[0-9]{1,2}([ .])[0-9]{3}(?:\1[0-9]{3})*")
_DECIMAL = re.compile(r"[0-9]+\.[0-9]+")
_IPV4 = re.compile(r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}")


def scrub_text(value: str) -> str:
    """``value`` with every email, phone number, IPv4 address and long token replaced by its marker."""
    if not _HAS_DIGIT.search(value) and "@" not in value:
        return value  # the common case: no rule can match text without a digit or an @
    for _ in range(3):  # a replacement can reveal no new match, but make certain of it: stop at the fixpoint
        scrubbed = _scrub_numbers(_scrub_tokens(_scrub_emails(value)))
        if scrubbed == value:
            break
        value = scrubbed
    return value


@lru_cache(maxsize=4096)
def scrub_repeated(value: str) -> str:
    """:func:`scrub_text` for values that repeat (paths, event names, campaign tags).

    Safe to cache: the result depends on the argument alone; a stale entry cannot exist.
    """
    return scrub_text(value)


def scrub_props(props: Mapping[str, str]) -> Mapping[str, str]:
    """Props with keys and values scrubbed; the same mapping back when nothing changed."""
    for key, value in props.items():
        if scrub_text(key) != key or scrub_text(value) != value:
            return {scrub_text(key): scrub_text(value) for key, value in props.items()}
    return props


def scrub_url(url: str) -> str:
    """A URL with its query string and fragment scrubbed; scheme, host and path untouched."""
    cut = min((index for index in (url.find("?"), url.find("#")) if index >= 0), default=-1)
    return url if cut < 0 else url[:cut] + scrub_text(url[cut:])


def _scrub_emails(value: str) -> str:
    """Each ``@`` (or ``%40``) with a local part before it and a dotted domain after it -> EMAIL.

    The local part is found by walking back from the ``@`` (at most 64 characters) rather than
    with a pattern, so a long run of letters before many ``@`` cannot cost the square of its length.
    """
    if "@" not in value and "%" not in value:
        return value
    pieces: list[str] = []
    done = 0
    for at in _AT.finditer(value):
        if at.start() < done:
            continue
        start = at.start()
        least = max(done, start - _MAX_LOCAL)
        while start > least and (value[start - 1].isalnum() or value[start - 1] in _LOCAL_CHARS):
            start -= 1
        domain = _DOMAIN.match(value, at.end())
        if start == at.start() or domain is None or domain.end() - start < _MIN_EMAIL:
            continue
        while (chained := _AT.match(value, domain.end())) and (more := _DOMAIN.match(value, chained.end())):
            domain = more  # "a@b.io.c@d.io": the first domain swallowed the next local part; take both
        pieces += [value[done:start], EMAIL]
        done = domain.end()
    return "".join(pieces) + value[done:] if pieces else value


def _scrub_tokens(value: str) -> str:
    """Each pattern runs only where it could match: most values are short paths and words."""
    if len(value) < _MIN_TOKEN:
        return value
    if "-" in value:
        value = _UUID.sub(TOKEN, value)
    if value.count(".") >= 2:
        value = _JWT.sub(_jwt_or_keep, value)
    return _TOKEN_RUN.sub(_token_or_keep, value)


def _scrub_numbers(value: str) -> str:
    if len(_DIGIT.findall(value)) < _MIN_ADDRESS_DIGITS:
        return value  # neither a phone number nor an IPv4 address
    return _NUMBER.sub(_phone_or_keep, value)


def _jwt_or_keep(match: re.Match[str]) -> str:
    """Three dot-joined base64url parts: a JWT when it mixes letters and digits (a host name does not)."""
    text = match.group(0)
    return TOKEN if _transitions(text) >= _MIN_TRANSITIONS else text


def _token_or_keep(match: re.Match[str]) -> str:
    text = match.group(0)
    if _transitions(text) >= _MIN_TRANSITIONS or _LONG_DIGITS.search(text):
        return TOKEN
    return text


def _transitions(text: str) -> int:
    """How often a letter is directly followed by a digit or a digit by a letter."""
    return len(_TRANSITION.findall(text))


def _phone_or_keep(match: re.Match[str]) -> str:
    return _judge_number(match.group(0))


def _judge_number(text: str) -> str:
    """A run of digit groups: an address, a phone number, a long number (a card, an id) or harmless."""
    if _IPV4.fullmatch(text) and all(int(part) <= 255 for part in text.split(".")):
        return IP
    digits = sum("0" <= char <= "9" for char in text)
    if digits < _MIN_PHONE_DIGITS:
        return text
    pieces = text.split(" ")
    if len(pieces) > 1 and any(_DATE.fullmatch(piece) for piece in pieces):
        return _judge_around_dates(pieces)
    if _DATE.fullmatch(text) or _GROUPED_AMOUNT.fullmatch(text) or _DECIMAL.fullmatch(text):
        return text
    return PHONE if digits <= _MAX_PHONE_DIGITS else TOKEN


def _judge_around_dates(pieces: list[str]) -> str:
    """Keep the dates of "2026-03-10 12" or "2026-03-10 06 12 34 56 78" and judge what lies between them."""
    judged: list[str] = []
    between: list[str] = []
    for piece in pieces:
        if _DATE.fullmatch(piece):
            if between:
                judged.append(_judge_number(" ".join(between)))
                between = []
            judged.append(piece)
        else:
            between.append(piece)
    if between:
        judged.append(_judge_number(" ".join(between)))
    return " ".join(judged)
