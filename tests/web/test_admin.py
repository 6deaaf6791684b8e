"""``/admin/users`` on a real uvicorn: only the instance admin manages users, every change is CSRF-checked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from gateway.clock import FixedClock
from gateway.storage.users import get_user, list_users
from tests.web.test_dashboard_auth import PASSWORD, Dashboard, Start, on_database

pytestmark = pytest.mark.integration
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def dashboard(tmp_path: Path, clock: FixedClock, live_server: Start) -> Iterator[Dashboard]:
    dashboard = Dashboard(tmp_path, clock, live_server)
    dashboard.add_user("ann", admin=True)
    dashboard.add_user("vic", roles={"blog": "viewer"})
    yield dashboard


@pytest.fixture
def admin(dashboard: Dashboard) -> Iterator[httpx.Client]:
    with dashboard.client() as client:
        assert dashboard.login(client, "ann").status_code == 303
        yield client


def post(dashboard: Dashboard, client: httpx.Client, action: str, **form: str) -> httpx.Response:
    return client.post(f"/admin/users/{action}", data={"csrf": dashboard.csrf(client, "/admin/users"), **form})


def names(dashboard: Dashboard) -> list[str]:
    return [user.name for user in on_database(dashboard.settings, list_users)]


def test_the_admin_sees_every_user_with_their_roles(dashboard: Dashboard, admin: httpx.Client) -> None:
    page = admin.get("/admin/users")
    assert page.status_code == 200
    assert "ann" in page.text and "vic" in page.text and "viewer of Blog" in page.text and "every site" in page.text


def test_anyone_else_gets_a_403_page(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        dashboard.login(client, "vic")
        page = client.get("/admin/users")
        assert page.status_code == 403 and "Only the instance admin" in page.text
        assert page.headers["x-frame-options"] == "DENY"
        csrf = dashboard.csrf(client)
        added = client.post("/admin/users/add", data={"csrf": csrf, "name": "mallory", "password": NEW_PASSWORD})
        assert added.status_code == 403 and "mallory" not in names(dashboard)
        granted = client.post("/admin/users/role", data={"csrf": csrf, "name": "vic", "site": "shop", "role": "owner"})
        assert granted.status_code == 403
        vic = on_database(dashboard.settings, lambda db: get_user(db, "vic"))
        assert vic is not None and vic.roles == {"blog": "viewer"}


def test_signed_out_visitors_are_sent_to_the_login(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        response = client.get("/admin/users")
        assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Fadmin%2Fusers"


@pytest.mark.parametrize(
    ("action", "form"),
    [
        ("add", {"name": "mallory", "password": NEW_PASSWORD, "admin": "on"}),
        ("remove", {"name": "vic"}),
        ("password", {"name": "vic", "password": NEW_PASSWORD}),
        ("role", {"name": "vic", "site": "shop", "role": "owner"}),
        ("sessions/end", {"name": "vic", "session": "all"}),
    ],
)
@pytest.mark.parametrize("csrf", [None, "forged-token"], ids=["missing", "wrong"])
def test_every_admin_form_needs_the_csrf_token(
    dashboard: Dashboard, admin: httpx.Client, action: str, form: dict[str, str], csrf: str | None
) -> None:
    with dashboard.client() as vic:
        dashboard.login(vic, "vic")
        before = on_database(dashboard.settings, list_users)
        response = admin.post(f"/admin/users/{action}", data=form if csrf is None else {"csrf": csrf, **form})
        assert response.status_code == 403 and "CSRF check failed" in response.text
        assert on_database(dashboard.settings, list_users) == before
        assert vic.get("/dashboard").status_code == 200  # still signed in


def test_the_admin_adds_a_user_who_can_then_log_in(dashboard: Dashboard, admin: httpx.Client) -> None:
    response = post(dashboard, admin, "add", name="bea", password=NEW_PASSWORD, admin="on")
    assert response.status_code == 303
    page = admin.get(response.headers["location"])
    assert "Added bea." in page.text
    bea = on_database(dashboard.settings, lambda db: get_user(db, "bea"))
    assert bea is not None and bea.is_admin
    with dashboard.client() as client:
        assert dashboard.login(client, "bea", NEW_PASSWORD).status_code == 303


@pytest.mark.parametrize(
    ("name", "password", "why"),
    [
        ("bad name!", NEW_PASSWORD, "A user name is 1 to 64"),
        ("<script>", NEW_PASSWORD, "A user name is 1 to 64"),
        ("bea", "short", "at least 10 characters"),
        ("vic", NEW_PASSWORD, "exists already"),
    ],
    ids=["space", "markup", "short-password", "duplicate"],
)
def test_a_user_that_cannot_be_added_is_explained(
    dashboard: Dashboard, admin: httpx.Client, name: str, password: str, why: str
) -> None:
    response = post(dashboard, admin, "add", name=name, password=password)
    assert response.status_code == 400 and why in response.text
    assert sorted(names(dashboard)) == ["ann", "vic"]


def test_a_new_password_ends_the_users_sessions(dashboard: Dashboard, admin: httpx.Client) -> None:
    with dashboard.client() as vic:
        dashboard.login(vic, "vic")
        dashboard.clock.advance(60)
        assert post(dashboard, admin, "password", name="vic", password=NEW_PASSWORD).status_code == 303
        assert vic.get("/dashboard").status_code == 303
        assert dashboard.login(vic, "vic", PASSWORD).status_code == 401
        assert dashboard.login(vic, "vic", NEW_PASSWORD).status_code == 303


def test_the_admin_changing_their_own_password_stays_signed_in(dashboard: Dashboard, admin: httpx.Client) -> None:
    dashboard.clock.advance(60)
    assert post(dashboard, admin, "password", name="ann", password=NEW_PASSWORD).status_code == 303
    assert admin.get("/admin/users").status_code == 200


def test_roles_are_granted_and_revoked_on_configured_sites(dashboard: Dashboard, admin: httpx.Client) -> None:
    with dashboard.client() as vic:
        dashboard.login(vic, "vic")
        assert post(dashboard, admin, "role", name="vic", site="shop", role="owner").status_code == 303
        assert vic.get("/dashboard").status_code == 303  # a role change ends the user's sessions at once
        assert dashboard.login(vic, "vic").status_code == 303
        assert 'href="/dashboard/shop"' in vic.get("/dashboard").text
        assert post(dashboard, admin, "role", name="vic", site="blog", role="none").status_code == 303
        assert dashboard.login(vic, "vic").status_code == 303
        page = vic.get("/dashboard").text
        assert 'href="/dashboard/shop"' in page and "/dashboard/blog" not in page
    unknown_site = post(dashboard, admin, "role", name="vic", site="elsewhere", role="owner")
    assert unknown_site.status_code == 400 and "configured sites" in unknown_site.text
    unknown_role = post(dashboard, admin, "role", name="vic", site="shop", role="god")
    assert unknown_role.status_code == 400
    vic_now = on_database(dashboard.settings, lambda db: get_user(db, "vic"))
    assert vic_now is not None and vic_now.roles == {"shop": "owner"}


def test_a_removed_user_is_signed_out_and_the_admin_cannot_remove_themselves(
    dashboard: Dashboard, admin: httpx.Client
) -> None:
    with dashboard.client() as vic:
        dashboard.login(vic, "vic")
        assert post(dashboard, admin, "remove", name="vic").status_code == 303
        assert vic.get("/dashboard").status_code == 303
    refused = post(dashboard, admin, "remove", name="ann")
    assert refused.status_code == 400 and "your own account" in refused.text
    missing = post(dashboard, admin, "remove", name="nobody")
    assert missing.status_code == 400 and "no user named" in missing.text
    assert names(dashboard) == ["ann"]


def test_hostile_user_names_are_escaped(dashboard: Dashboard, admin: httpx.Client) -> None:
    dashboard.add_user("<script>alert(1)</script>", roles={"shop": "viewer"})
    dashboard.add_user('"><img src=x onerror=alert(2)>')
    page = admin.get("/admin/users")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>alert(1)" not in page.text
    assert "<img src=x" not in page.text and "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in page.text


def sessions_section(page: str, name: str) -> str:
    found = re.search(rf"<caption>Sessions of {name} \(UTC\)</caption>(.*?)</table>", page, re.S)
    assert found, f"no sessions of {name} on the page"
    return found.group(1)


def test_the_admin_sees_each_session_with_its_network_and_ends_one_or_all(
    dashboard: Dashboard, admin: httpx.Client
) -> None:
    with (
        dashboard.client(**{"x-forwarded-for": "203.0.113.77"}) as laptop,
        dashboard.client(**{"x-forwarded-for": "2001:db8:1234:5678::9"}) as phone,
    ):
        dashboard.login(laptop, "vic")
        dashboard.clock.advance(timedelta(minutes=5, seconds=30))
        dashboard.login(phone, "vic")
        page = admin.get("/admin/users").text
        listed = sessions_section(page, "vic")
        assert "203.0.113.0/24" in listed and "2001:db8:1234::/48" in listed
        assert "203.0.113.77" not in page and "5678" not in page  # networks, never addresses
        assert "2026-03-10 09:30" in listed and "2026-03-10 09:35" in listed  # to the minute
        assert "2 signed in" in page
        ids = re.findall(r'name="session" value="(\d+)"', listed)
        assert len(ids) == 2
        phone_id = ids[0]  # newest activity first
        ended = post(dashboard, admin, "sessions/end", name="vic", session=phone_id)
        assert (
            ended.status_code == 303
            and "Ended the chosen sessions of vic." in admin.get(ended.headers["location"]).text
        )
        assert phone.get("/dashboard").status_code == 303 and laptop.get("/dashboard").status_code == 200
        assert post(dashboard, admin, "sessions/end", name="vic", session="all").status_code == 303
        assert laptop.get("/dashboard").status_code == 303
        after = admin.get("/admin/users").text
        assert "Sessions of vic" not in after and "this one" in sessions_section(after, "ann")  # the admin's own


def test_a_session_of_another_user_cannot_be_ended_by_naming_the_wrong_user(
    dashboard: Dashboard, admin: httpx.Client
) -> None:
    with dashboard.client() as vic:
        dashboard.login(vic, "vic")
        listed = sessions_section(admin.get("/admin/users").text, "vic")
        vic_session = re.findall(r'name="session" value="(\d+)"', listed)[0]
        refused = post(dashboard, admin, "sessions/end", name="ann", session=vic_session)
        assert refused.status_code == 400 and "no such session" in refused.text
        assert vic.get("/dashboard").status_code == 200


def test_the_admin_changing_their_own_role_stays_signed_in(dashboard: Dashboard, admin: httpx.Client) -> None:
    assert post(dashboard, admin, "role", name="ann", site="shop", role="viewer").status_code == 303
    assert admin.get("/admin/users").status_code == 200
