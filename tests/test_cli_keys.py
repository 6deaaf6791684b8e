"""The ``apikey`` and ``share`` commands: keys printed once, links printed as paths, one-line mistakes."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from gateway.accounts.api_keys import ApiKey, verify_api_key
from gateway.accounts.shared_links import SharedLink, SharedLinks
from gateway.cli import main
from gateway.clock import SystemClock
from gateway.settings import Secret
from gateway.storage.store import Store
from tests.stores import ADMIN_URL_ENV, REQUIRE_ENV, database_location, database_setting, open_test_store, query

KEYS = [Secret("cli-keys-test-key")]
PASSWORD = "long-enough-password"
T = TypeVar("T")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'secret_keys = ["{KEYS[0].value}"]\ndatabase = "{database_setting(tmp_path / "gw.sqlite3")}"\n'
        '[sites.shop]\norigins = ["https://shop.example.com"]\n'
        '[sites.blog]\norigins = ["https://blog.example.com"]\n',
        encoding="utf-8",
    )
    return path


def run(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: a real process, without the caller's CONSENT_GATEWAY_* variables."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CONSENT_GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("consent-gateway: error: ")
    assert all(text in result.stderr for text in expected), result.stderr


def with_db(config: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    store = open_test_store(config.parent / "gw.sqlite3")  # outside the loop: it may create the database

    async def run() -> T:
        db = await store.open()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    for name in (ADMIN_URL_ENV, REQUIRE_ENV):  # the test cluster's variables are not settings of the CLI
        monkeypatch.delenv(name, raising=False)
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "command",
    [("apikey",), ("apikey", "create"), ("apikey", "list"), ("apikey", "revoke"), ("share",), ("share", "create")],
    ids=" ".join,
)
def test_the_commands_explain_themselves(tmp_path: Path, command: tuple[str, ...]) -> None:
    result = run(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith(f"usage: consent-gateway {' '.join(command)}")


def test_an_api_key_is_printed_once_listed_by_prefix_and_revoked(config: Path, tmp_path: Path) -> None:
    c = ("--config", str(config))
    created = run("apikey", "create", "--site", "shop", "--name", "weekly report", *c, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert created.stdout == f"{key}\n" and key.startswith("cg_")  # alone, so `KEY=$(...)` works
    assert "cannot be shown again" in created.stderr and key not in created.stderr

    verified = with_db(config, lambda db: verify_api_key(db, key, now=SystemClock().now()))
    assert verified is not None and verified.site_id == "shop" and verified.name == "weekly report"

    listing = run("apikey", "list", "--site", "shop", *c, cwd=tmp_path).stdout.splitlines()
    assert listing[0].split() == ["id", "name", "prefix", "may", "read", "created", "last", "used", "revoked"]
    assert listing[1].startswith("1 ") and "weekly report" in listing[1] and f"{key[:8]}..." in listing[1]
    assert " stats " in listing[1] and verified.permissions == frozenset()  # no permission unless given
    assert key[8:] not in "\n".join(listing) and listing[1].rstrip().endswith("-")  # not revoked
    assert run("apikey", "list", "--site", "blog", *c, cwd=tmp_path).stdout.startswith("no API keys for blog yet")

    revoked = run("apikey", "revoke", "--site", "shop", "1", *c, cwd=tmp_path)
    assert revoked.returncode == 0 and revoked.stdout == "revoked API key 1 of shop\n"
    assert with_db(config, lambda db: verify_api_key(db, key, now=SystemClock().now())) is None
    assert not run("apikey", "list", "--site", "shop", *c, cwd=tmp_path).stdout.splitlines()[1].rstrip().endswith("-")


def test_a_key_may_be_given_the_consent_log_permission_and_nothing_unknown(config: Path, tmp_path: Path) -> None:
    c = ("--config", str(config))
    args = ("apikey", "create", "--site", "shop", "--name", "auditor", "--permission", "consent_log", *c)
    created = run(*args, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    verified = with_db(config, lambda db: verify_api_key(db, created.stdout.strip(), now=SystemClock().now()))
    assert verified is not None and verified.permissions == frozenset({"consent_log"})
    listing = run("apikey", "list", "--site", "shop", *c, cwd=tmp_path).stdout.splitlines()
    assert " consent_log " in listing[1]

    refused = run("apikey", "create", "--site", "shop", "--name", "x", "--permission", "admin", *c, cwd=tmp_path)
    assert refused.returncode == 2 and "invalid choice: 'admin'" in refused.stderr and refused.stdout == ""


def test_a_shared_link_is_printed_as_a_path_listed_and_revoked(config: Path, tmp_path: Path) -> None:
    c = ("--config", str(config))
    args = ("share", "create", "--site", "shop", "--label", "Board", "--expires", "30d", "--password-stdin")
    created = run(*args, *c, cwd=tmp_path, stdin=f"{PASSWORD}\n")
    assert created.returncode == 0, created.stderr
    path = created.stdout.strip()
    assert created.stdout == f"{path}\n" and path.startswith("/share/")
    assert "with a password" in created.stderr and PASSWORD not in created.stdout + created.stderr

    now = SystemClock().now()

    async def open_link(db: Store) -> SharedLink | None:
        return await SharedLinks(db, KEYS).open(path.removeprefix("/share/"), now=now)

    link = with_db(config, open_link)
    assert link is not None and link.site_id == "shop" and link.label == "Board"
    assert SharedLinks(open_test_store(tmp_path / "gw.sqlite3"), KEYS).password_ok(link, PASSWORD)
    assert link.expires_at is not None
    assert timedelta(days=30) - timedelta(minutes=1) < link.expires_at - now <= timedelta(days=30)

    listing = run("share", "list", "--site", "shop", *c, cwd=tmp_path).stdout.splitlines()
    assert listing[0].split() == ["id", "label", "created", "state", "password", "path"]
    assert "Board" in listing[1] and " yes " in listing[1] and listing[1].endswith(path)  # copied again later
    assert run("share", "list", "--site", "blog", *c, cwd=tmp_path).stdout.startswith("no shared links for blog yet")

    revoked = run("share", "revoke", "--site", "shop", "1", *c, cwd=tmp_path)
    assert revoked.returncode == 0 and "revoked shared link 1 of shop" in revoked.stdout
    assert with_db(config, open_link) is None
    after = run("share", "list", "--site", "shop", *c, cwd=tmp_path).stdout.splitlines()[1]
    assert "revoked" in after and path not in after


def test_a_link_without_options_has_no_password_and_no_end(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = in_process(monkeypatch, capsys, "share", "create", "--site", "blog", "--config", str(config))
    assert code == 0 and "until revoked" in err and "password" not in err

    async def open_link(db: Store) -> SharedLink | None:
        return await SharedLinks(db, KEYS).open(out.strip().removeprefix("/share/"), now=SystemClock().now())

    link = with_db(config, open_link)
    assert link is not None and link.site_id == "blog" and link.label == ""
    assert not link.has_password and link.expires_at is None


def test_the_password_is_asked_twice_on_the_terminal(config: Path) -> None:
    """A real terminal (a pseudo-terminal): getpass reads /dev/tty, as when an operator types it."""
    output, status = _on_a_terminal(
        ["share", "create", "--site", "shop", "--password", "--config", str(config)],
        [("Password: ", PASSWORD), ("Again: ", PASSWORD)],
    )
    assert status == 0, output
    assert "/share/" in output and "with a password" in output and PASSWORD not in output  # never echoed

    output, status = _on_a_terminal(
        ["share", "create", "--site", "shop", "--password", "--config", str(config)],
        [("Password: ", PASSWORD), ("Again: ", PASSWORD + "!")],
    )
    assert status == 2 and "the two passwords differ" in output and "/share/" not in output


def _on_a_terminal(argv: list[str], answers: list[tuple[str, str]]) -> tuple[str, int]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("CONSENT_GATEWAY_")}
    pid, terminal = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pseudo-terminal
        os.execve(sys.executable, [sys.executable, "-m", "gateway", *argv], env)  # noqa: S606 - our own command
    output, deadline = b"", time.monotonic() + 30
    pending = list(answers)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(terminal, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if pending and output.decode(errors="replace").rstrip().endswith(pending[0][0].rstrip()):
                os.write(terminal, pending.pop(0)[1].encode() + b"\n")
    finally:
        os.close(terminal)
    _, status = os.waitpid(pid, 0)
    return output.decode(errors="replace"), os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        pytest.param(("apikey", "create", "--site", "nope", "--name", "n"), "", "unknown site 'nope'", id="apikey new"),
        pytest.param(("apikey", "list", "--site", "nope"), "", "unknown site 'nope'", id="apikey list"),
        pytest.param(("apikey", "revoke", "--site", "nope", "1"), "", "unknown site 'nope'", id="apikey revoke"),
        pytest.param(("share", "create", "--site", "nope"), "", "unknown site 'nope'", id="share create"),
        pytest.param(("share", "list", "--site", "nope"), "", "unknown site 'nope'", id="share list"),
        pytest.param(("share", "revoke", "--site", "nope", "1"), "", "unknown site 'nope'", id="share revoke"),
        pytest.param(("apikey", "create", "--site", "shop", "--name", " "), "", "a key name is", id="a blank name"),
        pytest.param(("apikey", "revoke", "--site", "shop", "7"), "", "shop has no API key 7", id="no such key"),
        pytest.param(("share", "revoke", "--site", "shop", "7"), "", "shop has no shared link 7", id="no such link"),
        pytest.param(("share", "create", "--site", "shop", "--expires", "soon"), "", "--expires: expected a lifetime",
                     id="an unreadable expiry"),
        pytest.param(("share", "create", "--site", "shop", "--expires", "session"), "", "not 'session'",
                     id="a session expiry"),
        pytest.param(("share", "create", "--site", "shop", "--password-stdin"), "short\n", "at least 10 characters",
                     id="a short password"),
        pytest.param(("share", "create", "--site", "shop", "--label", "x" * 101), "", "a label is at most 100",
                     id="a long label"),
    ],
)  # fmt: skip
def test_a_mistake_is_one_line_and_status_2(
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    stdin: str,
    message: str,
) -> None:
    code, out, err = in_process(monkeypatch, capsys, *argv, "--config", str(config), stdin=stdin)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("consent-gateway: error: ") and message in err


def test_a_site_cannot_revoke_another_sites_key_or_link(config: Path, tmp_path: Path) -> None:
    c = ("--config", str(config))
    key = run("apikey", "create", "--site", "blog", "--name", "blog key", *c, cwd=tmp_path).stdout.strip()
    path = run("share", "create", "--site", "blog", *c, cwd=tmp_path).stdout.strip()
    assert_one_line_error(run("apikey", "revoke", "--site", "shop", "1", *c, cwd=tmp_path), "shop has no API key 1")
    assert_one_line_error(run("share", "revoke", "--site", "shop", "1", *c, cwd=tmp_path), "shop has no shared link 1")

    async def still_valid(db: Store) -> tuple[ApiKey | None, SharedLink | None]:
        now = SystemClock().now()
        return await verify_api_key(db, key, now=now), await SharedLinks(db, KEYS).open(path[len("/share/") :], now=now)

    assert all(found is not None for found in with_db(config, still_valid))
    database = database_location(tmp_path / "gw.sqlite3")
    for table in ("api_keys", "shared_links"):
        assert query(database, f"SELECT revoked_at FROM {table}") == [(None,)]  # noqa: S608


def test_links_need_a_secret_key(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'database = "{database_setting(tmp_path / "gw.sqlite3")}"\n[sites.shop]\norigins = ["https://shop.example.com"]\n',
        encoding="utf-8",
    )
    result = run("share", "create", "--site", "shop", "--password", "--config", str(config), cwd=tmp_path)
    assert_one_line_error(result, "no secret key", "CONSENT_GATEWAY_SECRET_KEYS")  # said before asking
