"""Two gateway nodes on one PostgreSQL database, one of them killed with ``kill -9`` mid-load.

Played as an operator would: two ``consent-gateway serve`` processes on different ports share a
database; visitors send their events to both at once (so one visit's events land on both nodes);
the node that leads maintenance is killed — its whole process group, as a crashed machine — while
events keep coming, and the load moves to the survivor. Then:

- every acknowledged event is stored (an event is acknowledged only after its commit);
- the dashboard's figures equal those of a single node fed the same events (one visit per visitor:
  the two nodes stitched each visit together rather than opening one each);
- there was one maintenance leader at a time, and the survivor took the role over;
- every outbox row reached the webhook, and none twice except a row the killed node was sending.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.clock import SystemClock
from gateway.ingest.forward import DELIVERY_HEADER
from gateway.maintenance import roll_up
from gateway.settings import SiteSettings, load_settings
from gateway.stats.period import Period
from gateway.stats.query import Stats, StatsQuery
from gateway.storage.location import PostgresUrl
from gateway.storage.store import open_store
from tests.conftest import LiveServer
from tests.stores import PostgresServer, postgres_server_or_skip, query, with_database
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

VISITORS = 40
PAGES = ("/", "/pricing", "/docs", "/blog", "/signup")
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.{v}.0 Safari/537.36"
SECRET = "a-webhook-secret-of-some-length"


@dataclass(frozen=True, slots=True)
class Sent:
    """Event ``number``: visitor ``number // len(PAGES)`` views page ``number % len(PAGES)``."""

    number: int

    @property
    def visitor(self) -> int:
        return self.number // len(PAGES)

    def body(self) -> dict[str, Any]:
        page = PAGES[self.number % len(PAGES)]
        return {"s": "shop", "n": "pageview", "u": f"https://shop.example.com{page}", "p": {"n": str(self.number)}}

    def headers(self) -> dict[str, str]:
        return {"user-agent": UA.format(v=self.visitor)}


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def health(self) -> dict[str, Any] | None:
        try:
            return dict(httpx.get(f"{self.url}/healthz", timeout=5).json())
        except (httpx.HTTPError, ValueError):
            return None

    def kill(self) -> None:
        """``kill -9`` of the node's whole process group: the server, its workers, its event writer."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@contextmanager
def running_node(config: Path, tmp_path: Path, name: str) -> Iterator[Node]:
    port = _free_port()
    log = tmp_path / f"{name}.log"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CONSENT_GATEWAY_")}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,  # its own process group, so a kill -9 takes the whole node
        )
    node = Node(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until(
            lambda: process.poll() is not None or (node.health() or {}).get("status") == "ok",
            timeout=90,
            message=f"{name} did not become healthy",
        )
        assert process.poll() is None, log.read_text()
        yield node
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


class Webhook:
    """A real receiver: every POST's delivery header and the event numbers it carried."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[float, list[int], list[int]]] = []  # (when, outbox rows, event numbers)
        self._lock = threading.Lock()

    async def receive(self, request: Request) -> Response:
        body = json.loads(await request.body())
        rows = [int(part) for part in request.headers[DELIVERY_HEADER].split(":", 1)[1].split(",")]
        numbers = [int(event["props"]["n"]) for event in body["events"]]
        with self._lock:
            self.deliveries.append((time.monotonic(), rows, numbers))
        return Response(status_code=204)

    def rows(self) -> Counter[int]:
        with self._lock:
            return Counter(row for _, rows, _ in self.deliveries for row in rows)


def _config(path: Path, database: str, hook: str) -> Path:
    path.write_text(
        f'secret_keys = ["two-node-secret-key"]\ndatabase = "{database}"\nrollup_interval = "10s"\n'
        '[sites.shop]\norigins = ["https://shop.example.com"]\nmin_visitors = 2\n'
        f'[[forward]]\nname = "warehouse"\nurl = "{hook}"\nsecret = "{SECRET}"\nbatch_size = 10\n',
        encoding="utf-8",
    )
    return path


def _send(client: httpx.Client, node: Node, sent: Sent) -> bool:
    """Whether ``node`` acknowledged ``sent`` (202, not dropped); False when it could not be reached."""
    try:
        answer = client.post(f"{node.url}/api/event", json=sent.body(), headers=sent.headers(), timeout=30)
    except httpx.TransportError:
        return False
    assert answer.status_code in (202, 503), answer.text
    return answer.status_code == 202 and "x-consent-gateway-dropped" not in answer.headers


def _leaders(nodes: list[Node]) -> list[str]:
    return [str((node.health() or {}).get("maintenance")) for node in nodes]


