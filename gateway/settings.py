"""Settings: frozen dataclasses read from ``config/gateway.toml``, a user file and the environment.

Order of precedence (later wins): the shipped defaults, the user's file (``--config`` or
``CONSENT_GATEWAY_CONFIG``), then ``CONSENT_GATEWAY_*`` variables for single values
(``CONSENT_GATEWAY_DATABASE``, ``CONSENT_GATEWAY_SITES__DEMO__POLICY_REVISION``). A mistake
raises ``SettingsError`` naming the file, the key, what was found and what is expected.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.categories import CATEGORIES, Category, parse_category
from gateway.consent.texts import LANGUAGES, text_keys
from gateway.cookies.catalog import CatalogError, CookieRule, rules_from_entries
from gateway.cookies.lifetimes import Lifetime, parse_lifetime
from gateway.forward_settings import ForwarderSettings, parse_forwarders
from gateway.ingest.bots import IgnoreList
from gateway.resources import resource_dir
from gateway.settings_values import Secret as Secret  # re-exported: settings is where callers look
from gateway.settings_values import SettingsError as SettingsError
from gateway.stats.goals import Funnel, Goal, GoalError, parse_funnels, parse_goals
from gateway.storage.location import DatabaseLocation, PostgresUrl, parse_database

ENV_PREFIX = "CONSENT_GATEWAY_"
THIRTEEN_MONTHS = parse_lifetime("13mo")
UnknownCookiePolicy = Literal["block", "allow"]
AnalyticsConsent = Literal["cookieless", "required"]
#: How often a site is scanned on its own (gateway/scan/schedule.py).
ScanSchedule = Literal["off", "daily", "weekly", "monthly"]
#: The CNIL audience-measurement limit, also applied to advertising unless a site says otherwise.
DEFAULT_CAPS: Mapping[Category, Lifetime] = MappingProxyType(
    {"analytics": THIRTEEN_MONTHS, "advertising": THIRTEEN_MONTHS}
)
#: Who may read /metrics without the token when ``metrics_networks`` is not set: this machine only.
DEFAULT_METRICS_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1"))
# Matched with fullmatch: "$" would also accept a trailing newline.
_SITE_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_ORIGIN_RE = re.compile(r"https?://[a-z0-9.-]+(:\d{1,5})?")
# No quotes, spaces or angle brackets: the URL goes into a pasted <script src="..."> tag as it is.
_PUBLIC_URL_RE = re.compile(
    r"(?P<scheme>https?)://(?P<host>[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(?P<port>\d{1,5}))?(?P<path>/[\w.~%!$&()*+,;=:@/-]*)?",
    re.IGNORECASE | re.ASCII,
)


@dataclass(frozen=True, slots=True)
class Service:
    """A named service inside a category (Klaro's "apps"): consent can be given per service."""

    id: str
    name: str
    category: Category
    description: str = ""


BannerPosition = Literal["bar", "box", "modal"]


@dataclass(frozen=True, slots=True)
class BannerSettings:
    """How the snippet's banner looks: where it sits, its colours, any text the site rewrites."""

    position: BannerPosition = "bar"
    #: CSS custom properties set on the banner's shadow host, such as ``--cg-accent``.
    theme: Mapping[str, str] = field(default_factory=dict)
    #: Per language, texts replacing the shipped ones (keys of consent_ui/i18n/en.json).
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SiteSettings:
    id: str
    name: str
    origins: tuple[str, ...] = ()
    policy_revision: int = 1
    policy_url: str = ""
    #: Per-category caps; ``None`` means only the cookie's declared lifetime applies.
    lifetime_caps: Mapping[Category, Lifetime | None] = field(default_factory=lambda: dict(DEFAULT_CAPS))
    consent_lifetime_accept: Lifetime = parse_lifetime("6mo")
    consent_lifetime_reject: Lifetime = parse_lifetime("6mo")
    consent_cookie_domain: str | None = None
    unknown_cookies: UnknownCookiePolicy = "block"
    honour_dnt: bool = False
    services: tuple[Service, ...] = ()
    cookie_rules: tuple[CookieRule, ...] = ()
    #: "cookieless": anonymous counting needs no consent (the CNIL audience-measurement
    #: exemption); "required": only visitors who allowed analytics are counted.
    analytics_consent: AnalyticsConsent = "cookieless"
    #: Client networks never counted (the team's office, monitoring), as IPs or CIDRs.
    ignore_ips: tuple[str, ...] = ()
    #: Server-side pageviews recorded by ``PageviewMiddleware``: path patterns (``*`` any run).
    pageview_paths: tuple[str, ...] = ("/*",)
    pageview_exclude: tuple[str, ...] = ()
    banner: BannerSettings = field(default_factory=BannerSettings)
    #: localStorage/sessionStorage keys (``prefix*`` patterns) the snippet clears with a category.
    storage_keys: Mapping[Category, tuple[str, ...]] = field(default_factory=dict)
    #: The IANA time zone the dashboard's days, hours and periods follow.
    timezone: str = "UTC"
    #: The privacy floor: a row or bucket of fewer visitors is folded into "(other)" or withheld.
    min_visitors: int = 5
    goals: tuple[Goal, ...] = ()
    funnels: tuple[Funnel, ...] = ()
    #: Compliance scans (gateway/scan/): how often one runs on its own, where it starts, how many pages it visits.
    scan_schedule: ScanSchedule = "off"
    #: "" only for a site without origins (then it cannot be scanned on a schedule).
    scan_url: str = ""
    scan_pages: int = 50
    #: The dashboard labels the site's pages "Sample data": set by ``consent-gateway demo`` when its
    #: database holds the generated figures (gateway/sample_data.py), never read from a config file.
    sample_data: bool = False

    #: The site's host names (from its origins), for telling internal referrers apart.
    own_hosts: frozenset[str] = field(init=False, repr=False, compare=False)
    #: ``timezone`` as a ZoneInfo.
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hosts = frozenset(origin.split("://", 1)[1].split(":", 1)[0].removeprefix("www.") for origin in self.origins)
        object.__setattr__(self, "own_hosts", hosts)  # worked out once: every event asks
        object.__setattr__(self, "zone", ZoneInfo(self.timezone))

    def cap_for(self, category: Category) -> Lifetime | None:
        return self.lifetime_caps.get(category)

    def service(self, service_id: str) -> Service | None:
        return next((s for s in self.services if s.id == service_id), None)


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind of data is kept; the daily purge deletes whatever is older.

    Raw events and visits are the detail, kept shortest; the daily rollups are anonymous
    aggregates, kept at most 25 months by default (the CNIL audience-measurement exemption's
    limit). A consent record is proof for as long as the consent lasts, and is kept this much
    longer after it ends so a complaint about it can still be answered.
    """

    events: Lifetime = parse_lifetime("6mo")
    rollups: Lifetime = parse_lifetime("25mo")
    consent_records: Lifetime = parse_lifetime("12mo")


@dataclass(frozen=True, slots=True)
class Settings:
    secret_keys: tuple[Secret, ...]
    #: A SQLite file (the embedded default) or a ``postgresql://`` URL (gateway/storage/location.py).
    database: DatabaseLocation
    #: Keys the visitor hashes (gateway/ingest/visitor.py); None: derived from ``secret_keys``.
    visitor_key: Secret | None = None
    geoip_database: Path | None = None
    catalog: Path = field(default_factory=lambda: resource_dir("config") / "cookies.toml")
    host: str = "127.0.0.1"
    port: int = 8000
    #: The gateway's address as its users reach it (``https://stats.example.com``): shared links and the snippet
    #: tag are built from it, never from the Host header; None: they are shown as paths.
    public_url: str | None = None
    workers: int = 1
    debug: bool = False
    max_body_bytes: int = 4096
    #: ``/metrics`` opens to ``Authorization: Bearer <token>`` from anywhere (CONSENT_GATEWAY_METRICS_TOKEN).
    metrics_token: Secret | None = None
    #: ``/metrics`` opens without the token to clients in these networks (default: loopback only).
    metrics_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = DEFAULT_METRICS_NETWORKS
    #: How often the days that received events are rolled up again.
    rollup_interval: Lifetime = parse_lifetime("5m")
    #: Filtered queries (any ``f=``) a shared link or an API key may make per 10 minutes (then 429).
    filtered_query_limit: int = 60
    #: ``serve``: seconds a connection has to send a complete request head before it is closed.
    head_timeout_seconds: int = 5
    #: ``serve``: the largest request head (request line and headers); larger ones are answered 431.
    max_head_bytes: int = 16 * 1024
    #: ``serve``: open connections per worker beyond which a request is answered 503 with Retry-After.
    max_connections: int = 1000
    #: Password hashes (scrypt, ~32 MB each) computed at once per worker; more logins wait their turn.
    password_hash_concurrency: int = 2
    #: ``/healthz`` fails (503) when the database's filesystem has less free space than this.
    min_free_disk_mb: int = 100
    #: ``/healthz`` fails (503) when events have waited this long for a commit.
    max_writer_lag_seconds: int = 10
    retention: Retention = field(default_factory=Retention)
    #: Webhooks that receive the anonymised events (``[[forward]]``).
    forwarders: tuple[ForwarderSettings, ...] = ()
    sites: Mapping[str, SiteSettings] = field(default_factory=dict)
    source: str = "defaults"

    @property
    def zones(self) -> dict[str, ZoneInfo]:
        """Each site's time zone: the rollups' days follow it."""
        return {site_id: site.zone for site_id, site in self.sites.items()}

    def site(self, site_id: str) -> SiteSettings | None:
        return self.sites.get(site_id)


def default_config_path() -> Path:
    return resource_dir("config") / "gateway.toml"


def load_settings(path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the defaults, then ``path`` (or ``CONSENT_GATEWAY_CONFIG``), then the environment."""
    environ = os.environ if environ is None else environ
    raw = _read_toml(default_config_path())
    source = str(default_config_path())
    user_path = path or (Path(environ[f"{ENV_PREFIX}CONFIG"]) if environ.get(f"{ENV_PREFIX}CONFIG") else None)
    if user_path is not None:
        raw = _deep_merge(raw, _read_toml(user_path))
        source = str(user_path)
    raw = _apply_environment(raw, environ)
    return settings_from_dict(raw, source=source)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"config error in {path}: the file does not exist") from None
    except OSError as error:
        raise SettingsError(f"config error in {path}: cannot read the file ({error.strerror})") from None
    except UnicodeDecodeError:
        raise SettingsError(f"config error in {path}: the file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config error in {path}: not valid TOML ({error})") from None


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """``CONSENT_GATEWAY_A__B=v`` sets ``raw["a"]["b"]``; the value is read as TOML, else as text."""
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == f"{ENV_PREFIX}CONFIG":
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        try:
            value: Any = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        target = raw
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise SettingsError(f"config error in environment: {name}: {part!r} is not a table")
        target[path[-1]] = value
    return raw


