"""``consent-gateway consent export --site --from --to``: a site's log as a real process writes it, on both stores."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.stores import database_setting
from tests.test_cli import SITE, assert_one_line_error, fill, record, run, write_config

START = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The shop with four records, on the test's store (``database_setting(`` makes the tests run on both)."""
    assert database_setting(tmp_path / "gateway.sqlite3")
    path = write_config(tmp_path, SITE)
    hostile = record('=HYPERLINK("http://evil.example")', "custom", START)
    fill(
        tmp_path / "gateway.sqlite3",
        record("visitor-a", "accept_all", START),
        hostile,
        record("visitor-b", "reject_all", START + timedelta(days=1)),
        record("visitor-c", "accept_all", START + timedelta(days=3)),  # after the range
    )
    return path


def test_the_csv_goes_to_standard_output_or_a_file(tmp_path: Path, config: Path) -> None:
    args = (
        "consent",
        "export",
        "--site",
        "shop",
        "--from",
        "2026-03-10",
        "--to",
        "2026-03-11",
        "--config",
        str(config),
    )
    printed = run(*args, cwd=tmp_path)
    assert printed.returncode == 0 and printed.stderr == "", printed.stderr
    rows = list(csv.DictReader(io.StringIO(printed.stdout)))
    assert [row["consent_id"] for row in rows] == ["visitor-a", '\'=HYPERLINK("http://evil.example")', "visitor-b"]
    assert rows[0]["revision"] == "" and rows[0]["analytics"] == "true" and rows[2]["method"] == "reject_all"

    target = tmp_path / "log.csv"
    written = run(*args, "--output", str(target), cwd=tmp_path)
    assert written.returncode == 0 and written.stdout == ""
    assert target.read_text(encoding="utf-8").replace("\r\n", "\n") == printed.stdout  # text mode reads \r\n as \n
    assert target.read_bytes().count(b"\r\n") == 4  # RFC 4180 line ends, a header and three rows


def test_the_json_is_one_object(tmp_path: Path, config: Path) -> None:
    result = run(
        *("consent", "export", "--site", "shop", "--from", "2026-03-10", "--to", "2026-03-10"),
        *("--format", "json", "--revisions", "--config", str(config)),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    assert (exported["site"], exported["from"], exported["to"]) == ("shop", "2026-03-10", "2026-03-10")
    assert [r["consent_id"] for r in exported["records"]] == ["visitor-a", '=HYPERLINK("http://evil.example")']
    assert exported["revisions"] == {}  # records made without a stored banner point to none


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (("--from", "2026-03-11", "--to", "2026-03-10"), "'to' (2026-03-10) is before 'from' (2026-03-11)"),
        (("--from", "2025-01-01", "--to", "2026-03-10"), "at most 400 days per export"),
        (("--from", "yesterday", "--to", "2026-03-10"), "'from' is not a day as YYYY-MM-DD: 'yesterday'"),
        (("--to", "2026-03-10"), "'from' is required"),
        (("--from", "2026-03-10", "--to", "2026-03-10", "--format", "xlsx"), "the format is csv or json"),
        (("--from", "2026-03-10", "--to", "2026-03-10", "--revisions"), "JSON export only"),
        (("--from", "2026-03-10\x1b[31m", "--to", "2026-03-10"), "not a day as YYYY-MM-DD: '2026-03-10\\x1b[31m'"),
    ],
)
def test_a_bad_request_is_one_line_and_status_2(
    tmp_path: Path, config: Path, extra: tuple[str, ...], error: str
) -> None:
    result = run("consent", "export", "--site", "shop", *extra, "--config", str(config), cwd=tmp_path)
    assert_one_line_error(result, error)
    assert result.stdout == ""


def test_an_unknown_site_an_unwritable_file_and_misplaced_options_are_refused(tmp_path: Path, config: Path) -> None:
    days = ("--from", "2026-03-10", "--to", "2026-03-10", "--config", str(config))
    assert_one_line_error(run("consent", "export", "--site", "nowhere", *days, cwd=tmp_path), "unknown site 'nowhere'")
    unwritable = run("consent", "export", "--site", "shop", *days, "-o", str(tmp_path / "no" / "x.csv"), cwd=tmp_path)
    assert_one_line_error(unwritable, "cannot write")
    with_id = run("consent", "export", "--id", "visitor-a", *days, cwd=tmp_path)
    assert_one_line_error(with_id, "--from works with --site only")
    both = run("consent", "export", "--id", "visitor-a", "--site", "shop", "--config", str(config), cwd=tmp_path)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
