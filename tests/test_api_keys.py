"""Per-site API keys: shown once, stored hashed, one site each, revocable, last use throttled."""

from __future__ import annotations

import asyncio
import hashlib
import string
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.accounts.api_keys import (
    ApiKey,
    ApiKeyError,
    bearer_key,
    create_api_key,
    list_api_keys,
    revoke_api_key,
    verify_api_key,
)
from gateway.storage.store import Store
from tests.stores import open_test_store

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
T = TypeVar("T")


def with_db(tmp_path: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    store = open_test_store(tmp_path / "gw.sqlite3")  # on PostgreSQL: created here, outside the event loop

    async def run() -> T:
        db = await store.open()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def test_a_key_is_shown_once_and_stored_only_as_its_hash(tmp_path: Path) -> None:
    async def work(db: Store) -> tuple[ApiKey, str, list[ApiKey]]:
        key, plaintext = await create_api_key(db, "shop", "weekly report", now=NOW)
        return key, plaintext, await list_api_keys(db, "shop")

    key, plaintext, listed = with_db(tmp_path, work)
    assert plaintext.startswith("cg_") and len(plaintext) == 46
    assert key == ApiKey(key.id, "shop", "weekly report", plaintext[:8], NOW, None, None)
    assert listed == [key]
    stored = [tuple(row) for row in with_db(tmp_path, lambda db: db.fetch_all("SELECT prefix, key_hash FROM api_keys"))]
    assert stored == [(plaintext[:8], hashlib.sha256(plaintext.encode()).hexdigest())]
    for file in tmp_path.glob("gw.sqlite3*"):  # the database and its WAL
        assert plaintext.encode() not in file.read_bytes()
        assert plaintext[8:].encode() not in file.read_bytes()


def test_every_key_is_new(tmp_path: Path) -> None:
    async def work(db: Store) -> set[str]:
        return {(await create_api_key(db, "shop", f"key {n}", now=NOW))[1] for n in range(20)}

    assert len(with_db(tmp_path, work)) == 20


def test_a_key_verifies_with_its_site_and_the_caller_compares_it(tmp_path: Path) -> None:
    async def work(db: Store) -> tuple[ApiKey | None, ApiKey | None]:
        _, shop = await create_api_key(db, "shop", "shop key", now=NOW)
        _, blog = await create_api_key(db, "blog", "blog key", now=NOW)
        return await verify_api_key(db, shop, now=NOW), await verify_api_key(db, blog, now=NOW)

    shop, blog = with_db(tmp_path, work)
    assert shop is not None and shop.site_id == "shop" and shop.name == "shop key"
    assert blog is not None and blog.site_id == "blog"
    # A request for blog's statistics carrying shop's key: the site does not match, so it is refused.
    assert shop.site_id != "blog"


def _flip(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda key: None, id="no key"),
        pytest.param(lambda key: "", id="empty"),
        pytest.param(lambda key: "cg_", id="the prefix alone"),
        pytest.param(lambda key: key[:-1], id="one character short"),
        pytest.param(lambda key: key + "A", id="one character more"),
        pytest.param(lambda key: _flip(key, -1), id="last character changed"),
        pytest.param(lambda key: _flip(key, 3), id="first random character changed"),
        pytest.param(lambda key: key.upper(), id="upper case"),
        pytest.param(lambda key: "xx" + key[2:], id="another prefix"),
        pytest.param(lambda key: f" {key}", id="leading space"),
        pytest.param(lambda key: f"Bearer {key}", id="the whole header"),
        pytest.param(lambda key: "cg_" + "A" * 43, id="well formed but unknown"),
        pytest.param(lambda key: key[:3] + "é" * 43, id="not ASCII"),
    ],
)
def test_anything_but_the_exact_key_is_refused(tmp_path: Path, tamper: Callable[[str], str | None]) -> None:
    async def work(db: Store) -> tuple[ApiKey | None, ApiKey | None]:
        _, plaintext = await create_api_key(db, "shop", "k", now=NOW)
        return await verify_api_key(db, tamper(plaintext), now=NOW), await verify_api_key(db, plaintext, now=NOW)

    refused, accepted = with_db(tmp_path, work)
    assert refused is None and accepted is not None


