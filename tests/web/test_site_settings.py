"""The site settings page on a real uvicorn: the owner creates and revokes API keys and shared links
through the forms; viewers get 403, strangers 404; CSRF, bad input and hostile names.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.accounts.api_keys import ApiKey, verify_api_key
from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.settings import SettingsError, load_settings
from gateway.storage.store import Store
from tests.conftest import make_settings
from tests.web.test_dashboard import SiteDashboard, text_of
from tests.web.test_dashboard_auth import field, on_database

pytestmark = pytest.mark.integration
SETTINGS = "/dashboard/shop/settings"
KEY = re.compile(r"cg_[A-Za-z0-9_-]{43}")
HOSTILE = "<script>alert(1)</script>"
CONFIGURATION = (
    "https://shop.example.com",
    "UTC",
    "k = 2",
    "Signup (Event signup)",
    "Pricing (Visit /pricing*)",
    "Sign up: Pricing → Signup",
    "set in the config file",
    "No API key yet",
    "No shared link yet",
)


@pytest.fixture
def owner(tmp_path: Path, clock: FixedClock, live_server: Any) -> Iterator[tuple[SiteDashboard, httpx.Client]]:
    dashboard = SiteDashboard(tmp_path, clock, live_server)
    dashboard.add_user("olga", roles={"shop": "owner"})
    dashboard.add_user("vic", roles={"shop": "viewer"})
    with dashboard.client() as client:
        assert dashboard.login(client, "olga").status_code == 303
        yield dashboard, client


def post(client: httpx.Client, path: str, **data: str) -> httpx.Response:
    """A form of the settings page, with the CSRF token of the page as the browser would send it."""
    csrf = field(client.get(SETTINGS).text, "csrf")
    return client.post(f"{SETTINGS}{path}", data={"csrf": csrf, **data})


def verify(dashboard: SiteDashboard, key: str) -> ApiKey | None:
    async def work(db: Store) -> ApiKey | None:
        return await verify_api_key(db, key, now=dashboard.clock.now())

    return on_database(dashboard.settings, work)


def test_the_owner_sees_the_configuration_the_snippet_and_the_tabs(owner: tuple[SiteDashboard, httpx.Client]) -> None:
    dashboard, client = owner
    page = client.get(SETTINGS)
    assert page.status_code == 200, page.text
    words = text_of(html.unescape(page.text))
    for expected in CONFIGURATION:
        assert expected in words, expected
    snippet = re.search(r'<textarea id="snippet"[^>]*>([^<]*)</textarea>', page.text)
    assert snippet, "the snippet is on the page"
    comment, tag = html.unescape(snippet.group(1)).split("\n")
    # no public_url: a path, with a comment that says to put the gateway's address in front
    assert comment.startswith("<!-- put the gateway's address") and "/c." in comment
    assert tag.startswith('<script src="/c.') and 'data-site="shop"' in tag
    assert 'integrity="sha384-' in tag
    assert re.search(r'href="/dashboard/shop/settings" aria-current="page">Settings', page.text)
    assert page.headers["x-frame-options"] == "DENY" and "nonce-" in page.headers["content-security-policy"]
    assert "style=" not in page.text
    overview = client.get("/dashboard/shop")
    assert 'href="/dashboard/shop/settings"' in overview.text  # the owner's tab leads here


def test_a_key_is_shown_once_works_and_can_be_revoked(owner: tuple[SiteDashboard, httpx.Client]) -> None:
    dashboard, client = owner
    created = post(client, "/keys", name="weekly report")
    assert created.status_code == 200 and "location" not in created.headers
    key = KEY.search(created.text)
    assert key, "the new key is on the page"
    assert "shown this once" in created.text and "Copy" in created.text
    record = verify(dashboard, key.group(0))
    assert record is not None and record.site_id == "shop" and record.name == "weekly report"

    again = client.get(SETTINGS)
    assert key.group(0) not in again.text and KEY.search(again.text) is None  # once only
    assert "weekly report" in again.text and f"{key.group(0)[:8]}…" in again.text
    assert "2026-03-10 09:30" in again.text  # created (and used once, by verify) at the test's clock

    revoked = post(client, "/keys/revoke", id=str(record.id))
    assert revoked.status_code == 303 and revoked.headers["location"] == f"{SETTINGS}?done=key-revoked"
    page = client.get(revoked.headers["location"])
    assert "The API key is revoked" in page.text and "revoked 2026-03-10 09:30" in text_of(page.text)
    assert verify(dashboard, key.group(0)) is None


@pytest.mark.parametrize(("name", "kept"), [("   ", ""), ("x" * 101, "x" * 101)], ids=["empty", "too-long"])
def test_a_bad_key_name_is_a_readable_400_that_keeps_the_name(
    owner: tuple[SiteDashboard, httpx.Client], name: str, kept: str
) -> None:
    _, client = owner
    response = post(client, "/keys", name=name)
    assert response.status_code == 400 and "A key needs a name of 1 to 100" in response.text
    assert KEY.search(response.text) is None
    if kept:
        assert field(response.text, "name") == kept


def test_an_unknown_key_cannot_be_revoked(owner: tuple[SiteDashboard, httpx.Client]) -> None:
    _, client = owner
    for key_id in ("999", "abc", ""):
        response = post(client, "/keys/revoke", id=key_id)
        assert response.status_code == 400 and "no such API key" in response.text


def test_a_link_is_created_listed_opened_and_revoked(owner: tuple[SiteDashboard, httpx.Client]) -> None:
    dashboard, client = owner
    created = post(client, "/links", label="for the board", expires="7d", password="")
    assert created.status_code == 303
    assert re.fullmatch(rf"{SETTINGS}\?done=link-created&link=\d+", created.headers["location"])
    page = client.get(created.headers["location"])
    urls = set(re.findall(r'value="(/share/[^"]+)"', page.text))
    assert len(urls) == 1, "the new link, above and in the list, as a path (no public_url)"
    (url,) = urls
    words = text_of(page.text)
    assert "The shared link is ready" in words and "for the board" in words
    assert "set public_url" in words  # how to complete the path
    assert "2026-03-17 09:30" in words  # expires in 7 days
    with dashboard.client() as anyone:
        assert anyone.get(url).status_code == 200

    link_id = field(page.text.split("links/revoke", 1)[1], "id")
    revoked = post(client, "/links/revoke", id=link_id)
    assert revoked.status_code == 303 and revoked.headers["location"] == f"{SETTINGS}?done=link-revoked"
    page = client.get(revoked.headers["location"])
    assert "The shared link is revoked" in page.text and url not in page.text
    assert "revoked 2026-03-10 09:30" in text_of(page.text)
    with dashboard.client() as anyone:
        assert anyone.get(url).status_code == 404


def test_a_link_with_a_password_says_so(owner: tuple[SiteDashboard, httpx.Client]) -> None:
    _, client = owner
    created = post(client, "/links", label="", expires="never", password="a long passphrase")
    page = client.get(created.headers["location"])
    row = page.text.split('id="links-heading"', 1)[1].split("<tbody>", 1)[1]
    assert "(no label)" in row and "never" in row and "<td>yes</td>" in row
    assert "a long passphrase" not in page.text


@pytest.mark.parametrize(
    ("label", "expires", "password", "message"),
    [
        ("y" * 101, "30d", "", "a label is at most 100"),
        ("board", "90d", "short", "at least 10 characters"),
        ("board", "forever", "", "Pick an expiry"),
    ],
    ids=["label-too-long", "weak-password", "unknown-expiry"],
)
def test_bad_link_input_is_a_readable_400_that_keeps_what_was_typed_but_the_password(
    owner: tuple[SiteDashboard, httpx.Client], label: str, expires: str, password: str, message: str
) -> None:
    _, client = owner
    response = post(client, "/links", label=label, expires=expires, password=password)
    assert response.status_code == 400 and message in response.text, response.text
    assert field(response.text, "label") == label
    if expires in ("30d", "90d"):
        assert f'<option value="{expires}" selected>' in response.text
    assert 'name="password" type="password" minlength="10" maxlength="1024" autocomplete="new-password">' in (
        response.text
    )  # empty again
    assert "/share/" not in response.text


def test_hostile_names_and_labels_render_as_text(owner: tuple[SiteDashboard, httpx.Client]) -> None:
    _, client = owner
    post(client, "/keys", name=HOSTILE)
    post(client, "/links", label=HOSTILE, expires="never", password="")
    page = client.get(SETTINGS)
    assert HOSTILE not in page.text
    assert page.text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2


def test_a_viewer_gets_403_and_a_stranger_404(owner: tuple[SiteDashboard, httpx.Client]) -> None:
    dashboard, client = owner
    assert client.get("/dashboard/blog/settings").status_code == 404  # no role on blog
    assert client.get("/dashboard/nope/settings").status_code == 404
    with dashboard.client() as viewer:
        assert dashboard.login(viewer, "vic").status_code == 303
        page = viewer.get(SETTINGS)
        assert page.status_code == 403 and "Only an owner" in page.text
        assert 'href="/dashboard/shop/settings"' not in viewer.get("/dashboard/shop").text  # no tab either
        csrf = field(viewer.get("/dashboard").text, "csrf")
        for path, data in (("/keys", {"name": "mine"}), ("/links", {"label": "mine", "expires": "never"})):
            assert viewer.post(f"{SETTINGS}{path}", data={"csrf": csrf, **data}).status_code == 403
    assert "mine" not in client.get(SETTINGS).text
    with dashboard.client() as anonymous:
        response = anonymous.get(SETTINGS)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


def test_a_form_without_the_csrf_token_changes_nothing(owner: tuple[SiteDashboard, httpx.Client]) -> None:
    _, client = owner
    for path, data in (("/keys", {"name": "forged"}), ("/links", {"label": "forged", "expires": "never"})):
        response = client.post(f"{SETTINGS}{path}", data=data)
        assert response.status_code == 403 and "CSRF" in response.text
        assert client.post(f"{SETTINGS}{path}", data={**data, "csrf": "wrong"}).status_code == 403
    page = client.get(SETTINGS)
    assert "forged" not in page.text and KEY.search(page.text) is None


# The gateway's address comes from public_url, never from the Host header.

PUBLIC_URL = "https://stats.example.com"
FORGED_HOST = "evil.example"


class PublicSiteDashboard(SiteDashboard):
    """``SiteDashboard`` with ``public_url`` set (or explicitly unset)."""

    def __init__(self, tmp_path: Path, clock: FixedClock, start: Any, public_url: str | None) -> None:
        super().__init__(tmp_path, clock, lambda app: None)  # built, never started
        self.settings = replace(self.settings, public_url=public_url)
        self.server = start(create_app(self.settings, clock=clock))


@pytest.fixture(params=[PUBLIC_URL, None], ids=["public_url", "no public_url"])
def any_owner(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock, live_server: Any
) -> Iterator[tuple[SiteDashboard, httpx.Client]]:
    dashboard = PublicSiteDashboard(tmp_path, clock, live_server, request.param)
    dashboard.add_user("olga", roles={"shop": "owner"})
    with dashboard.client() as client:
        assert dashboard.login(client, "olga").status_code == 303
        yield dashboard, client


@pytest.mark.parametrize("any_owner", [PUBLIC_URL], indirect=True)
def test_links_and_the_snippet_start_with_public_url(any_owner: tuple[SiteDashboard, httpx.Client]) -> None:
    dashboard, client = any_owner
    snippet = re.search(r'<textarea id="snippet"[^>]*>([^<]*)</textarea>', client.get(SETTINGS).text)
    assert snippet and html.unescape(snippet.group(1)).startswith(f'<script src="{PUBLIC_URL}/c.')
    page = client.get(post(client, "/links", label="board", expires="never", password="").headers["location"])
    (url,) = set(re.findall(rf'value="({re.escape(PUBLIC_URL)}/share/[^"]+)"', page.text))
    assert "set public_url" not in page.text
    with dashboard.client() as anyone:  # the proxy at PUBLIC_URL hands the path to the gateway
        assert anyone.get(url.removeprefix(PUBLIC_URL)).status_code == 200


def test_a_forged_host_header_never_reaches_a_link_or_the_snippet(
    any_owner: tuple[SiteDashboard, httpx.Client],
) -> None:
    """``Host: evil.example`` on every request of the owner's session: nothing answered names evil.example."""
    _, client = any_owner
    client.headers["host"] = FORGED_HOST
    answers = [client.get(SETTINGS)]
    csrf = field(answers[0].text, "csrf")
    answers.append(client.post(f"{SETTINGS}/links", data={"csrf": csrf, "label": "x", "expires": "7d"}))
    assert answers[-1].status_code == 303, answers[-1].text
    answers.append(client.get(answers[-1].headers["location"]))
    answers.append(client.post(f"{SETTINGS}/keys", data={"csrf": csrf, "name": "report"}))
    answers.append(client.post(f"{SETTINGS}/links", data={"csrf": csrf, "label": "y", "expires": "forever"}))
    assert [answer.status_code for answer in answers] == [200, 303, 200, 200, 400]
    assert len(re.findall(r'value="[^"]*/share/[^"]+"', answers[2].text)) == 2  # the new link, above and listed
    for answer in answers:
        assert FORGED_HOST not in answer.text
        assert all(FORGED_HOST not in value for value in answer.headers.values())


