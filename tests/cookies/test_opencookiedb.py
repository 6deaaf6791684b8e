"""The Open Cookie Database import: every row becomes a rule or a reported skip, never a guess."""

from __future__ import annotations

import csv
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from gateway.cookies.catalog import CatalogError, CookieCatalog, CookieRule, load_rules, make_rule
from gateway.cookies.lifetimes import SESSION, Lifetime, parse_lifetime
from gateway.cookies.opencookiedb import (
    ImportResult,
    SkippedRow,
    import_open_cookie_database,
    parse_retention,
    rules_to_toml,
)

COLUMNS = (
    "ID",
    "Platform",
    "Category",
    "Cookie / Data Key name",
    "Domain",
    "Description",
    "Retention period",
    "Data Controller",
    "User Privacy & GDPR Rights Portals",
    "Wildcard match",
)
REAL_DATABASE = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "open-cookie-database.csv"
DAY = 86400


def row(**fields: str) -> dict[str, str]:
    """A valid row; keyword names are the columns with spaces and slashes as underscores."""
    values = {
        "ID": "id-1",
        "Platform": "Google Analytics",
        "Category": "Analytics",
        "Cookie / Data Key name": "_ga",
        "Domain": "",
        "Description": "ID used to identify users",
        "Retention period": "2 years",
        "Data Controller": "Google",
        "User Privacy & GDPR Rights Portals": "https://example.com/privacy",
        "Wildcard match": "0",
    }
    aliases = {"name": "Cookie / Data Key name", "retention": "Retention period", "controller": "Data Controller"}
    aliases |= {"wildcard": "Wildcard match", "category": "Category", "domain": "Domain", "platform": "Platform"}
    aliases |= {"description": "Description"}
    for key, value in fields.items():
        values[aliases[key]] = value
    return values


def write_csv(
    tmp_path: Path, rows: Sequence[Mapping[str, str]], columns: Sequence[str] = COLUMNS, name: str = "ocd.csv"
) -> Path:
    path = tmp_path / name
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for values in rows:
            writer.writerow([values.get(column, "") for column in columns])
    return path


def import_rows(tmp_path: Path, *rows: Mapping[str, str]) -> ImportResult:
    result = import_open_cookie_database(write_csv(tmp_path, rows))
    assert result.rows == len(rows) == len(result.rules) + len(result.skipped)
    return result


def only_skip(result: ImportResult) -> SkippedRow:
    assert result.rules == ()
    (skipped,) = result.skipped
    return skipped


# --- retention texts -------------------------------------------------------------------------------------------------

MONTH, YEAR = 2629746, 31556952


RETENTION_FORMS: list[tuple[str, Lifetime]] = [
    ("session", SESSION),
    ("Session", SESSION),
    ("Sessions", SESSION),
    ("session cookie", SESSION),
    ("End of session (browser)", SESSION),
    ("browser session", SESSION),
    ("till browser close", SESSION),
    ("until the browser is closed", SESSION),
    ("Seesion", SESSION),
    ("30 minutes", Lifetime(30 * 60)),
    ("30 Minutes", Lifetime(30 * 60)),
    ("30 mins", Lifetime(30 * 60)),
    ("1440 Minutes", Lifetime(DAY)),
    ("1 minute", Lifetime(60)),
    ("10 seconds", Lifetime(10)),
    ("30 secs", Lifetime(30)),
    ("90 sec", Lifetime(90)),
    ("1 hour", Lifetime(3600)),
    ("24 hours", Lifetime(DAY)),
    ("1 day", Lifetime(DAY)),
    ("1 Day", Lifetime(DAY)),
    ("400 days", Lifetime(400 * DAY)),
    ("90 Days", Lifetime(90 * DAY)),
    ("2 Weeks", Lifetime(14 * DAY)),
    ("6 Months", Lifetime(6 * MONTH)),
    ("13 months", Lifetime(13 * MONTH)),
    ("1 months", Lifetime(MONTH)),
    ("12 months", Lifetime(YEAR)),
    ("1 year", Lifetime(YEAR)),
    ("1 Year", Lifetime(YEAR)),
    ("1 year ", Lifetime(YEAR)),
    ("2 year", Lifetime(2 * YEAR)),
    ("2 years", Lifetime(2 * YEAR)),
    ("one year", Lifetime(YEAR)),
    ("a day", Lifetime(DAY)),
    ("two weeks", Lifetime(14 * DAY)),
    ("3w", Lifetime(21 * DAY)),
    ("1y", Lifetime(YEAR)),
    ("2 years after last activity", Lifetime(2 * YEAR)),
    ("180 days after last activity ", Lifetime(180 * DAY)),
    ("10 years from set/ update", Lifetime(10 * YEAR)),
    ("13 months by default, modifiable", Lifetime(13 * MONTH)),
    ("Session to 30 days", Lifetime(30 * DAY)),
    ("1 week to 1 year", Lifetime(YEAR)),
    ("30 seconds till 1 year", Lifetime(YEAR)),
    ("60 days till 3650 days", Lifetime(3650 * DAY)),
    ("Immediately removed", Lifetime(0)),
]


