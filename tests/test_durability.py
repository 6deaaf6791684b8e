"""An acknowledged event survives ``kill -9`` (DESIGN.md: 202 only after its batch has committed).

``consent-gateway serve`` runs as a user starts it, in its own process, on a SQLite file in
``tmp_path``. Several threads post events as fast as it answers, each with a unique prop ``n``, and
remember every ``n`` answered 202. Mid-load the server is killed with SIGKILL (no shutdown, no
drain, no checkpoint), started again on the same file, and every acknowledged ``n`` must be there.
Twice: with the writer process ``serve`` uses (which must die with the server: it exits when its
socket closes), and with the writer thread (the same app started with ``writer_process=False``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.waiting import DEADLINE_SECONDS, wait_until

pytestmark = pytest.mark.integration

SITE_ORIGIN = "https://shop.example.com"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SENDERS = 8
MAX_REQUESTS_PER_SENDER = 5_000  # a bound, whatever the machine's speed
MIN_ACKNOWLEDGED = 50  # fewer would not test much: the server barely worked before the kill
#: ``serve`` with the writer thread: what ``consent-gateway serve`` runs, but ``writer_process=False``.
SERVE_WITH_WRITER_THREAD = """
import sys
from pathlib import Path
import uvicorn
from gateway.app import create_app
from gateway.settings import load_settings
app = create_app(load_settings(Path(sys.argv[1])), freeze_heap=True, writer_process=False)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=False)
"""


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the writer process of a server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
            except OSError:  # ended meanwhile
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a container's init to collect it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@contextmanager
def serve(config: Path, port: int, log: Path, writer: str = "process") -> Iterator[subprocess.Popen[bytes]]:
    """``python -m gateway serve`` until it answers /healthz; stopped with SIGINT unless already dead."""
    if writer == "process":
        command = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
    else:
        command = [sys.executable, "-c", SERVE_WITH_WRITER_THREAD, str(config), str(port)]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            stdout=output,  # a file, not a pipe: uvicorn's access log would fill a pipe and stall the server
            stderr=subprocess.STDOUT,
        )
        try:

            def healthy() -> bool:
                assert process.poll() is None, log.read_text()
                try:
                    return bool(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["status"] == "ok")
                except (httpx.TransportError, ValueError):
                    return False

            wait_until(healthy, interval=0.05, message="serve did not answer /healthz")
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=DEADLINE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


class Load:
    """Threads posting events with unique ``n`` props until told to stop or the server dies."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.numbers = itertools.count()
        self.lock = threading.Lock()
        self.acknowledged: set[str] = set()
        self.refused: dict[int, int] = {}  # status -> count (503 when the queue is full is allowed)
        self.failed = 0  # no answer: in flight when the server died
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True) for _ in range(SENDERS)]

    def _send(self) -> None:
        with httpx.Client(timeout=5, headers={"user-agent": USER_AGENT}) as http:
            for _ in range(MAX_REQUESTS_PER_SENDER):
                if self.stop.is_set():
                    return
                with self.lock:
                    number = str(next(self.numbers))
                event = {"s": "shop", "n": "Load", "u": f"{SITE_ORIGIN}/load", "p": {"n": number}}
                try:
                    response = http.post(f"{self.url}/api/event", json=event)
                except httpx.TransportError:
                    with self.lock:
                        self.failed += 1
                    if self.stop.is_set():
                        return
                    time.sleep(0.01)
                    continue
                with self.lock:
                    if response.status_code == 202:
                        self.acknowledged.add(number)
                    else:
                        self.refused[response.status_code] = self.refused.get(response.status_code, 0) + 1

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=DEADLINE_SECONDS)
        assert not any(thread.is_alive() for thread in self.threads)


def stored_numbers(database: Path) -> tuple[set[str], int]:
    with closing(sqlite3.connect(database)) as connection:
        numbers = {row[0] for row in connection.execute("SELECT json_extract(props, '$.n') FROM events")}
        orphans = connection.execute("SELECT count(*) FROM events WHERE visit_id NOT IN (SELECT id FROM visits)")
        assert orphans.fetchone()[0] == 0, "an event without its visit: a batch was half written"
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        total = connection.execute("SELECT count(*) FROM events").fetchone()[0]
    return numbers, total


