"""The data in the built-in catalog, ``config/cookies.toml``: policy rows, bindings and hygiene."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from gateway.cookies.catalog import CookieCatalog, CookieRule, load_rules

CATALOG_PATH = Path(__file__).resolve().parents[2] / "config" / "cookies.toml"

#: Rows every deployment relies on: (name, category, lifetime as ``str(rule.lifetime)`` prints it).
POLICY_ROWS = [
    ("is_returning", "functional", "5y"),
    ("_rfrr", "analytics", "1000d"),
    ("_rfrr_start_time", "analytics", "1000d"),
    ("_trk", "analytics", "90d"),
    ("PHPSESSID", "essential", "session"),
    ("__utma", "analytics", "2y"),
    ("__utmb", "analytics", "30m"),
    ("__utmc", "analytics", "session"),
    ("__utmz", "analytics", "6mo"),
    ("_ar_v4", "advertising", "6y"),
    ("cg_consent", "essential", "13mo"),
]

#: Vendors and services the catalog must cover: a vendor name (exact, case-insensitive, or one
#: part of a "A / B" vendor) or a service id.
REQUIRED_VENDORS = [
    "consent-gateway",
    "google-analytics",
    "google-ads",
    "doubleclick",
    "youtube",
    "Meta",
    "instagram",
    "clarity",
    "microsoft-advertising",
    "LinkedIn",
    "TikTok",
    "Hotjar",
    "Matomo",
    "HubSpot",
    "Intercom",
    "Stripe",
    "Cloudflare",
    "PHP",
    "Django",
    "Ruby on Rails",
    "Laravel",
    "java-servlet",
    "aspnet",
    "azure-app-service",
    "Express",
    "Starlette",
    "Flask",
    "WordPress",
    "WooCommerce",
    "Amazon Web Services",
    "Shopify",
    "cookiebot",
    "CookieYes",
    "OneTrust",
    "klaro",
    "cookieconsent",
    "twitter",
    "Pinterest",
    "Snap",
    "Criteo",
    "Amplitude",
    "Mixpanel",
    "segment",
    "Yandex",
    "Adobe",
    "Optimizely",
    "Vimeo",
    "Zendesk",
    "Drift",
    "Crisp",
    "Crazy Egg",
    "AdRoll",
]

SERVICE_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@pytest.fixture(scope="module")
def rules() -> list[CookieRule]:
    return load_rules(CATALOG_PATH)


@pytest.fixture(scope="module")
def catalog(rules: list[CookieRule]) -> CookieCatalog:
    return CookieCatalog(rules)


def test_catalog_has_at_least_150_rules(catalog: CookieCatalog) -> None:
    assert len(catalog) >= 150


@pytest.mark.parametrize(("name", "category", "lifetime"), POLICY_ROWS, ids=[row[0] for row in POLICY_ROWS])
def test_policy_row_classifies_with_category_and_lifetime(
    catalog: CookieCatalog, name: str, category: str, lifetime: str
) -> None:
    rule = catalog.classify(name).rule
    assert rule is not None, f"{name} matches no rule"
    assert (rule.name, rule.category, str(rule.lifetime)) == (name, category, lifetime)


@pytest.mark.parametrize("domain", [None, "example.com", ".shop.example.com"], ids=["no-domain", "site", "subdomain"])
def test_first_party_sessionid_is_djangos_essential_rule(catalog: CookieCatalog, domain: str | None) -> None:
    rule = catalog.classify("sessionid", domain).rule
    assert rule is not None
    assert (rule.category, rule.domain, rule.vendor) == ("essential", None, "Django")


@pytest.mark.parametrize("domain", ["instagram.com", "www.instagram.com", ".instagram.com"])
def test_instagram_sessionid_is_bound_and_not_essential(catalog: CookieCatalog, domain: str) -> None:
    rule = catalog.classify("sessionid", domain).rule
    assert rule is not None
    assert rule.domain == "instagram.com"
    assert rule.category != "essential"


@pytest.mark.parametrize(
    ("cookie", "rule_name"),
    [
        ("_ga_ABC123", "_ga_*"),
        ("_ga", "_ga"),
        ("_gat_UA-12345-1", "_gat_*"),
        ("AMP_TOKEN", "AMP_TOKEN"),
        ("AMP_1a2b3c", "AMP_*"),
        ("AMP_MKTG_1a2b3c", "AMP_MKTG_*"),
        ("_hjSessionUser_123456", "_hjSessionUser_*"),
        ("_hjSession_123456", "_hjSession_*"),
        ("wordpress_logged_in_abc", "wordpress_logged_in_*"),
        ("wordpress_test_cookie", "wordpress_test_cookie"),
        ("_myapp_session", "_*_session"),
        ("_pk_id.1.1fff", "_pk_id.*"),
    ],
    ids=lambda value: value,
)
def test_exact_names_and_patterns_pick_the_expected_rule(catalog: CookieCatalog, cookie: str, rule_name: str) -> None:
    rule = catalog.classify(cookie, "example.com").rule
    assert rule is not None, f"{cookie} matches no rule"
    assert rule.name == rule_name


@pytest.mark.parametrize(
    ("cookie", "domain", "rule_domain"),
    [
        ("IDE", "doubleclick.net", "doubleclick.net"),
        ("test_cookie", "doubleclick.net", "doubleclick.net"),
        ("NID", "google.com", "google.com"),
        ("fr", "facebook.com", "facebook.com"),
        ("datr", "facebook.com", "facebook.com"),
        ("bcookie", "linkedin.com", "linkedin.com"),
        ("lidc", "linkedin.com", "linkedin.com"),
        ("VISITOR_INFO1_LIVE", "youtube.com", "youtube.com"),
        ("MUID", "bing.com", "bing.com"),
        ("MUID", "c.clarity.ms", "clarity.ms"),
    ],
    ids=lambda value: value,
)
def test_third_party_cookies_are_bound_to_their_domain(
    catalog: CookieCatalog, cookie: str, domain: str, rule_domain: str
) -> None:
    rule = catalog.classify(cookie, domain).rule
    assert rule is not None
    assert rule.domain == rule_domain
    assert catalog.classify(cookie, "example.com").rule is None, f"{cookie} must not classify a first-party cookie"


@pytest.mark.parametrize("cookie", ["_ga", "_fbp", "_gcl_au", "_hjid", "_pk_id.1.abcd", "_clck", "_uetvid"])
def test_first_party_vendor_cookies_have_no_domain(catalog: CookieCatalog, cookie: str) -> None:
    rule = catalog.classify(cookie, "example.com").rule
    assert rule is not None
    assert rule.domain is None


@pytest.mark.parametrize("vendor", REQUIRED_VENDORS)
def test_vendor_has_at_least_one_rule(rules: list[CookieRule], vendor: str) -> None:
    wanted = vendor.casefold()

    def covers(rule: CookieRule) -> bool:
        vendors = {part.strip().casefold() for part in rule.vendor.split("/")}
        return wanted == rule.vendor.casefold() or wanted in vendors or vendor == rule.service

    assert any(covers(rule) for rule in rules), f"no rule for vendor or service {vendor!r}"


def test_no_two_entries_share_name_and_domain(rules: list[CookieRule]) -> None:
    counts = Counter((rule.name, rule.domain) for rule in rules)
    assert [key for key, count in counts.items() if count > 1] == []


def test_every_rule_names_a_vendor_and_a_one_line_purpose(rules: list[CookieRule]) -> None:
    missing = [rule.name for rule in rules if not rule.vendor.strip() or not rule.purpose.strip()]
    multiline = [rule.name for rule in rules if "\n" in rule.purpose]
    assert (missing, multiline) == ([], [])


def test_service_ids_are_lowercase_with_hyphens(rules: list[CookieRule]) -> None:
    bad = [(rule.name, rule.service) for rule in rules if rule.service and not SERVICE_ID.fullmatch(rule.service)]
    assert bad == []
