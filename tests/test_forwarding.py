"""Forwarding end to end: an event accepted by /api/event reaches a webhook, signed, without an IP."""

from __future__ import annotations

import json
import time
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
from gateway.ingest.forward import verify_signature
from gateway.ingest.geo import NullGeo
from tests.conftest import LiveServer, make_settings

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
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    [(body, signature)] = received
    assert verify_signature(SECRET, body, signature)
    [event] = json.loads(body)["events"]
    assert (event["name"], event["pathname"], event["props"]) == ("Signup", "/join", {"plan": "pro"})
    assert b"127.0.0.1" not in body and b"MARKER42" not in body
