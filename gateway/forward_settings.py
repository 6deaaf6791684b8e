"""The ``[[forward]]`` settings: which webhooks receive the anonymised events, and how precisely.

Read by gateway/settings.py and used by gateway/ingest/forward.py; it sits below both, so
settings imports nothing from ``ingest/`` (the two used to import each other).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal, NoReturn, TypeVar, get_args
from urllib.parse import urlsplit

from gateway.categories import CATEGORIES, Category, parse_category
from gateway.settings_values import Secret, SettingsError
from gateway.storage.records import AnonymousEvent

MIN_SECRET_LENGTH = 16
_KEYS = (
    "batch_size",
    "geo",
    "name",
    "require_category",
    "secret",
    "sites",
    "time",
    "timeout_seconds",
    "url",
    "visitor_id",
)
#: How precisely a forwarded event says when it happened: a second narrows a visitor down more than a minute.
ForwardTime = Literal["minute", "second"]
#: How precisely it says where: region and city narrow a visitor down, the country hardly does.
ForwardGeo = Literal["country", "region", "city"]
_Choice = TypeVar("_Choice", bound=str)
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


@dataclass(frozen=True, slots=True)
class ForwarderSettings:
    """One ``[[forward]]`` table."""

    name: str
    url: str
    secret: Secret
    #: The sites whose events are forwarded; empty: every site.
    sites: tuple[str, ...] = ()
    #: Forward only events whose consent snapshot holds this category.
    require_category: Category | None = None
    batch_size: int = 100
    timeout_seconds: float = 10
    #: Send a visitor id (re-keyed for this forwarder); off: none at all.
    visitor_id: bool = False
    time: ForwardTime = "minute"
    geo: ForwardGeo = "country"

    def accepts(self, event: AnonymousEvent) -> bool:
        if self.sites and event.site_id not in self.sites:
            return False
        return self.require_category is None or self.require_category in event.consent

    def visitor_id_for(self, daily_id: str) -> str:
        """Our daily visitor id as this forwarder sees it: HMAC-SHA256 under a key derived from its
        secret and name, so it counts visitors and visits like ours but cannot be matched with our
        stored ids nor with another forwarder's (each has its own key)."""
        return hmac.new(self._visitor_key(), daily_id.encode("ascii", "replace"), hashlib.sha256).hexdigest()[:32]

    def _visitor_key(self) -> bytes:
        label = f"consent-gateway forwarded visitor id/{self.name}".encode()
        return hmac.new(self.secret.value.encode("utf-8"), label, hashlib.sha256).digest()


class _Found:
    """What an error message shows in place of a value that must not be printed."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


_MISSING = _Found("nothing (the key is missing)")


def _kind(value: object) -> _Found:
    if isinstance(value, Mapping):
        return _Found("a table")
    if isinstance(value, list):
        return _Found("an array")
    if isinstance(value, str):
        return _Found("a string")
    return _Found(f"a {type(value).__name__}")


def _fail(source: str, where: str, expected: str, found: object) -> NoReturn:
    if not where.isprintable():  # a quoted TOML key may hold a newline: keep the message one line
        where = repr(where)
    raise SettingsError(f"config error in {source}: {where}: expected {expected}, found {found!r}")


def parse_forwarders(
    entries: object, *, source: str, known_sites: Collection[str] | None = None
) -> tuple[ForwarderSettings, ...]:
    """Validate the ``[[forward]]`` array of tables; ``known_sites`` (when given) catches misspelt site ids.

    Error messages never show a secret, nor a URL (webhook URLs often embed a token).
    """
    if not isinstance(entries, list):
        _fail(source, "forward", "an array of tables ([[forward]])", _kind(entries))
    forwarders: list[ForwarderSettings] = []
    for index, entry in enumerate(entries):
        at = f"forward[{index}]"
        if not isinstance(entry, Mapping):
            _fail(source, at, "a table with name, url and secret", _kind(entry))
        unknown = sorted(set(entry) - set(_KEYS))
        if unknown:
            _fail(source, f"{at}.{unknown[0]}", f"one of the known keys ({', '.join(_KEYS)})", _Found("an unknown key"))
        name = entry.get("name", _MISSING)
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            _fail(source, f"{at}.name", "a name of lowercase letters, digits, '-' or '_'", name)
        if any(other.name == name for other in forwarders):
            _fail(source, f"{at}.name", "a name no other forwarder uses", name)
        url = entry.get("url", _MISSING)
        if not isinstance(url, str):
            _fail(source, f"{at}.url", "an http:// or https:// URL", url if url is _MISSING else _kind(url))
        _check_url(source, f"{at}.url", url)
        secret = entry.get("secret", _MISSING)
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            found = secret if secret is _MISSING else _Found("a value that is not shown (it is a secret)")
            _fail(source, f"{at}.secret", f"a string of at least {MIN_SECRET_LENGTH} characters", found)
        forwarders.append(
            ForwarderSettings(
                name=name,
                url=url,
                secret=Secret(secret),
                sites=_sites(source, f"{at}.sites", entry.get("sites", []), known_sites),
                require_category=_category(source, f"{at}.require_category", entry.get("require_category")),
                batch_size=_batch_size(source, f"{at}.batch_size", entry.get("batch_size", 100)),
                timeout_seconds=_timeout(source, f"{at}.timeout_seconds", entry.get("timeout_seconds", 10)),
                visitor_id=_flag(source, f"{at}.visitor_id", entry.get("visitor_id", False)),
                time=_choice(source, f"{at}.time", entry.get("time", "minute"), get_args(ForwardTime)),
                geo=_choice(source, f"{at}.geo", entry.get("geo", "country"), get_args(ForwardGeo)),
            )
        )
    return tuple(forwarders)


def _check_url(source: str, where: str, url: str) -> None:
    expected = "an http:// or https:// URL with a host"
    if not url.isprintable() or any(c.isspace() for c in url):
        _fail(source, where, expected, _Found("a URL with spaces or control characters"))
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        _fail(source, where, expected, _Found("a URL that cannot be parsed"))
    if parts.scheme not in ("http", "https"):
        _fail(source, where, expected, _Found(f"a URL with scheme {parts.scheme!r}"))
    if not host:
        _fail(source, where, expected, _Found("a URL without a host"))


def _sites(source: str, where: str, value: object, known: Collection[str] | None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        _fail(source, where, "a list of site ids (empty: every site)", value)
    for site in value:
        if known is not None and site not in known:
            _fail(source, where, f"site ids configured under [sites] ({', '.join(sorted(known))})", site)
    return tuple(value)


def _category(source: str, where: str, value: object) -> Category | None:
    if value is None:
        return None
    try:
        return parse_category(value)
    except ValueError:
        _fail(source, where, f"one of {', '.join(CATEGORIES)}", value)


def _batch_size(source: str, where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        _fail(source, where, "a whole number from 1 to 10000", value)
    return value


def _timeout(source: str, where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 300:
        _fail(source, where, "a number of seconds above 0, at most 300", value)
    return float(value)


def _flag(source: str, where: str, value: object) -> bool:
    if not isinstance(value, bool):
        _fail(source, where, "true or false", value)
    return value


def _choice(source: str, where: str, value: object, choices: tuple[_Choice, ...]) -> _Choice:
    for choice in choices:
        if value == choice:
            return choice
    _fail(source, where, " or ".join(repr(choice) for choice in choices), value)
