"""Dashboard accounts: scrypt password hashes, users and roles per site, and the ``user`` commands."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.accounts.passwords import (
    PasswordHasher,
    check_new_password,
    hash_password,
    needs_rehash,
    verify_password,
)
from gateway.cli import main
from tests.conftest import site_config
from tests.stores import database_setting, open_test_store

# One hash, reused: scrypt is slow on purpose.
STORED = hash_password("correct horse battery")


def test_a_password_verifies_and_a_wrong_one_does_not() -> None:
    assert verify_password("correct horse battery", STORED)
    assert not verify_password("correct horse batterY", STORED)
    assert not needs_rehash(STORED)
    assert STORED.startswith("scrypt$") and "correct" not in STORED


def test_concurrent_hashes_run_at_most_concurrency_at_once() -> None:
    """Six logins at once on a hasher bounded to two: every answer right, never more than two scrypt threads."""
    hasher = PasswordHasher(concurrency=2)

    async def six_logins() -> list[bool]:
        guesses = ["correct horse battery", "wrong horse battery"] * 3
        return list(await asyncio.gather(*(hasher.verify(guess, STORED) for guess in guesses)))

    try:
        assert asyncio.run(six_logins()) == [True, False] * 3
        assert len([t for t in threading.enumerate() if t.name.startswith("scrypt")]) == 2
    finally:
        hasher.close()


def test_each_hash_has_its_own_salt() -> None:
    assert hash_password("correct horse battery") != STORED


@pytest.mark.parametrize(
    "stored",
    ["", "plain text", "scrypt$1$8$1$!!$!!", "bcrypt$x$y$z$a$b", "scrypt$0$8$1$AAAA$AAAA", STORED.replace("$", "$$")],
)
def test_a_malformed_stored_hash_never_verifies_and_never_raises(stored: str) -> None:
    assert not verify_password("correct horse battery", stored)


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=0, max_size=40))
def test_no_other_text_verifies(password: str) -> None:
    if password != "correct horse battery":
        assert not verify_password(password, STORED)


@pytest.mark.parametrize("password", ["short", "x" * 1025])
def test_new_passwords_have_a_sensible_length(password: str) -> None:
    with pytest.raises(ValueError, match="password must be"):
        check_new_password(password)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    site = site_config()
    path.write_text(
        f'secret_keys = ["accounts-test-key"]\ndatabase = "{database_setting(tmp_path / "gw.sqlite3")}"\n'
        f'[sites.shop]\norigins = {site["origins"]!r}\n[sites.blog]\norigins = ["https://blog.example.com"]\n'.replace(
            "'", '"'
        ),
        encoding="utf-8",
    )
    return path


def _run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _rows(config: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the config's database (on the test's store) the way the dashboard would."""

    async def read() -> list[tuple[Any, ...]]:
        store = await open_test_store(config.parent / "gw.sqlite3").open()
        try:
            return [tuple(row) for row in await store.fetch_all(sql)]
        finally:
            await store.close()

    return asyncio.run(read())


def test_user_commands_manage_accounts_and_roles(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    c = ("--config", str(config))
    assert _run(monkeypatch, capsys, "user", "list", *c)[1].startswith("no users yet")
    code, out, _ = _run(
        monkeypatch, capsys, "user", "add", "ada", "--admin", "--password-stdin", *c, stdin="s3cret-pass!\n"
    )
    assert code == 0 and "added ada (admin)" in out
    assert (
        _run(
            monkeypatch, capsys, "user", "add", "bob", "--site", "shop", "--password-stdin", *c, stdin="bobs-password\n"
        )[0]
        == 0
    )
    assert _run(monkeypatch, capsys, "user", "grant", "bob", "--site", "blog", "--role", "owner", *c)[0] == 0
    listing = _run(monkeypatch, capsys, "user", "list", *c)[1]
    assert "ada (admin): no site" in listing and "bob: owner of blog, viewer of shop" in listing
    assert _run(monkeypatch, capsys, "user", "grant", "bob", "--site", "shop", "--role", "none", *c)[0] == 0
    assert "bob: owner of blog\n" in _run(monkeypatch, capsys, "user", "list", *c)[1]
    assert _run(monkeypatch, capsys, "user", "passwd", "bob", "--password-stdin", *c, stdin="a-new-password\n")[0] == 0
    stored = dict(_rows(config, "SELECT name, password_hash FROM users"))
    assert verify_password("a-new-password", stored["bob"]) and verify_password("s3cret-pass!", stored["ada"])
    assert "bobs-password" not in str(stored) and "s3cret" not in str(stored)
    assert _run(monkeypatch, capsys, "user", "remove", "bob", *c)[0] == 0
    assert _rows(config, "SELECT count(*) FROM site_roles") == [(0,)]


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (("user", "add", "eve", "--password-stdin"), "short\n", "at least 10 characters"),
        (("user", "add", "eve eve", "--password-stdin"), "long-enough-password\n", "user name is 1 to 64"),
        (("user", "add", "eve", "--site", "nope", "--password-stdin"), "long-enough-password\n", "unknown site 'nope'"),
        (("user", "remove", "nobody"), "", "no user named 'nobody'"),
        (("user", "passwd", "nobody", "--password-stdin"), "long-enough-password\n", "no user named 'nobody'"),
        (("user", "grant", "nobody", "--site", "shop", "--role", "viewer"), "", "no user named 'nobody'"),
    ],
)
def test_user_command_mistakes_are_one_clear_line(
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    stdin: str,
    message: str,
) -> None:
    code, _, err = _run(monkeypatch, capsys, *argv, "--config", str(config), stdin=stdin)
    assert code == 2 and message in err and err.count("\n") == 1


def test_a_name_is_taken_once_whatever_its_case(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    c = ("--config", str(config))
    assert (
        _run(monkeypatch, capsys, "user", "add", "Ada", "--password-stdin", *c, stdin="long-enough-password\n")[0] == 0
    )
    code, _, err = _run(
        monkeypatch, capsys, "user", "add", "ada", "--password-stdin", *c, stdin="long-enough-password\n"
    )
    assert code == 2 and "exists already" in err
