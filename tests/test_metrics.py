"""/metrics sums every worker process, and opens only to a bearer token or an allowed network."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.ingest.geo import NullGeo
from gateway.metrics import WORKER_GONE, Metrics, MetricsAccess, MetricsPublisher
from gateway.settings import DEFAULT_METRICS_NETWORKS, SettingsError, load_settings, settings_from_dict
from tests.conftest import LiveServer, make_settings
from tests.stores import fresh_store

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


def _value(text: str, line_start: str) -> float:
    return float(next(line for line in text.splitlines() if line.startswith(line_start)).rsplit(" ", 1)[1])


def test_a_scrape_of_one_worker_shows_all_live_workers_of_its_node(tmp_path: Path) -> None:
    clock = FixedClock(NOW)
    store = fresh_store(tmp_path)  # outside the event loop: a PostgreSQL run creates its database here

    async def scenario() -> tuple[str, str, str]:
        db = await store.open()
        try:
            # Three workers of one `serve` (one node) and a worker of another node on the same database.
            first, second, gone = Metrics(node="node-a"), Metrics(node="node-a"), Metrics(node="node-a")
            elsewhere = Metrics(node="node-b")
            first.inc("consent_gateway_events_accepted_total", 3)
            second.inc("consent_gateway_events_accepted_total", 4)
            second.inc("consent_gateway_events_dropped_total", reason="bot")
            first.set_max("consent_gateway_commit_seconds_max", 0.25)
            second.set_max("consent_gateway_commit_seconds_max", 0.5)
            gone.inc("consent_gateway_events_accepted_total", 100)
            elsewhere.inc("consent_gateway_events_accepted_total", 1000)
            elsewhere.set_max("consent_gateway_commit_seconds_max", 9.0)
            publishers = [MetricsPublisher(db, m, clock) for m in (first, second, gone, elsewhere)]
            clock.current = NOW - timedelta(minutes=5)
            await publishers[2].publish()  # a worker that stopped five minutes ago
            clock.current = NOW
            await publishers[1].publish()
            await publishers[3].publish()
            first.inc("consent_gateway_events_accepted_total", 1)  # not yet published: still counted live
            seen_by_first = await publishers[0].render()
            await publishers[0].publish()
            seen_by_second = await publishers[1].render()
            seen_elsewhere = await publishers[3].render()
            return seen_by_first, seen_by_second, seen_elsewhere
        finally:
            await db.close()

    by_first, by_second, elsewhere = asyncio.run(scenario())
    for text in (by_first, by_second):
        assert _value(text, "consent_gateway_events_accepted_total ") == 8  # 4 + 4: the gone worker and node-b left out
        assert _value(text, 'consent_gateway_events_dropped_total{reason="bot"}') == 1
        assert _value(text, "consent_gateway_commit_seconds_max ") == 0.5  # maxima merge by max, within the node
    # node-b shows itself only: a Prometheus summing both nodes counts 8 + 1000, each node once.
    assert _value(elsewhere, "consent_gateway_events_accepted_total ") == 1000
    assert _value(elsewhere, "consent_gateway_commit_seconds_max ") == 9.0


def test_the_workers_of_one_serve_share_a_node_and_two_serves_do_not() -> None:
    assert Metrics(node="n").node == Metrics(node="n").node == "n"
    one, other = Metrics(), Metrics()
    assert one.node != other.node and one.worker != other.worker  # a process of its own is a node of its own
    assert one.node.startswith(socket.gethostname()[:64] + "/")  # an operator can tell the machine


def test_rows_of_stopped_workers_expire_on_every_node(tmp_path: Path) -> None:
    clock = FixedClock(NOW)
    store = fresh_store(tmp_path)

    async def scenario() -> list[str]:
        db = await store.open()
        try:
            stopped, live = Metrics(node="node-b"), Metrics(node="node-a")
            for metrics in (stopped, live):
                metrics.inc("consent_gateway_events_accepted_total")
            clock.current = NOW - 11 * WORKER_GONE
            await MetricsPublisher(db, stopped, clock).publish()  # a node that stopped for good
            clock.current = NOW
            await MetricsPublisher(db, live, clock).publish()
            return [row["node"] for row in await db.fetch_all("SELECT DISTINCT node FROM worker_metrics")]
        finally:
            await db.close()

    assert asyncio.run(scenario()) == ["node-a"]


TOKEN = "metrics-token-0123456789abcdef"
OUTSIDER = "203.0.113.9"  # sent as X-Forwarded-For from 127.0.0.1, which uvicorn trusts as a proxy


def _scrape(server: LiveServer, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{server.url}/metrics", headers=headers or {}, timeout=10)


def test_by_default_only_this_machine_reads_metrics(tmp_path: Path, live_server: Callable[[Any], LiveServer]) -> None:
    server = live_server(create_app(make_settings(tmp_path), geo=NullGeo()))
    local = _scrape(server)
    assert local.status_code == 200 and "consent_gateway_events_accepted_total" in local.text
    for attempt in ({"x-forwarded-for": OUTSIDER}, {"x-forwarded-for": OUTSIDER, "authorization": f"Bearer {TOKEN}"}):
        outside = _scrape(server, attempt)
        assert outside.status_code == 403  # no token is configured: nothing would open it
        assert "consent_gateway" not in outside.text


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="no-token"),
        pytest.param({"authorization": f"Bearer {TOKEN[:-1]}x"}, 401, id="wrong-token-same-length"),
        pytest.param({"authorization": f"Bearer {TOKEN}x"}, 401, id="token-one-longer"),
        pytest.param({"authorization": "Bearer m"}, 401, id="short-token"),
        pytest.param({"authorization": f"Basic {TOKEN}"}, 401, id="wrong-scheme"),
        pytest.param({"authorization": "Bearer"}, 401, id="empty-bearer"),
        pytest.param({"cookie": f"token={TOKEN}"}, 401, id="token-in-a-cookie"),
        pytest.param({"authorization": f"Bearer {TOKEN}"}, 200, id="the-token"),
        pytest.param({"authorization": f"bearer  {TOKEN}"}, 200, id="scheme-in-any-case"),
    ],
)
def test_an_outsider_needs_the_exact_token(
    tmp_path: Path, live_server: Callable[[Any], LiveServer], headers: dict[str, str], status: int
) -> None:
    settings = make_settings(tmp_path, metrics_token=TOKEN, metrics_networks=[])
    server = live_server(create_app(settings, geo=NullGeo()))
    for origin in ({}, {"x-forwarded-for": OUTSIDER}):  # with no network listed, not even this machine
        response = _scrape(server, {**headers, **origin})
        assert response.status_code == status
        assert ("consent_gateway_events_accepted_total" in response.text) == (status == 200)
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(f"{server.url}/metrics?token={TOKEN}", timeout=10).status_code == 401  # never in a URL


def test_a_listed_network_reads_metrics_without_the_token_and_others_do_not(
    tmp_path: Path, live_server: Callable[[Any], LiveServer]
) -> None:
    settings = make_settings(tmp_path, metrics_token=TOKEN, metrics_networks=["10.20.0.0/16"])
    server = live_server(create_app(settings, geo=NullGeo()))
    assert _scrape(server, {"x-forwarded-for": "10.20.30.40"}).status_code == 200
    assert _scrape(server, {"x-forwarded-for": "10.21.0.1"}).status_code == 401
    assert _scrape(server).status_code == 401  # loopback is no longer listed
    assert _scrape(server, {"x-forwarded-for": "10.20.30.40", "authorization": "Bearer wrong"}).status_code == 401


@pytest.mark.parametrize(
    ("client", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("203.0.113.9", False),
        ("::ffff:203.0.113.9", False),
        ("fe80::1%eth0", False),
        ("not-an-address", False),
        (None, False),
    ],
)
def test_the_default_networks_are_loopback_only(client: str | None, allowed: bool) -> None:
    access = MetricsAccess(None, DEFAULT_METRICS_NETWORKS)
    assert (access.check(None, client) == "allowed") is allowed


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"metrics_token": "short"}, "metrics_token: expected a string of at least 16 printable characters"),
        ({"metrics_token": ["x" * 20]}, "metrics_token: expected a string of at least 16 printable characters"),
        ({"metrics_networks": ["10.0.0.0/33"]}, "metrics_networks: expected networks such as '127.0.0.0/8'"),
        ({"metrics_networks": "everyone"}, "metrics_networks: expected networks such as '127.0.0.0/8'"),
    ],
)
def test_metrics_settings_are_validated_without_showing_the_token(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)) as error:
        settings_from_dict(raw, source="test")
    assert "\n" not in str(error.value) and "xxxxxxxx" not in str(error.value)


def test_the_token_can_come_from_the_environment_even_when_it_reads_as_a_number(tmp_path: Path) -> None:
    settings = load_settings(environ={"CONSENT_GATEWAY_METRICS_TOKEN": "1234567890123456"})
    assert settings.metrics_token is not None and settings.metrics_token.value == "1234567890123456"
    assert "1234567890123456" not in repr(settings)
