"""Read-only shared links: signed tokens bound to a nonce, revocation, expiry, passwords, unlock cookies."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from itsdangerous import URLSafeSerializer

from gateway.accounts.sessions import SessionCodec
from gateway.accounts.shared_links import SharedLink, SharedLinkError, SharedLinks
from gateway.settings import Secret
from gateway.storage.db import Database
from gateway.storage.store import Store
from tests.stores import open_test_store

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
OLD, NEW = Secret("old-key-for-links"), Secret("new-key-for-links")
KEYS = [OLD, NEW]  # the newest key is last: it signs
PASSWORD = "correct horse battery"
T = TypeVar("T")


def with_links(tmp_path: Path, work: Callable[[SharedLinks], Awaitable[T]], keys: Sequence[Secret] = KEYS) -> T:
    return with_store(tmp_path, lambda db: work(SharedLinks(db, keys)))


def with_store(tmp_path: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    store = open_test_store(tmp_path / "gw.sqlite3")  # on PostgreSQL: created here, outside the event loop

    async def run() -> T:
        db = await store.open()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def delete_every_link(tmp_path: Path) -> None:
    """As a clean-up of revoked links would, through a store of its own."""
    with_store(tmp_path, lambda db: db.write(lambda connection: connection.execute("DELETE FROM shared_links")))


async def _create(
    links: SharedLinks,
    site: str = "shop",
    *,
    label: str = "Board",
    expires_at: datetime | None = None,
    password: str | None = None,
) -> tuple[SharedLink, str]:
    return await links.create(site, label=label, expires_at=expires_at, password=password, now=NOW)


def _payload(token: str) -> str:
    """What anyone holding the token can read (itsdangerous signs, it does not encrypt)."""
    data = token.split(".")[0]
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode()


def test_a_link_opens_with_its_token(tmp_path: Path) -> None:
    async def work(links: SharedLinks) -> tuple[SharedLink, str, SharedLink | None, list[SharedLink]]:
        link, token = await _create(links)
        return link, token, await links.open(token, now=NOW), await links.list("shop")

    link, token, opened, listed = with_links(tmp_path, work)
    assert opened == link and listed == [link]
    assert (link.site_id, link.label, link.created_at, link.expires_at, link.revoked_at) == (
        "shop",
        "Board",
        NOW,
        None,
        None,
    )
    assert not link.has_password
    assert len(token) < 100 and all(c.isalnum() or c in "-_." for c in token)  # fits a URL path as it is


def test_a_token_names_neither_the_site_nor_the_password(tmp_path: Path) -> None:
    async def work(links: SharedLinks) -> tuple[SharedLink, str]:
        return await _create(links, "secret-site-name", label="for the board", password=PASSWORD)

    link, token = with_links(tmp_path, work)
    readable = _payload(token)
    assert json.loads(readable) == [link.id, link.nonce]
    for hidden in ("secret-site-name", PASSWORD, "for the board", str(link.password_hash)):
        assert hidden not in token and hidden not in readable
    assert PASSWORD not in repr(link) and link.nonce not in repr(link) and str(link.password_hash) not in repr(link)


def _tampered(token: str, change: str) -> str:
    payload, signature = token.split(".")
    if change == "signature":
        # The first character: the last one's low bits are base64 padding, so changing it may change nothing.
        return f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    if change == "payload":
        forged = json.loads(_payload(token))
        forged[0] -= 1  # the link created first
        data = base64.urlsafe_b64encode(json.dumps(forged, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{data}.{signature}"
    if change == "truncated":
        return token[:-5]
    if change == "no signature":
        return payload
    raise AssertionError(change)


@pytest.mark.parametrize("change", ["signature", "payload", "truncated", "no signature"])
def test_a_tampered_token_opens_nothing(tmp_path: Path, change: str) -> None:
    async def work(links: SharedLinks) -> tuple[SharedLink | None, SharedLink | None]:
        await _create(links)  # link 1, which the forged payload points at
        _, token = await _create(links)
        return await links.open(_tampered(token, change), now=NOW), await links.open(token, now=NOW)

    forged, genuine = with_links(tmp_path, work)
    assert forged is None and genuine is not None


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="no token"),
        pytest.param("", id="empty"),
        pytest.param("garbage", id="garbage"),
        pytest.param("a.b.c", id="three parts"),
        pytest.param("x" * 5000, id="very long"),
        pytest.param("é.☃", id="not ASCII"),
    ],
)
def test_nonsense_opens_nothing(tmp_path: Path, token: str | None) -> None:
    async def work(links: SharedLinks) -> SharedLink | None:
        await _create(links)
        return await links.open(token, now=NOW)

    assert with_links(tmp_path, work) is None


def test_a_token_cannot_be_made_from_an_id(tmp_path: Path) -> None:
    """Even someone holding the secret key needs the link's random nonce."""
    signer = URLSafeSerializer([NEW.value], salt="consent-gateway.shared-link")

    async def work(links: SharedLinks) -> list[SharedLink | None]:
        link, token = await _create(links)
        assert signer.dumps([link.id, link.nonce]) == token  # the forger's signer is the real one
        guesses = [[link.id, ""], [link.id, "0" * 22], [link.id], [link.id, link.nonce, 1], {"id": link.id}, link.id]
        return [await links.open(signer.dumps(guess), now=NOW) for guess in guesses]

    assert with_links(tmp_path, work) == [None] * 6