class _Hidden:
    def __repr__(self) -> str:
        return "an unknown key (value not shown)"


class _Table:
    """Typed reads from one TOML table that name the file and key on failure."""

    def __init__(self, data: Mapping[str, Any], *, source: str, prefix: str, known: set[str]) -> None:
        self.data, self.source, self.prefix = data, source, prefix
        unknown = sorted(set(data) - known)
        if unknown:
            # the value is not shown: a misspelt secret_keys would otherwise print the secret
            self.fail(unknown[0], _Hidden(), f"one of the known keys ({', '.join(sorted(known))})")

    def fail(self, key: str, found: object, expected: str) -> NoReturn:
        where = f"{self.prefix}{key}"
        if not where.isprintable():  # a quoted TOML key may hold a newline: keep the message one line
            where = repr(where)
        raise SettingsError(f"config error in {self.source}: {where}: expected {expected}, found {found!r}")

    def text(self, key: str, default: str) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str):
            self.fail(key, value, "a string")
        return value

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(key, value, f"a whole number from {low} to {high}")
        return int(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, value, "true or false")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if isinstance(value, str):  # a comma-separated environment value
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(key, value, "a list of strings")
        return tuple(value)

    def lifetime(
        self, key: str, default: str, *, most: Lifetime | None = None, least: Lifetime | None = None
    ) -> Lifetime:
        value = self.data.get(key, default)
        try:
            lifetime = parse_lifetime(value)
        except ValueError:
            self.fail(key, value, "a lifetime such as '30m', '90d', '6mo', '13mo' or 'session'")
        too_long = most is not None and (lifetime.seconds is None or lifetime.seconds > (most.seconds or 0))
        too_short = least is not None and (lifetime.seconds is None or lifetime.seconds < (least.seconds or 0))
        if most is not None and least is not None and (too_long or too_short):
            self.fail(key, value, f"a lifetime from {least.describe()} to {most.describe()}")
        if most is not None and too_long:
            self.fail(key, value, f"a lifetime of at most {most.describe()}")
        if least is not None and too_short:
            self.fail(key, value, f"a lifetime of at least {least.describe()} (not 'session')")
        return lifetime

    def table(self, key: str) -> Mapping[str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, Mapping):
            self.fail(key, value, "a table")
        return value


