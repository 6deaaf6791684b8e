"""Reading ``POST /api/event`` bodies: strict, bounded, with messages that say what is wrong.

The snippet sends short keys (``{"s","n","u","r","w","p","c"}``); the long names (site,
name, url, referrer, width, props, consent) are accepted too, for server-side senders.
The page's path is kept scrubbed of emails, phone numbers and tokens (gateway/ingest/scrub.py),
and so is the referrer's query string; the pipeline scrubs the name and props it stores.
``"h": true`` (a tag with ``data-hash``) keeps the URL's fragment in the page path, so each route
of a hash-routed app is its own page; without it fragments are dropped (anchors are no pages).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from gateway.categories import CONSENT_CATEGORIES, Category
from gateway.ingest.event import IncomingEvent
from gateway.ingest.scrub import scrub_text, scrub_url

MAX_PROPS = 30
MAX_PROP_VALUE = 300
MAX_PROP_KEY = 100
MAX_NAME = 120
MAX_URL = 2048
MAX_PATH = 1024
_LONG_KEYS = {"site": "s", "name": "n", "url": "u", "referrer": "r", "width": "w", "props": "p", "consent": "c"}
_KNOWN = set(_LONG_KEYS.values()) | {"h"}  # h: hash routing (the tag's data-hash)
#: The privacy center hands a consent token back in the fragment: never a route to store.
_HANDOFF_FRAGMENT = "cg_consent="
_CONTROL = dict.fromkeys([*range(32), 127])
_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f]")


class PayloadError(ValueError):
    """A malformed event, answered with ``status`` (400 or 413) and this message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_event(
    raw: Mapping[str, Any],
    *,
    received_at: datetime,
    client_ip: str | None,
    user_agent: str,
    headers: Mapping[str, str],
) -> IncomingEvent:
    """Validate one event; raises ``PayloadError`` naming the field and what it expects."""
    if raw.keys() <= _KNOWN:  # the snippet's short keys only (nearly every event): nothing to rename
        data = raw
    else:
        data = {_LONG_KEYS.get(key, key): value for key, value in raw.items()}
        unknown = sorted(set(data) - _KNOWN)
        if unknown:
            raise PayloadError(
                f"unknown field {unknown[0][:40]!r}; expected site, name, url, referrer, width, props, consent"
            )
    site_id = _text(data, "s", "site", limit=64, required=True)
    name = _text(data, "n", "name", limit=MAX_NAME, required=True)
    if _CONTROL_CHAR.search(name):
        raise PayloadError("'name' contains control characters")
    url = _text(data, "u", "url", limit=MAX_URL, required=True)
    hash_routes = data.get("h", False)
    if not isinstance(hash_routes, bool):
        raise PayloadError(f"'h' (hash routing) must be true or false, found {hash_routes!r:.40}")
    page_url, hostname, pathname = _read_page_url(url, hash_routes)
    if not hostname:
        raise PayloadError(f"'url' must be the page's absolute http(s) URL, found {url[:80]!r}")
    referrer = _text(data, "r", "referrer", limit=MAX_URL, required=False) or None
    width = data.get("w")
    if width is not None and (isinstance(width, bool) or not isinstance(width, int) or not 0 <= width <= 100_000):
        raise PayloadError(f"'width' must be the screen width in CSS pixels (a whole number), found {width!r}")
    return IncomingEvent(
        site_id=site_id,
        name=name,
        hostname=hostname,
        pathname=pathname,
        page_url=page_url,
        referrer=scrub_url(referrer.translate(_CONTROL)) if referrer else None,
        screen_width=width,
        props=_props(data.get("p")),
        consent=_consent(data.get("c")),
        received_at=received_at,
        client_ip=client_ip,
        user_agent=user_agent,
        gpc=headers.get("sec-gpc", "").strip() == "1",
        dnt=headers.get("dnt", "").strip() == "1",
        prefetch_headers={
            key: headers[key] for key in ("purpose", "sec-purpose", "x-moz", "x-purpose") if key in headers
        },
    )


@lru_cache(maxsize=4096)
def _read_page_url(url: str, hash_routes: bool) -> tuple[str, str | None, str]:
    """(the URL without control characters, its host or None when not absolute http(s), its path).

    With ``hash_routes`` the path ends with the URL's ``#fragment``, if it has one.

    Cached in memory: a site's visitors send the same page URLs over and over.
    """
    page_url = url.translate(_CONTROL)
    try:
        parts = urlsplit(page_url)
        hostname = parts.hostname
    except ValueError:  # an unclosed IPv6 bracket, a host that NFKC-normalises to a delimiter
        return page_url, None, "/"
    if not hostname or parts.scheme not in ("http", "https"):
        return page_url, None, "/"
    path = parts.path or "/"
    if hash_routes and parts.fragment and not parts.fragment.startswith(_HANDOFF_FRAGMENT):
        path = f"{path}#{parts.fragment}"
    return page_url, hostname[:253], scrub_text(path)[:MAX_PATH]  # scrubbed, then cut: no half email


def _text(data: Mapping[str, Any], key: str, label: str, *, limit: int, required: bool) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise PayloadError(f"'{label}' is missing")
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"'{label}' must be text, found {type(value).__name__}")
    if len(value) > limit:
        raise PayloadError(f"'{label}' is longer than {limit} characters")
    _check_unicode(value, label)
    return value


def _check_unicode(value: str, label: str) -> None:
    """Lone surrogates (JSON's ``"\\ud800"``) cannot be stored as UTF-8; ASCII text needs no check."""
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(f"'{label}' is not valid Unicode") from None


def _props(value: object) -> dict[str, str]:
    """At most 30 props; keys of at most 100 characters, values (text, numbers, booleans) of at most 300."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError('\'props\' must be an object such as {"plan": "pro"}')
    if len(value) > MAX_PROPS:
        raise PayloadError(f"'props' has {len(value)} keys; at most {MAX_PROPS} are allowed")
    props: dict[str, str] = {}
    for key, item in value.items():
        if not key or len(key) > MAX_PROP_KEY or _CONTROL_CHAR.search(key):
            raise PayloadError(f"props key {key[:40]!r} must be 1 to {MAX_PROP_KEY} printable characters")
        _check_unicode(key, "props key")
        if isinstance(item, bool):
            text = "true" if item else "false"
        elif isinstance(item, int | float | str):
            text = str(item)
        else:
            raise PayloadError(f"props.{key[:40]} must be text, a number or true/false")
        if len(text) > MAX_PROP_VALUE:
            raise PayloadError(f"props.{key[:40]} is longer than {MAX_PROP_VALUE} characters")
        _check_unicode(text, f"props.{key[:40]}")
        props[key] = text.translate(_CONTROL)
    return props


def _consent(value: object) -> frozenset[Category] | None:
    """The snippet's consent snapshot: a list of allowed categories or an object of booleans."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = [name for name, allowed in value.items() if allowed is True]
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise PayloadError("'consent' must list the allowed categories, e.g. [\"analytics\"]")
    unknown = [name for name in value if name not in CONSENT_CATEGORIES and name != "essential"]
    if unknown:
        raise PayloadError(f"'consent' names an unknown category {unknown[0][:40]!r}")
    return frozenset(name for name in value if name in CONSENT_CATEGORIES)
