"""Settings: shipped defaults, a user file over them, the environment over both, and errors a person can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.cookies.lifetimes import parse_lifetime
from gateway.resources import resource_dir
from gateway.settings import (
    Retention,
    Secret,
    SettingsError,
    default_config_path,
    load_settings,
    settings_from_dict,
)

SHOP = """
[sites.shop]
name = "Shop"
origins = ["https://shop.example.com/", "https://WWW.Shop.Example.com"]
"""


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_defaults_apply_to_every_site(tmp_path: Path) -> None:
    path = write(tmp_path, SHOP)
    loaded = load_settings(path, environ={})
    site = loaded.sites["shop"]
    assert site.cap_for("analytics") == parse_lifetime("13mo")
    assert site.cap_for("advertising") == parse_lifetime("13mo")
    assert site.cap_for("functional") is None and site.cap_for("essential") is None
    assert site.consent_lifetime_accept == site.consent_lifetime_reject == parse_lifetime("6mo")
    assert site.unknown_cookies == "block"
    assert (site.policy_revision, site.honour_dnt, site.consent_cookie_domain) == (1, False, None)
    assert site.origins == ("https://shop.example.com", "https://www.shop.example.com")
    assert loaded.secret_keys == ()
    assert loaded.database == Path("data/gateway.sqlite3")
    assert (loaded.host, loaded.port, loaded.workers, loaded.max_body_bytes, loaded.debug) == (
        "127.0.0.1",
        8000,
        1,
        4096,
        False,
    )
    assert loaded.catalog == resource_dir("config") / "cookies.toml"
    assert loaded.geoip_database is None
    assert loaded.source == str(path)
    assert loaded.rollup_interval == parse_lifetime("5m")
    assert loaded.retention == Retention(
        events=parse_lifetime("6mo"), rollups=parse_lifetime("25mo"), consent_records=parse_lifetime("12mo")
    )


def test_without_a_file_only_the_defaults_load() -> None:
    loaded = load_settings(None, environ={})
    assert loaded.sites == {}
    assert loaded.source == str(default_config_path())


def test_the_user_file_is_merged_table_by_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        port = 9000
        [site_defaults]
        unknown_cookies = "allow"
        [sites.shop]
        origins = ["https://shop.example.com"]
        consent_lifetime_reject = "3mo"
        [sites.shop.lifetime_caps]
        analytics = "6mo"
        functional = "1y"
        [sites.blog]
        unknown_cookies = "block"
        """,
    )
    loaded = load_settings(path, environ={})
    shop, blog = loaded.sites["shop"], loaded.sites["blog"]
    assert loaded.port == 9000 and loaded.host == "127.0.0.1"
    assert shop.cap_for("analytics") == parse_lifetime("6mo")
    assert shop.cap_for("advertising") == parse_lifetime("13mo")  # kept from the defaults' table
    assert shop.cap_for("functional") == parse_lifetime("1y")
    assert shop.consent_lifetime_reject == parse_lifetime("3mo")
    assert shop.consent_lifetime_accept == parse_lifetime("6mo")
    assert shop.unknown_cookies == "allow"  # the user's site_defaults
    assert blog.unknown_cookies == "block"  # a site's own value beats site_defaults
    assert blog.name == "blog"


def test_the_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, SHOP)
    loaded = load_settings(None, environ={"CONSENT_GATEWAY_CONFIG": str(path)})
    assert list(loaded.sites) == ["shop"]
    assert loaded.source == str(path)


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, SHOP + "policy_revision = 2\n")
    loaded = load_settings(
        path,
        environ={
            "CONSENT_GATEWAY_DATABASE": "/data/gateway.sqlite3",
            "CONSENT_GATEWAY_SECRET_KEYS": "old-key, new-key",
            "CONSENT_GATEWAY_SITES__SHOP__POLICY_REVISION": "4",
            "CONSENT_GATEWAY_PORT": "9001",
            "CONSENT_GATEWAY_DEBUG": "true",
            "CONSENT_GATEWAY_SITE_DEFAULTS__LIFETIME_CAPS__ANALYTICS": "6mo",
            "HOME": "/root",
            "CONSENT_GATEWAYPORT": "1",
        },
    )
    assert loaded.database == Path("/data/gateway.sqlite3")
    assert [key.value for key in loaded.secret_keys] == ["old-key", "new-key"]  # oldest first, the last signs
    assert loaded.sites["shop"].policy_revision == 4
    assert loaded.port == 9001
    assert loaded.debug is True
    assert loaded.sites["shop"].cap_for("analytics") == parse_lifetime("6mo")