@pytest.mark.parametrize(("text", "expected"), RETENTION_FORMS, ids=[repr(text) for text, _ in RETENTION_FORMS])
def test_parse_retention_reads_each_form(text: str, expected: Lifetime) -> None:
    lifetime = parse_retention(text)
    assert lifetime == expected
    assert parse_lifetime(str(lifetime)) == lifetime  # what rules_to_toml writes reads back the same


REFUSED_FORMS: list[tuple[str, str]] = [
    ("", "no retention period given"),
    ("   ", "no retention period given"),
    ("Unknown", "no duration given"),
    ("Varies", "no duration given"),
    ("various", "no duration given"),
    ("undefined", "no duration given"),
    ("Persistent", "no finite lifetime"),
    ("forever", "no finite lifetime"),
    ("Unlimited", "no finite lifetime"),
    ("permanent", "no finite lifetime"),
    ("no expiration", "no finite lifetime"),
    ("Local Storage", "web storage"),
    ("1 hour or longer", "open-ended"),
    ("1 year (in some countries, the period may be longer)", "open-ended"),
    ("10 Nov 2030", "fixed expiry date"),
    ("0 days", "zero duration"),
    ("0 day", "zero duration"),
    ("30 minutes, 3w or 1y depending on value", "depending on conditions"),
    ("14 days if you select “Remember Me” when logging in. Otherwise, Session.", "depending on conditions"),
    ("180 days after last activity or 10 years when opting out", "depending on conditions"),
    ("Deleted when oauth state is validated", "ends on an event"),
    ("a few seconds", "not one recognised duration"),
    ("13 m", "not one recognised duration"),  # minutes or months: not guessed
    ("1.5 hours", "not one recognised duration"),
    ("Awin", "not a retention period"),
]


@pytest.mark.parametrize(("text", "reason"), REFUSED_FORMS, ids=[repr(text)[:60] for text, _ in REFUSED_FORMS])
def test_parse_retention_refuses_texts_without_one_duration(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_retention(text)


# --- categories ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("Functional", "essential"),
        ("Security", "essential"),
        ("Necessary", "essential"),
        ("Personalization", "functional"),
        ("Analytics", "analytics"),
        ("Marketing", "advertising"),
        (" marketing ", "advertising"),
    ],
)
def test_categories_map_by_the_database_readme(tmp_path: Path, category: str, expected: str) -> None:
    (rule,) = import_rows(tmp_path, row(category=category)).rules
    assert rule.category == expected


@pytest.mark.parametrize("category", ["Advertising", "Social", "", "Analytics;Marketing"])
def test_unknown_categories_skip_the_row(tmp_path: Path, category: str) -> None:
    skipped = only_skip(import_rows(tmp_path, row(category=category)))
    assert skipped == SkippedRow(2, "_ga", skipped.reason)
    assert f"category {category!r} has no mapping" in skipped.reason


