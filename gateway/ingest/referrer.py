"""Where a pageview came from: the referrer and the page's campaign tags -> a named source and a channel.

Plausible and Matomo answer "where do my visitors come from" with a readable source ("Google",
"Newsletter", "news.example.org") and a coarse channel; so does this module, with no I/O at call
time. The known hosts live in ``config/sources.toml`` and the spam list in
``config/referrer_spam.txt``, each read once on first use. Ad click ids (``gclid`` and kin) name
one click and so, through the ad network, one person: they set ``paid_click`` and
:func:`strip_tracking` removes them before a URL is stored; their values are never returned.
Tag values (``utm_*``, ``source``, ``ref``) come back scrubbed (gateway/ingest/scrub.py): an
email in ``?ref=`` is ``[email]`` before anyone stores, forwards or counts it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from typing import Any, Literal, get_args
from urllib.parse import quote_plus, unquote_plus, urlsplit

from gateway.ingest.referrer_data import ReferrerData, ReferrerEntry, shipped_referrer_data
from gateway.ingest.scrub import scrub_text
from gateway.resources import resource_dir

Channel = Literal["direct", "internal", "search", "social", "email", "paid", "referral"]
#: The channels a known host can belong to (config/sources.toml has one table each).
KnownChannel = Literal["search", "social", "email", "referral"]

DIRECT = "Direct / None"  # Plausible's name for "no referrer, no tags"
FIELD_LIMIT = 200  # every returned string is at most this long
_INPUT_LIMIT = 4096  # the payload caps URLs at 2048; longer text is cut before parsing so work stays bounded

# Ad platforms add these to the landing URL of a paid click only; each names its network.
_AD_CLICK_IDS: Mapping[str, str] = {
    "gclid": "Google",
    "gbraid": "Google",
    "wbraid": "Google",
    "dclid": "Google",
    "msclkid": "Bing",
    "yclid": "Yandex",
    "ttclid": "TikTok",
    "li_fat_id": "LinkedIn",
    "twclid": "X (Twitter)",
}
# Per-click or per-recipient ids that do not mean money was spent: Facebook appends fbclid to every
# outbound link, shared posts included, so it names the network (its in-app browser often sends no
# referrer) but not an ad. The rest identify one newsletter recipient or one browser: stripped only.
_SHARE_IDS: Mapping[str, str | None] = {
    "fbclid": "Facebook",
    "igshid": "Instagram",
    "igsh": "Instagram",
    "mc_eid": None,
    "_hsenc": None,
    "_hsmi": None,
    "mkt_tok": None,
    "_gl": None,
}
# Plausible reads ?source= and ?ref= when utm_source is absent, in this order.
_SOURCE_KEYS = ("utm_source", "source", "ref")
_UTM_KEYS = frozenset({*_SOURCE_KEYS, "utm_medium", "utm_campaign", "utm_content", "utm_term"})

# Medium conventions from Google's channel definitions, matched on the lowercased medium.
_PAID_MEDIUMS = frozenset(
    {"cpc", "ppc", "cpm", "cpv", "cpa", "cpp", "display", "banner", "retargeting", "remarketing"}
)  # and anything starting with "paid" (paid, paid_social, paid-search)
_EMAIL_MEDIUMS = frozenset({"email", "e-mail", "e_mail", "e mail", "mail", "newsletter"})
# Words in utm_source that name a mailing or the service that sent it (weekly-newsletter, mailchimp).
_EMAIL_SOURCE_WORDS = (
    "newsletter",
    "mailchimp",
    "mailerlite",
    "sendinblue",
    "brevo",
    "convertkit",
    "klaviyo",
    "buttondown",
    "mailjet",
    "sendgrid",
    "campaignmonitor",
    "createsend",
    "email",
    "e-mail",
)
_MEDIUM_CHANNELS: Mapping[str, KnownChannel] = {
    **dict.fromkeys(("social", "social-network", "social_network", "social-media", "social_media", "sm"), "social"),
    **dict.fromkeys(("socialmedia", "organic_social", "organic-social", "organicsocial"), "social"),
    **dict.fromkeys(("organic", "organic_search", "organic-search", "seo"), "search"),
    **dict.fromkeys(("referral", "link", "affiliate", "affiliates", "partner"), "referral"),
}

# C0, DEL and C1 controls, and the bidirectional overrides that can make a dashboard row lie.
_INVISIBLE = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F, 0xFEFF])
_INVISIBLE.update(dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))
_HOST = re.compile(r"[\w.-]+|[0-9a-f:.]+")  # a name (IDN letters allowed) or an IPv6 literal
_APP_ID = re.compile(r"[a-z0-9_.-]{1,200}")  # android-app://com.google.android.gm, ios-app://1477376905
_APP_SCHEMES = frozenset({"android-app", "ios-app"})
_COUNTRY_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ac", "ne", "or", "gov", "edu", "gob"})
_CONFIG_TABLES = frozenset({*get_args(KnownChannel), "android_apps", "aliases"})


@dataclass(frozen=True, slots=True)
class Utm:
    source: str | None
    medium: str | None
    campaign: str | None
    content: str | None
    term: str | None


@dataclass(frozen=True, slots=True)
class TrafficSource:
    source: str  # a readable name: "Google", the utm_source, a referral host, or DIRECT
    channel: Channel
    referrer_host: str | None  # lowercased, without "www."; None for direct and internal
    utm: Utm
    paid_click: bool  # an ad click id was present; the id itself is never kept


@dataclass(frozen=True, slots=True)
class KnownSource:
    name: str
    channel: KnownChannel | Literal["paid"]  # "paid": an ad server's host (config/data/referrers.json)


@dataclass(frozen=True, slots=True)
class SourceTable:
    """``config/sources.toml`` as lookups; the most specific host wins (mail.google.com over google.*)."""

    hosts: Mapping[str, KnownSource]  # "facebook.com": itself and its subdomains
    country_hosts: Mapping[str, KnownSource]  # "google" from "google.*": google.de, google.co.uk
    apps: Mapping[str, KnownSource]  # Android package ids
    names: Mapping[str, KnownSource]  # lowercased names and aliases, for utm_source
    # config/data/referrers.json: exact hosts; None marks a host known *not* to be a source
    # (support.google.com), which also stops the walk up to its parent domain.
    listed: Mapping[str, KnownSource | None] = field(default_factory=dict)
    listed_paths: Mapping[str, tuple[tuple[str, KnownSource | None], ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SourceTable:
        """Read the TOML, refusing a mistake (a host listed twice, an alias to no name) at start-up."""
        data = tomllib.loads(text)
        if unknown := sorted(set(data) - _CONFIG_TABLES):
            raise ValueError(f"unknown table [{unknown[0]}]; expected {', '.join(sorted(_CONFIG_TABLES))}")
        hosts: dict[str, KnownSource] = {}
        country_hosts: dict[str, KnownSource] = {}
        names: dict[str, KnownSource] = {}
        for channel in get_args(KnownChannel):
            for name, patterns in _config_table(data, channel).items():
                if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
                    raise ValueError(f"[{channel}] {name!r}: expected a list of hosts")
                known = _add(names, name.lower(), KnownSource(name, channel), "name")
                for pattern in patterns:
                    host = pattern.strip().lower()
                    if host.endswith(".*"):
                        if not re.fullmatch(r"[a-z0-9-]+", host[:-2]):
                            raise ValueError(f"{pattern!r}: a country pattern is one label and .*, like google.*")
                        _add(country_hosts, host[:-2], known, "host")
                    elif _HOST.fullmatch(host) and "." in host:
                        _add(hosts, host, known, "host")
                    else:
                        raise ValueError(f"{pattern!r} is not a host name")
        apps = {package.lower(): _named(names, value) for package, value in _config_table(data, "android_apps").items()}
        for alias, value in _config_table(data, "aliases").items():
            _add(names, alias.lower(), _named(names, value), "name or alias")
        return cls(hosts, country_hosts, apps, names)

    def with_data(self, data: ReferrerData) -> SourceTable:
        """This table over the maintained data: the data's names become ours where an alias says
        they are the same source on the same channel ("Youtube" -> "YouTube", "Twitter" -> "X (Twitter)")."""
        listed = {host: self._known(entry) for host, entry in data.hosts.items()}
        paths = {host: tuple((p, self._known(e)) for p, e in found) for host, found in data.paths.items()}
        apps = {package: known for package, entry in data.apps.items() if (known := self._known(entry))}
        names = dict(self.names)
        for known in sorted({k for k in listed.values() if k and k.channel != "paid"}, key=lambda k: k.name):
            names.setdefault(known.name.lower(), known)
        return replace(self, apps={**apps, **self.apps}, names=names, listed=listed, listed_paths=paths)

    def _known(self, entry: ReferrerEntry) -> KnownSource | None:
        if entry.medium == "unknown":
            return None
        channel: KnownChannel | Literal["paid"] = entry.medium
        ours = self.names.get(entry.name.lower())
        return ours if ours is not None and ours.channel == channel else KnownSource(entry.name, channel)

    def match_host(self, host: str, path: str = "") -> KnownSource | None:
        """The most specific listing wins: this host, then each parent domain in turn.

        Our own table (config/sources.toml) names a host and its subdomains. The data names exact
        hosts, as Snowplow's referer-parser intends; a parent domain in the data still covers its
        subdomains for social, email and ad hosts (l.facebook.com), but a subdomain of a search
        engine that the data does not list is another product of that company (translate.google.com,
        news.yahoo.com), not a search: it counts as a referral under its own host. Hosts the data
        lists as "unknown" (support.google.com, maps.google.com) are referrals too.
        """
        labels = host.split(".")
        for start in range(len(labels)):
            candidate = ".".join(labels[start:])
            if known := self.hosts.get(candidate):
                return known if start == 0 or known.channel != "search" else None
            if start == 0 and (known := self.country_hosts.get(labels[0])) and _is_country_suffix(labels[1:]):
                return known
            if start == 0 and candidate in self.listed_paths:
                for prefix, entry in self.listed_paths[candidate]:
                    if path == prefix or path.startswith(prefix + "/"):
                        return entry
            if candidate in self.listed:
                listed = self.listed[candidate]
                return listed if listed is None or start == 0 or listed.channel != "search" else None
        return None

    def match_name(self, text: str) -> KnownSource | None:
        """A utm_source that names a known source: "Google", "fb", "l.facebook.com"."""
        key = text.strip().lower()
        if known := self.names.get(key):
            return known
        host = key.removeprefix("www.")
        return self.match_host(host) if "." in host and _HOST.fullmatch(host) else None


@cache
def source_table() -> SourceTable:
    """The shipped table, parsed once: read-only data, like the templates."""
    table = SourceTable.parse((resource_dir("config") / "sources.toml").read_text(encoding="utf-8"))
    return table.with_data(shipped_referrer_data())


@lru_cache(maxsize=4096)
def classify_source(page_url: str, referrer: str | None, *, own_hosts: frozenset[str]) -> TrafficSource:
    """Name the source and pick the channel; never raises, whatever the visitor's browser sent.

    Channel priority: an ad click id or a paid utm_medium; an email medium or sender; a known
    referrer (search, social, webmail); the site's own hosts (or the page's host) -> internal; a
    utm_medium or utm_source that says social/search/referral; an unknown referrer -> referral;
    fbclid without a referrer -> social; tags without a referrer -> referral; else direct.
    The source is utm_source (or ?source=, ?ref=) when tagged, as in Plausible. Cached (in memory,
    bounded): landing pages and the referrers that lead to them repeat.
    """
    table = source_table()
    params = _query_params(page_url)
    utm = _read_utm(params)
    ad_network = next((_AD_CLICK_IDS[key] for key, value in params if key in _AD_CLICK_IDS and value), None)
    share_network = next((_SHARE_IDS[key] for key, value in params if _SHARE_IDS.get(key) and value), None)
    origin = _read_referrer(referrer, table)
    internal = origin is not None and not origin.app and _is_own(origin.host, own_hosts, page_url)
    outside = origin if origin is not None and not internal else None
    tagged_as = table.match_name(utm.source) if utm.source else None
    click_network = ad_network or share_network

    if utm.source:
        source = tagged_as.name if tagged_as else utm.source
    elif outside is not None:
        source = outside.known.name if outside.known else outside.host
    else:
        source = click_network or DIRECT

    medium = (utm.medium or "").lower()
    channel: Channel
    if ad_network or medium in _PAID_MEDIUMS or medium.startswith("paid"):
        channel = "paid"
    elif medium in _EMAIL_MEDIUMS or any(word in (utm.source or "").lower() for word in _EMAIL_SOURCE_WORDS):
        channel = "email"
    elif outside is not None and outside.known is not None and outside.known.channel != "referral":
        channel = outside.known.channel
    elif internal:
        channel = "internal"
    elif tagged := _MEDIUM_CHANNELS.get(medium) or (tagged_as.channel if tagged_as else None):
        channel = tagged
    elif outside is not None:
        channel = "referral"
    elif share_network and (network := table.match_name(share_network)):
        channel = network.channel
    elif utm.source or utm.medium:
        channel = "referral"
    else:
        channel = "direct"
    host = outside.host if outside is not None else None
    return TrafficSource(source, channel, host, utm, paid_click=ad_network is not None)


def strip_tracking(url: str) -> str:
    """The page URL to store: without the fragment, UTM tags and click ids, other values scrubbed.

    Keys are compared decoded and lowercased (``%67clid``, ``GCLID``) so no spelling keeps an id.
    A kept value is scrubbed decoded (``%2B33 6...`` is a phone number) and re-encoded only when
    the scrubber changed it. String surgery rather than urlsplit/urlunsplit: it cannot raise.
    """
    head, _, query = url.partition("#")[0].partition("?")
    kept = [_scrub_param(part) for part in query.split("&") if part and not _is_tracking_key(_param_name(part))]
    return f"{head}?{'&'.join(kept)}" if kept else head


def _scrub_param(part: str) -> str:
    name, equals, value = part.partition("=")
    decoded = unquote_plus(value)
    scrubbed = scrub_text(decoded)
    return part if scrubbed == decoded else f"{name}{equals}{quote_plus(scrubbed, safe='[]')}"


@cache
def _spam_domains() -> frozenset[str]:
    return parse_spam_list((resource_dir("config") / "referrer_spam.txt").read_text(encoding="utf-8"))


def parse_spam_list(text: str) -> frozenset[str]:
    """One domain a line, ``#`` comments; stored lowercased without "www." like referrer hosts."""
    lines = (line.partition("#")[0].strip().lower().removeprefix("www.") for line in text.splitlines())
    return frozenset(line for line in lines if line)


