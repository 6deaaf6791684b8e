"""Forwarding end to end: an event accepted by /api/event reaches a webhook, signed, without an IP."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.ingest.forward import verify_signature
from gateway.ingest.geo import MaxMindGeo, NullGeo
from gateway.ingest.serverside import PageviewMiddleware
from tests.conftest import LiveServer, make_settings
from tests.stores import query
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
SECRET = "a-webhook-secret-of-some-length"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 MARKER42"


def test_an_accepted_event_is_forwarded_signed_and_anonymous(
    tmp_path: Path, live_server: Callable[[Any], LiveServer]
) -> None:
    received: list[tuple[bytes, str]] = []

    async def webhook(request: Request) -> Response:
        received.append((await request.body(), request.headers.get("x-consent-gateway-signature", "")))
        return Response(status_code=204)

    receiver = live_server(Starlette(routes=[Route("/hook", webhook, methods=["POST"])]))
    forward = [{"name": "warehouse", "url": f"{receiver.url}/hook", "secret": SECRET}]
    settings = make_settings(tmp_path, forward=forward)
    gateway = live_server(create_app(settings, geo=NullGeo()))
    with httpx.Client() as client:
        answer = client.post(
            f"{gateway.url}/api/event",
            json={"s": "shop", "n": "Signup", "u": "https://shop.example.com/join", "p": {"plan": "pro"}},
            headers={"user-agent": UA},
        )
    assert answer.status_code == 202
    wait_until(lambda: received, message="the webhook never received the event")
    [(body, signature)] = received
    assert verify_signature(SECRET, body, signature)
    [event] = json.loads(body)["events"]
    assert (event["name"], event["pathname"], event["props"]) == ("Signup", "/join", {"plan": "pro"})
    assert b"127.0.0.1" not in body and b"MARKER42" not in body


def test_a_server_side_pageview_is_forwarded_like_an_api_event(
    tmp_path: Path, live_server: Callable[[Any], LiveServer]
) -> None:
    """PageviewMiddleware writes through the same writer as /api/event, outbox rows included."""
    received: list[tuple[bytes, str]] = []

    async def webhook(request: Request) -> Response:
        received.append((await request.body(), request.headers.get("x-consent-gateway-signature", "")))
        return Response(status_code=204)

    async def page(request: Request) -> Response:
        return HTMLResponse("<h1>pricing</h1>")

    receiver = live_server(Starlette(routes=[Route("/hook", webhook, methods=["POST"])]))
    forward = [{"name": "warehouse", "url": f"{receiver.url}/hook", "secret": SECRET}]
    settings = make_settings(tmp_path, forward=forward)
    pageviews = [Middleware(PageviewMiddleware, settings=settings, site="shop", geo=NullGeo())]
    site = live_server(Starlette(routes=[Route("/pricing", page)], middleware=pageviews))
    with httpx.Client() as client:
        headers = {"user-agent": UA, "host": "shop.example.com"}  # the visitor's own address is 127.0.0.1
        assert client.get(f"{site.url}/pricing?ref=mail", headers=headers).status_code == 200
    wait_until(lambda: received, message="the webhook never received the server-side pageview")
    [(body, signature)] = received
    assert verify_signature(SECRET, body, signature)
    [event] = json.loads(body)["events"]
    assert (event["name"], event["hostname"], event["pathname"]) == ("pageview", "shop.example.com", "/pricing")
    assert "visitor_id" not in event  # the forwarder did not ask for one
    assert b"127.0.0.1" not in body and b"MARKER42" not in body


VISITOR_IP = "81.2.69.142"  # arrives as X-Forwarded-For from 127.0.0.1, which uvicorn trusts as a proxy
AT = datetime(2026, 3, 10, 9, 30, 17, 123456, tzinfo=UTC)


@pytest.fixture
def city_geo(tmp_path: Path) -> MaxMindGeo:
    """A real .mmdb that places the visitor's network in London, England."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="Test-City", languages=["en"])
    place = {
        "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
        "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
        "city": {"names": {"en": "London"}},
    }
    writer.insert_network(IPSet(["81.2.69.0/24"]), place)
    writer.to_db_file(str(tmp_path / "city.mmdb"))
    return MaxMindGeo.open(tmp_path / "city.mmdb")


def test_a_forwarder_gets_no_visitor_id_minute_time_and_country_unless_it_asks_and_ids_never_join(
    tmp_path: Path, live_server: Callable[[Any], LiveServer], city_geo: MaxMindGeo
) -> None:
    """The attacker runs a receiver (or two) and tries to single out, place or join visitors."""
    received: dict[str, list[dict[str, Any]]] = {}

    async def webhook(request: Request) -> Response:
        received.setdefault(request.path_params["name"], []).extend(json.loads(await request.body())["events"])
        return Response(status_code=204)

    receiver = live_server(Starlette(routes=[Route("/hook/{name}", webhook, methods=["POST"])]))
    forward = [
        {"name": "plain", "url": f"{receiver.url}/hook/plain", "secret": SECRET},
        {
            "name": "wide",
            "url": f"{receiver.url}/hook/wide",
            "secret": SECRET,  # the same secret on purpose: the name still keeps the ids apart
            "visitor_id": True,
            "time": "second",
            "geo": "city",
        },
        {"name": "other", "url": f"{receiver.url}/hook/other", "secret": SECRET, "visitor_id": True, "geo": "region"},
    ]
    settings = make_settings(tmp_path, forward=forward)
    gateway = live_server(create_app(settings, geo=city_geo, clock=FixedClock(AT)))
    with httpx.Client() as client:
        for path in ("/a", "/b"):  # one visitor, two pages
            answer = client.post(
                f"{gateway.url}/api/event",
                json={"s": "shop", "n": "pageview", "u": f"https://shop.example.com{path}"},
                headers={"user-agent": UA, "x-forwarded-for": VISITOR_IP},
            )
            assert answer.status_code == 202
    wait_until(lambda: sum(len(events) for events in received.values()) >= 6, message=lambda: f"received {received}")
    [(stored_id,)] = set(query(settings.database, "SELECT visitor_id FROM events"))

    plain, wide, other = received["plain"], received["wide"], received["other"]
    assert len(plain) == len(wide) == len(other) == 2
    for event in plain:
        assert event["ts"] == "2026-03-10T09:30:00+00:00"
        assert event["country"] == "GB"
        assert not {"visitor_id", "region", "city"} & set(event)
    assert {event["ts"] for event in wide} == {"2026-03-10T09:30:17+00:00"}  # never the microseconds
    assert {(event["region"], event["city"]) for event in wide} == {("England", "London")}
    assert {event["region"] for event in other} == {"England"} and "city" not in other[0]
    [wide_id] = {event["visitor_id"] for event in wide}  # one visitor, one id: visitors can be counted
    [other_id] = {event["visitor_id"] for event in other}
    assert len({wide_id, other_id, stored_id}) == 3  # no receiver gets our id, and two receivers cannot join
    body = json.dumps(received)
    assert VISITOR_IP not in body and "81.2.69" not in body and "MARKER42" not in body
