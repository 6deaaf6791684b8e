"""``Set-Cookie`` read the way a browser reads it (RFC 6265 section 5.2), and rewritten to cap a cookie's life.

The gateway decides what a browser will store, so it must parse exactly like one: a stricter parser
would let a cookie through unnoticed, a looser one would "fix" headers the browser ignores anyway.
Rewrites touch only ``Max-Age``/``Expires`` and keep every other byte, so the browser stores the same
cookie (name, value, domain, path, flags) with a shorter life.

Nameless cookies follow RFC 6265bis, as Chromium, Firefox and Safari do: ``Set-Cookie: foo`` is a
cookie with an empty name and the value ``foo`` (RFC 6265 ignored it), and the browser sends it back
as a bare ``foo`` in the ``Cookie`` header.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.cookies.dates import format_cookie_date, parse_cookie_date
from gateway.cookies.lifetimes import Lifetime

_WSP = " \t"  # WSP = SP / HTAB (RFC 5234); 5.2 trims only these, not every Unicode space
_EARLIEST = datetime.min.replace(tzinfo=UTC)  # "the earliest representable date and time" (5.2.2)
_LATEST = datetime.max.replace(tzinfo=UTC)  # "the latest representable date" (5.3 step 3)
_MAX_AGE_DIGITS = 15  # 10**15 s is ~31.7 million years, past _LATEST from any now: bigger values clamp here
_CENTURY = 100 * 366 * 86400  # shifts this small cannot overflow a datetime far from year 1 and 9999
_LIFETIME_ATTRIBUTES = frozenset(("max-age", "expires"))
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
_MAX_PAIR = 4096  # RFC 6265bis 5.6 step 5: a longer name and value together are ignored
_PREFIXES = ("__secure-", "__host-")  # cookie name prefixes (RFC 6265bis 4.1.3), compared lowercased
_NAMELESS_DELETED = "deleted"  # any value will do: only name, domain and path pick the cookie to delete
_UNSAFE_IN_HEADER = frozenset(";\r\n\x00")
# The SameSite enforcement values of RFC 6265bis section 5.6.7 (RFC 6265 itself has no SameSite).
_SAME_SITE = {"strict": "Strict", "lax": "Lax", "none": "None"}


@dataclass(frozen=True, slots=True)
class SetCookie:
    """One ``Set-Cookie`` header value as a browser understands it (RFC 6265 section 5.2)."""

    raw: str  # the header value exactly as received
    name: str  # WSP-trimmed; empty for a nameless cookie (RFC 6265bis 5.6 step 3), and then value is not
    value: str  # WSP-trimmed, quotes kept (5.2 keeps them; they are part of the value)
    max_age: int | None  # the last valid Max-Age (5.2.2); values past ~31 million years are clamped
    expires: datetime | None  # the last Expires that parses (5.2.1), aware UTC
    domain: str | None  # the last non-empty Domain (5.2.3), lowercased without its leading '.'; None = host-only
    path: str | None  # the last Path (5.2.4) if it starts with '/'; None = the default path
    secure: bool
    http_only: bool
    same_site: str | None  # "Strict", "Lax", "None" or "Default" (RFC 6265bis 5.6.7); None when absent

    def expiry(self, now: datetime) -> datetime | None:
        """When the browser drops the cookie; None for a session cookie.

        Max-Age wins over Expires whatever their order (5.3 step 3); Max-Age <= 0 means the earliest
        representable moment (5.2.2) and a far-future one is clamped to the latest.
        """
        if self.max_age is not None:
            if self.max_age <= 0:
                return _EARLIEST
            return _plus_seconds(now, self.max_age)
        return self.expires

    def is_deletion(self, now: datetime) -> bool:
        """Whether the header removes the cookie: its expiry is already past (5.3, last paragraph)."""
        expiry = self.expiry(now)
        return expiry is not None and expiry <= now


def _plus_seconds(moment: datetime, seconds: int) -> datetime:
    """``moment + seconds``, clamped to the representable range instead of raising OverflowError."""
    if -_CENTURY < seconds < _CENTURY and 1700 < moment.year < 9800:
        return moment + timedelta(0, seconds)
    room = _LATEST - moment
    if seconds >= room.days * 86400 + room.seconds:
        return _LATEST
    room = moment - _EARLIEST
    if -seconds >= room.days * 86400 + room.seconds:
        return _EARLIEST
    return moment + timedelta(seconds=seconds)


def _max_age(value: str) -> int | None:
    """Delta-seconds per 5.2.2: a DIGIT or '-' first, then only DIGITs; None means "ignore the attribute"."""
    digits = value[1:] if value[:1] == "-" else value
    if not digits or not digits.isascii() or not digits.isdigit():  # ASCII isdigit() is exactly DIGIT
        return None
    digits = digits.lstrip("0")
    # int() refuses strings over 4300 digits; any value this long is past the latest date anyway.
    number = 10**_MAX_AGE_DIGITS if len(digits) > _MAX_AGE_DIGITS else int(digits or "0")
    return -number if value[0] == "-" else number


def _may_be_nameless(value: str) -> bool:
    """Whether a browser stores a nameless cookie with this (trimmed) value; see ``parse_set_cookie``."""
    return bool(value) and "=" not in value and not value[:9].lower().startswith(_PREFIXES)


def parse_set_cookie(raw: str) -> SetCookie | None:
    """Parse a ``Set-Cookie`` value exactly as RFC 6265 section 5.2 says; None when a browser ignores it.

    The name-value pair follows RFC 6265bis section 5.6 steps 2-5, which browsers implement and RFC
    6265 did not: a pair without '=' is a nameless cookie whose value is the whole pair, '=x' is a
    nameless cookie with the value 'x', and a name and value longer than 4096 together are ignored.
    So is a nameless cookie the browser refuses to store (RFC 6265bis 5.7, measured in Chromium 156):
    one with an empty value too, one whose value starts like a ``__Secure-``/``__Host-`` name, and one
    whose value holds '=' (it would come back as ``Cookie: a=b``, a cookie named "a"). Unknown attributes
    are skipped; for Max-Age, Expires, Domain and Path the last one the browser accepts wins (5.3 steps
    3, 4 and 7). Never raises. Attribute names compare with str.lower(): the only non-ASCII character
    that lowercases to an ASCII letter is U+212A (to "k"), in no attribute name. Lengths count
    characters, which are octets when the header was decoded as latin-1 (the middleware does).
    """
    pair, semicolon, attributes = raw.partition(";")
    name, equals, value = pair.partition("=")
    if not equals:
        name, value = "", name
    name, value = name.strip(_WSP), value.strip(_WSP)
    if len(name) + len(value) > _MAX_PAIR or (not name and not _may_be_nameless(value)):
        return None
    max_age: int | None = None
    expires: datetime | None = None
    domain: str | None = None
    path: str | None = None
    secure = http_only = False
    same_site: str | None = None
    if semicolon:
        for cookie_av in attributes.split(";"):
            key, _, av_value = cookie_av.partition("=")
            key = key.strip(_WSP).lower()
            if key == "max-age":  # 5.2.2
                seconds = _max_age(av_value.strip(_WSP))
                if seconds is not None:
                    max_age = seconds
            elif key == "expires":  # 5.2.1
                moment = parse_cookie_date(av_value.strip(_WSP))
                if moment is not None:
                    expires = moment
            elif key == "domain":  # 5.2.3: an empty value is ignored, "." leaves an empty (host-only) domain
                av_value = av_value.strip(_WSP)
                if av_value:
                    domain = (av_value[1:] if av_value[0] == "." else av_value).lower() or None
            elif key == "path":  # 5.2.4: anything not starting with '/' means the default path
                av_value = av_value.strip(_WSP)
                path = av_value if av_value[:1] == "/" else None
            elif key == "secure":  # 5.2.5: any value
                secure = True
            elif key == "httponly":  # 5.2.6: any value
                http_only = True
            elif key == "samesite":  # RFC 6265bis 5.6.7: unknown values mean "Default"
                same_site = _SAME_SITE.get(av_value.strip(_WSP).lower(), "Default")
    return SetCookie(
        raw=raw,
        name=name,
        value=value,
        max_age=max_age,
        expires=expires,
        domain=domain,
        path=path,
        secure=secure,
        http_only=http_only,
        same_site=same_site,
    )


def _without_lifetime(raw: str) -> str:
    """``raw`` minus every Max-Age and Expires attribute, every other byte kept as received.

    Blank attributes left at the end are dropped too (a browser skips them), so that appending
    new attributes does not leave ";;" behind.
    """
    kept = raw.split(";")
    kept[1:] = [av for av in kept[1:] if av.partition("=")[0].strip(_WSP).lower() not in _LIFETIME_ATTRIBUTES]
    while len(kept) > 1 and not kept[-1].strip(_WSP):
        kept.pop()
    return ";".join(kept)


def cap_lifetime(cookie: SetCookie, allowed: Lifetime, now: datetime) -> str | None:
    """The header rewritten so the cookie lives no longer than ``allowed``; None when it may stay as it is.

    Deletions pass untouched (they shorten nothing). A session cap turns a persistent cookie into a
    session one by dropping Max-Age and Expires. Otherwise a cookie living past ``now + allowed`` gets
    a matching Max-Age (what RFC 6265 browsers obey, 5.3 step 3) and Expires (for clients that only
    know Expires), appended after the other attributes. A session cookie is never lengthened.
    """
    if cookie.max_age is not None:  # Max-Age wins (5.3 step 3): compare seconds, no date arithmetic needed
        if cookie.max_age <= 0:
            return None
        if allowed.seconds is None:
            return _without_lifetime(cookie.raw)
        if cookie.max_age <= allowed.seconds:
            return None
        limit = _plus_seconds(now, allowed.seconds)
    else:
        if cookie.expires is None or cookie.expires <= now:
            return None
        if allowed.seconds is None:
            return _without_lifetime(cookie.raw)
        limit = _plus_seconds(now, allowed.seconds)
        if cookie.expires <= limit:
            return None
    return f"{_without_lifetime(cookie.raw)}; Max-Age={allowed.seconds}; Expires={format_cookie_date(limit)}"


def deletion_header(name: str, *, path: str = "/", domain: str | None = None) -> str:
    """A ``Set-Cookie`` value that makes a browser drop cookie ``name`` (Max-Age=0, 5.2.2).

    The cookie must be named with the same path and domain it was set with, or the browser deletes
    nothing (5.3 step 11 replaces only a cookie with the same name, domain and path). Expires is
    added for clients that ignore Max-Age. An empty ``name`` deletes the nameless cookie: its header
    needs a value, since a browser ignores one whose name and value are both empty (RFC 6265bis 5.7).
    Raises ValueError on characters that would break the header or name a different cookie.
    """
    parts = [name, path] if domain is None else [name, path, domain]
    if "=" in name or name != name.strip(_WSP) or any(not _UNSAFE_IN_HEADER.isdisjoint(part) for part in parts):
        raise ValueError(f"cannot build a Set-Cookie header for name={name!r}, path={path!r}, domain={domain!r}")
    header = f"{name}={'' if name else _NAMELESS_DELETED}; Max-Age=0; Expires={_EPOCH}; Path={path}"
    return header if domain is None else f"{header}; Domain={domain}"


def parse_cookie_header(header: str) -> list[tuple[str, str]]:
    """The (name, value) pairs of a request ``Cookie`` header (RFC 6265 section 5.4 step 4), in order.

    A browser sends a nameless cookie as its bare value (RFC 6265bis 5.8.3), so an item without '='
    is the pair ("", item); '=x' is read the same way. Empty items are skipped and surrounding
    whitespace is trimmed. Never raises. (A nameless value holding '=' would read as a named cookie,
    which is why browsers refuse to store one.)
    """
    pairs: list[tuple[str, str]] = []
    for item in header.split(";"):
        name, equals, value = item.partition("=")
        if not equals:
            name, value = "", name
        name, value = name.strip(_WSP), value.strip(_WSP)
        if name or value:
            pairs.append((name, value))
    return pairs