# --- names and patterns ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "wildcard", "expected"),
    [
        ("_ga", "0", "_ga"),
        ("_ga_", "1", "_ga_*"),
        ("JSESSIONID", "1", "JSESSIONID*"),
        ("_ga_<id>", "1", "_ga_*"),
        ("mp_<token>_mixpanel", "1", "mp_*_mixpanel"),
        ("_hjSession_xxxxxx", "1", "_hjSession_*"),
        ("SCM*", "0", "SCM*"),
        ("UID_EXT_*", "1", "UID_EXT_*"),
        ("pagead/conv/%INTEGER%", "0", "pagead/conv/*"),
        ("pvc_visits[0]", "0", "pvc_visits[0]"),
        ("box_xxx", "0", "box_xxx"),  # only a wildcard row's xxx is a placeholder
        ("_ga", "", "_ga"),
        ("  ce_need_secure_cookie\t", "0", "ce_need_secure_cookie"),
    ],
    ids=lambda value: repr(value),
)
def test_wildcard_rows_become_patterns(tmp_path: Path, name: str, wildcard: str, expected: str) -> None:
    (rule,) = import_rows(tmp_path, row(name=name, wildcard=wildcard)).rules
    assert rule.name == expected
    assert rule.is_pattern == ("*" in expected)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty cookie name"),
        ("Site History", "U+0020 SPACE"),
        ("a\tb", "U+0009"),
        ("a;b", "';'"),
        ("a,b", "','"),
        ("a=b", "'='"),
        ("logglytrackings\xadession", "U+00AD SOFT HYPHEN"),
        ("zero\u200bwidth", "U+200B ZERO WIDTH SPACE"),
        ("line\nbreak", "U+000A"),
    ],
    ids=lambda value: repr(value),
)
def test_invalid_names_are_skipped(tmp_path: Path, name: str, reason: str) -> None:
    skipped = only_skip(import_rows(tmp_path, row(name=name)))
    assert skipped.reason.startswith("empty cookie name" if not name else "not a valid cookie name")
    assert reason in skipped.reason


@pytest.mark.parametrize(("name", "wildcard"), [("*", "0"), ("<id>", "1"), ("_ga", "yes")])
def test_unusable_patterns_are_skipped(tmp_path: Path, name: str, wildcard: str) -> None:
    skipped = only_skip(import_rows(tmp_path, row(name=name, wildcard=wildcard)))
    assert "every cookie" in skipped.reason or "neither 0 nor 1" in skipped.reason


# --- domains ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("", None),
        ("instagram.com", "instagram.com"),
        (".doubleclick.net", "doubleclick.net"),
        ("doubleclick.net (3rd party)", "doubleclick.net"),
        ("Inspectlet.com (3rd party)", "inspectlet.com"),
        (" .mediarithmics.com", "mediarithmics.com"),
        ('"facebook.com"', "facebook.com"),
        (".commander1.com\u200b", "commander1.com"),
        ("ads-[account].adhese.com", "adhese.com"),
        ("<region>.example.net", "example.net"),
    ],
    ids=lambda value: repr(value),
)
def test_domains_bind_the_rule(tmp_path: Path, domain: str, expected: str | None) -> None:
    (rule,) = import_rows(tmp_path, row(domain=domain)).rules
    assert rule.domain == expected


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        (".bing.com (3rd party) or .microsoft.com (3rd party)", "names several domains"),
        ("google-analytics.com (3rd party) or ", "names several domains"),
        (" or 207.net (3rd party)", "names several domains"),
        ("a.com, b.com", "names several domains"),
        ("id5-sync", "not a host name"),
        ("ut", "not a host name"),
        ("[account].com", "not a host name"),
        ("exa mple.com", "not a host name"),
        ("bücher.de", "not a host name"),
    ],
    ids=lambda value: repr(value),
)
def test_unusable_domains_skip_rather_than_unbind(tmp_path: Path, domain: str, reason: str) -> None:
    skipped = only_skip(import_rows(tmp_path, row(domain=domain)))
    assert reason in skipped.reason


def test_a_third_party_rule_never_classifies_a_first_party_cookie(tmp_path: Path) -> None:
    result = import_rows(
        tmp_path, row(name="sessionid", category="Marketing", domain="instagram.com", platform="Instagram")
    )
    catalog = CookieCatalog([make_rule("sessionid", "essential", SESSION, domain="example.com"), *result.rules])
    assert catalog.classify("sessionid", "www.instagram.com").category == "advertising"
    assert catalog.classify("sessionid", "example.com").category == "essential"
    assert not catalog.classify("sessionid", "other.org").is_known
    assert not catalog.classify("sessionid").is_known


# --- duplicates, line numbers and hostile text ---------------------------------------------------------------------


