"""Where a visitor is: country, region and city from a MaxMind DB, never an error, never a fake country.

Exact rules are checked against a small ``.mmdb`` written here (mmdb-writer); the bundled 2018
GeoLite2-City file is checked only for facts that do not move (a country per address).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

from gateway.ingest import geo as geo_module
from gateway.ingest.geo import (
    NO_GEO,
    Geo,
    GeoDatabaseError,
    MaxMindGeo,
    NullGeo,
    bundled_database_path,
    open_geo,
)

BUNDLED = bundled_database_path()
needs_bundled = pytest.mark.skipif(
    BUNDLED is None,
    reason="maxminddb-geolite2 is not installed, so there is no bundled GeoLite2-City.mmdb to read",
)


def _place(country: str | None, region: str | None = None, city: str | None = None) -> dict[str, Any]:
    """A GeoIP2 City record, shaped as MaxMind writes them (names in several languages)."""
    record: dict[str, Any] = {}
    if country is not None:
        record["country"] = {"iso_code": country, "names": {"en": country, "de": country}}
    if region is not None:
        record["subdivisions"] = [{"iso_code": "XX", "names": {"en": region, "fr": f"{region} (fr)"}}]
    if city is not None:
        record["city"] = {"names": {"en": city, "ja": "?"}}
    return record


# network -> record; every network is public, so only the database decides the answer.
NETWORKS: dict[str, Any] = {
    "81.2.69.0/24": _place("GB", "England", "London"),
    "2a02:c7f::/32": _place("GB", "Scotland", "Edinburgh"),
    "89.160.20.0/24": {"registered_country": {"iso_code": "SE"}, "city": {"names": {"en": "Linköping"}}},
    "89.160.21.0/24": {**_place("DE", None, "Berlin"), "registered_country": {"iso_code": "US"}},
    "5.28.0.0/24": _place("XK", "Pristina District", "Pristina"),
    "5.28.1.0/24": _place("FR", None, None),
    "5.28.2.0/24": {"country": {"iso_code": "fr"}},
    "5.28.3.0/24": {"country": {"iso_code": "FRA"}},
    "5.28.4.0/24": {"country": {"names": {"en": "France"}}},
    "5.28.5.0/24": "not a record",
    "5.28.6.0/24": {"country": {"iso_code": "NL"}, "subdivisions": [], "city": {"names": {}}},
    "2.125.160.0/24": _place("EU", "Europe?", "Nowhere"),
    "2.125.161.0/24": _place("AP", "Asia?", "Nowhere"),
    "2.125.162.0/24": _place("A1", "Proxy", "Nowhere"),
    "2.125.163.0/24": _place("A2", "Satellite", "Nowhere"),
    "2.125.164.0/24": _place("O1", "Other", "Nowhere"),
    "2.125.165.0/24": _place("T1", "Tor", "Nowhere"),
    "2.125.166.0/24": _place("ZZ", "Unknown", "Nowhere"),
    "2.125.167.0/24": {"country": {"iso_code": "EU"}, "registered_country": {"iso_code": "DE"}},
}


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    writer = MMDBWriter(
        ip_version=6, ipv4_compatible=True, database_type="Test-City", languages=["en"], description="tests"
    )
    for network, record in NETWORKS.items():
        writer.insert_network(IPSet([network]), record)
    path = tmp_path_factory.mktemp("geo") / "Test-City.mmdb"
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="module")
def tiny(tiny_db: Path) -> Iterator[MaxMindGeo]:
    geo = MaxMindGeo.open(tiny_db)
    yield geo
    geo.close()


@pytest.fixture(scope="module")
def bundled() -> Iterator[MaxMindGeo]:
    if BUNDLED is None:
        pytest.skip("maxminddb-geolite2 is not installed, so there is no bundled GeoLite2-City.mmdb to read")
    geo = MaxMindGeo.open(BUNDLED, source="bundled")
    yield geo
    geo.close()


LOOKUPS = [
    pytest.param("81.2.69.142", Geo("GB", "England", "London"), id="country, first subdivision and city"),
    pytest.param("2a02:c7f:1234::1", Geo("GB", "Scotland", "Edinburgh"), id="IPv6"),
    pytest.param("::ffff:81.2.69.142", Geo("GB", "England", "London"), id="IPv4-mapped IPv6 is the IPv4 address"),
    pytest.param("89.160.20.1", Geo("SE", None, "Linköping"), id="no country: registered country"),
    pytest.param("89.160.21.1", Geo("DE", None, "Berlin"), id="country wins over registered country"),
    pytest.param("5.28.0.9", Geo("XK", "Pristina District", "Pristina"), id="Kosovo XK is a real country"),
    pytest.param("5.28.1.1", Geo("FR", None, None), id="country only"),
    pytest.param("5.28.2.1", Geo("FR", None, None), id="lower-case code is normalised"),
    pytest.param("5.28.3.1", NO_GEO, id="three-letter code is no ISO alpha-2"),
    pytest.param("5.28.4.1", NO_GEO, id="country without a code"),
    pytest.param("5.28.5.1", NO_GEO, id="record that is not a map"),
    pytest.param("5.28.6.1", Geo("NL", None, None), id="empty subdivisions and city names"),
    pytest.param("5.28.7.1", NO_GEO, id="address not in the database"),
    pytest.param("2001:67c:2e8::1", NO_GEO, id="IPv6 not in the database"),
]


@pytest.mark.parametrize(("address", "expected"), LOOKUPS)
def test_lookup_reads_country_region_and_city(tiny: MaxMindGeo, address: str, expected: Geo) -> None:
    assert tiny.lookup(address) == expected


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("2.125.160.1", id="EU Europe"),
        pytest.param("2.125.161.1", id="AP Asia/Pacific"),
        pytest.param("2.125.162.1", id="A1 anonymous proxy"),
        pytest.param("2.125.163.1", id="A2 satellite provider"),
        pytest.param("2.125.164.1", id="O1 other"),
        pytest.param("2.125.165.1", id="T1 Tor"),
        pytest.param("2.125.166.1", id="ZZ unknown"),
        pytest.param("2.125.167.1", id="pseudo country is not replaced by the registered one"),
    ],
)
def test_pseudo_countries_give_no_location_at_all(tiny: MaxMindGeo, address: str) -> None:
    assert tiny.lookup(address) == NO_GEO


NOT_LOOKED_UP = [
    pytest.param("10.1.2.3", id="private 10/8"),
    pytest.param("172.16.0.1", id="private 172.16/12"),
    pytest.param("192.168.1.1", id="private 192.168/16"),
    pytest.param("100.64.0.1", id="carrier-grade NAT"),
    pytest.param("127.0.0.1", id="loopback"),
    pytest.param("::1", id="IPv6 loopback"),
    pytest.param("169.254.1.1", id="link-local"),
    pytest.param("fe80::1", id="IPv6 link-local"),
    pytest.param("fe80::1%eth0", id="IPv6 with a zone"),
    pytest.param("fd00::1", id="IPv6 unique local"),
    pytest.param("::ffff:10.0.0.1", id="IPv4-mapped private"),
    pytest.param("224.0.0.1", id="multicast"),
    pytest.param("239.1.2.3", id="administratively scoped multicast"),
    pytest.param("ff0e::1", id="IPv6 global multicast"),
    pytest.param("240.0.0.1", id="reserved"),
    pytest.param("255.255.255.255", id="broadcast"),
    pytest.param("0.0.0.0", id="unspecified"),  # noqa: S104 -- an address to look up, not to bind
    pytest.param("::", id="IPv6 unspecified"),
    pytest.param("192.0.2.1", id="documentation TEST-NET-1"),
    pytest.param("2001:db8::1", id="IPv6 documentation"),
    pytest.param("", id="empty"),
    pytest.param("testclient", id="Starlette TestClient host"),
    pytest.param("81.2.69.142:443", id="with a port"),
    pytest.param(" 81.2.69.142", id="leading space"),
    pytest.param("81.2.69.142, 10.0.0.1", id="a forwarded-for list"),
    pytest.param("[2a02:c7f::1]", id="bracketed IPv6"),
    pytest.param("81.2.69", id="three octets"),
    pytest.param("81.2.69.1420", id="octet out of range"),
    pytest.param("8" * 10_000, id="very long"),
    pytest.param("81.2.69.142\x00", id="NUL byte"),
]


class _Metadata:
    database_type = "Fake-City"
    build_epoch = 1_530_653_216


class _FakeReader:
    """Stands in for a maxminddb reader to count what the database is asked.

    Failing lookups raise the way maxminddb's do: with the address in the message.
    """

    def __init__(self, *, fails: bool = False) -> None:
        self.asked: list[str] = []
        self.fails = fails
        self.closed = False

    def metadata(self) -> _Metadata:
        return _Metadata()

    def get(self, address: object) -> object:
        self.asked.append(str(address))
        if self.fails:
            raise RuntimeError(f"corrupt search tree while looking up {address}")
        return _place("GB", "England", "London")

    def close(self) -> None:
        self.closed = True


def _fake_geo(reader: _FakeReader, *, cache_size: int = 4096) -> MaxMindGeo:
    return MaxMindGeo(reader, source="configured", cache_size=cache_size)  # type: ignore[arg-type]


@pytest.mark.parametrize("address", NOT_LOOKED_UP)
def test_private_reserved_and_garbage_addresses_answer_no_geo_without_asking_the_database(address: str) -> None:
    reader = _FakeReader()
    geo = _fake_geo(reader)
    assert geo.lookup(address) == NO_GEO
    assert reader.asked == []
    assert geo.lookup("81.2.69.142") == Geo("GB", "England", "London")  # a public address is asked
    assert reader.asked == ["81.2.69.142"]
    geo.close()


@pytest.mark.parametrize("address", NOT_LOOKED_UP)
def test_private_reserved_and_garbage_addresses_answer_no_geo_from_a_real_database(
    tiny: MaxMindGeo, address: str
) -> None:
    assert tiny.lookup(address) == NO_GEO


def test_answers_are_cached_per_address_in_a_bounded_lru() -> None:
    reader = _FakeReader()
    geo = _fake_geo(reader, cache_size=2)
    london = geo.lookup("81.2.69.1")
    assert geo.lookup("81.2.69.1") is london
    assert reader.asked == ["81.2.69.1"]
    assert (geo.cache_stats().hits, geo.cache_stats().misses) == (1, 1)

    geo.lookup("81.2.69.2")
    geo.lookup("81.2.69.3")  # evicts 81.2.69.1, the least recently used
    stats = geo.cache_stats()
    assert (stats.size, stats.capacity, stats.misses) == (2, 2, 3)

    geo.lookup("81.2.69.1")
    assert reader.asked == ["81.2.69.1", "81.2.69.2", "81.2.69.3", "81.2.69.1"]
    geo.close()


def test_the_same_private_address_costs_one_cache_entry() -> None:
    """A proxy without --proxy-headers makes every client 127.0.0.1: one entry, not 4096."""
    geo = _fake_geo(_FakeReader())
    for _ in range(10):
        geo.lookup("127.0.0.1")
    assert (geo.cache_stats().size, geo.cache_stats().hits) == (1, 9)
    geo.close()


def test_overlong_text_is_not_cached() -> None:
    geo = _fake_geo(_FakeReader())
    assert geo.lookup("1" * 65) == NO_GEO
    assert geo.cache_stats().size == 0
    geo.close()


def test_close_forgets_every_address_and_later_lookups_answer_no_geo(tiny_db: Path) -> None:
    geo = MaxMindGeo.open(tiny_db)
    assert geo.lookup("81.2.69.142").country == "GB"
    geo.close()
    assert geo.cache_stats().size == 0
    assert geo.lookup("81.2.69.142") == NO_GEO


def test_cache_size_must_be_positive(tiny_db: Path) -> None:
    with pytest.raises(ValueError, match="cache_size"):
        MaxMindGeo.open(tiny_db, cache_size=0)


def test_a_failing_lookup_answers_no_geo_is_not_cached_and_logs_no_address(caplog: pytest.LogCaptureFixture) -> None:
    reader = _FakeReader(fails=True)
    geo = _fake_geo(reader)
    with caplog.at_level(logging.WARNING, logger="gateway.ingest.geo"):
        assert geo.lookup("81.2.69.142") == NO_GEO
        assert geo.lookup("81.2.69.142") == NO_GEO
    assert len(reader.asked) == 2  # a failure is retried, not remembered
    assert len(caplog.records) == 1  # one warning per database, not one per event
    assert "RuntimeError" in caplog.text
    assert "81.2.69" not in caplog.text
    geo.close()
    assert reader.closed


def test_describe_names_the_database_its_build_date_and_source(tiny_db: Path) -> None:
    geo = MaxMindGeo.open(tiny_db)
    try:
        assert re.fullmatch(r"Test-City \d{4}-\d{2}-\d{2} \(configured\)", geo.describe())
    finally:
        geo.close()


def test_null_geo_knows_nothing() -> None:
    geo = NullGeo()
    assert geo.lookup("81.2.69.142") == NO_GEO
    assert geo.describe() == "none"
    geo.close()


def test_missing_file_is_a_database_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "GeoLite2-City.mmdb"
    with pytest.raises(GeoDatabaseError, match=f"^cannot open GeoIP database {re.escape(str(path))}: No such file"):
        MaxMindGeo.open(path)


def test_directory_is_a_database_error(tmp_path: Path) -> None:
    with pytest.raises(GeoDatabaseError, match=re.escape(str(tmp_path))):
        MaxMindGeo.open(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty file"),
        pytest.param(b"<html>404 Not Found</html>\n", id="an error page saved as the database"),
        pytest.param(b"\x1f\x8b\x08\x00" + bytes(200), id="still gzipped"),
        pytest.param(b"\x00" * 64 + b"\xab\xcd\xefMaxMind.com" + b"\xff" * 32, id="metadata marker then garbage"),
    ],
)
def test_corrupt_file_is_a_database_error_naming_the_path(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "GeoLite2-City.mmdb"
    path.write_bytes(content)
    with pytest.raises(GeoDatabaseError, match=f"^cannot open GeoIP database {re.escape(str(path))}: "):
        MaxMindGeo.open(path)


def test_truncated_database_is_a_database_error(tiny_db: Path, tmp_path: Path) -> None:
    data = tiny_db.read_bytes()
    path = tmp_path / "truncated.mmdb"
    path.write_bytes(data[: len(data) // 2])  # metadata lives at the end, so it is gone
    with pytest.raises(GeoDatabaseError, match=re.escape(str(path))):
        MaxMindGeo.open(path)


def test_open_geo_uses_a_configured_database(tiny_db: Path) -> None:
    geo = open_geo(tiny_db)
    try:
        assert isinstance(geo, MaxMindGeo)
        assert geo.describe().endswith("(configured)")
        assert geo.lookup("81.2.69.142") == Geo("GB", "England", "London")
    finally:
        geo.close()


def test_open_geo_refuses_a_configured_database_it_cannot_open(tmp_path: Path) -> None:
    """A typo in ``geoip_database`` stops start-up rather than silently dropping every location."""
    with pytest.raises(GeoDatabaseError, match="missing.mmdb"):
        open_geo(tmp_path / "missing.mmdb")


def test_open_geo_without_configuration_or_bundled_database_is_null_geo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(geo_module, "bundled_database_path", lambda: None)
    geo = open_geo(None)
    assert isinstance(geo, NullGeo)
    geo.close()


@needs_bundled
def test_open_geo_without_configuration_uses_the_bundled_database() -> None:
    geo = open_geo(None)
    try:
        assert geo.describe() == "GeoLite2-City 2018-07-03 (bundled)"
    finally:
        geo.close()


@needs_bundled
def test_bundled_database_is_the_geolite2_city_file() -> None:
    assert BUNDLED is not None
    assert BUNDLED.name == "GeoLite2-City.mmdb"
    assert BUNDLED.parent.name == "_maxminddb_geolite2"


# Stable facts from the bundled 2018-07-03 GeoLite2-City: the country of well-known
# infrastructure. Region and city are asserted only where asserting them is the point.
BUNDLED_COUNTRIES = [
    pytest.param("8.8.8.8", "US", id="Google DNS"),
    pytest.param("2001:4860:4860::8888", "US", id="Google DNS over IPv6"),
    pytest.param("81.2.69.142", "GB", id="MaxMind's sample UK address"),
    pytest.param("193.0.6.139", "NL", id="RIPE NCC"),
    pytest.param("1.1.1.1", "AU", id="APNIC research prefix (Cloudflare's since 2018)"),
    pytest.param("::ffff:8.8.8.8", "US", id="IPv4-mapped"),
]


@pytest.mark.parametrize(("address", "country"), BUNDLED_COUNTRIES)
def test_bundled_database_places_well_known_addresses(bundled: MaxMindGeo, address: str, country: str) -> None:
    assert bundled.lookup(address).country == country


def test_bundled_database_names_region_and_city_in_english(bundled: MaxMindGeo) -> None:
    assert bundled.lookup("2001:4860:4860::8888") == Geo("US", "California", "Mountain View")
    assert bundled.lookup("81.2.69.142").region == "England"  # the first subdivision, not Brent


def test_bundled_database_answers_no_geo_for_a_continent_only_network(bundled: MaxMindGeo) -> None:
    """2.16.0.0/13 (Akamai) has a continent but neither country nor registered country in 2018."""
    assert bundled.lookup("2.16.0.1") == NO_GEO


@given(text=st.text())
def test_lookup_never_raises_on_arbitrary_text(tiny: MaxMindGeo, text: str) -> None:
    assert isinstance(tiny.lookup(text), Geo)
    assert NullGeo().lookup(text) == NO_GEO


@needs_bundled
@given(address=st.ip_addresses().map(str))
def test_bundled_lookup_of_any_address_is_a_real_country_or_nothing(bundled: MaxMindGeo, address: str) -> None:
    found = bundled.lookup(address)
    assert found.country is None or re.fullmatch(r"[A-Z]{2}", found.country)
    assert found.country not in geo_module.PSEUDO_COUNTRIES