_TOP_KEYS = {
    "secret_keys",
    "visitor_key",
    "database",
    "geoip_database",
    "catalog",
    "host",
    "port",
    "workers",
    "debug",
    "max_body_bytes",
    "metrics_token",
    "public_url",
    "metrics_networks",
    "rollup_interval",
    "filtered_query_limit",
    "head_timeout_seconds",
    "max_head_bytes",
    "max_connections",
    "password_hash_concurrency",
    "min_free_disk_mb",
    "max_writer_lag_seconds",
    "retention",
    "forward",
    "site_defaults",
    "sites",
}
_SITE_KEYS = {
    "name",
    "origins",
    "policy_revision",
    "policy_url",
    "lifetime_caps",
    "consent_lifetime_accept",
    "consent_lifetime_reject",
    "consent_cookie_domain",
    "unknown_cookies",
    "honour_dnt",
    "services",
    "cookies",
    "analytics_consent",
    "ignore_ips",
    "pageview_paths",
    "pageview_exclude",
    "banner",
    "storage",
    "timezone",
    "min_visitors",
    "goals",
    "funnels",
    "scan_schedule",
    "scan_url",
    "scan_pages",
}
_THEME_PROPERTY_RE = re.compile(r"--cg-[a-z0-9-]{1,40}")
_THEME_VALUE_RE = re.compile(r"[^;{}<>\\\n\r]{1,200}")