@lru_cache(maxsize=4096)
def is_referrer_spam(referrer_host: str | None) -> bool:
    """True when the host or a domain above it is on the spam list (Matomo's referrer-spam-list)."""
    if not referrer_host:
        return False
    labels = referrer_host[-253:].strip().lower().rstrip(".").removeprefix("www.").split(".")
    domains = _spam_domains()
    return any(".".join(labels[start:]) in domains for start in range(len(labels)))


@dataclass(frozen=True, slots=True)
class _Referrer:
    host: str  # a host name, or an app's id for android-app:// and ios-app://
    known: KnownSource | None
    app: bool = False


def _read_referrer(referrer: str | None, table: SourceTable) -> _Referrer | None:
    """None for anything we cannot name a host from (about:blank, file:, a bare word, HTML)."""
    if not referrer:
        return None
    try:
        parts = urlsplit(_clean_text(referrer))
    except ValueError:  # an unbalanced [IPv6 bracket or a netloc that NFKC-normalises into a separator
        return None
    if parts.scheme in ("http", "https"):
        host = _normalise_host(parts.hostname)
        return _Referrer(host, table.match_host(host, parts.path)) if host else None
    if parts.scheme in _APP_SCHEMES and parts.hostname and _APP_ID.fullmatch(parts.hostname):
        return _Referrer(parts.hostname, table.apps.get(parts.hostname), app=True)
    return None


