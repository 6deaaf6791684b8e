"""PostgreSQL faults, made real: a read-only database, and the server dropping every connection.

The SQLite faults (full disk, read-only file, damaged file) are in tests/test_storage_faults.py;
these are their counterparts on a database server:

- **A read-only database**: ``ALTER DATABASE ... SET default_transaction_read_only = on``, as a
  standby or an operator's maintenance switch would make it: every write meets
  ``cannot execute ... in a read-only transaction``.
- **Connections dropped**: ``pg_terminate_backend`` on every connection of the gateway, as a server
  restart or a failover does. The writer and the read pool must reconnect by themselves: the first
  requests may be answered 503, never a 500, and events are acknowledged again without a restart.

The attacks fail the test when a fault ends in a 500, a plain-text body, a 503 without
``Retry-After``, a /healthz that says ok, or an acknowledged event that is not stored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.ingest.geo import NullGeo
from gateway.storage.location import PostgresUrl
from tests.conftest import SITE_ORIGIN, LiveServer, make_settings
from tests.stores import PostgresServer, postgres_server_or_skip, query, with_database
from tests.test_storage_faults import CONSENT, CROSS_ORIGIN, EVENT, assert_storage_503
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

Start = Callable[[Any], LiveServer]


def _admin(server: PostgresServer, sql: str, *parameters: str) -> None:
    import psycopg

    with psycopg.connect(server.admin_url, autocommit=True) as connection:
        connection.execute(sql, parameters or None)


#: A server restart or failover, as the gateway sees it: every connection to its database is gone.
DROP_CONNECTIONS = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"


def test_a_read_only_database_answers_503_and_healthz_names_the_write(
    tmp_path: Path, postgres_server: PostgresServer | None, live_server: Start
) -> None:
    server = postgres_server_or_skip(postgres_server)
    name = server.create_database()
    url = with_database(server.admin_url, name)
    settings = make_settings(tmp_path, database=url)
    gateway = live_server(create_app(settings, geo=NullGeo()))
    with httpx.Client(base_url=gateway.url, timeout=30, headers=CROSS_ORIGIN) as http:
        assert http.post("/api/event", json=EVENT).status_code == 202  # the salt is made while writable
        _admin(server, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        _admin(server, DROP_CONNECTIONS, name)

        def write_refused() -> bool:
            answer = http.post("/consent", json=CONSENT)
            return answer.status_code == 503

        wait_until(write_refused, message="writes were not refused on a read-only database")
        assert_storage_503(http.post("/consent", json=CONSENT))
        answer = http.get("/healthz")
        assert answer.status_code == 503
        body = answer.json()
        assert "write" in body["failing"], body
        assert "read-only" in body["checks"]["write"]["detail"]
        assert body["checks"]["database"]["ok"]  # reads still work: the dashboards can still be read

        _admin(server, f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        _admin(server, DROP_CONNECTIONS, name)
        wait_until(lambda: http.post("/consent", json=CONSENT).status_code == 201, message="writes never came back")


@pytest.mark.parametrize("writer_process", [False, True], ids=["writer-thread", "writer-process"])
def test_dropped_connections_are_replaced_and_nothing_acknowledged_is_lost(
    tmp_path: Path, postgres_server: PostgresServer | None, live_server: Start, writer_process: bool
) -> None:
    """Every connection of the database dropped between rounds (a restart, a failover): the writer
    (thread, or the process ``serve`` runs) and the pool replace theirs, and no request meets a dead
    one. The writer process once kept its dead connection, and every later event got 503."""
    server = postgres_server_or_skip(postgres_server)
    name = server.create_database()
    url = with_database(server.admin_url, name)
    settings = make_settings(tmp_path, database=url)
    gateway = live_server(create_app(settings, geo=NullGeo(), writer_process=writer_process))
    acknowledged = 0
    with httpx.Client(base_url=gateway.url, timeout=30, headers=CROSS_ORIGIN) as http:
        for round_ in range(3):
            for number in range(10):
                event = {**EVENT, "u": f"{SITE_ORIGIN}/round-{round_}/{number}"}
                answer = http.post("/api/event", json=event)
                if answer.status_code == 503:  # the first request after the drop may meet a dead connection
                    assert_storage_503(answer)
                    continue
                assert answer.status_code == 202, answer.text
                acknowledged += 1
            _admin(server, DROP_CONNECTIONS, name)
        wait_until(lambda: http.get("/healthz").status_code == 200, message="/healthz never recovered")
        answer = http.post("/api/event", json={**EVENT, "u": f"{SITE_ORIGIN}/after"})
        assert answer.status_code == 202, answer.text
        acknowledged += 1
        assert http.get("/").status_code in (200, 404)  # reads come through the replaced pool too
    stored = query(PostgresUrl(url), "SELECT count(*) FROM events")[0][0]
    assert stored >= acknowledged
    assert acknowledged == 31  # the writer and the pool replaced their dead connections before any request met one
