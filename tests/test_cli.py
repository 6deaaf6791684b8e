"""The ``consent-gateway`` command as a user runs it: a real process, real files, one-line errors."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.consent.records import ConsentRecord
from gateway.cookies.catalog import load_rules
from gateway.ingest.event import AnonymousEvent
from gateway.storage.consent_log import append_record, records_for
from gateway.storage.events import insert_events
from tests.storage.test_rollups import AFTER_MIDNIGHT, FIRST_DAY
from tests.storage.test_rollups import event as analytics_event
from tests.stores import database_location, database_setting, open_test_store
from tests.stores import query as query_store

OCD_COLUMNS = (
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
SITE = """
[sites.shop]
name = "Shop"
origins = ["https://shop.example.com"]

[[sites.shop.cookies]]
name = "shop_theme"
category = "functional"
lifetime = "1y"
vendor = "Shop"
"""


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("CONSENT_GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_config(tmp_path: Path, text: str = "", *, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(f'database = "{database_setting(tmp_path / "gateway.sqlite3")}"\n{text}', encoding="utf-8")
    return path


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("consent-gateway: error: ")
    for text in expected:
        assert text in lines[0]
    return lines[0]


# --- help -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        pytest.param((), id="consent-gateway"),
        pytest.param(("serve",), id="serve"),
        pytest.param(("demo",), id="demo"),
        pytest.param(("classify",), id="classify"),
        pytest.param(("import-cookies",), id="import-cookies"),
        pytest.param(("consent",), id="consent"),
        pytest.param(("consent", "export"), id="consent export"),
        pytest.param(("consent", "erase"), id="consent erase"),
        pytest.param(("rollup",), id="rollup"),
        pytest.param(("purge",), id="purge"),
    ],
)
def test_every_command_explains_itself(tmp_path: Path, command: tuple[str, ...]) -> None:
    result = run(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: consent-gateway {' '.join(command)}".rstrip())
    assert result.stderr == ""


def test_the_installed_console_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("consent-gateway")
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable} (not an installed environment)")
    result = subprocess.run(
        [str(script), "classify", "_ga"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and "analytics" in result.stdout


# --- classify -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected", "absent"),
    [
        pytest.param(("_ga",), ["category:  analytics", "vendor:    Google", "declared:  2 years",
                                "exact name '_ga'"], ["allowed:"], id="_ga is Google analytics for 2 years"),
        pytest.param(("_ga_ABC123",), ["category:  analytics", "pattern '_ga_*'"], [],
                     id="_ga_ABC123 is named by its pattern"),
        pytest.param(("mystery_cookie",), ["category:  unknown", "policy:    blocked until classified",
                                           "'mystery_cookie' matches no rule"], ["vendor:"],
                     id="an unknown cookie is blocked until classified"),
        pytest.param(("sessionid",), ["category:  essential"], [], id="sessionid alone is a first-party session"),
        pytest.param(("sessionid", "--domain", "instagram.com"), ["category:  advertising", "for domain instagram.com"],
                     ["essential"], id="sessionid of instagram.com is not essential"),
        pytest.param(("sessionid", "--domain", ".www.instagram.com"), ["for domain instagram.com"], ["essential"],
                     id="a subdomain of instagram.com follows its rule"),
    ],
)  # fmt: skip
def test_classify_explains_the_matching_rule(
    tmp_path: Path, args: tuple[str, ...], expected: list[str], absent: list[str]
) -> None:
    result = run("classify", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout
    for text in absent:
        assert text not in result.stdout


@pytest.mark.parametrize(
    ("name", "site_text", "expected"),
    [
        pytest.param("_ga", "", ["declared:  2 years", "allowed:   13 months (capped by site shop's analytics cap)"],
                     id="the site's 13-month analytics cap"),
        pytest.param("_ga", '[sites.shop.lifetime_caps]\nanalytics = "30d"\n', ["allowed:   30 days (capped"],
                     id="a tighter site cap"),
        pytest.param("shop_theme", "", ["category:  functional", "vendor:    Shop", "allowed:   1 year (as declared)"],
                     id="the site's own cookie rule"),
        pytest.param("mystery_cookie", 'unknown_cookies = "allow"\n', ["policy:    allowed as a session cookie"],
                     id="the site's unknown-cookie policy"),
    ],
)  # fmt: skip
def test_classify_for_a_site_applies_its_rules_and_caps(
    tmp_path: Path, name: str, site_text: str, expected: list[str]
) -> None:
    text = SITE
    if site_text.startswith("unknown_cookies"):
        text = text.replace('name = "Shop"\n', f'name = "Shop"\n{site_text}', 1)
    else:
        text += site_text
    config = write_config(tmp_path, text)
    result = run("classify", name, "--site", "shop", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for line in expected:
        assert line in result.stdout


# --- import-cookies -------------------------------------------------------------------------------


def write_csv(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "open-cookie-database.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=OCD_COLUMNS)
        writer.writeheader()
        for number, row in enumerate(rows, 1):
            writer.writerow(
                {
                    "ID": f"id-{number}",
                    "Platform": "Google Analytics",
                    "Category": "Analytics",
                    "Domain": "",
                    "Description": "Distinguishes users.",
                    "Retention period": "2 years",
                    "Data Controller": "Google",
                    "User Privacy & GDPR Rights Portals": "https://policies.google.com/privacy",
                    "Wildcard match": "0",
                    **row,
                }
            )
    return path


IMPORT_ROWS = [
    {"Cookie / Data Key name": "_ga"},
    {"Cookie / Data Key name": "_ga_", "Wildcard match": "1", "Description": "Keeps the session state."},
    {"Cookie / Data Key name": "_fbp", "Platform": "Meta", "Category": "Marketing", "Retention period": "3 months",
     "Data Controller": "Meta", "Domain": "facebook.com"},
    {"Cookie / Data Key name": "odd", "Category": "Other"},
    {"Cookie / Data Key name": "when", "Retention period": "it depends"},
    {"Cookie / Data Key name": "bad name"},
]  # fmt: skip


def test_import_cookies_writes_a_loadable_rules_file_and_reports_skips(tmp_path: Path) -> None:
    source = write_csv(tmp_path, IMPORT_ROWS)
    output = tmp_path / "rules.toml"
    result = run("import-cookies", str(source), "--output", str(output), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    rules = {rule.name: rule for rule in load_rules(output)}
    assert set(rules) == {"_ga", "_ga_*", "_fbp"}
    assert (rules["_ga"].category, str(rules["_ga"].lifetime), rules["_ga"].vendor) == ("analytics", "2y", "Google")
    assert (rules["_fbp"].category, rules["_fbp"].domain) == ("advertising", "facebook.com")
    assert rules["_ga_*"].is_pattern
    stderr = result.stderr.splitlines()
    assert stderr[0] == (
        "Imported from open-cookie-database.csv (Open Cookie Database format): 3 rules from 6 rows, 3 skipped."
    )
    assert stderr[1].startswith("  skipped line 5 ('odd'): category 'Other' has no mapping")
    assert stderr[2].startswith("  skipped line 6 ('when'): retention period:")
    assert stderr[3].startswith("  skipped line 7 ('bad name'): not a valid cookie name")
    assert len(stderr) == 4


def test_import_cookies_prints_the_rules_without_an_output_file(tmp_path: Path) -> None:
    source = write_csv(tmp_path, IMPORT_ROWS[:1])
    result = run("import-cookies", str(source), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '[[cookie]]\nname = "_ga"\ncategory = "analytics"\nlifetime = "2y"' in result.stdout
    assert result.stdout.startswith("# Imported from open-cookie-database.csv")


# --- consent export / erase -----------------------------------------------------------------------


def fill(database: Path, *records: ConsentRecord) -> None:
    store = open_test_store(database)  # outside the loop: a PostgreSQL run creates the database here

    async def work() -> None:
        db = await store.open()
        try:
            for record in records:
                await append_record(db, record)
        finally:
            await db.close()

    asyncio.run(work())


def read_back(database: Path, consent_id: str) -> list[ConsentRecord]:
    store = open_test_store(database)

    async def work() -> list[ConsentRecord]:
        db = await store.open()
        try:
            return await records_for(db, consent_id)
        finally:
            await db.close()

    return asyncio.run(work())


def record(consent_id: str, method: str, at: datetime) -> ConsentRecord:
    return ConsentRecord(
        consent_id=consent_id,
        site_id="shop",
        recorded_at=at,
        method=method,
        policy_revision=1,
        banner_hash="b" * 64,
        categories={"functional": method == "accept_all", "analytics": method == "accept_all", "advertising": False},
        services={},
        gpc=False,
        language="en",
        page_path="/",
        ip_network="203.0.113.0/24",
        ua_family="Firefox",
        expires_at=at + timedelta(days=182),
    )


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    config = write_config(tmp_path, SITE)
    start = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
    fill(
        tmp_path / "gateway.sqlite3",
        record("visitor-a", "accept_all", start),
        record("visitor-b", "reject_all", start),
        record("visitor-a", "withdraw", start + timedelta(days=2)),
    )
    return config


def test_consent_export_prints_every_record_of_an_id(tmp_path: Path, filled: Path) -> None:
    result = run("consent", "export", "--id", "visitor-a", "--config", str(filled), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    assert exported["consent_id"] == "visitor-a"
    assert [(r["method"], r["recorded_at"]) for r in exported["records"]] == [
        ("accept_all", "2026-03-10T09:30:00+00:00"),
        ("withdraw", "2026-03-12T09:30:00+00:00"),
    ]
    assert exported["records"][0]["categories"] == {"functional": True, "analytics": True, "advertising": False}
    assert exported["records"][0]["ip_network"] == "203.0.113.0/24"


def test_consent_erase_unlinks_the_id_and_keeps_others(tmp_path: Path, filled: Path) -> None:
    database = tmp_path / "gateway.sqlite3"
    result = run("consent", "erase", "--id", "visitor-a", "--config", str(filled), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "erased 2 record(s) of visitor-a; an anonymous tombstone remains"
    assert read_back(database, "visitor-a") == []
    assert [r.method for r in read_back(database, "visitor-b")] == ["reject_all"]
    again = run("consent", "export", "--id", "visitor-a", "--config", str(filled), cwd=tmp_path)
    assert_one_line_error(again, "no consent records for id 'visitor-a'")
    twice = run("consent", "erase", "--id", "visitor-a", "--config", str(filled), cwd=tmp_path)
    assert_one_line_error(twice, "no consent records for id 'visitor-a'")


# --- rollup / purge -------------------------------------------------------------------------------


def fill_events(database: Path, events: list[AnonymousEvent]) -> None:
    store = open_test_store(database)  # outside the loop: a PostgreSQL run creates the database here

    async def work() -> None:
        db = await store.open()
        try:
            await db.write(lambda connection: insert_events(connection, events))
        finally:
            await db.close()

    asyncio.run(work())


def query(database: Path, sql: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in query_store(database_location(database), sql)]


@pytest.fixture
def with_events(tmp_path: Path) -> Path:
    """Two days of "shop" and one of "blog" (the rollup tests' fixture), not rolled up yet."""
    config = write_config(tmp_path, SITE + '[sites.blog]\nname = "Blog"\n')
    fill_events(tmp_path / "gateway.sqlite3", [*FIRST_DAY, *AFTER_MIDNIGHT])
    return config


@pytest.mark.parametrize(
    ("args", "output", "days"),
    [
        pytest.param(("rollup",), "rolled up 3 day(s)", [("blog", "2026-03-10"), ("shop", "2026-03-10"),
                                                          ("shop", "2026-03-11")], id="rollup: the dirty days"),
        pytest.param(("rollup", "--rebuild"), "rebuilt 3 day(s)", [("blog", "2026-03-10"), ("shop", "2026-03-10"),
                                                                   ("shop", "2026-03-11")], id="rebuild: every day"),
        pytest.param(("rollup", "--rebuild", "--site", "shop"), "rebuilt 2 day(s)",
                     [("shop", "2026-03-10"), ("shop", "2026-03-11")], id="rebuild of one site"),
    ],
)  # fmt: skip
def test_rollup_fills_the_daily_statistics(
    tmp_path: Path, with_events: Path, args: tuple[str, ...], output: str, days: list[tuple[str, str]]
) -> None:
    result = run(*args, "--config", str(with_events), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{output}\n"
    database = tmp_path / "gateway.sqlite3"
    assert query(database, "SELECT DISTINCT site_id, day FROM rollups ORDER BY 1, 2") == days
    assert query(
        database,
        "SELECT visitors, visits, pageviews, events, bounces, duration FROM rollups "
        "WHERE site_id = 'shop' AND day = '2026-03-10' AND dimension = 'all'",
    ) == [(3, 4, 7, 9, 1, 3000)]


def test_rollup_twice_finds_nothing_new(tmp_path: Path, with_events: Path) -> None:
    assert run("rollup", "--config", str(with_events), cwd=tmp_path).stdout == "rolled up 3 day(s)\n"
    assert run("rollup", "--config", str(with_events), cwd=tmp_path).stdout == "rolled up 0 day(s)\n"
    assert run("rollup", "--rebuild", "--config", str(with_events), cwd=tmp_path).stdout == "rebuilt 3 day(s)\n"


def test_purge_deletes_what_is_past_the_retention(tmp_path: Path) -> None:
    # far past and far future, so the real clock the command reads cannot change the answer
    config = write_config(tmp_path, SITE)
    database = tmp_path / "gateway.sqlite3"
    long_ago, far_ahead = datetime(2020, 1, 15, 12, 0, tzinfo=UTC), datetime(2100, 1, 15, 12, 0, tzinfo=UTC)
    fill_events(database, [analytics_event(long_ago, "old", "/old"), analytics_event(far_ahead, "new", "/new")])
    old, new = record("visitor-old", "accept_all", long_ago), record("visitor-new", "accept_all", far_ahead)
    fill(database, old, new)
    result = run("purge", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # the old day is rolled up (21 rows, one per dimension value) and, older than 25 months, deleted too
    assert result.stdout == "deleted 1 event(s), 1 visit(s), 22 rollup row(s), 1 consent record(s), 0 salt(s)\n"
    assert query(database, "SELECT pathname FROM events") == [("/new",)]
    assert query(database, "SELECT consent_id FROM consent_records") == [("visitor-new",)]
    assert query(database, "SELECT DISTINCT day FROM rollups") == [("2100-01-15",)]
    again = run("purge", "--config", str(config), cwd=tmp_path)
    assert again.stdout == "deleted 0 event(s), 0 visit(s), 0 rollup row(s), 0 consent record(s), 0 salt(s)\n"


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config_text", "args", "expected"),
    [
        pytest.param("port = ", ("classify", "_ga"), ["{config}", "not valid TOML"], id="invalid TOML"),
        pytest.param('port = "x"', ("classify", "_ga"), ["{config}", "port", "'x'", "a whole number"],
                     id="a wrong type"),
        pytest.param('colour = "red"', ("classify", "_ga"), ["{config}", "colour", "one of the known keys"],
                     id="an unknown key"),
        pytest.param('[sites.shop]\npolicy_revision = "two"', ("consent", "export", "--id", "x"),
                     ["{config}", "sites.shop.policy_revision", "'two'"], id="a bad site value"),
        pytest.param(None, ("classify", "_ga"), ["{config}", "the file does not exist"], id="a missing file"),
        pytest.param("", ("serve",), ["no secret key", "secret_keys", "CONSENT_GATEWAY_SECRET_KEYS"],
                     id="serve without secret keys"),
        pytest.param(SITE, ("classify", "_ga", "--site", "blog"), ["unknown site 'blog'", "configured: shop"],
                     id="an unknown site for classify"),
        pytest.param('catalog = "{tmp}/missing.toml"', ("classify", "_ga"), ["missing.toml", "cannot read the file"],
                     id="a missing catalog"),
        pytest.param(None, ("import-cookies", "{tmp}/missing.csv"), ["missing.csv", "cannot read the file"],
                     id="import of a missing CSV"),
        pytest.param(SITE, ("rollup", "--rebuild", "--site", "blog"), ["unknown site 'blog'", "configured: shop"],
                     id="a rebuild of an unknown site"),
        pytest.param(SITE, ("rollup", "--site", "shop"), ["--site works with --rebuild only"],
                     id="a site without --rebuild"),
        pytest.param('[retention]\nevents = "3y"', ("purge",),
                     ["{config}", "retention.events", "'3y'", "no longer than retention.rollups (25mo)"],
                     id="events kept longer than the rollups"),
    ],
)  # fmt: skip
def test_a_user_mistake_is_one_line_and_status_2(
    tmp_path: Path, config_text: str | None, args: tuple[str, ...], expected: list[str]
) -> None:
    config = tmp_path / "gateway.toml"
    if config_text is not None:
        write_config(tmp_path, config_text.replace("{tmp}", str(tmp_path)))
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    if argv[0] != "import-cookies":
        argv += ["--config", str(config)]
    result = run(*argv, cwd=tmp_path)
    assert_one_line_error(result, *(text.replace("{config}", str(config)) for text in expected))


def test_export_of_an_unknown_id_is_an_error(tmp_path: Path, filled: Path) -> None:
    result = run("consent", "export", "--id", "nobody", "--config", str(filled), cwd=tmp_path)
    assert_one_line_error(result, "no consent records for id 'nobody'")
    assert result.stdout == ""


NEEDS_A_DATABASE = [
    pytest.param(("consent", "export", "--id", "nobody"), id="export"),
    pytest.param(("rollup",), id="rollup"),
    pytest.param(("purge",), id="purge"),
]


@pytest.mark.sqlite_only(reason="a missing SQLite file; the PostgreSQL counterpart is an unreachable server below")
@pytest.mark.parametrize("args", NEEDS_A_DATABASE)
def test_a_command_without_its_database_is_an_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    config = write_config(tmp_path, SITE)
    result = run(*args, "--config", str(config), cwd=tmp_path)
    assert_one_line_error(result, "the database", str(tmp_path / "gateway.sqlite3"), "does not exist")
    assert not (tmp_path / "gateway.sqlite3").exists()  # not created by a command that only reads or tidies


@pytest.mark.parametrize("args", NEEDS_A_DATABASE)
def test_a_command_whose_server_cannot_be_reached_is_an_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    """The PostgreSQL counterpart of a missing file: nothing listens on the port (one line, the password hidden)."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    url = f"postgresql://gateway:hunter2-secret@127.0.0.1:{port}/gateway"
    config = tmp_path / "gateway.toml"
    config.write_text(f'database = "{url}"\n{SITE}', encoding="utf-8")
    result = run(*args, "--config", str(config), cwd=tmp_path)
    line = assert_one_line_error(result, "cannot open the database", f"127.0.0.1:{port}/gateway", "cannot be reached")
    assert "hunter2-secret" not in line


@pytest.mark.sqlite_only(reason="a file that is not an SQLite database; the PostgreSQL counterpart is above")
@pytest.mark.parametrize(
    "make_database",
    [
        pytest.param(lambda path: path.write_text("not a database, only text\n" * 20), id="a text file"),
        pytest.param(lambda path: path.mkdir(), id="a folder"),
    ],
)
def test_a_database_that_is_not_sqlite_is_an_error(tmp_path: Path, make_database: object) -> None:
    config = write_config(tmp_path, SITE)
    make_database(tmp_path / "gateway.sqlite3")  # type: ignore[operator]
    result = run("consent", "export", "--id", "x", "--config", str(config), cwd=tmp_path)
    assert_one_line_error(result, "cannot open the database", str(tmp_path / "gateway.sqlite3"))


def test_import_into_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    source = write_csv(tmp_path, IMPORT_ROWS[:1])
    result = run("import-cookies", str(source), "--output", str(tmp_path / "no" / "rules.toml"), cwd=tmp_path)
    assert_one_line_error(result, "cannot write", "rules.toml")


def test_the_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'port = "x"')
    result = run("classify", "_ga", cwd=tmp_path, env={"CONSENT_GATEWAY_CONFIG": str(config)})
    assert_one_line_error(result, str(config), "port")