def _normalise_host(hostname: str | None) -> str | None:
    host = (hostname or "").lower().rstrip(".").removeprefix("www.")
    if not host or not _HOST.fullmatch(host):
        return None
    if len(host) > FIELD_LIMIT:
        # Keep the end, where the registrable domain is, on a label boundary.
        host = host[-FIELD_LIMIT:].partition(".")[2] or host[-FIELD_LIMIT:]
    return host


def _is_own(host: str, own_hosts: frozenset[str], page_url: str) -> bool:
    """The site's configured hosts, or the page's own host (a site whose origins were not all listed)."""
    if host in _normalise_own(own_hosts):
        return True
    try:
        return host == _normalise_host(urlsplit(_clean_text(page_url)).hostname)
    except ValueError:
        return False


@lru_cache(maxsize=64)
def _normalise_own(own_hosts: frozenset[str]) -> frozenset[str]:
    normalised = set()
    for entry in own_hosts:
        host = entry.strip().lower()
        if host.startswith("["):
            host = host[1:].partition("]")[0]
        elif host.count(":") == 1:
            host = host.partition(":")[0]
        normalised.add(host.rstrip(".").removeprefix("www."))
    return frozenset(normalised)


def _is_country_suffix(labels: list[str]) -> bool:
    """com, de, co.uk, com.au: what follows google in Google's country domains."""
    if len(labels) == 1:
        return labels[0].isascii() and labels[0].isalpha()
    return (
        len(labels) == 2
        and labels[0] in _COUNTRY_SECOND_LEVEL
        and len(labels[1]) == 2
        and labels[1].isascii()
        and labels[1].isalpha()
    )