def settings_from_dict(raw: Mapping[str, Any], *, source: str = "settings") -> Settings:
    """Validate a merged configuration mapping into ``Settings``."""
    top = _Table(raw, source=source, prefix="", known=_TOP_KEYS)
    site_defaults = top.table("site_defaults")
    sites: dict[str, SiteSettings] = {}
    for site_id, site_raw in top.table("sites").items():
        if not _SITE_ID_RE.fullmatch(site_id):
            top.fail(f"sites.{site_id}", site_id, "a site id of lowercase letters, digits, '-' or '_'")
        if not isinstance(site_raw, Mapping):
            top.fail(f"sites.{site_id}", site_raw, "a table")
        sites[site_id] = _site_from_dict(site_id, _deep_merge(site_defaults, site_raw), source=source)
    geoip = top.text("geoip_database", "")
    catalog = top.text("catalog", "")
    return Settings(
        secret_keys=_secret_keys(top),
        visitor_key=_visitor_key(top),
        database=_database(top),
        geoip_database=Path(geoip) if geoip else None,
        catalog=Path(catalog) if catalog else resource_dir("config") / "cookies.toml",
        host=top.text("host", "127.0.0.1"),
        port=top.integer("port", 8000, low=0, high=65535),
        workers=top.integer("workers", 1, low=1, high=64),
        debug=top.boolean("debug", False),
        max_body_bytes=top.integer("max_body_bytes", 4096, low=512, high=1_048_576),
        metrics_token=_metrics_token(top),
        metrics_networks=_metrics_networks(top),
        rollup_interval=top.lifetime("rollup_interval", "5m", least=parse_lifetime("10s"), most=parse_lifetime("1d")),
        public_url=_public_url(top),
        filtered_query_limit=top.integer("filtered_query_limit", 60, low=1, high=100_000),
        head_timeout_seconds=top.integer("head_timeout_seconds", 5, low=1, high=300),
        max_head_bytes=top.integer("max_head_bytes", 16 * 1024, low=1024, high=1_048_576),
        max_connections=top.integer("max_connections", 1000, low=1, high=1_000_000),
        password_hash_concurrency=top.integer("password_hash_concurrency", 2, low=1, high=64),
        min_free_disk_mb=top.integer("min_free_disk_mb", 100, low=0, high=10_000_000),
        max_writer_lag_seconds=top.integer("max_writer_lag_seconds", 10, low=1, high=3600),
        retention=_retention(top),
        sites=MappingProxyType(sites),
        forwarders=parse_forwarders(raw.get("forward", []), source=source, known_sites=sites.keys()),
        source=source,
    )


