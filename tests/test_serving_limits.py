"""``consent-gateway serve`` under abuse, played by an attacker with real sockets on 127.0.0.1.

Each test fails when its attack works: idle and slowloris connections that stay open, a huge
request head accepted, legitimate requests refused after the attacker's connections should have
been dropped, a soft open-file limit left low, memory growing with concurrent logins, and client
disconnects written to the log. The server runs with small limits (a 1 s head deadline, 4 KiB
heads, 40 connections) so every test is quick; the protocol guards are tried with both of
uvicorn's parsers: httptools in a real ``serve`` process and h11 in an in-thread uvicorn.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from gateway.accounts.passwords import hash_password
from gateway.app import create_app
from gateway.serving import GuardedH11Protocol, ServingConfig, ServingLimits
from gateway.storage.location import DatabaseLocation, PostgresUrl
from gateway.storage.store import open_store
from gateway.storage.users import add_user
from tests.conftest import SITE_ORIGIN, make_settings
from tests.stores import STORES, PostgresServer, postgres_server_or_skip, with_database
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

HEAD_TIMEOUT = 1
MAX_HEAD_BYTES = 4096
MAX_CONNECTIONS = 40
#: Generous for a loaded 2-core machine; a passing test never waits it out.
DEADLINE = 30.0
PASSWORD = "correct horse battery"
#: The soft open-file limit the serve process is started with: it must raise it to the hard limit.
LOW_SOFT_LIMIT = 256


@dataclass
class Server:
    port: int
    pid: int | None = None
    stderr: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)
        return sock


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(condition: Callable[[], Any], message: str, timeout: float = DEADLINE) -> Any:
    return wait_until(condition, timeout=timeout, message=message)


def _add_user(database: DatabaseLocation) -> None:
    async def run() -> None:
        db = await open_store(database).open()
        try:
            hashed = hash_password(PASSWORD)
            # Twelve people: the login throttle lets one account try 5 times per network at once.
            for name in ("ann", *(f"user{number}" for number in range(12))):
                await add_user(db, name, hashed, is_admin=True, now=datetime.now(UTC))
        finally:
            await db.close()

    asyncio.run(run())


def _lower_soft_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_SOFT_LIMIT, hard))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real ``consent-gateway serve`` (httptools) started with a low soft open-file limit, on SQLite."""
    tmp = tmp_path_factory.mktemp("serve")
    yield from _serve(tmp, tmp / "gateway.sqlite3")


@pytest.fixture(scope="module")
def served_on_postgresql(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer | None
) -> Iterator[Server]:
    """The same server on a PostgreSQL database of its own (module-scoped: it outlives any one test's database)."""
    cluster = postgres_server_or_skip(postgres_server)
    name = cluster.create_database()
    try:
        yield from _serve(
            tmp_path_factory.mktemp("serve-postgresql"), PostgresUrl(with_database(cluster.admin_url, name))
        )
    finally:
        cluster.drop_database(name)


@pytest.fixture
def served_on_store(request: pytest.FixtureRequest, store_kind: str) -> Server:
    """The module's ``serve`` process on the current test's store."""
    server: Server = request.getfixturevalue("served" if store_kind == "sqlite" else "served_on_postgresql")
    return server


