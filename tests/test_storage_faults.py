"""Storage faults, made real: a full disk, a read-only database, a blocked writer, a damaged file.

How each fault is made, and why that way:

- **A full disk**: the database lives on a tmpfs of a few MB mounted for the test, and a filler file
  takes every free block. SQLite meets ENOSPC exactly as on a real disk (``database or disk is
  full``), and deleting the filler is a real recovery. Mounting needs root (CAP_SYS_ADMIN): the test
  is skipped, saying so, where ``mount`` is refused.
- **A read-only database**: the file is ``chmod 0444`` and ``consent-gateway serve`` runs as a real
  subprocess. Root ignores file modes (CAP_DAC_OVERRIDE), so as root the server is started by
  ``setpriv`` with that capability removed from its bounding set: SQLite then opens the file read-only,
  as for any non-root service user, and every write meets ``attempt to write a readonly database``.
  (A read-only remount is refused while the server holds the file open, and a WAL database cannot
  even be read on a filesystem that was read-only from the start: neither is the fault to test.)
- **A lagging writer**: another connection holds the write lock (``BEGIN IMMEDIATE``), as a second
  process on the same file, a long backup or a stuck migration would.
- **A damaged file**: random bytes, or a page overwritten, then the real CLI as a subprocess.

The attacks fail the test when a fault ends in a 500, a plain-text body, a 503 without
``Retry-After``, a /healthz that says ok, a traceback, or an acknowledged event that is not stored.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.clock import FixedClock, SystemClock
from gateway.consent.token import ConsentTokenCodec
from gateway.settings import load_settings
from gateway.storage.db import check_database
from gateway.storage.location import DatabaseLocation, PostgresUrl
from tests.conftest import SITE_ORIGIN, LiveServer, make_settings
from tests.waiting import DEADLINE_SECONDS, wait_until

pytestmark = pytest.mark.integration

Start = Callable[[Any], LiveServer]
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CROSS_ORIGIN = {"origin": SITE_ORIGIN, "user-agent": USER_AGENT}
EVENT = {"s": "shop", "n": "pageview", "u": f"{SITE_ORIGIN}/"}
CONSENT = {"site": "shop", "revision": 1, "choices": {"analytics": True, "advertising": True, "functional": True}}
TMPFS_BYTES = 8 * 1024 * 1024


def assert_storage_503(response: httpx.Response) -> None:
    """The one answer a storage failure may give: JSON 503 with Retry-After, never a 500 or plain text."""
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert int(response.headers["retry-after"]) > 0
    assert "storage unavailable" in response.json()["error"]
    assert "Traceback" not in response.text and "INSERT" not in response.text


def health(http: httpx.Client) -> tuple[int, dict[str, Any]]:
    response = http.get("/healthz")
    return response.status_code, response.json()


def login_attempt(http: httpx.Client) -> httpx.Response:
    """A dashboard login: the throttle writes its reservation before the password is checked."""
    page = http.get("/login")
    assert page.status_code == 200, page.text[:300]
    match = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert match, page.text[:300]
    form = {"name": "owner", "password": "not the password", "login_csrf": match.group(1)}
    return http.post("/login", data=form, headers=same_origin(http))


def privacy_withdraw(http: httpx.Client, token: str) -> httpx.Response:
    """The privacy center's withdraw button: a new proof-log row."""
    form = {"site": "shop", "action": "withdraw", "token": token, "lang": "en"}
    return http.post("/privacy", data=form, headers=same_origin(http))


def same_origin(http: httpx.Client) -> dict[str, str]:
    """The gateway's own pages post to themselves (their forms refuse other origins)."""
    return {"origin": str(http.base_url).rstrip("/")}


def stored_event_count(database: Path) -> int:
    with closing(sqlite3.connect(database)) as connection:
        return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])


