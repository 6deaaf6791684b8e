"""The ``maxminddb`` adapter: country, region and city for a client address.

``maxminddb`` readers and records never leave this module; callers get a frozen :class:`Geo`.
Geolocation is enrichment, never a reason to fail a request, so :meth:`GeoLookup.lookup`
never raises: garbage, private and unknown addresses all come back as :data:`NO_GEO`.

Privacy: the address is used for the lookup and as the key of a bounded in-memory LRU
(at most ``cache_size`` addresses, emptied on close), and is never logged or stored — not
even inside an exception message.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal, Protocol

import maxminddb

__all__ = [
    "NO_GEO",
    "Geo",
    "GeoCacheStats",
    "GeoDatabaseError",
    "GeoLookup",
    "MaxMindGeo",
    "NullGeo",
    "bundled_database_path",
    "open_geo",
]

_log = logging.getLogger(__name__)

# GeoIP codes that name no country: legacy GeoIP's EU/AP (continent only), A1/A2 (anonymous
# proxy, satellite provider), O1 (other), Tor's T1 and the CLDR "unknown region" ZZ. Counting
# them would show a country that does not exist, so such a record answers NO_GEO — its region
# and city (if any) are not trusted either. XK (Kosovo) is user-assigned in ISO 3166 but GeoLite
# uses it as a real country, so it is kept.
PSEUDO_COUNTRIES = frozenset({"EU", "AP", "A1", "A2", "O1", "T1", "ZZ"})

_BUNDLED_PACKAGE = "_maxminddb_geolite2"  # installed by the maxminddb-geolite2 distribution
_BUNDLED_FILE = "GeoLite2-City.mmdb"

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" is 45 characters; zone ids are refused anyway.
_LONGEST_ADDRESS = 64


@dataclass(frozen=True, slots=True)
class Geo:
    """Where an address is, as far as the database knows.

    ``region`` is the English *name* of the first (largest) subdivision, e.g. "England" or
    "California", not its ISO 3166-2 code: the dashboard shows it as is, and a bare code
    such as "ENG" or "NH" means little to a reader and nothing without its country.
    """

    country: str | None  # ISO 3166-1 alpha-2, e.g. "GB"
    region: str | None  # first subdivision's English name, e.g. "England"
    city: str | None  # English name, e.g. "London"


NO_GEO = Geo(None, None, None)


@dataclass(frozen=True, slots=True)
class GeoCacheStats:
    """How well the address cache works; its entries themselves are never exposed."""

    hits: int
    misses: int
    size: int
    capacity: int


class GeoDatabaseError(Exception):
    """A configured GeoIP database cannot be used; raised at start-up so the operator sees it."""


class GeoLookup(Protocol):
    def lookup(self, address: str) -> Geo: ...

    def describe(self) -> str:
        """One line for ``/healthz``: which database answers, e.g. "GeoLite2-City 2018-07-03 (bundled)"."""
        ...

    def close(self) -> None: ...


class NullGeo:
    """Serves when no database is configured or bundled: every event simply has no location."""

    def lookup(self, address: str) -> Geo:
        return NO_GEO

    def describe(self) -> str:
        return "none"

    def close(self) -> None:
        return None


class _LookupFailed(Exception):
    """Raised inside the cached lookup so that a failure is not cached (``lru_cache`` skips raises)."""


class MaxMindGeo:
    """A MaxMind DB (GeoLite2/GeoIP2 City or Country) read through a memory map.

    Each answer is cached per address text in a bounded LRU (``cache_size`` entries): visitors
    send several events per visit, and a hit costs a dictionary look-up instead of parsing,
    classifying and a tree walk (about 0.2 µs against 20-35 µs on the bundled database). Private and garbage texts are
    cached as NO_GEO too, so a proxy that hides every client behind 127.0.0.1 costs one entry.
    The cache lives only in this process's memory and is emptied by :meth:`close`.
    """

    __slots__ = ("_cached", "_closed", "_description", "_reader", "_warned")

    def __init__(
        self, reader: maxminddb.Reader, *, source: Literal["bundled", "configured"], cache_size: int = 4096
    ) -> None:
        """Take ownership of an open ``reader`` (see :meth:`open`); :meth:`close` closes it."""
        _check_cache_size(cache_size)
        self._reader = reader
        self._closed = False
        self._warned = False
        metadata = reader.metadata()
        built = datetime.fromtimestamp(metadata.build_epoch, UTC).date().isoformat()
        self._description = f"{metadata.database_type} {built} ({source})"
        self._cached = lru_cache(maxsize=cache_size)(self._lookup_uncached)

    @classmethod
    def open(
        cls, path: Path, *, source: Literal["bundled", "configured"] = "configured", cache_size: int = 4096
    ) -> MaxMindGeo:
        """Open ``path`` (memory-mapped, C extension when available) or raise :class:`GeoDatabaseError`."""
        _check_cache_size(cache_size)
        try:
            reader = maxminddb.open_database(str(path), mode=maxminddb.MODE_AUTO)
        except OSError as exc:  # missing file, a directory, no permission
            raise GeoDatabaseError(f"cannot open GeoIP database {path}: {exc.strerror or exc}") from exc
        except Exception as exc:  # maxminddb says InvalidDatabaseError for any bad or truncated file
            raise GeoDatabaseError(
                f"cannot open GeoIP database {path}: not a MaxMind DB file, or a damaged one"
            ) from exc
        try:
            return cls(reader, source=source, cache_size=cache_size)
        except Exception as exc:  # unreadable metadata: close the map before giving up
            reader.close()
            raise GeoDatabaseError(f"cannot open GeoIP database {path}: {exc}") from exc

    def lookup(self, address: str) -> Geo:
        if self._closed or len(address) > _LONGEST_ADDRESS:  # junk this long is not worth a cache entry
            return NO_GEO
        try:
            return self._cached(address)
        except _LookupFailed as exc:
            if not self._warned:  # once per database: a broken file would otherwise flood the log
                self._warned = True
                _log.warning("GeoIP lookup failed (%s); such events are stored without a location", exc)
            return NO_GEO

    def describe(self) -> str:
        return self._description

    def cache_stats(self) -> GeoCacheStats:
        """Hits, misses and fill of the address cache, for metrics and tests."""
        info = self._cached.cache_info()
        return GeoCacheStats(hits=info.hits, misses=info.misses, size=info.currsize, capacity=info.maxsize or 0)

    def close(self) -> None:
        """Unmap the file and forget every cached address. Later lookups answer NO_GEO."""
        self._closed = True
        self._cached.cache_clear()
        self._reader.close()

    def _lookup_uncached(self, address: str) -> Geo:
        parsed = _public_address(address)
        if parsed is None:
            return NO_GEO
        try:
            record = self._reader.get(parsed)
        except Exception as exc:
            # Name the error class only: maxminddb's messages can contain the address.
            raise _LookupFailed(type(exc).__name__) from None
        return _geo_from_record(record)


def _check_cache_size(cache_size: int) -> None:
    if cache_size < 1:  # lru_cache(maxsize=0) would silently cache nothing, None without bound
        raise ValueError(f"cache_size must be at least 1, got {cache_size}")


def _public_address(text: str) -> _IPAddress | None:
    """Parse ``text``; None for garbage and for addresses no database can place.

    Private, loopback, link-local, reserved, multicast and unspecified addresses belong to no
    country (and a reverse proxy without ``--proxy-headers`` shows up as one), so they are
    answered without a lookup. IPv4-mapped IPv6 (``::ffff:a.b.c.d``, from dual-stack sockets)
    is looked up as the IPv4 address it carries.
    """
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None  # zoned addresses are link-local by definition
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
    if (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    ):
        return None
    return address


def _geo_from_record(record: object) -> Geo:
    """Map a GeoIP2 City/Country record to :class:`Geo`, tolerating any shape of data."""
    if not isinstance(record, dict):
        return NO_GEO
    # ``country`` is where the address is used; ``registered_country`` (where the network is
    # registered) is the best guess GeoLite has for some networks, e.g. anycast.
    country = _iso_code(record.get("country")) or _iso_code(record.get("registered_country"))
    if country is None or country in PSEUDO_COUNTRIES:
        return NO_GEO
    subdivisions = record.get("subdivisions")
    region = _english_name(subdivisions[0]) if isinstance(subdivisions, list) and subdivisions else None
    return Geo(country=country, region=region, city=_english_name(record.get("city")))


def _iso_code(entry: object) -> str | None:
    if not isinstance(entry, dict):
        return None
    code = entry.get("iso_code")
    if isinstance(code, str) and len(code) == 2 and code.isascii() and code.isalpha():
        return code.upper()
    return None


def _english_name(entry: object) -> str | None:
    if not isinstance(entry, dict):
        return None
    names = entry.get("names")
    name = names.get("en") if isinstance(names, dict) else None
    return name if isinstance(name, str) and name else None


def bundled_database_path() -> Path | None:
    """The GeoLite2-City file shipped by the ``maxminddb-geolite2`` package, if installed.

    Only the file is used: the package's ``geolite2`` module keeps a global reader and uses
    deprecated ``datetime.utcfromtimestamp``, and we open and close our own reader. The file
    must be a real file on disk (not inside a zip) because it is memory-mapped.
    """
    try:
        resource = resources.files(_BUNDLED_PACKAGE) / _BUNDLED_FILE
    except ModuleNotFoundError:
        return None
    if isinstance(resource, Path) and resource.is_file():
        return resource
    return None


def open_geo(configured: Path | None) -> GeoLookup:
    """The lookup for the ``geoip_database`` setting.

    A configured path must open (a typo should stop start-up, not silently drop every
    location); without one, the bundled GeoLite2 database is used if installed, else NullGeo.
    """
    if configured is not None:
        return MaxMindGeo.open(configured, source="configured")
    bundled = bundled_database_path()
    if bundled is None:
        return NullGeo()
    return MaxMindGeo.open(bundled, source="bundled")
