"""``consent-gateway serve`` as a user starts it: one process, and several sharing one database.

Each case runs on both stores: a SQLite file, and a PostgreSQL database the workers of one node share
(their ``/metrics`` add up to the node: each worker publishes its counters under the node's id).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.stores import database_location, database_setting, query

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_and_every_worker_writes_to_one_database(tmp_path: Path, workers: int) -> None:
    database = tmp_path / "gateway.sqlite3"
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'secret_keys = ["serve-test-key"]\ndatabase = "{database_setting(database)}"\n'
        '[sites.shop]\norigins = ["https://shop.example.com"]\n',
        encoding="utf-8",
    )
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
        + ["--workers", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={name: value for name, value in os.environ.items() if not name.startswith("CONSENT_GATEWAY_")},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=5) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get(f"{url}/healthz").json()["status"] == "ok":
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "serve did not answer /healthz in 60 s"
                assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
                time.sleep(0.1)
            for _ in range(20):  # new connections spread over the workers
                with httpx.Client(timeout=5) as fresh:
                    answer = fresh.post(
                        f"{url}/consent", json={"site": "shop", "revision": 1, "choices": {"analytics": True}}
                    )
                assert answer.status_code == 201, answer.text
            # Whichever worker answers the scrape counts all 20 (workers publish every 5 s).
            deadline = time.monotonic() + 60
            while True:
                scraped = http.get(f"{url}/metrics").text
                decisions = sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in scraped.splitlines()
                    if line.startswith("consent_gateway_consent_decisions_total")
                )
                if decisions == 20:
                    break
                assert time.monotonic() < deadline, f"/metrics counted {decisions} decisions, not 20"
                time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr.decode()
    lines = stderr.decode().splitlines()
    assert lines and all(json.loads(line)["level"] for line in lines)  # structured: one JSON object a line
    # Client addresses appear as networks only; the server's own listening address is kept (issue 10).
    listening = [line for line in lines if "Uvicorn running on" in line]
    assert len(listening) == 1 and "127.0.0.1:" in listening[0]
    assert not any("127.0.0.1" in line for line in lines if line not in listening)
    assert query(database_location(database), "SELECT count(*) FROM consent_records") == [(20,)]
