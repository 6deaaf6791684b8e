"""End to end on real uvicorn servers: a gateway, and a site that mounts ConsentMiddleware.

The site sets one cookie of each category on every response; the visitor decides through
the gateway's ``POST /consent`` and presents the token as the ``cg_consent`` cookie, as the
snippet does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway import ConsentMiddleware, create_app
from gateway.clock import FixedClock
from gateway.cookies.setcookie import parse_set_cookie
from gateway.settings import Settings
from tests.conftest import LiveServer, make_settings, site_config

pytestmark = pytest.mark.integration

SITE_COOKIES = {
    "PHPSESSID": "session",  # essential
    "is_returning": 5 * 365 * 86400,  # functional, declared 5 years
    "_ga": 2 * 365 * 86400,  # analytics, declared 2 years
    "_fbp": 90 * 86400,  # advertising, declared 90 days
    "mystery_cookie": 10 * 365 * 86400,  # unknown
}
THIRTEEN_MONTHS = 34186698


def sample_site(settings: Settings, clock: FixedClock) -> Starlette:
    async def page(request: Request) -> JSONResponse:
        decision = request.scope["gateway.consent"]
        response = JSONResponse({"analytics": decision.allows("analytics"), "reason": decision.reason})
        for name, age in SITE_COOKIES.items():
            response.set_cookie(name, "v", max_age=None if age == "session" else int(age))
        return response

    return Starlette(
        routes=[Route("/", page)],
        middleware=[Middleware(ConsentMiddleware, settings=settings, site="shop", clock=clock)],
    )


class World:
    def __init__(self, settings: Settings, clock: FixedClock, start: Callable[[Any], LiveServer]) -> None:
        self.clock = clock
        self.gateway = start(create_app(settings, clock=clock))
        self.site = start(sample_site(settings, clock))
        self.http = httpx.Client(timeout=10)

    def decide(self, choices: dict[str, bool], **extra: Any) -> str:
        response = self.http.post(
            f"{self.gateway.url}/consent",
            json={"site": "shop", "revision": 1, "choices": choices, **extra.pop("body", {})},
            headers={"origin": "https://shop.example.com", **extra.pop("headers", {})},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def visit(self, token: str | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
        cookies = f"cg_consent={token}; _ga=old; _fbp=old; is_returning=1" if token else "_ga=old; _fbp=old"
        response = self.http.get(f"{self.site.url}/", headers={"cookie": cookies, **(headers or {})})
        kept: dict[str, int | None] = {}
        deleted: set[str] = set()
        for value in response.headers.get_list("set-cookie"):
            cookie = parse_set_cookie(value)
            assert cookie is not None
            if cookie.max_age == 0:
                deleted.add(cookie.name)
            else:
                kept[cookie.name] = cookie.max_age
        return {"kept": kept, "deleted": deleted, "body": response.json(), "status": response.status_code}


@pytest.fixture
def world(tmp_path: Path, clock: FixedClock, live_server: Callable[[Any], LiveServer]) -> Iterator[World]:
    world = World(make_settings(tmp_path), clock, live_server)
    yield world
    world.http.close()


ALL = {"functional": True, "analytics": True, "advertising": True}
NONE = {"functional": False, "analytics": False, "advertising": False}


def test_no_consent_lets_only_essential_cookies_through_and_deletes_the_rest(world: World) -> None:
    seen = world.visit()
    assert seen["kept"] == {"PHPSESSID": None}
    assert seen["deleted"] == {"_ga", "_fbp"}
    assert seen["body"] == {"analytics": False, "reason": "missing"}


def test_accept_all_keeps_every_known_cookie_with_capped_lifetimes(world: World) -> None:
    seen = world.visit(world.decide(ALL))
    assert seen["kept"] == {
        "PHPSESSID": None,
        "is_returning": 5 * 365 * 86400,  # under its declared 5 years: kept as asked
        "_ga": THIRTEEN_MONTHS,  # 2 years asked, capped to the 13-month analytics cap
        "_fbp": 90 * 86400,
    }
    assert seen["deleted"] == {"mystery_cookie"} - {"mystery_cookie"}  # unknown is dropped, not deleted
    assert "mystery_cookie" not in seen["kept"]


def test_reject_all_keeps_only_essential_and_expires_stale_cookies(world: World) -> None:
    seen = world.visit(world.decide(NONE))
    assert seen["kept"] == {"PHPSESSID": None}
    assert seen["deleted"] == {"_ga", "_fbp", "is_returning"}


def test_custom_choices_keep_exactly_the_chosen_categories(world: World) -> None:
    seen = world.visit(world.decide({"functional": True, "analytics": False, "advertising": True}))
    assert set(seen["kept"]) == {"PHPSESSID", "is_returning", "_fbp"}
    assert seen["deleted"] == {"_ga"}


def test_gpc_overrides_an_earlier_acceptance_for_analytics_and_advertising(world: World) -> None:
    token = world.decide(ALL)
    seen = world.visit(token, headers={"sec-gpc": "1"})
    assert set(seen["kept"]) == {"PHPSESSID", "is_returning"}
    assert seen["deleted"] == {"_ga", "_fbp"}
    opted_in_with_gpc = world.decide(ALL, headers={"sec-gpc": "1"})
    assert set(world.visit(opted_in_with_gpc, headers={"sec-gpc": "1"})["kept"]) == {
        "PHPSESSID",
        "is_returning",
        "_ga",
        "_fbp",
    }


def test_a_tampered_token_is_no_consent_not_an_error(world: World) -> None:
    token = world.decide(ALL)
    payload, stamp, signature = token.split(".")
    seen = world.visit(f"{payload}.{stamp}.{signature[::-1]}")
    assert seen["status"] == 200
    assert seen["kept"] == {"PHPSESSID": None}
    assert seen["body"]["reason"] == "tampered"


def test_an_expired_token_asks_again(world: World) -> None:
    token = world.decide(ALL)
    world.clock.advance(timedelta(days=184))  # the default consent lifetime is 6 months
    seen = world.visit(token)
    assert seen["kept"] == {"PHPSESSID": None}
    assert seen["body"]["reason"] == "expired"


def test_a_revision_bump_asks_again(
    tmp_path: Path, clock: FixedClock, live_server: Callable[[Any], LiveServer]
) -> None:
    world = World(make_settings(tmp_path), clock, live_server)
    token = world.decide(ALL)
    bumped = make_settings(tmp_path, site=site_config(policy_revision=2))
    site = live_server(sample_site(bumped, clock))
    with httpx.Client() as http:
        response = http.get(f"{site.url}/", headers={"cookie": f"cg_consent={token}"})
    world.http.close()
    assert response.json()["reason"] == "revision"
    assert [parse_set_cookie(v).name for v in response.headers.get_list("set-cookie")] == ["PHPSESSID"]  # type: ignore[union-attr]


def test_withdrawal_deletes_what_was_allowed(world: World) -> None:
    token = world.decide(ALL)
    assert "_ga" in world.visit(token)["kept"]
    response = world.http.post(
        f"{world.gateway.url}/consent/withdraw",
        json={"site": "shop", "token": token},
        headers={"origin": "https://shop.example.com"},
    )
    assert response.status_code == 200
    withdrawn = response.json()["token"]
    seen = world.visit(withdrawn)
    assert seen["kept"] == {"PHPSESSID": None}
    assert seen["deleted"] == {"_ga", "_fbp", "is_returning"}