def test_other_signed_values_are_not_tokens(tmp_path: Path) -> None:
    """A session cookie or an unlock cookie, signed with the same keys, opens no link (different salts)."""

    async def work(links: SharedLinks) -> list[SharedLink | None]:
        link, _ = await _create(links, password=PASSWORD)
        _, session = SessionCodec(KEYS).start(link.id, NOW)
        return [await links.open(value, now=NOW) for value in (session, links.unlock_cookie(link, NOW))]

    assert with_links(tmp_path, work) == [None, None]


def test_tokens_follow_key_rotation(tmp_path: Path) -> None:
    async def create(links: SharedLinks) -> str:
        return (await _create(links))[1]

    signed_by_old = with_links(tmp_path, create, [OLD])
    signed_by_new = with_links(tmp_path, create, KEYS)
    assert with_links(tmp_path, lambda links: links.open(signed_by_old, now=NOW), KEYS) is not None
    assert with_links(tmp_path, lambda links: links.open(signed_by_new, now=NOW), [NEW]) is not None
    assert with_links(tmp_path, lambda links: links.open(signed_by_new, now=NOW), [OLD]) is None
    assert with_links(tmp_path, lambda links: links.open(signed_by_old, now=NOW), [NEW]) is None  # old key retired


def test_revoking_ends_every_token_of_the_link(tmp_path: Path) -> None:
    later = NOW + timedelta(minutes=5)

    async def work(links: SharedLinks) -> None:
        link, token = await _create(links)
        again = links.token_for(link)
        assert await links.open(again, now=NOW) == link
        assert await links.revoke("shop", link.id, now=later)
        assert await links.open(token, now=later) is None and await links.open(again, now=later) is None
        assert await links.revoke("shop", link.id, now=later + timedelta(days=1))  # twice: no error
        (listed,) = await links.list("shop")
        assert listed.revoked_at == later

    with_links(tmp_path, work)


def test_a_site_cannot_revoke_another_sites_link(tmp_path: Path) -> None:
    async def work(links: SharedLinks) -> None:
        link, token = await _create(links, "blog")
        assert not await links.revoke("shop", link.id, now=NOW)
        assert not await links.revoke("blog", link.id + 1, now=NOW)
        assert await links.open(token, now=NOW) == link
        assert await links.list("shop") == []

    with_links(tmp_path, work)


def test_a_token_never_opens_a_new_link_that_reuses_its_id(tmp_path: Path, store_kind: str) -> None:
    old, old_token = with_links(tmp_path, lambda links: _create(links, label="old"))
    delete_every_link(tmp_path)

    async def work(links: SharedLinks) -> tuple[SharedLink, str]:
        new, new_token = await _create(links, label="new")
        assert await links.open(old_token, now=NOW) is None
        assert await links.open(new_token, now=NOW) == new
        return new, new_token

    new, new_token = with_links(tmp_path, work)
    assert old_token != new_token
    # SQLite hands the deleted id out again; a PostgreSQL identity never does (the nonce guards both).
    assert (old.id == new.id) == (store_kind == "sqlite")


