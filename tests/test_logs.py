"""Log lines are JSON objects and never carry a raw IP address."""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

from gateway.logs import JsonFormatter, scrub_addresses
from tests.conftest import LiveServer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("client 203.0.113.7 refused", "client 203.0.113.0/24 refused"),
        ("from 2001:db8:85a3::8a2e:370:7334 now", "from 2001:db8:85a3::/48 now"),
        ("('198.51.100.23', 51234) - connection", "('198.51.100.0/24', 51234) - connection"),
        ("uvicorn 0.30.1 at 12:30:45 on Python 3.11.7", "uvicorn 0.30.1 at 12:30:45 on Python 3.11.7"),
        ("999.1.1.1 is no address", "999.1.1.1 is no address"),
        ("peer 81.2.69.142.", "peer 81.2.69.0/24."),
        ("from 81.2.69.142, then 81.2.69.143;", "from 81.2.69.0/24, then 81.2.69.0/24;"),
        ("client 81.2.69.142:51234 gone", "client 81.2.69.0/24:51234 gone"),
        ("(81.2.69.142)", "(81.2.69.0/24)"),
        ("081.002.069.142 with zeros", "81.2.69.0/24 with zeros"),
        ("[2001:db8:85a3::8a2e:370:7334]:443", "[2001:db8:85a3::/48]:443"),
        ("peer 2001:db8:85a3::7334.", "peer 2001:db8:85a3::/48."),
        ("mapped ::ffff:81.2.69.142 here", "mapped 81.2.69.0/24 here"),
        ("Uvicorn running on http://127.0.0.1:8000", "Uvicorn running on http://127.0.0.1:8000"),
        ("bound to 0.0.0.0:8000 and [::]:8000", "bound to 0.0.0.0:8000 and [::]:8000"),
        ("a dotted number 1.2.3.4.5", "a dotted number 1.2.3.4.5"),
    ],
)
def test_addresses_become_networks_and_nothing_else_changes(text: str, expected: str) -> None:
    assert scrub_addresses(text) == expected


def test_a_record_is_one_json_line_with_its_extra_fields_and_error() -> None:
    try:
        raise RuntimeError("peer 192.0.2.55 hung up")
    except RuntimeError:
        record = logging.getLogger("gateway.test").makeRecord(
            "gateway.test",
            logging.ERROR,
            __file__,
            1,
            "batch of %d failed",
            (3,),
            sys.exc_info(),
            extra={"site": "shop"},
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "error" and parsed["logger"] == "gateway.test"
    assert parsed["message"] == "batch of 3 failed" and parsed["site"] == "shop"
    assert "192.0.2.0/24" in parsed["error"] and "192.0.2.55" not in line
    assert parsed["ts"].endswith("+00:00")


PUBLIC_V4 = st.ip_addresses(v=4).filter(lambda address: address.is_global)
PUBLIC_V6 = st.ip_addresses(v=6).filter(lambda address: address.is_global and address.ipv4_mapped is None)
BEFORE = st.sampled_from(["", "(", "[", "'", '"', "=", ".", ",", "/", "ip:"])
AFTER = st.sampled_from(["", " ", ".", ",", ";", ":", ")", "]", "'", '"', ":443", ". ", "/"])


@given(PUBLIC_V4, BEFORE, AFTER)
def test_no_public_ipv4_address_survives_whatever_punctuation_surrounds_it(
    address: ipaddress.IPv4Address, before: str, after: str
) -> None:
    line = scrub_addresses(f"client {before}{address}{after} left")
    network = ipaddress.ip_network(f"{address}/24", strict=False)
    assert f"{network}" in line
    assert address == network.network_address or str(address) not in line


@given(PUBLIC_V6, st.sampled_from(["[{}]:443", "{}.", "({})", "{} ", "{},"]))
def test_no_public_ipv6_address_survives(address: ipaddress.IPv6Address, shape: str) -> None:
    line = scrub_addresses("peer " + shape.format(address) + " left")
    network = ipaddress.ip_network(f"{address}/48", strict=False)
    assert f"{network}" in line and address.exploded not in line
    assert address == network.network_address or str(address) not in line


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_keeps_its_listening_address_in_the_log(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'secret_keys = ["logs-test-key"]\ndatabase = "{(tmp_path / "g.sqlite3").as_posix()}"\n'
        '[sites.shop]\norigins = ["https://shop.example.com"]\n',
        encoding="utf-8",
    )
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        assert process.stderr is not None
        while not any("Uvicorn running on" in line for line in lines):
            assert time.monotonic() < deadline, f"no listening line in 60 s: {lines}"
            assert process.poll() is None, lines
            if select.select([process.stderr], [], [], 0.5)[0]:
                lines.append(process.stderr.readline())
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
    [listening] = [json.loads(line) for line in lines if "Uvicorn running on" in line]
    assert f"http://127.0.0.1:{port}" in listening["message"]


def test_a_client_address_logged_by_a_live_server_reaches_the_log_as_its_network(
    live_server: Callable[[Any], LiveServer],
) -> None:
    """The attacker's address arrives the way a proxy hands it over; the app logs it in awkward places."""
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("gateway.test_live_logs")
    log.addHandler(handler)
    log.propagate = False

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host, port = scope["client"]
            log.warning("request from %s.", host)
            log.warning("peer %s:%d, then [%s]", host, port, host, extra={"client": host})
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    try:
        server = live_server(app)
        for address in ("81.2.69.142", "2a02:c7f:1234::42"):
            response = httpx.get(server.url, headers={"x-forwarded-for": address}, timeout=10)
            assert response.status_code == 204
    finally:
        log.removeHandler(handler)
    written = output.getvalue()
    records = [json.loads(line) for line in written.splitlines()]
    assert len(records) == 4
    assert "81.2.69.142" not in written and "2a02:c7f:1234::42" not in written
    assert records[0]["message"] == "request from 81.2.69.0/24."
    assert records[1]["client"] == "81.2.69.0/24"
    assert records[2]["message"] == "request from 2a02:c7f:1234::/48."