@pytest.mark.parametrize(
    ("value", "read"),
    [
        ("https://Stats.Example.com/", "https://stats.example.com"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://example.com/stats/", "https://example.com/stats"),
        ("", None),
    ],
)
def test_public_url_is_read_as_an_address(tmp_path: Path, value: str, read: str | None) -> None:
    assert make_settings(tmp_path, public_url=value).public_url == read


@pytest.mark.parametrize(
    "value",
    [
        "stats.example.com",
        "ftp://stats.example.com",
        "https://",
        "https://stats.example.com/?x=1",
        "https://stats.example.com/#top",
        "https://user@stats.example.com",
        "https://stats.example.com:70000",
        'https://stats.example.com/"><script>',
        "https://stats.example.com/a b",
        "javascript:alert(1)",
    ],
)
def test_public_url_refuses_what_is_not_an_address(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="public_url: expected the gateway's address"):
        make_settings(tmp_path, public_url=value)


def test_public_url_comes_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('secret_keys = ["k"]\n', encoding="utf-8")
    environ = {"CONSENT_GATEWAY_PUBLIC_URL": "https://stats.example.com"}
    assert load_settings(config, environ=environ).public_url == "https://stats.example.com"


def test_the_demo_names_its_own_address(tmp_path: Path) -> None:
    from gateway.demo import demo_settings

    settings = demo_settings(tmp_path, gateway_url="http://127.0.0.1:8000", site_url="http://127.0.0.1:8001")
    assert settings.public_url == "http://127.0.0.1:8000"