@pytest.mark.sqlite_only(
    reason="the restarted server recovers SQLite's WAL and PRAGMA integrity_check reads the file; a node killed "
    "with kill -9 on PostgreSQL is tests/test_two_nodes.py"
)
@pytest.mark.parametrize("writer", ["process", "thread"], ids=["writer-process", "writer-thread"])
def test_every_acknowledged_event_survives_kill_9(tmp_path: Path, writer: str) -> None:
    database = tmp_path / "gateway.sqlite3"
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'secret_keys = ["durability-test-key"]\ndatabase = "{database.as_posix()}"\n'
        f'[sites.shop]\norigins = ["{SITE_ORIGIN}"]\n',
        encoding="utf-8",
    )
    port = _free_port()
    log = tmp_path / "serve.log"

    with serve(config, port, log, writer) as process:
        writers = children(process.pid)  # the writer, and multiprocessing's resource tracker that spawn starts
        assert bool(writers) == (writer == "process"), writers
        load = Load(f"http://127.0.0.1:{port}")
        load.start()
        # Killed mid-load once it has acknowledged enough to make the check worth it (slower on a busy machine).
        wait_until(lambda: len(load.acknowledged) >= MIN_ACKNOWLEDGED, message=lambda: f"{load.refused}")
        os.kill(process.pid, signal.SIGKILL)  # mid-load: requests are queued, batches are being written
        process.wait(timeout=DEADLINE_SECONDS)
        load.join()
    assert process.returncode == -signal.SIGKILL
    # The writer process finishes the batch it holds, then sees its socket close.
    outlived = f"a child process outlived the killed server: {writers}"
    wait_until(lambda: not any(running(pid) for pid in writers), message=outlived)
    assert load.failed > 0, "no request was cut off: the server was not killed under load"
    assert len(load.acknowledged) >= MIN_ACKNOWLEDGED, (len(load.acknowledged), load.refused, log.read_text())
    assert set(load.refused) <= {503}, load.refused

    with serve(config, port, log, writer), httpx.Client(timeout=30, headers={"user-agent": USER_AGENT}) as http:
        after = {"s": "shop", "n": "Load", "u": f"{SITE_ORIGIN}/load", "p": {"n": "after-restart"}}
        assert http.post(f"http://127.0.0.1:{port}/api/event", json=after).status_code == 202
        numbers, total = stored_numbers(database)  # the restarted server has recovered the WAL

    lost = load.acknowledged - numbers
    assert lost == set(), f"{len(lost)} of {len(load.acknowledged)} acknowledged events were lost: {sorted(lost)[:10]}"
    assert "after-restart" in numbers
    # Nothing is stored twice, and nothing was stored that was never sent.
    assert total == len(numbers)
    assert numbers - {"after-restart"} <= {str(number) for number in range(next(load.numbers))}


#: Three commits through the writer connection every write of the gateway uses (the event writer
#: process and the database's writer thread both open it with ``connect_writer``), each followed by
#: an fsync of a marker file, so the trace shows which flushes each commit made before it returned.
THREE_COMMITS = """
import os
import sys
from pathlib import Path
from gateway.storage.db import check_database, connect_writer, write_transaction
path = Path(sys.argv[1])
check_database(path)
connection = connect_writer(path)
marker = os.open(path.with_name("marker"), os.O_WRONLY | os.O_CREAT)
os.fsync(marker)
for n in range(3):
    write_transaction(connection, lambda c: c.execute("INSERT INTO health (id, checked_at) VALUES (1, ?) "
                                                      "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                                                      (str(n),)))
    os.fsync(marker)
print(connection.execute("PRAGMA synchronous").fetchone()[0])
"""


@pytest.mark.sqlite_only(
    reason="watches SQLite's own WAL file being flushed; on PostgreSQL the server flushes its WAL (synchronous_commit)"
)
def test_every_commit_is_flushed_to_the_disk_before_it_returns(tmp_path: Path) -> None:
    """Power loss: an acknowledged write must be on the disk, not in the OS cache, when COMMIT returns.

    ``synchronous=NORMAL`` with WAL survives a process crash but flushes only at checkpoints; FULL
    flushes the WAL at every commit. Watched for real: strace records each fsync and its file, and a
    marker file is flushed after each commit, so every commit must show its own WAL flush.
    """
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed: the flushes cannot be watched")
    database = tmp_path / "gateway.sqlite3"
    trace = tmp_path / "trace.txt"
    command = ["strace", "-f", "-y", "-e", "trace=fsync,fdatasync", "-o", str(trace), sys.executable, "-c"]
    result = subprocess.run(
        [*command, THREE_COMMITS, str(database)], capture_output=True, text=True, timeout=DEADLINE_SECONDS, check=False
    )
    if result.returncode != 0 and "ptrace" in result.stderr:
        pytest.skip(f"strace cannot trace here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"  # FULL
    flushed = [line for line in trace.read_text(encoding="utf-8").splitlines() if line.endswith("= 0")]
    markers = [i for i, line in enumerate(flushed) if "/marker>" in line]
    assert len(markers) == 4, flushed
    for commit, (start, end) in enumerate(itertools.pairwise(markers)):
        between = flushed[start + 1 : end]
        assert any(f"{database.name}-wal>" in line for line in between), f"commit {commit} not flushed: {between}"