def test_duplicates_keep_the_first_rule(tmp_path: Path) -> None:
    result = import_rows(
        tmp_path,
        row(name="euconsent-v2", category="Functional", platform="Didomi"),
        row(name="euconsent-v2", category="Unclassified"),  # skipped: a later row may still become the rule
        row(name="euconsent-v2", category="Marketing", platform="PrivacyPillar"),
        row(name="u", domain="t.tailtarget.com"),
        row(name="u", domain=".t.tailtarget.com (3rd party)"),
        row(name="u", domain="other.com"),
        row(name="U"),
        row(name="u", wildcard="1"),
    )
    assert [(r.name, r.domain, r.service) for r in result.rules] == [
        ("euconsent-v2", None, "didomi"),
        ("u", "t.tailtarget.com", "google-analytics"),
        ("u", "other.com", "google-analytics"),
        ("U", None, "google-analytics"),
        ("u*", None, "google-analytics"),
    ]
    assert [(s.line, s.name, s.reason) for s in result.skipped] == [
        (3, "euconsent-v2", result.skipped[0].reason),
        (4, "euconsent-v2", "duplicate of line 2 (same name and domain)"),
        (6, "u", "duplicate of line 5 (same name and domain)"),
    ]


def test_hostile_text_survives_and_line_numbers_count_physical_lines(tmp_path: Path) -> None:
    hostile = 'He said "hi", then <script>alert(1)</script>\nsecond line\r\n\tthird, with ünïcödé ✓ and 🍪 \\ \x7f'
    result = import_rows(
        tmp_path,
        row(name="first", description=hostile, controller='Acme, "Inc."', platform="Plausible Insights OÜ"),
        row(name="second", retention="Unknown"),
        row(name="third", description="", controller="", platform="Tag Manager (GTM) / v2"),
    )
    first, third = result.rules
    assert (
        first.purpose == 'He said "hi", then <script>alert(1)</script> second line third, with ünïcödé ✓ and 🍪 \\ \x7f'
    )
    assert first.vendor == 'Acme, "Inc."'
    assert first.service == "plausible-insights-ou"
    assert third.vendor == "Tag Manager (GTM) / v2"  # no Data Controller: the platform
    assert third.service == "tag-manager-gtm-v2"
    assert third.purpose == ""
    # the first record spans lines 2-4, so the second starts on line 5 and the third on line 6
    assert result.skipped == (SkippedRow(5, "second", result.skipped[0].reason),)
    assert third.source.endswith("ocd.csv:6")


def test_purpose_is_one_line_of_at_most_200_characters(tmp_path: Path) -> None:
    long = "word " * 100
    (rule,) = import_rows(tmp_path, row(description=long)).rules
    assert len(rule.purpose) <= 200
    assert rule.purpose.endswith("word…")


def test_blank_lines_and_short_rows(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    good = ["id", "GA", "Analytics", "_ga", "", "d", "2 years", "Google", "", "0"]
    path.write_text(",".join(COLUMNS) + "\n" + ",".join(good) + "\n\n" + "id,GA,Analytics,_gid\n", encoding="utf-8")
    result = import_open_cookie_database(path)
    assert result.rows == 2
    assert [rule.name for rule in result.rules] == ["_ga"]
    assert result.skipped == (SkippedRow(4, "_gid", "expected 10 fields, found 4 (a stray comma or quote?)"),)


def test_columns_are_found_by_name_in_any_order_with_a_bom(tmp_path: Path) -> None:
    columns = list(reversed(COLUMNS))
    path = write_csv(tmp_path, [row(name="_gid", retention="24 hours")], columns=columns)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    (rule,) = import_open_cookie_database(path).rules
    assert (rule.name, rule.lifetime) == ("_gid", Lifetime(DAY))


# --- TOML round trip ---------------------------------------------------------------------------------------------


def test_rules_to_toml_round_trips_through_load_rules(tmp_path: Path) -> None:
    result = import_rows(
        tmp_path,
        row(name="_ga"),
        row(name="_ga_", wildcard="1"),
        row(name="sessionid", category="Marketing", domain="instagram.com", controller="Meta", retention="1 year"),
        row(name="csrftoken", category="Security", retention="Session", description='quote " back\\slash'),
        row(name="odd", category="Personalization", retention="Immediately removed", controller="Ünïcode 🍪 \x7f"),
        row(name="short", retention="30 seconds till 1 year", controller="", platform=""),
    )
    text = rules_to_toml(result.rules, header="Open Cookie Database\nsource: test\n# already a comment")
    assert text.startswith("# Open Cookie Database\n# source: test\n# already a comment\n")
    tomllib.loads(text)  # valid TOML on its own
    target = tmp_path / "rules.toml"
    target.write_text(text, encoding="utf-8")
    loaded = load_rules(target)

    def fields(rules: Sequence[CookieRule]) -> list[tuple[object, ...]]:
        return [(r.name, r.category, r.lifetime, r.domain, r.vendor, r.purpose, r.service, r.path) for r in rules]

    assert fields(loaded) == fields(result.rules)
    assert loaded[4].vendor == "Ünïcode 🍪 \x7f"
    assert loaded[4].lifetime == Lifetime(0)
    assert loaded[5].vendor == "" and loaded[5].service is None


def test_rules_to_toml_with_no_rules_is_just_the_header() -> None:
    assert rules_to_toml([], header="nothing imported") == "# nothing imported\n"
    assert tomllib.loads(rules_to_toml([], header="")) == {}


# --- whole-file errors -------------------------------------------------------------------------------------------


def test_a_missing_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"absent\.csv: cannot read the file \(No such file or directory\)"):
        import_open_cookie_database(tmp_path / "absent.csv")


