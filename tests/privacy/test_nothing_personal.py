"""Issue 10, section 3, played by the attacker: personal data put into an event never lands anywhere.

A site (or someone crafting requests) puts emails, a phone number and a reset token into
``?ref=``, the UTM tags, the path, the referrer's query, the event name and the props, for more
visitors than the privacy floor. Afterwards what the store holds (the raw bytes of the SQLite files, or
every row of the PostgreSQL database) and every body a forwarder received are searched: the test fails if
any of those values is found.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.ingest.geo import NullGeo
from tests.conftest import LiveServer, make_settings
from tests.privacy.stored import stored_bytes
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
SECRET = "a-webhook-secret-of-some-length"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
EMAIL, PHONE, TOKEN = "alice.victim@inbox.test", "+14155552671", "5f2b8c9e1a3d4e6f7a8b9c0d1e2f3a4b"
PERSONAL = ("alice.victim", "inbox.test", "alice.victim%40inbox.test", "4155552671", TOKEN)


def test_emails_phones_and_tokens_reach_neither_the_database_nor_a_forwarder(
    tmp_path: Path, live_server: Callable[[Any], LiveServer]
) -> None:
    received: list[bytes] = []

    async def webhook(request: Request) -> Response:
        received.append(await request.body())
        return Response(status_code=204)

    receiver = live_server(Starlette(routes=[Route("/hook", webhook, methods=["POST"])]))
    settings = make_settings(tmp_path, forward=[{"name": "hook", "url": f"{receiver.url}/hook", "secret": SECRET}])
    gateway = live_server(create_app(settings, geo=NullGeo()))
    page = (
        f"https://shop.example.com/reset/{TOKEN}/alice.victim%40inbox.test"
        f"?ref=alice.victim%40inbox.test&utm_source={EMAIL}&utm_campaign=call+{PHONE.replace('+', '%2B')}"
        f"&utm_content={TOKEN}&utm_term=alice.victim@inbox.test"
    )
    visitors = 7  # more than the privacy floor (5): what is stored would become a dashboard row
    with httpx.Client() as client:
        for n in range(visitors):
            answer = client.post(
                f"{gateway.url}/api/event",
                json={
                    "s": "shop",
                    "n": f"Signup {EMAIL}",
                    "u": page,
                    "r": f"https://mail.example.net/read?to={EMAIL}&tel={PHONE}#{TOKEN}",
                    "p": {"email": EMAIL, EMAIL: "key", "phone": PHONE, "session": TOKEN, "plan": "pro"},
                },
                headers={"user-agent": f"{UA} visitor/{n}", "x-forwarded-for": f"81.2.69.{10 + n}"},
            )
            assert answer.status_code == 202

    wait_until(lambda: sum(body.count(b'"name"') for body in received) >= visitors, message="not all forwarded")
    forwarded = b"".join(received).decode()
    events = [event for body in received for event in json.loads(body)["events"]]
    assert {event["props"]["plan"] for event in events} == {"pro"}  # the harmless parts arrive
    assert {event["utm_source"] for event in events} == {"[email]"}
    stored = stored_bytes(settings.database)
    assert b"[email]" in stored  # the search reads what was stored
    for value in PERSONAL:
        assert value not in forwarded, value
        assert value.encode() not in stored, value
    assert "81.2.69" not in forwarded and b"81.2.69" not in stored