def _serve(tmp: Path, database: DatabaseLocation) -> Iterator[Server]:
    setting = database.url if isinstance(database, PostgresUrl) else database.as_posix()
    config = tmp / "gateway.toml"
    config.write_text(
        f'secret_keys = ["serving-limits-test-key"]\ndatabase = "{setting}"\n'
        f"head_timeout_seconds = {HEAD_TIMEOUT}\nmax_head_bytes = {MAX_HEAD_BYTES}\n"
        f"max_connections = {MAX_CONNECTIONS}\npassword_hash_concurrency = 1\n"
        f'[sites.shop]\norigins = ["{SITE_ORIGIN}"]\n',
        encoding="utf-8",
    )
    _add_user(database)
    server = Server(port=_free_port())
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(server.port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={name: value for name, value in os.environ.items() if not name.startswith("CONSENT_GATEWAY_")},
        preexec_fn=_lower_soft_file_limit,  # noqa: PLW1509 - before exec, in the child only
    )
    server.pid = process.pid
    reader = threading.Thread(target=lambda: server.stderr.extend(iter(process.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()

    def healthy() -> bool:
        assert process.poll() is None, "".join(server.stderr)
        try:
            return httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    _wait_until(healthy, "serve did not answer /healthz")
    try:
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        reader.join(timeout=10)
        process.stderr.close()  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def threaded_h11(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The gateway on uvicorn's h11 parser with the same guard, in a thread."""
    settings = make_settings(tmp_path_factory.mktemp("h11"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    limits = ServingLimits(head_timeout=HEAD_TIMEOUT, max_head_bytes=MAX_HEAD_BYTES, max_connections=MAX_CONNECTIONS)
    config = ServingConfig(create_app(settings), limits=limits, http=GuardedH11Protocol, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    _wait_until(lambda: server.started or not thread.is_alive(), "uvicorn did not start")
    assert server.started
    try:
        yield Server(port=sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


#: The tests on the module's served process that reach the store (its fixtures hide that from conftest's guess).
ON_BOTH_STORES = pytest.mark.parametrize("store_kind", STORES, indirect=True)
#: The protocol guards act before the app reads or writes anything, so they run once, on SQLite.
PROTOCOL_ONLY = pytest.mark.sqlite_only(
    reason="the guard closes or refuses the connection before any store plays a part"
)


@pytest.fixture(params=["httptools-serve", "h11-thread"])
def guarded(request: pytest.FixtureRequest) -> Server:
    server: Server = request.getfixturevalue("served" if request.param == "httptools-serve" else "threaded_h11")
    return server


def _closed_by_server(sock: socket.socket, timeout: float = DEADLINE) -> bytes:
    """Everything the server sent until it closed the connection; fails if it stays open."""
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


@PROTOCOL_ONLY
def test_an_idle_connection_is_closed_after_the_head_timeout(guarded: Server) -> None:
    with closing(guarded.connect()) as sock:
        started = time.monotonic()
        assert _closed_by_server(sock) == b""
        assert HEAD_TIMEOUT * 0.8 <= time.monotonic() - started < HEAD_TIMEOUT + 5


@PROTOCOL_ONLY
def test_a_slowloris_head_is_closed_however_busy_it_keeps_the_connection(guarded: Server) -> None:
    with closing(guarded.connect()) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        sock.settimeout(0.1)  # one header byte every 0.1 s, reading between them: never idle, never done
        closed = False
        while not closed and time.monotonic() - started < DEADLINE:
            try:
                sock.sendall(b"X")
                closed = sock.recv(1024) == b""
            except TimeoutError:
                continue
            except OSError:  # reset while sending: closed as well
                closed = True
        assert closed, "a head trickled byte by byte kept its connection open"
        assert time.monotonic() - started < HEAD_TIMEOUT + 5


@PROTOCOL_ONLY
def test_a_kept_alive_connection_serves_several_requests(guarded: Server) -> None:
    with httpx.Client(base_url=guarded.url, timeout=DEADLINE) as client:
        assert [client.get("/healthz").status_code for _ in range(3)] == [200, 200, 200]


@PROTOCOL_ONLY
@pytest.mark.parametrize("size", [MAX_HEAD_BYTES + 1, 8 * 1024 * 1024], ids=["just-over", "8MB-cookie"])
def test_a_request_head_over_max_head_bytes_is_answered_431(guarded: Server, size: int) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nCookie: a="
    request = head + b"x" * (size - len(head) - 4) + b"\r\n\r\n"
    with closing(guarded.connect()) as sock:
        try:
            sock.sendall(request)
        except OSError:  # the server may stop reading an 8 MB head early: its answer is still there
            pass
        answer = _closed_by_server(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert httpx.get(f"{guarded.url}/healthz", timeout=DEADLINE).status_code == 200


@PROTOCOL_ONLY
def test_a_head_just_under_the_limit_is_served(guarded: Server) -> None:
    response = httpx.get(f"{guarded.url}/healthz", headers={"cookie": "a=" + "x" * 3000}, timeout=DEADLINE)
    assert response.status_code == 200


@PROTOCOL_ONLY
def test_past_max_connections_requests_get_503_with_retry_after_then_are_served_once_idlers_are_dropped(
    guarded: Server,
) -> None:
    idle = [guarded.connect() for _ in range(MAX_CONNECTIONS + 20)]
    try:
        with httpx.Client(timeout=DEADLINE) as client:
            refused = client.get(f"{guarded.url}/healthz")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["connection"] == "close"
        for sock in idle:  # the server drops every idle connection by itself
            assert _closed_by_server(sock) == b""
        answers = []
        for _ in range(22):  # the 22 legitimate requests, each on a new connection
            with httpx.Client(timeout=DEADLINE) as client:
                answers.append(client.get(f"{guarded.url}/healthz").status_code)
        assert answers == [200] * 22
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.sqlite_only(reason="the open-file limit is the process's, whatever its store")
def test_serve_raises_its_soft_open_file_limit_to_the_hard_limit(served: Server) -> None:
    limits = Path(f"/proc/{served.pid}/limits").read_text(encoding="utf-8")
    found = re.search(r"^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)", limits, re.MULTILINE)
    assert found, limits
    soft, hard = found.groups()
    _, own_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == hard, f"soft limit {soft}, hard {hard}"
    assert own_hard == resource.RLIM_INFINITY or int(soft) > LOW_SOFT_LIMIT
    logged = [json.loads(line) for line in served.stderr if '"open_files"' in line]
    assert logged and logged[0]["open_files_before"] == LOW_SOFT_LIMIT
    assert logged[0]["open_files"] == int(soft)


def _metric(server: Server, name: str) -> float:
    scraped = httpx.get(f"{server.url}/metrics", timeout=DEADLINE).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in scraped.splitlines() if line.startswith(name))


@ON_BOTH_STORES
def test_clients_leaving_mid_body_are_counted_and_never_logged(served_on_store: Server) -> None:
    served = served_on_store
    logged_before = len(served.stderr)
    counted_before = _metric(served, "consent_gateway_client_disconnects_total")
    for path in ["/consent"] * 100 + ["/api/event"] * 100:
        with closing(served.connect()) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                "Content-Length: 100\r\n\r\n{".encode()
            )
    _wait_until(
        lambda: _metric(served, "consent_gateway_client_disconnects_total") - counted_before == 200,
        "the 200 disconnects were not counted",
    )
    noisy = [line for line in served.stderr[logged_before:] if json.loads(line)["level"] not in ("debug", "info")]
    assert noisy == []


def _peak_rss_kib(pid: int | None) -> int:
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert found
    return int(found.group(1))


@ON_BOTH_STORES
def test_concurrent_logins_hash_one_password_at_a_time(served_on_store: Server) -> None:
    """12 logins at once with ``password_hash_concurrency = 1``: the peak memory grows by about one
    scrypt (32 MB), not twelve (unbounded, asyncio's pool ran six at once on 2 cores: +190 MB)."""
    served = served_on_store

    def login(number: int) -> int:
        with httpx.Client(base_url=served.url, timeout=DEADLINE, follow_redirects=False) as client:
            form = client.get("/login")
            token = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
            assert token, form.text
            fields = {"name": f"user{number}", "password": PASSWORD, "login_csrf": token.group(1)}
            answer = client.post("/login", data=fields)
            return answer.status_code

    before = _peak_rss_kib(served.pid)
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(login, range(12)))
    assert statuses == [303] * 12
    grown_mib = (_peak_rss_kib(served.pid) - before) / 1024
    assert grown_mib < 3 * 32, f"peak memory grew by {grown_mib:.0f} MiB over 12 concurrent logins"