def _database(top: _Table) -> DatabaseLocation:
    text = top.text("database", "data/gateway.sqlite3")
    try:
        return parse_database(text)
    except ValueError as error:
        top.fail(
            "database",
            PostgresUrl(text).redacted if "://" in text else text,
            f"a file path or a postgresql:// URL; it {error}",
        )


def _retention(top: _Table) -> Retention:
    table = _Table(
        top.table("retention"), source=top.source, prefix="retention.", known={"events", "rollups", "consent_records"}
    )
    one_day = parse_lifetime("1d")  # the purge runs daily: a shorter retention could not be honoured
    retention = Retention(
        events=table.lifetime("events", "6mo", least=one_day),
        rollups=table.lifetime("rollups", "25mo", least=one_day),
        consent_records=table.lifetime("consent_records", "12mo", least=one_day),
    )
    if (retention.events.seconds or 0) > (retention.rollups.seconds or 0):
        # the rollups are rebuilt from the events: once those are gone, the rollups are all that is left
        table.fail(
            "events",
            table.data.get("events", "6mo"),
            f"a lifetime no longer than retention.rollups ({retention.rollups})",
        )
    return retention


def _secret_keys(top: _Table) -> tuple[Secret, ...]:
    try:
        return tuple(Secret(key) for key in top.strings("secret_keys"))
    except SettingsError:  # the usual message quotes the value found, and that value holds the keys
        raise SettingsError(
            f"config error in {top.source}: secret_keys: expected a list of strings "
            "(the value found is not shown: it holds secret keys)"
        ) from None


def _public_url(top: _Table) -> str | None:
    """The gateway's own address, scheme and host lowercased, without a trailing slash; None when unset.

    Links built from the request's Host header would carry whatever a client sent (``Host: evil.example``).
    """
    value = top.text("public_url", "")
    if not value:
        return None
    match = _PUBLIC_URL_RE.fullmatch(value.rstrip("/"))
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) <= 65535):
        top.fail(
            "public_url",
            value,
            "the gateway's address, such as 'https://stats.example.com' (http or https, a host, an optional port "
            "and path; no query, fragment or user)",
        )
    port = f":{match['port']}" if match["port"] else ""
    return f"{match['scheme'].lower()}://{match['host'].lower()}{port}{match['path'] or ''}"


def _metrics_token(top: _Table) -> Secret | None:
    """At least 16 characters (a number from the environment counts as its digits); never quoted in an error."""
    value = top.data.get("metrics_token")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # CONSENT_GATEWAY_METRICS_TOKEN=1234... is read as TOML, so as a number
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) < 16 or not value.isprintable() or value != value.strip():
        raise SettingsError(
            f"config error in {top.source}: metrics_token: expected a string of at least 16 printable characters "
            "(the value found is not shown: it is a secret)"
        )
    return Secret(value)


def _metrics_networks(top: _Table) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if "metrics_networks" not in top.data:
        return DEFAULT_METRICS_NETWORKS
    networks = []
    for entry in top.strings("metrics_networks"):
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            top.fail("metrics_networks", entry, "networks such as '127.0.0.0/8', '10.1.2.0/24' or '::1'")
    return tuple(networks)


def _visitor_key(top: _Table) -> Secret | None:
    """A long random string, or absent (then derived from ``secret_keys``); never quoted in an error."""
    value = top.data.get("visitor_key")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) < 32:
        raise SettingsError(
            f"config error in {top.source}: visitor_key: expected a random string of at least 32 characters "
            "(the value found is not shown: it is a secret)"
        )
    return Secret(value)