def _figures(location: PostgresUrl, site: SiteSettings, today: date) -> dict[str, Any]:
    """The overview's counted figures and breakdowns (durations depend on timing, so they are left out)."""

    async def read() -> dict[str, Any]:
        store = await open_store(location).open()
        try:
            await roll_up(store, {site.id: site.zone})
            stats = Stats(store, SystemClock())
            query = StatsQuery(site, Period("day", today, today))
            aggregate = await stats.aggregate(query)
            shown: dict[str, Any] = {
                "aggregate": aggregate.current._replace(duration=0),
                "withheld": aggregate.withheld,
            }
            for dimension in ("page", "browser", "entry_page"):
                breakdown = await stats.breakdown(query, dimension)
                shown[dimension] = [(row.value, row.figures._replace(duration=0)) for row in breakdown.rows]
            return shown
        finally:
            await store.close()

    return asyncio.run(read())


def test_two_nodes_one_killed_mid_load(
    tmp_path: Path, postgres_server: PostgresServer | None, live_server: Callable[[Any], LiveServer]
) -> None:
    server = postgres_server_or_skip(postgres_server)
    shared = with_database(server.admin_url, server.create_database())
    alone = with_database(server.admin_url, server.create_database())
    webhook = Webhook()
    receiver = live_server(Starlette(routes=[Route("/hook", webhook.receive, methods=["POST"])]))
    config = _config(tmp_path / "nodes.toml", shared, f"{receiver.url}/hook")
    events = [Sent(number) for number in range(VISITORS * len(PAGES))]
    acknowledged: set[int] = set()
    lock = threading.Lock()
    with running_node(config, tmp_path, "node-a") as a, running_node(config, tmp_path, "node-b") as b:
        nodes = [a, b]
        wait_until(
            lambda: sorted(_leaders(nodes)) == ["follower", "leader"],
            timeout=60,
            message="no single maintenance leader",
        )
        leader, survivor = (a, b) if _leaders(nodes)[0] == "leader" else (b, a)
        killed = threading.Event()

        def deliver(sent: Sent) -> None:
            # Pages 0, 2, 4 of a visitor go to one node, 1 and 3 to the other, all at once.
            first = nodes[(sent.number + sent.visitor) % 2]
            with httpx.Client() as client:
                target = survivor if killed.is_set() else first
                if not _send(client, target, sent) and target is not survivor:
                    assert _send(client, survivor, sent), "the survivor did not take the event"
            with lock:
                acknowledged.add(sent.number)

        with ThreadPoolExecutor(8) as pool:
            done = [pool.submit(deliver, sent) for sent in events[: len(events) // 3]]
            wait_until(lambda: len(acknowledged) >= len(events) // 6, timeout=60, message="no load reached")
            leader.kill()  # mid-load: a third of the first wave may still be in flight
            killed.set()
            done += [pool.submit(deliver, sent) for sent in events[len(events) // 3 :]]
            for future in done:
                future.result()
        assert leader.process.returncode == -signal.SIGKILL

        # The survivor takes the maintenance role over within a poll or two.
        wait_until(
            lambda: (survivor.health() or {}).get("maintenance") == "leader",
            timeout=60,
            message="the survivor never became the maintenance leader",
        )

        # Every outbox row reaches the webhook (the killed node's leased rows after their lease).
        def outbox_empty() -> bool:
            return query(PostgresUrl(shared), "SELECT count(*) FROM outbox")[0][0] == 0

        wait_until(outbox_empty, timeout=150, message="the outbox was never emptied")

    # Every acknowledged event is stored (a few unacknowledged ones may be too: killed before answering).
    stored_order = [
        int(json.loads(row[0])["n"]) for row in query(PostgresUrl(shared), "SELECT props FROM events ORDER BY id")
    ]
    stored = Counter(stored_order)
    assert acknowledged == set(range(len(events)))
    assert set(stored) >= acknowledged
    duplicated = {number for number, count in stored.items() if count > 1}
    assert len(duplicated) <= 8, f"only requests cut off by the kill may be stored twice: {sorted(duplicated)}"

    # The webhook got every stored event; a row twice only if the killed node had it in flight.
    delivered_rows = webhook.rows()
    forwarded = Counter(number for _, _, numbers in webhook.deliveries for number in numbers)
    assert set(forwarded) == set(stored)
    twice = {row for row, count in delivered_rows.items() if count > 1}
    in_one_post = any(twice <= set(rows) for _, rows, _ in webhook.deliveries)
    assert not twice or in_one_post, f"outbox rows of several POSTs delivered twice: {sorted(twice)}"

    # A single node fed exactly what was stored, in the order it was stored (a visit's entry page is
    # its first event: the nodes took a visitor's events in whatever order they arrived), shows the
    # same dashboard.
    single = _config(tmp_path / "single.toml", alone, f"{receiver.url}/hook")
    with running_node(single, tmp_path, "single") as one, httpx.Client() as client:
        for number in stored_order:
            assert _send(client, one, Sent(number))
    settings = load_settings(single, environ={})
    site = settings.sites["shop"]
    today = SystemClock().now().astimezone(site.zone).date()
    two_nodes, one_node = _figures(PostgresUrl(shared), site, today), _figures(PostgresUrl(alone), site, today)
    assert two_nodes["aggregate"].visits == VISITORS  # one visit per visitor, across both nodes
    assert two_nodes == one_node