def test_retention_and_the_rollup_interval_can_be_set(tmp_path: Path) -> None:
    path = write(tmp_path, 'rollup_interval = "1h"\n[retention]\nevents = "90d"\n' + SHOP)
    loaded = load_settings(path, environ={"CONSENT_GATEWAY_RETENTION__CONSENT_RECORDS": "3y"})
    assert loaded.rollup_interval == parse_lifetime("1h")
    assert loaded.retention == Retention(
        events=parse_lifetime("90d"), rollups=parse_lifetime("25mo"), consent_records=parse_lifetime("3y")
    )


def test_an_environment_variable_cannot_step_into_a_value(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CONSENT_GATEWAY_PORT__X: 'port' is not a table"):
        load_settings(write(tmp_path, SHOP), environ={"CONSENT_GATEWAY_PORT__X": "1"})


@pytest.mark.parametrize(
    ("text", "key", "found", "expected"),
    [
        pytest.param('[sites.shop]\nconsent_lifetime_accept = "14mo"', "sites.shop.consent_lifetime_accept",
                     "'14mo'", "a lifetime of at most 13 months", id="a consent lifetime over 13 months"),
        pytest.param('[sites.shop]\nconsent_lifetime_reject = "session"', "sites.shop.consent_lifetime_reject",
                     "'session'", "a lifetime of at most 13 months", id="a consent lifetime of one session"),
        pytest.param('[sites.shop]\nconsent_lifetime_reject = "six months"', "sites.shop.consent_lifetime_reject",
                     "'six months'", "a lifetime such as '30m', '90d'", id="a lifetime in words"),
        pytest.param('[site_defaults]\nconsent_lifetime_accept = 6\n[sites.shop]',
                     "sites.shop.consent_lifetime_accept", "found 6", "a lifetime such as",
                     id="a lifetime as a bare number"),
        pytest.param('[sites.shop]\norigins = ["shop.example.com"]', "sites.shop.origins", "'shop.example.com'",
                     "origins such as 'https://www.example.com'", id="an origin without a scheme"),
        pytest.param('[sites.shop]\norigins = ["https://shop.example.com/cart"]', "sites.shop.origins",
                     "'https://shop.example.com/cart'", "(scheme, host, optional port)", id="an origin with a path"),
        pytest.param('[sites.shop]\norigins = ["https://shop.example.com\\n"]', "sites.shop.origins",
                     "'https://shop.example.com\\n'", "origins such as", id="an origin with a trailing newline"),
        pytest.param("[sites.shop]\norigins = 1", "sites.shop.origins", "found 1", "a list of strings",
                     id="origins as a number"),
        pytest.param("[sites.Shop]", "sites.Shop", "'Shop'", "a site id of lowercase letters",
                     id="a site id with capitals"),
        pytest.param('[sites."shop\\n"]', "'sites.shop\\n'", "'shop\\n'", "a site id of lowercase letters",
                     id="a site id with a trailing newline"),
        pytest.param('[sites."my shop"]', "sites.my shop", "'my shop'", "a site id", id="a site id with a space"),
        pytest.param("sites = 3", "sites", "found 3", "a table", id="sites as a number"),
        pytest.param('[sites]\nshop = "x"', "sites.shop", "'x'", "a table", id="a site that is not a table"),
        pytest.param('[sites.shop.lifetime_caps]\ntracking = "1y"', "sites.shop.lifetime_caps.tracking", "unknown key",
                     "one of the known keys (advertising, analytics, essential, functional)",
                     id="an unknown category in lifetime_caps"),
        pytest.param('[sites.shop.lifetime_caps]\nanalytics = "13 months"', "sites.shop.lifetime_caps.analytics",
                     "'13 months'", "a lifetime such as", id="a cap in words"),
        pytest.param('[[sites.shop.services]]\nid = "stripe"\nname = "Stripe"\ncategory = "essential"',
                     "sites.shop.services[0].category", "'essential'", "a category that needs consent",
                     id="a service of category essential"),
        pytest.param('[[sites.shop.services]]\nid = "stripe"\ncategory = "payments"',
                     "sites.shop.services[0].category", "'payments'", "essential, functional, analytics, advertising",
                     id="a service of an unknown category"),
        pytest.param('[[sites.shop.services]]\nid = "Hot Jar"\ncategory = "analytics"', "sites.shop.services[0].id",
                     "'Hot Jar'", "a service id of lowercase letters", id="a bad service id"),
        pytest.param('[[sites.shop.services]]\nid = "hotjar"\ncategory = "analytics"\n'
                     '[[sites.shop.services]]\nid = "hotjar"\ncategory = "functional"',
                     "sites.shop.services", "'hotjar'", "each service id once", id="duplicate service ids"),
        pytest.param('[[sites.shop.cookies]]\nname = "shop_theme"\ncategory = "tasty"',
                     "sites.shop.cookies[0] (shop_theme).category", "'tasty'", "expected one of essential",
                     id="a cookie rule of an unknown category"),
        pytest.param('[[sites.shop.cookies]]\nname = "a b"\ncategory = "functional"', "sites.shop.cookies[0].name",
                     "'a b'", "a cookie name or pattern", id="a cookie rule with a space in the name"),
        pytest.param('[[sites.shop.cookies]]\nname = "shop_theme"\ncategory = "functional"\nlifetime = "forever"',
                     "sites.shop.cookies[0] (shop_theme).lifetime", "'forever'", "a lifetime such as",
                     id="a cookie rule with a bad lifetime"),
        pytest.param('[sites.shop]\ncookies = "shop_theme"', "sites.shop.cookies", "'shop_theme'",
                     "an array of tables", id="cookies that are not a list"),
        pytest.param("[sites.shop]\npolicy_revision = 0", "sites.shop.policy_revision", "found 0",
                     "a whole number from 1 to 1000000", id="policy revision zero"),
        pytest.param('[sites.shop]\npolicy_revision = "2"', "sites.shop.policy_revision", "'2'",
                     "a whole number", id="policy revision as text"),
        pytest.param('[sites.shop]\nunknown_cookies = "maybe"', "sites.shop.unknown_cookies", "'maybe'",
                     "'block' (blocked until classified) or 'allow'", id="an unknown cookie policy"),
        pytest.param('[sites.shop]\ncolour = "red"', "sites.shop.colour", "unknown key", "one of the known keys",
                     id="an unknown site key"),
        pytest.param('[sites.shop]\n"col\\nour" = 1', "'sites.shop.col\\nour'", "unknown key", "one of the known keys",
                     id="an unknown key with a newline stays on one line"),
        pytest.param('port = "x"', "port", "'x'", "a whole number from 0 to 65535", id="port as text"),
        pytest.param("port = 70000", "port", "70000", "a whole number from 0 to 65535", id="port out of range"),
        pytest.param("workers = true", "workers", "True", "a whole number", id="workers as a boolean"),
        pytest.param("max_body_bytes = 10", "max_body_bytes", "10", "from 512 to 1048576", id="a tiny body limit"),
        pytest.param('debug = "yes"', "debug", "'yes'", "true or false", id="debug as text"),
        pytest.param("database = 5", "database", "found 5", "a string", id="database as a number"),
        pytest.param('colour = "red"', "colour", "unknown key", "one of the known keys", id="an unknown top-level key"),
        pytest.param('rollup_interval = "session"', "rollup_interval", "'session'",
                     "a lifetime from 10 seconds to 1 day", id="a rollup interval of one session"),
        pytest.param('rollup_interval = "1s"', "rollup_interval", "'1s'", "a lifetime from 10 seconds to 1 day",
                     id="a rollup interval too short"),
        pytest.param('rollup_interval = "2d"', "rollup_interval", "'2d'", "a lifetime from 10 seconds to 1 day",
                     id="a rollup interval too long"),
        pytest.param("rollup_interval = 300", "rollup_interval", "found 300", "a lifetime such as",
                     id="a rollup interval as a bare number"),
        pytest.param("retention = 6", "retention", "found 6", "a table", id="retention as a number"),
        pytest.param('[retention]\nevents = "session"', "retention.events", "'session'",
                     "a lifetime of at least 1 day (not 'session')", id="events kept for one session"),
        pytest.param('[retention]\nconsent_records = "12h"', "retention.consent_records", "'12h'",
                     "a lifetime of at least 1 day", id="consent records kept under a day"),
        pytest.param('[retention]\nrollups = "a year"', "retention.rollups", "'a year'", "a lifetime such as",
                     id="rollups kept for a lifetime in words"),
        pytest.param('[retention]\nevents = "26mo"', "retention.events", "'26mo'",
                     "a lifetime no longer than retention.rollups (25mo)", id="events kept longer than the rollups"),
        pytest.param('[retention]\nrollups = "3mo"', "retention.events", "'6mo'",
                     "a lifetime no longer than retention.rollups (3mo)", id="rollups kept shorter than the events"),
        pytest.param('[retention]\nsalts = "1d"', "retention.salts", "unknown key",
                     "one of the known keys (consent_records, events, rollups)", id="an unknown retention key"),
    ],
)  # fmt: skip
def test_a_mistake_names_the_file_key_value_and_expectation(
    tmp_path: Path, text: str, key: str, found: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as raised:
        load_settings(path, environ={})
    message = str(raised.value)
    assert message.startswith(f"config error in {path}")
    assert key in message
    assert found in message
    assert expected in message
    assert "\n" not in message  # one line


def test_a_mistake_from_the_environment_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, SHOP)
    with pytest.raises(SettingsError) as raised:
        load_settings(path, environ={"CONSENT_GATEWAY_SITES__SHOP__POLICY_REVISION": "four"})
    message = str(raised.value)
    assert "sites.shop.policy_revision" in message and "'four'" in message and "a whole number" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"port = ", "not valid TOML", id="invalid TOML"),
        pytest.param(b"name = \xff", "the file is not UTF-8 text", id="not UTF-8"),
        pytest.param(None, "the file does not exist", id="a missing file"),
    ],
)
def test_an_unreadable_file_names_the_file(tmp_path: Path, content: bytes | None, expected: str) -> None:
    path = tmp_path / "gateway.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SettingsError) as raised:
        load_settings(path, environ={})
    assert str(raised.value).startswith(f"config error in {path}: {expected}")


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read the file"):
        load_settings(tmp_path, environ={})