def _site_from_dict(site_id: str, raw: Mapping[str, Any], *, source: str) -> SiteSettings:
    prefix = f"sites.{site_id}."
    table = _Table(raw, source=source, prefix=prefix, known=_SITE_KEYS)
    origins = tuple(origin.rstrip("/").lower() for origin in table.strings("origins"))
    for origin in origins:
        if not _ORIGIN_RE.fullmatch(origin):
            table.fail("origins", origin, "origins such as 'https://www.example.com' (scheme, host, optional port)")
    caps_table = _Table(
        table.table("lifetime_caps"), source=source, prefix=f"{prefix}lifetime_caps.", known=set(CATEGORIES)
    )
    caps: dict[Category, Lifetime | None] = {}
    for category in CATEGORIES:
        if category in caps_table.data:
            caps[category] = caps_table.lifetime(category, "session")
        elif "lifetime_caps" not in raw and category in DEFAULT_CAPS:
            caps[category] = DEFAULT_CAPS[category]
    unknown = table.text("unknown_cookies", "block")
    if unknown not in ("block", "allow"):
        table.fail("unknown_cookies", unknown, "'block' (blocked until classified) or 'allow'")
    domain = table.text("consent_cookie_domain", "").strip().lstrip(".").lower()
    analytics_consent = table.text("analytics_consent", "cookieless")
    if analytics_consent not in ("cookieless", "required"):
        table.fail("analytics_consent", analytics_consent, "'cookieless' (count anonymously) or 'required'")
    ignore_ips = table.strings("ignore_ips")
    try:
        IgnoreList.parse(ignore_ips)
    except ValueError as error:
        table.fail("ignore_ips", ignore_ips, str(error).removeprefix("expected "))
    for key in ("pageview_paths", "pageview_exclude"):
        bad = [p for p in table.strings(key) if not p.startswith("/")]
        if bad:
            table.fail(key, bad[0], "path patterns starting with '/', such as '/blog/*'")
    timezone = table.text("timezone", "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        table.fail("timezone", timezone, "an IANA time zone such as 'Europe/Paris' or 'UTC'")
    try:
        goals = parse_goals(table.data.get("goals", []), prefix=prefix)
        funnels = parse_funnels(table.data.get("funnels", []), goals, prefix=prefix)
    except GoalError as error:
        table.fail(error.key.removeprefix(prefix), error.found, error.expected)
    scan_schedule, scan_url = _scan_settings(table, origins)
    return SiteSettings(
        id=site_id,
        name=table.text("name", site_id),
        origins=origins,
        policy_revision=table.integer("policy_revision", 1, low=1, high=1_000_000),
        policy_url=table.text("policy_url", ""),
        lifetime_caps=MappingProxyType(caps),
        consent_lifetime_accept=table.lifetime("consent_lifetime_accept", "6mo", most=THIRTEEN_MONTHS),
        consent_lifetime_reject=table.lifetime("consent_lifetime_reject", "6mo", most=THIRTEEN_MONTHS),
        consent_cookie_domain=domain or None,
        unknown_cookies=unknown,  # type: ignore[arg-type]
        honour_dnt=table.boolean("honour_dnt", False),
        services=_services(table, source=source),
        cookie_rules=_site_rules(table, site_id, source=source),
        analytics_consent=analytics_consent,  # type: ignore[arg-type]
        ignore_ips=ignore_ips,
        pageview_paths=table.strings("pageview_paths") if "pageview_paths" in table.data else ("/*",),
        pageview_exclude=table.strings("pageview_exclude"),
        banner=_banner(table, source=source),
        storage_keys=_storage_keys(table, source=source),
        timezone=timezone,
        min_visitors=table.integer("min_visitors", 5, low=2, high=1000),
        goals=goals,
        funnels=funnels,
        scan_schedule=scan_schedule,  # type: ignore[arg-type]
        scan_url=scan_url,
        scan_pages=table.integer("scan_pages", 50, low=1, high=1000),
    )


def _scan_settings(table: _Table, origins: tuple[str, ...]) -> tuple[str, str]:
    """``scan_schedule`` and ``scan_url`` (default: the first origin's home page)."""
    schedule = table.text("scan_schedule", "off")
    if schedule not in ("off", "daily", "weekly", "monthly"):
        table.fail("scan_schedule", schedule, "'off', 'daily', 'weekly' or 'monthly'")
    url = table.text("scan_url", f"{origins[0]}/" if origins else "")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # "http://[::1" and the like
        host = None
    if url and (not host or parts.scheme not in ("http", "https") or len(url) > 2000 or not url.isprintable()):
        table.fail("scan_url", url, "an http(s) URL such as 'https://www.example.com/'")
    if schedule != "off" and not url:
        table.fail("scan_schedule", schedule, "'off' for a site without origins or scan_url (what would it scan?)")
    return schedule, url


def _banner(table: _Table, *, source: str) -> BannerSettings:
    banner = _Table(
        table.table("banner"), source=source, prefix=f"{table.prefix}banner.", known={"position", "theme", "texts"}
    )
    position = banner.text("position", "bar")
    if position not in ("bar", "box", "modal"):
        banner.fail("position", position, "'bar' (bottom bar), 'box' (corner box) or 'modal' (centred)")
    theme: dict[str, str] = {}
    for name, value in banner.table("theme").items():
        if not _THEME_PROPERTY_RE.fullmatch(name):
            banner.fail(f"theme.{name}", value, "CSS custom properties named like '--cg-accent'")
        if not isinstance(value, str) or not _THEME_VALUE_RE.fullmatch(value):
            banner.fail(f"theme.{name}", value, "a CSS value such as '#0b57d0' (no ; { } < > or newlines)")
        theme[name] = value
    known_keys = text_keys()
    texts: dict[str, Mapping[str, str]] = {}
    for language, entries in banner.table("texts").items():
        if language not in LANGUAGES:
            banner.fail(f"texts.{language}", entries, f"a language we ship ({', '.join(LANGUAGES)})")
        if not isinstance(entries, Mapping):
            banner.fail(f"texts.{language}", entries, 'a table of texts such as {"button.accept_all" = "OK"}')
        for key, text in entries.items():
            if key not in known_keys:
                banner.fail(f"texts.{language}.{key}", text, "a text key of consent_ui/i18n/en.json")
            if not isinstance(text, str) or not text.strip():
                banner.fail(f"texts.{language}.{key}", text, "a non-empty string")
        texts[language] = MappingProxyType(dict(entries))
    return BannerSettings(position, MappingProxyType(theme), MappingProxyType(texts))  # type: ignore[arg-type]


def _storage_keys(table: _Table, *, source: str) -> Mapping[Category, tuple[str, ...]]:
    storage = _Table(
        table.table("storage"),
        source=source,
        prefix=f"{table.prefix}storage.",
        known={"functional", "analytics", "advertising"},
    )
    return MappingProxyType({category: storage.strings(category) for category in storage.data})  # type: ignore[misc]


def _services(table: _Table, *, source: str) -> tuple[Service, ...]:
    entries = table.data.get("services", [])
    if not isinstance(entries, list):
        table.fail("services", entries, "an array of tables ([[sites.ID.services]])")
    services = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            table.fail(f"services[{index}]", entry, "a table with id, name and category")
        item = _Table(
            entry,
            source=source,
            prefix=f"{table.prefix}services[{index}].",
            known={"id", "name", "category", "description"},
        )
        service_id = item.text("id", "")
        if not _SITE_ID_RE.fullmatch(service_id):
            item.fail("id", service_id, "a service id of lowercase letters, digits, '-' or '_'")
        try:
            category = parse_category(entry.get("category"))
        except ValueError as error:
            item.fail("category", entry.get("category"), str(error).split(", found")[0].removeprefix("expected "))
        if category == "essential":
            item.fail("category", category, "a category that needs consent (functional, analytics, advertising)")
        services.append(Service(service_id, item.text("name", service_id), category, item.text("description", "")))
    ids = [service.id for service in services]
    duplicates = sorted({s for s in ids if ids.count(s) > 1})
    if duplicates:
        table.fail("services", duplicates[0], "each service id once")
    return tuple(services)


def _site_rules(table: _Table, site_id: str, *, source: str) -> tuple[CookieRule, ...]:
    entries = table.data.get("cookies", [])
    if not isinstance(entries, list):
        table.fail("cookies", entries, "an array of tables ([[sites.ID.cookies]])")
    try:
        return tuple(rules_from_entries(entries, source=f"{source} (site {site_id})", key=f"{table.prefix}cookies"))
    except CatalogError as error:
        raise SettingsError(f"config error in {error}") from None