# --- a full disk -----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of ``TMPFS_BYTES`` mounted for the test: the disk that fills up."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"a small filesystem cannot be mounted here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Take every free block of ``folder``'s filesystem with one file; returns it (delete it to recover)."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):  # big chunks, then whatever is left of the last blocks
            try:
                while os.write(descriptor, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(descriptor)
    return filler


def test_a_full_disk_answers_503_everywhere_healthz_fails_and_nothing_acknowledged_is_lost(
    small_disk: Path, clock: FixedClock, live_server: Start
) -> None:
    database = small_disk / "gateway.sqlite3"
    settings = make_settings(small_disk, database=str(database), min_free_disk_mb=1)
    server = live_server(create_app(settings, clock=clock))
    acknowledged = 0
    with httpx.Client(base_url=server.url, timeout=DEADLINE_SECONDS, headers=CROSS_ORIGIN) as http:
        assert health(http)[0] == 200
        answer = http.post("/consent", json=CONSENT)
        assert answer.status_code == 201, answer.text
        token = answer.json()["token"]

        filler = fill(small_disk)
        # The salt store writes first (the day's salt), then the batches: each write that needs a
        # block fails; a write that fits in space SQLite already holds may still succeed, and is kept.
        statuses = []
        for number in range(200):
            response = http.post("/api/event", json={**EVENT, "p": {"n": str(number)}})
            statuses.append(response.status_code)
            if response.status_code == 503:
                assert_storage_503(response)
                break
        assert statuses[-1] == 503, f"200 events were taken on a full disk: {statuses[-5:]}"
        acknowledged += statuses.count(202)

        consent = http.post("/consent", json=CONSENT)
        assert_storage_503(consent)
        assert consent.headers["access-control-allow-origin"] == SITE_ORIGIN  # the site's script can read it
        assert "token" not in consent.json()  # no token without its proof record
        assert_storage_503(privacy_withdraw(http, token))
        assert_storage_503(login_attempt(http))

        # The disk check fails at once. The write proof (one row) may still commit: SQLite reuses the
        # blocks a failed, larger transaction left in the WAL, and then small writes do succeed.
        status, body = health(http)
        assert status == 503, body
        assert "disk" in body["failing"], body
        assert body["checks"]["disk"]["detail"] == "0 MB free (minimum 1 MB)"
        assert body["checks"]["write"]["ok"] or body["checks"]["write"]["detail"] == "the disk is full"

        filler.unlink()  # the operator frees space: the same process recovers, no restart
        wait_until(lambda: health(http)[0] == 200, message=lambda: f"/healthz stayed failing: {health(http)[1]}")
        recovered = http.post("/api/event", json={**EVENT, "p": {"n": "after"}})
        assert recovered.status_code == 202, recovered.text
        acknowledged += 1
        assert http.post("/consent", json=CONSENT).status_code == 201
        assert privacy_withdraw(http, token).status_code == 200
    server.__exit__()
    assert stored_event_count(database) == acknowledged


# --- a read-only database --------------------------------------------------------------------------


def without_file_override() -> list[str]:
    """The command prefix that makes file modes bind this process's root, as they bind any other user."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: nothing here makes a read-only file refuse root's writes")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


@contextmanager
def serve(config: Path, log: Path, prefix: list[str]) -> Iterator[str]:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [*prefix, sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:

        def answering() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                httpx.get(f"{url}/healthz", timeout=5)
            except httpx.TransportError:
                return False
            return True

        wait_until(answering, interval=0.05, message="serve did not answer /healthz")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_read_only_database_answers_503_everywhere_and_healthz_names_the_write(tmp_path: Path) -> None:
    prefix = without_file_override()
    database = tmp_path / "gateway.sqlite3"
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'secret_keys = ["read-only-test-key"]\ndatabase = "{database.as_posix()}"\n'
        f'[sites.shop]\norigins = ["{SITE_ORIGIN}"]\n',
        encoding="utf-8",
    )
    check_database(database)  # the schema is there; then the file turns read-only
    database.chmod(0o444)
    settings = load_settings(config)
    site = settings.sites["shop"]
    token, _ = ConsentTokenCodec(settings.secret_keys, SystemClock()).issue(
        consent_id="c" * 32, site=site, allowed=frozenset(), services={}, method="reject_all", gpc=False
    )

    with (
        serve(config, tmp_path / "serve.log", prefix) as url,
        httpx.Client(base_url=url, timeout=DEADLINE_SECONDS, headers=CROSS_ORIGIN) as http,
    ):
        status, body = health(http)
        assert status == 503, body
        assert "write" in body["failing"], body
        assert body["checks"]["write"]["detail"] == "the database is read-only"
        assert body["checks"]["database"]["ok"]  # reads still work: the dashboards can still be read

        assert_storage_503(http.post("/api/event", json=EVENT))  # the salt store, before any batch
        consent = http.post("/consent", json=CONSENT)
        assert_storage_503(consent)
        assert consent.headers["access-control-allow-origin"] == SITE_ORIGIN
        assert_storage_503(privacy_withdraw(http, token))
        assert_storage_503(login_attempt(http))
    log = (tmp_path / "serve.log").read_text()
    assert "Exception in ASGI application" not in log, log[-3000:]  # no request reached uvicorn's 500
    assert "storage failure on POST /consent: the database is read-only" in log


# --- a lagging writer ------------------------------------------------------------------------------


def test_a_writer_that_cannot_commit_fails_healthz_until_it_catches_up(
    tmp_path: Path, clock: FixedClock, live_server: Start
) -> None:
    settings = make_settings(tmp_path, max_writer_lag_seconds=1)
    server = live_server(create_app(settings, clock=clock))
    with httpx.Client(base_url=server.url, timeout=DEADLINE_SECONDS, headers=CROSS_ORIGIN) as http:
        assert http.post("/api/event", json=EVENT).status_code == 202  # the day's salt exists
        assert health(http)[0] == 200
        answers: list[int] = []
        with _writer_held_up(settings.database) as release:  # another process holds the writer up
            sender = threading.Thread(
                target=lambda: answers.append(http.post("/api/event", json=EVENT).status_code), daemon=True
            )
            sender.start()
            status, body = wait_until(
                lambda: (answer := health(http))[0] == 503 and "writer" in answer[1]["failing"] and answer,
                message=lambda: f"/healthz never noticed the blocked writer: {health(http)}",
            )
            assert "waited" in body["checks"]["writer"]["detail"], body["checks"]
            release()
        sender.join(timeout=DEADLINE_SECONDS)
        assert answers == [202]  # the event waited, then was written: nothing refused, nothing lost
        wait_until(lambda: health(http)[0] == 200, message=lambda: f"/healthz stayed failing: {health(http)[1]}")


@contextmanager
def _writer_held_up(location: DatabaseLocation) -> Iterator[Callable[[], None]]:
    """Another connection holding up the gateway's writer until ``release()``: SQLite's write lock
    (``BEGIN IMMEDIATE``), or on PostgreSQL an exclusive lock on ``events`` (a long migration would)."""
    if isinstance(location, PostgresUrl):
        import psycopg

        with psycopg.connect(location.url, autocommit=True) as other:
            other.execute("BEGIN")
            other.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            yield lambda: other.execute("ROLLBACK")
        return
    with closing(sqlite3.connect(location, isolation_level=None)) as connection:
        connection.execute("BEGIN IMMEDIATE")
        yield lambda: connection.execute("ROLLBACK")


@pytest.mark.sqlite_only(reason="it watches the SQLite file's filesystem; a database server's disk is watched there")
def test_healthz_fails_when_free_disk_is_under_the_minimum(tmp_path: Path, live_server: Start) -> None:
    free_mb = shutil.disk_usage(tmp_path).free // (1024 * 1024)
    settings = make_settings(tmp_path, min_free_disk_mb=free_mb + 1_000_000)
    server = live_server(create_app(settings))
    with httpx.Client(base_url=server.url, timeout=DEADLINE_SECONDS) as http:
        status, body = health(http)
    assert status == 503
    assert body["failing"] == ["disk"], body
    assert "MB free" in body["checks"]["disk"]["detail"]


@pytest.mark.sqlite_only(
    reason="counts commits with SQLite's data_version (PostgreSQL has no such counter per database); the rate "
    "limit is one piece of code for both stores (gateway/web/health.py _WriteProof)"
)
def test_the_write_proof_is_rate_limited(tmp_path: Path, live_server: Start) -> None:
    """A load balancer polling hard costs one small commit every few seconds, not one per poll."""
    settings = make_settings(tmp_path)
    server = live_server(create_app(settings))
    with closing(sqlite3.connect(settings.database)) as connection:
        before = connection.execute("PRAGMA data_version").fetchone()[0]
        with httpx.Client(base_url=server.url, timeout=DEADLINE_SECONDS) as http:
            statuses = {http.get("/healthz").status_code for _ in range(20)}
        after = connection.execute("PRAGMA data_version").fetchone()[0]
    assert statuses == {200}
    assert after - before <= 1  # data_version counts commits by other connections


# --- a damaged file at start -----------------------------------------------------------------------


def damage_a_page(path: Path) -> None:
    check_database(path)
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 2 + 512] = b"\xff" * 512  # a b-tree page of the schema's tables
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda path: path.write_bytes(os.urandom(16384)), id="random bytes"),
        pytest.param(lambda path: path.write_bytes(b"SQLite format 3\0" + b"\x07" * 4000), id="a broken header"),
        pytest.param(damage_a_page, id="a damaged page"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "demo", "purge", "rollup"])
def test_a_damaged_database_at_start_is_one_line_and_exit_2(
    tmp_path: Path, damage: Callable[[Path], None], command: str
) -> None:
    if command == "demo":
        database = tmp_path / "data" / "demo.sqlite3"
        database.parent.mkdir()
        arguments = ["demo", "--data", str(database.parent), "--port", "0", "--site-port", "0"]
    else:
        database = tmp_path / "gateway.sqlite3"
        config = tmp_path / "gateway.toml"
        config.write_text(
            f'secret_keys = ["damaged-test-key"]\ndatabase = "{database.as_posix()}"\n'
            f'[sites.shop]\norigins = ["{SITE_ORIGIN}"]\n',
            encoding="utf-8",
        )
        arguments = [command, "--config", str(config)]
        if command == "serve":
            arguments += ["--port", "0"]
    damage(database)
    result = subprocess.run(
        [sys.executable, "-m", "gateway", *arguments],
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("consent-gateway: error: cannot open the database")
    assert str(database) in lines[0]
    assert "damaged" in lines[0] or "not a database" in lines[0]