SECRETS = ["first-very-secret-key", "second-very-secret-key"]


def test_secrets_never_print(tmp_path: Path) -> None:
    loaded = load_settings(write(tmp_path, SHOP), environ={"CONSENT_GATEWAY_SECRET_KEYS": ",".join(SECRETS)})
    assert [key.value for key in loaded.secret_keys] == SECRETS
    for shown in (repr(loaded), str(loaded), f"{loaded}", repr(loaded.secret_keys), str(loaded.secret_keys[0])):
        assert not any(secret in shown for secret in SECRETS)
    assert repr(Secret("x")) == str(Secret("x")) == "Secret('**********')"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([SECRETS[0], 12345], id="a list with a number"),
        pytest.param({"key": SECRETS[0]}, id="a table"),
    ],
)
def test_a_bad_secret_keys_value_is_not_quoted_in_the_error(value: Any) -> None:
    with pytest.raises(SettingsError) as raised:
        settings_from_dict({"secret_keys": value}, source="my.toml")
    assert "my.toml" in str(raised.value) and "secret_keys: expected a list of strings" in str(raised.value)
    assert SECRETS[0] not in str(raised.value)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["13mo", "6mo", "14mo", "session", "essential", "analytics", "https://a.example", "x y"])
)
_anything = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_site_keys = st.sampled_from(
    ["name", "origins", "policy_revision", "lifetime_caps", "consent_lifetime_accept", "unknown_cookies", "services"]
    + ["cookies", "consent_cookie_domain", "honour_dnt", "policy_url", "consent_lifetime_reject"]
)
_rule_or_service = st.dictionaries(
    st.sampled_from(["id", "name", "category", "lifetime", "description", "vendor", "domain", "path", "x"]),
    _scalars,
    max_size=5,
)
_site = st.dictionaries(_site_keys, _anything | st.lists(_rule_or_service, max_size=3), max_size=5)
_top_keys = st.sampled_from(["secret_keys", "database", "port", "workers", "debug", "max_body_bytes", "catalog"])
_raw = st.dictionaries(_top_keys | st.text(max_size=8), _anything, max_size=4) | st.fixed_dictionaries(
    {"sites": st.dictionaries(st.sampled_from(["shop", "Shop", "", "a b"]) | st.text(max_size=6), _site | _anything)},
    optional={"site_defaults": _site | _anything},
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(raw=_raw)
def test_any_configuration_loads_or_raises_settings_error(raw: dict[str, Any]) -> None:
    try:
        loaded = settings_from_dict(raw, source="fuzz.toml")
    except SettingsError as error:
        assert str(error).startswith("config error in fuzz.toml")
        return
    assert all(site.id == site_id for site_id, site in loaded.sites.items())


def test_a_misspelt_secret_key_is_never_printed(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('secret_key = "hunter2-very-secret"\n', encoding="utf-8")
    with pytest.raises(SettingsError) as raised:
        load_settings(path, environ={})
    assert "secret_key" in str(raised.value) and "hunter2" not in str(raised.value)
