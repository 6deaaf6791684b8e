"""Catalog precedence: exact over pattern, longer pattern over shorter, domain-bound over unbound, site over shipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cookies.catalog import CatalogError, CookieCatalog, load_rules, make_rule
from gateway.cookies.lifetimes import parse_lifetime

DAY = parse_lifetime("1d")
RULES = [
    make_rule("_ga*", "analytics", DAY, source="shipped"),
    make_rule("_ga_*", "analytics", parse_lifetime("2y"), vendor="Google", source="shipped"),
    make_rule("_ga", "analytics", parse_lifetime("2y"), vendor="Google", source="shipped"),
    make_rule("_pk_id.*", "analytics", parse_lifetime("13mo"), vendor="Matomo", source="shipped"),
    make_rule("sessionid", "essential", parse_lifetime("2w"), vendor="Django", source="shipped"),
    make_rule("sessionid", "advertising", parse_lifetime("1y"), vendor="Instagram", domain=".Instagram.com"),
    make_rule("*", "functional", DAY, source="catch-all"),
]
CATALOG = CookieCatalog(RULES)


@pytest.mark.parametrize(
    ("name", "domain", "rule_name", "vendor"),
    [
        pytest.param("_ga", None, "_ga", "Google", id="exact-beats-patterns"),
        pytest.param("_ga_ABC123", None, "_ga_*", "Google", id="longer-pattern-beats-shorter"),
        pytest.param("_gac_1", None, "_ga*", "", id="shorter-pattern-when-longer-misses"),
        pytest.param("_pk_id.1.abcd", None, "_pk_id.*", "Matomo", id="dotted-pattern"),
        pytest.param("sessionid", "shop.example.com", "sessionid", "Django", id="first-party-sessionid-is-django"),
        pytest.param("sessionid", None, "sessionid", "Django", id="no-domain-is-first-party"),
        pytest.param("sessionid", "www.instagram.com", "sessionid", "Instagram", id="bound-rule-on-its-subdomain"),
        pytest.param("sessionid", ".instagram.com", "sessionid", "Instagram", id="bound-rule-leading-dot"),
        pytest.param("sessionid", "notinstagram.com", "sessionid", "Django", id="suffix-is-not-a-subdomain"),
        pytest.param("anything", None, "*", "", id="catch-all-last"),
    ],
)
def test_precedence(name: str, domain: str | None, rule_name: str, vendor: str) -> None:
    found = CATALOG.classify(name, domain)
    assert found.rule is not None
    assert (found.rule.name, found.rule.vendor) == (rule_name, vendor)


def test_a_site_rule_overrides_the_shipped_one_and_the_match_is_explained() -> None:
    site = CATALOG.with_rules([make_rule("_ga", "functional", DAY, vendor="Shop", source="site shop")])
    found = site.classify("_ga")
    assert found.category == "functional" and found.rule is not None and found.rule.vendor == "Shop"
    assert found.explain() == "exact name '_ga' from site shop"
    assert CATALOG.classify("_ga").category == "analytics"  # the original is unchanged


def test_unknown_cookies_are_explained() -> None:
    catalog = CookieCatalog(RULES[:-1])
    found = catalog.classify("mystery")
    assert found.category is None and not found.is_known
    assert found.explain() == "'mystery' matches no rule"


def test_pattern_characters_other_than_star_are_literal() -> None:
    catalog = CookieCatalog([make_rule("a.b*", "analytics", DAY)])
    assert catalog.classify("a.bc").is_known
    assert not catalog.classify("aXbc").is_known


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[[cookie]]\nname = 'x'\ncategory = 'tasty'\n", r"cookie\[0\] \(x\)\.category: expected one of"),
        pytest.param("[[cookie]]\nname = 'x'\ncategory = 'analytics'\nlifetime = 'long'\n", r"\.lifetime: expected"),
        pytest.param("[[cookie]]\ncategory = 'analytics'\n", r"cookie\[0\]\.name: expected a cookie name"),
        pytest.param("[[cookie]]\nname = 'a b'\ncategory = 'analytics'\n", r"\.name: expected a cookie name"),
        pytest.param("[[cookie]]\nname = 'x'\ncategory = 'analytics'\ncolour = 1\n", "unknown key 'colour'"),
        pytest.param("cookie = 'x'\n", "must be an array of tables"),
        pytest.param("[[cookie]\n", "not valid TOML"),
    ],
)
def test_bad_rule_files_name_the_file_the_rule_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match=message) as raised:
        load_rules(path)
    assert str(path) in str(raised.value)