def test_a_revoked_key_stops_working_and_stays_revoked(tmp_path: Path) -> None:
    later = NOW + timedelta(hours=1)

    async def work(db: Store) -> None:
        key, plaintext = await create_api_key(db, "shop", "k", now=NOW)
        assert await revoke_api_key(db, "shop", key.id, now=later)
        assert await verify_api_key(db, plaintext, now=later) is None
        assert await revoke_api_key(db, "shop", key.id, now=later + timedelta(days=1))  # twice: no error
        (listed,) = await list_api_keys(db, "shop")
        assert listed.revoked_at == later  # the first revocation is kept

    with_db(tmp_path, work)


def test_a_site_cannot_revoke_another_sites_key(tmp_path: Path) -> None:
    async def work(db: Store) -> None:
        key, plaintext = await create_api_key(db, "blog", "k", now=NOW)
        assert not await revoke_api_key(db, "shop", key.id, now=NOW)
        assert not await revoke_api_key(db, "blog", key.id + 1, now=NOW)  # no such key at all
        assert await verify_api_key(db, plaintext, now=NOW) is not None
        assert [k.revoked_at for k in await list_api_keys(db, "blog")] == [None]
        assert await list_api_keys(db, "shop") == []

    with_db(tmp_path, work)


def test_last_use_is_written_at_most_once_a_minute(tmp_path: Path) -> None:
    async def work(db: Store) -> list[datetime | None]:
        key, plaintext = await create_api_key(db, "shop", "k", now=NOW)
        seen = []
        for seconds in (0, 30, 59, 60, 61, 119, 125):
            verified = await verify_api_key(db, plaintext, now=NOW + timedelta(seconds=seconds))
            assert verified is not None
            (stored,) = await list_api_keys(db, "shop")
            assert verified.last_used_at == stored.last_used_at  # what it returns is what is stored
            seen.append(stored.last_used_at)
        return seen

    at = [NOW + timedelta(seconds=s) for s in (0, 60, 125)]
    assert with_db(tmp_path, work) == [at[0], at[0], at[0], at[1], at[1], at[1], at[2]]


def test_concurrent_uses_all_verify_and_one_records_the_use(tmp_path: Path) -> None:
    async def work(db: Store) -> tuple[list[ApiKey | None], list[ApiKey]]:
        _, plaintext = await create_api_key(db, "shop", "k", now=NOW)
        verified = await asyncio.gather(*(verify_api_key(db, plaintext, now=NOW) for _ in range(20)))
        return list(verified), await list_api_keys(db, "shop")

    verified, (stored,) = with_db(tmp_path, work)
    assert all(key is not None and key.site_id == "shop" for key in verified)
    assert stored.last_used_at == NOW


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "line\nbreak"])
def test_a_key_needs_a_sensible_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ApiKeyError, match="key name"):
        with_db(tmp_path, lambda db: create_api_key(db, "shop", name, now=NOW))


KEY = "cg_" + "a1B2-_" * 7 + "z"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(f"Bearer {KEY}", KEY, id="the bearer scheme"),
        pytest.param(f"bearer {KEY}", KEY, id="the scheme in any case"),
        pytest.param(f"  BEARER   {KEY}  ", KEY, id="extra spaces"),
        pytest.param(None, None, id="no header"),
        pytest.param("", None, id="an empty header"),
        pytest.param("Bearer", None, id="no credentials"),
        pytest.param("Bearer ", None, id="empty credentials"),
        pytest.param(KEY, None, id="a key without a scheme"),
        pytest.param(f"Basic {KEY}", None, id="another scheme"),
        pytest.param(f"Bearer{KEY}", None, id="no space"),
        pytest.param(f"Bearer {KEY} {KEY}", None, id="two keys"),
        pytest.param(f"Bearer {KEY[:-1]}", None, id="too short"),
        pytest.param("Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", None, id="a JWT"),
    ],
)
def test_bearer_key_reads_the_authorization_header(header: str | None, expected: str | None) -> None:
    assert len(KEY) == 46
    assert bearer_key(header) == expected


@given(st.one_of(st.none(), st.text(), st.text(alphabet="Bearer cg_-" + string.ascii_letters)))
def test_bearer_key_never_raises_and_returns_only_keys(header: str | None) -> None:
    key = bearer_key(header)
    if key is not None:
        assert header is not None and key in header and key.startswith("cg_") and len(key) == 46


@given(st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=43, max_size=43))
def test_bearer_key_returns_every_key_we_could_make(random_part: str) -> None:
    assert bearer_key(f"Bearer cg_{random_part}") == f"cg_{random_part}"