@pytest.mark.parametrize("missing", ["Cookie / Data Key name", "Retention period", "Wildcard match", "Category"])
def test_a_missing_column_is_named(tmp_path: Path, missing: str) -> None:
    path = write_csv(tmp_path, [row()], columns=[c for c in COLUMNS if c != missing])
    with pytest.raises(CatalogError, match=f"missing column '{missing}'"):
        import_open_cookie_database(path)


def test_an_empty_file_is_a_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(CatalogError, match="empty file"):
        import_open_cookie_database(path)


def test_non_utf8_input_is_a_catalog_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [row(), row(name="x", description="caf\u00e9")])
    path.write_bytes(path.read_bytes().replace("café".encode(), "café".encode("latin-1")))
    with pytest.raises(CatalogError, match=r"not UTF-8 text \(byte 0xe9 on line 3\)"):
        import_open_cookie_database(path)


def test_broken_csv_is_a_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(",".join(COLUMNS) + '\nid,GA,Analytics,_ga,,"unterminated', encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid CSV"):
        import_open_cookie_database(path)


# --- the real database ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_import() -> ImportResult:
    if not REAL_DATABASE.is_file():
        pytest.skip(
            "../shared/testdata/open-cookie-database.csv is absent: "
            "fetch it from github.com/jkwakman/Open-Cookie-Database to run this test"
        )
    return import_open_cookie_database(REAL_DATABASE)


def test_the_real_database_imports_every_row(real_import: ImportResult) -> None:
    assert real_import.rows == 2264
    assert real_import.rows == len(real_import.rules) + len(real_import.skipped)
    assert len(real_import.rules) >= 2000
    assert all(skipped.reason and skipped.line >= 2 for skipped in real_import.skipped)
    kinds = Counter(skipped.reason.split(" (")[0] for skipped in real_import.skipped)
    assert kinds["retention period: no duration given"] >= 10  # "Unknown", "Varies", ...
    assert len({(rule.name, rule.domain) for rule in real_import.rules}) == len(real_import.rules)


def test_the_real_database_round_trips_and_classifies(real_import: ImportResult, tmp_path: Path) -> None:
    header = f"Open Cookie Database: {real_import.rows} rows, {len(real_import.rules)} rules"
    target = tmp_path / "open-cookie-database.toml"
    target.write_text(rules_to_toml(real_import.rules, header=header), encoding="utf-8")
    loaded = load_rules(target)
    assert [(r.name, r.category, r.lifetime, r.domain, r.vendor) for r in loaded] == [
        (r.name, r.category, r.lifetime, r.domain, r.vendor) for r in real_import.rules
    ]
    catalog = CookieCatalog(loaded)

    ga = catalog.classify("_ga")
    assert (ga.category, ga.rule and ga.rule.name) == ("analytics", "_ga")
    ga4 = catalog.classify("_ga_XYZ123")
    assert ga4.category == "analytics"
    assert ga4.rule is not None and ga4.rule.is_pattern and ga4.rule.name == "_ga_*"

    instagram = catalog.classify("sessionid", "instagram.com")
    assert instagram.category == "advertising"
    assert instagram.rule is not None and instagram.rule.domain == "instagram.com"
    for domain in ("example.com", None):
        other = catalog.classify("sessionid", domain)
        assert other.rule is None or other.rule.domain != "instagram.com"