def _query_params(url: str) -> list[tuple[str, str]]:
    """(decoded lowercased key, decoded value) pairs; invalid escapes stay literal, as browsers keep them."""
    query = url[:_INPUT_LIMIT].partition("#")[0].partition("?")[2]
    return [(_param_name(part), unquote_plus(part.partition("=")[2])) for part in query.split("&") if part]


def _param_name(part: str) -> str:
    return unquote_plus(part.partition("=")[0]).strip().lower()


def _is_tracking_key(key: str) -> bool:
    return key.startswith("utm_") or key in _AD_CLICK_IDS or key in _SHARE_IDS


def _read_utm(params: list[tuple[str, str]]) -> Utm:
    values: dict[str, str] = {}
    for key, value in params:
        if key in _UTM_KEYS and key not in values and (cleaned := _clean_value(value)):
            values[key] = cleaned
    source = next((values[key] for key in _SOURCE_KEYS if key in values), None)
    return Utm(
        source, values.get("utm_medium"), values.get("utm_campaign"), values.get("utm_content"), values.get("utm_term")
    )


def _clean_text(text: str) -> str:
    return text[:_INPUT_LIMIT].translate(_INVISIBLE).strip()


def _clean_value(value: str) -> str | None:
    """A tag value to keep: emails, phone numbers and tokens scrubbed before it is cut to length,
    so a cut can never leave half an address the scrubber no longer recognises."""
    return scrub_text(_clean_text(value))[:FIELD_LIMIT].rstrip() or None


def _config_table(data: dict[str, Any], name: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ValueError(f"[{name}] must be a table")
    return table


def _named(names: Mapping[str, KnownSource], value: object) -> KnownSource:
    known = names.get(value.lower()) if isinstance(value, str) else None
    if known is None:
        raise ValueError(f"{value!r} is not a name in [search], [social], [email] or [referral]")
    return known


def _add(table: dict[str, KnownSource], key: str, known: KnownSource, what: str) -> KnownSource:
    if key in table:
        raise ValueError(f"{what} {key!r} is listed twice ({table[key].name} and {known.name})")
    table[key] = known
    return known