def test_a_link_ends_when_it_expires(tmp_path: Path) -> None:
    ends = NOW + timedelta(days=30)

    async def work(links: SharedLinks) -> list[bool]:
        link, token = await _create(links, expires_at=ends)
        assert link.expires_at == ends
        moments = (NOW, ends - timedelta(seconds=1), ends, ends + timedelta(days=1))
        return [await links.open(token, now=moment) is not None for moment in moments]

    assert with_links(tmp_path, work) == [True, True, False, False]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"expires_at": NOW}, "not in the future", id="an expiry that is now"),
        pytest.param({"expires_at": NOW - timedelta(days=1)}, "not in the future", id="an expiry in the past"),
        pytest.param({"password": "short"}, "at least 10 characters", id="a short password"),
        pytest.param({"label": "x" * 101}, "label", id="a long label"),
        pytest.param({"label": "two\nlines"}, "label", id="a label with a line break"),
    ],
)
def test_a_link_that_cannot_be_made(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(SharedLinkError, match=message):
        with_links(tmp_path, lambda links: _create(links, **options))
    assert with_links(tmp_path, lambda links: links.list("shop")) == []


def test_links_need_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(SharedLinkError, match="secret key"):
        with_links(tmp_path, lambda links: links.list("shop"), [])


def test_a_password_is_checked_and_stored_as_a_scrypt_hash(tmp_path: Path) -> None:
    async def work(links: SharedLinks) -> tuple[SharedLink, SharedLink, SharedLink | None]:
        locked, token = await _create(links, password=PASSWORD)
        plain, _ = await _create(links)
        return locked, plain, await links.open(token, now=NOW)

    locked, plain, opened = with_links(tmp_path, work)
    links = SharedLinks(Database(tmp_path / "unused.sqlite3"), KEYS)
    assert opened == locked and locked.has_password and str(locked.password_hash).startswith("scrypt$")
    assert links.password_ok(locked, PASSWORD)
    assert not links.password_ok(locked, PASSWORD.upper()) and not links.password_ok(locked, "")
    assert not links.password_ok(plain, PASSWORD)  # no password: nothing to check, the page never asks
    for file in tmp_path.glob("gw.sqlite3*"):
        assert PASSWORD.encode() not in file.read_bytes()


def test_an_unlock_cookie_opens_its_link_for_12_hours(tmp_path: Path) -> None:
    async def work(links: SharedLinks) -> tuple[SharedLink, SharedLink, SharedLink]:
        first, _ = await _create(links, password=PASSWORD)
        second, _ = await _create(links, password=PASSWORD)
        plain, _ = await _create(links)
        return first, second, plain

    first, second, plain = with_links(tmp_path, work)
    links = SharedLinks(Database(tmp_path / "unused.sqlite3"), KEYS)
    cookie = links.unlock_cookie(first, NOW)
    assert links.unlocked(first, cookie, NOW)
    assert links.unlocked(first, cookie, NOW + timedelta(hours=11, minutes=59))
    assert not links.unlocked(first, cookie, NOW + timedelta(hours=12))
    assert not links.unlocked(first, cookie, NOW - timedelta(hours=1))  # issued in the future: forged
    assert not links.unlocked(second, cookie, NOW)  # another link of the same site
    assert not links.unlocked(first, None, NOW) and not links.unlocked(first, "", NOW)
    # the first character, not the last: base64's last character can carry unused bits, and changing
    # only those leaves the signature's bytes (and its validity) as they were
    assert not links.unlocked(first, ("A" if cookie[0] != "A" else "B") + cookie[1:], NOW)
    assert not links.unlocked(first, links.token_for(first), NOW)  # the link's token is not an unlock cookie
    assert not SharedLinks(Database(tmp_path / "unused.sqlite3"), [Secret("another-key")]).unlocked(first, cookie, NOW)
    assert PASSWORD not in cookie and PASSWORD not in _payload(cookie)
    assert links.unlocked(plain, None, NOW)  # no password: nothing to unlock


def test_an_unlock_cookie_does_not_outlive_its_link_row(tmp_path: Path, store_kind: str) -> None:
    """A new link that reuses the id of a deleted one has another nonce, so the old cookie fails."""

    old, _ = with_links(tmp_path, lambda links: _create(links, password=PASSWORD))
    delete_every_link(tmp_path)
    new, _ = with_links(tmp_path, lambda links: _create(links, password=PASSWORD))
    links = SharedLinks(Database(tmp_path / "unused.sqlite3"), KEYS)
    assert old.id == new.id or store_kind == "postgresql"  # SQLite reuses the id; PostgreSQL never does
    assert not links.unlocked(new, links.unlock_cookie(old, NOW), NOW)
