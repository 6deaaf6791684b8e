"""A raw IP address and the full user agent never reach the disk or a log line (DESIGN.md, invariants).

Visitors come from distinct loopback addresses (127.0.0.2, 127.0.0.3, ...: the whole 127.0.0.0/8
is local on Linux) by binding the client socket, so the gateway reads each one from
``scope["client"]`` as it would a real visitor's. Their user agent carries a unique marker. Then
every stored row (on both stores), the SQLite file and its WAL (bytes, free pages included; a
PostgreSQL server's files are its own), every log record (DEBUG, gateway and uvicorn) and the
process's stdout/stderr are searched for the addresses and the marker as text.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from gateway import create_app
from gateway.clock import FixedClock
from gateway.ingest.geo import open_geo
from gateway.storage.location import DatabaseLocation, PostgresUrl
from tests.conftest import SITE_ORIGIN, LiveServer, make_settings
from tests.stores import database_location, database_setting, query
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

MARKER = "cgPrivacyMarker7f3a9c"
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    f"Chrome/126.0.0.0 Safari/537.36 {MARKER}/1.0"
)
ADDRESSES = [f"127.0.0.{host}" for host in range(2, 10)]
LOGGERS = ("gateway", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


class VerboseServer(LiveServer):
    """The conftest server, but with uvicorn's DEBUG records left to propagate to pytest's caplog.

    ``log_config=None`` keeps uvicorn from installing its own handlers (which do not propagate).
    The access log is off here, as a deployment must run it: uvicorn's access line is written by
    the server, not the gateway, and always names the client; ``serve`` is checked below.
    """

    def __init__(self, app: Any) -> None:
        super().__init__(app)  # its uvicorn.Config installs uvicorn's handlers (propagate=False): undo that
        for name in LOGGERS:
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = [], True
        config = uvicorn.Config(app, log_config=None, log_level="debug", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)


def client_from(address: str) -> httpx.Client:
    return httpx.Client(
        transport=httpx.HTTPTransport(local_address=address), timeout=30, headers={"user-agent": USER_AGENT}
    )


def database_files(database: Path) -> dict[str, bytes]:
    """The database and whatever sits beside it (-wal, -shm, -journal)."""
    return {path.name: path.read_bytes() for path in sorted(database.parent.glob(database.name + "*"))}


def stored_rows(location: DatabaseLocation) -> dict[str, bytes]:
    """Every row of every table as text: what any reader of the database (a backup, a replica) gets."""
    if isinstance(location, PostgresUrl):  # partitions and their parents: pg_tables lists both
        tables = [
            row[0] for row in query(location, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ]
        select = 'SELECT t::text FROM "{}" t'
    else:
        tables = [row[0] for row in query(location, "SELECT name FROM sqlite_master WHERE type = 'table'")]
        select = 'SELECT * FROM "{}"'
    assert "events" in tables and "consent_records" in tables, tables
    return {f"table {table}": repr(query(location, select.format(table))).encode() for table in tables}


def leaks(haystacks: dict[str, bytes]) -> list[str]:
    needles = [*ADDRESSES, MARKER]
    return [f"{needle} in {name}" for name, data in haystacks.items() for needle in needles if needle.encode() in data]


def visit_as_everyone(base_url: str) -> None:
    """Each address records consent, views two pages, sends a custom event, a bot hit and a bad body."""
    for index, address in enumerate(ADDRESSES):
        with client_from(address) as http:
            decided = http.post(
                f"{base_url}/consent",
                json={"site": "shop", "revision": 1, "choices": {"analytics": index % 2 == 0}},
                headers={"origin": SITE_ORIGIN},
            )
            assert decided.status_code == 201, decided.text
            for path in ("/", "/pricing"):
                page = {"s": "shop", "n": "pageview", "u": f"{SITE_ORIGIN}{path}", "r": "https://www.google.com/"}
                assert http.post(f"{base_url}/api/event", json=page).status_code == 202
            signup = {"s": "shop", "n": "Signup", "u": f"{SITE_ORIGIN}/signup", "p": {"plan": "pro"}}
            assert http.post(f"{base_url}/api/event", json=signup).status_code == 202
            crawler = {"user-agent": f"Mozilla/5.0 (compatible; Googlebot/2.1; {MARKER})"}
            bot = http.post(f"{base_url}/api/event", json=signup, headers=crawler)
            assert bot.headers["x-consent-gateway-dropped"] == "bot"
            assert http.post(f"{base_url}/api/event", content=b"{oops").status_code == 400
            assert http.post(f"{base_url}/api/event", json={**signup, "s": "blog"}).status_code == 404


@pytest.fixture
def log_records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """DEBUG records of the gateway and uvicorn; their handlers and propagation are restored afterwards."""
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate) for name in LOGGERS}
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog
    for name, (handlers, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = handlers, propagate


def test_no_raw_address_or_user_agent_reaches_the_database_or_the_logs(
    tmp_path: Path,
    clock: FixedClock,
    log_records: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(tmp_path, debug=True)
    # The real (bundled) GeoIP reader, so the lookup path that sees the full address runs too.
    with VerboseServer(create_app(settings, clock=clock, geo=open_geo(None))) as server:
        visit_as_everyone(server.url)
        while_running = database_files(settings.database) if isinstance(settings.database, Path) else {}
    after_shutdown = database_files(settings.database) if isinstance(settings.database, Path) else {}

    if isinstance(settings.database, Path):  # the file's bytes; PostgreSQL's files belong to its server
        assert any(name.endswith("-wal") for name in while_running), "expected the WAL file while the server runs"
    assert leaks({f"{name} (running)": data for name, data in while_running.items()}) == []
    assert leaks({f"{name} (stopped)": data for name, data in after_shutdown.items()}) == []
    rows = stored_rows(settings.database)
    assert b"127.0.0.0/24" in rows["table consent_records"] and b"/pricing" in rows["table events"]  # it reads rows
    assert leaks(rows) == []

    records = log_records.records
    assert any(record.name.startswith("uvicorn") for record in records), "uvicorn's records were not captured"
    logged = {
        f"log record {index} ({record.name})": "\n".join(
            [record.getMessage(), repr(record.args), record.exc_text or "", record.stack_info or ""]
        ).encode()
        for index, record in enumerate(records)
    }
    output = capfd.readouterr()
    assert leaks({**logged, "stdout": output.out.encode(), "stderr": output.err.encode()}) == []

    # What was stored instead: networks and hashes, each address a distinct visitor.
    networks = {row[0] for row in query(settings.database, "SELECT ip_network FROM consent_records")}
    families = {row[0] for row in query(settings.database, "SELECT ua_family FROM consent_records")}
    [visitors] = query(settings.database, "SELECT count(DISTINCT visitor_id), count(*) FROM events")
    [(decisions,)] = query(settings.database, "SELECT count(*) FROM consent_records")
    assert networks == {"127.0.0.0/24"}
    assert families == {"Chrome"}
    assert decisions == len(ADDRESSES)
    assert visitors == (len(ADDRESSES), 3 * len(ADDRESSES))


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_writes_no_raw_address_or_user_agent_to_its_output(tmp_path: Path) -> None:
    database = tmp_path / "gateway.sqlite3"
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'secret_keys = ["privacy-test-key"]\ndebug = true\ndatabase = "{database_setting(database)}"\n'
        f'[sites.shop]\norigins = ["{SITE_ORIGIN}"]\n',
        encoding="utf-8",
    )
    port = _free_port()
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)],
            stdout=stdout,
            stderr=stderr,
            env={name: value for name, value in os.environ.items() if not name.startswith("CONSENT_GATEWAY_")},
        )
        try:
            url = f"http://127.0.0.1:{port}"

            def healthy() -> bool:
                assert process.poll() is None, err.read_text()
                try:
                    return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(healthy, interval=0.1, message="serve did not answer /healthz")
            visit_as_everyone(url)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    assert process.returncode == 0, err.read_text()
    assert leaks(database_files(database)) == []  # no file at all on PostgreSQL
    assert leaks(stored_rows(database_location(database))) == []
    found = leaks({"stdout": out.read_bytes(), "stderr": err.read_bytes()})
    assert found == []
