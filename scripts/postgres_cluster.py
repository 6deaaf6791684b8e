#!/usr/bin/env python3
"""A throwaway PostgreSQL cluster from Debian's packages, for the tests, the demo and the benchmarks.

Why a script and not Docker: the README promises two commands on a plain Debian machine. The cluster
lives in ``.cache/postgres/<random>/`` (data, a private unix-socket folder, the log), listens only on
127.0.0.1 on a port the OS picked, trusts local connections (test use only: nothing else can reach it)
and runs with ``fsync=off`` (a crash loses a throwaway cluster, which is fine). Run as root, it runs
PostgreSQL as the ``postgres`` OS user, because ``postgres`` refuses to run as root.

Every cluster folder holds an ``owner`` file naming the process that keeps it alive (this script's
``run``, or the server itself after ``start``). A cluster whose owner is gone — a run killed with
``kill -9`` — is stopped and deleted by the next start, so stale clusters never pile up.

Usage (stdlib only, so it runs before the virtualenv exists)::

    scripts/postgres_cluster.py run [--database NAME --database-env VAR] -- COMMAND...
        start a cluster, run COMMAND with TEST_POSTGRES_URL=<admin url> and
        TEST_REQUIRE_POSTGRES=1 in its environment (plus VAR=<url of NAME> when asked),
        then stop and delete the cluster whatever happened; exit with COMMAND's status.
    scripts/postgres_cluster.py start      prints the admin URL and the folder; the cluster stays up
    scripts/postgres_cluster.py stop DIR   stops and deletes a cluster started with ``start``
    scripts/postgres_cluster.py clean      stops and deletes every stale cluster

Importable: ``with throwaway_cluster() as cluster: cluster.admin_url`` (the benchmarks use it).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLUSTERS = REPO / ".cache" / "postgres"
#: Seconds PostgreSQL gets to start or stop on a busy machine; never waited out when it is idle.
START_SECONDS = 60.0
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",  # throwaway data: durability buys nothing here and costs the tests time
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",  # every test database plus the pools of two gateway nodes
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
}


@dataclass(frozen=True, slots=True)
class Cluster:
    """A running throwaway cluster: where it lives and how to reach it."""

    folder: Path
    port: int
    bin_dir: Path

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def data(self) -> Path:
        return self.folder / "data"


def find_bin_dir() -> Path:
    """The folder of Debian's ``initdb``/``pg_ctl`` (they are not on PATH by default), installing them if absent."""
    found = _bin_dir()
    if found is None:
        _install_postgresql()
        found = _bin_dir()
    if found is None:
        raise SystemExit("postgres_cluster: initdb not found, even after apt-get install postgresql")
    return found


def _bin_dir() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    # Newest major version first: /usr/lib/postgresql/15/bin before /usr/lib/postgresql/13/bin.
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major_version, reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _major_version(initdb: str) -> int:
    version = Path(initdb).parent.parent.name
    return int(version) if version.isdigit() else 0


def _install_postgresql() -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("postgres_cluster: installing Debian's postgresql with apt-get", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)  # noqa: S603
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)  # noqa: S603


def _as_server_user(command: Sequence[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` OS user."""
    if os.geteuid() != 0:
        return list(command)
    return ["runuser", "-u", "postgres", "--", *command]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_alive(folder: Path) -> bool:
    try:
        pid = int((folder / "owner").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        # No owner yet: a cluster being created right now, unless its folder is old (its creator died early).
        try:
            return time.time() - folder.stat().st_mtime < START_SECONDS  # noqa: TID251 (file ages, not app time)
        except OSError:
            return False
    return _alive(pid)


def _postmaster_pid(folder: Path) -> int | None:
    try:
        return int((folder / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def remove_cluster(folder: Path) -> None:
    """Stop the server (immediately: the data is thrown away) and delete the folder."""
    pid = _postmaster_pid(folder)
    if pid is not None and _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)  # PostgreSQL's "immediate shutdown"
        deadline = time.monotonic() + START_SECONDS
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


def clean_stale(root: Path = CLUSTERS) -> list[Path]:
    """Stop and delete every cluster under ``root`` whose owner process is gone (a killed run's leftovers)."""
    removed = []
    for folder in sorted(root.glob("*")):
        if folder.is_dir() and not _owner_alive(folder):
            remove_cluster(folder)
            removed.append(folder)
    return removed


def start_cluster(root: Path = CLUSTERS, *, owner: int | None = None) -> Cluster:
    """Create and start a cluster under ``root``.

    ``owner`` is the pid whose death makes the cluster stale; None: the server's own (``start``).
    """
    bin_dir = find_bin_dir()
    root.mkdir(parents=True, exist_ok=True)
    for stale in clean_stale(root):
        print(f"postgres_cluster: removed the stale cluster {stale}", file=sys.stderr)
    folder = Path(os.path.realpath(root / secrets.token_hex(4)))
    folder.mkdir()
    if owner is not None:
        (folder / "owner").write_text(f"{owner}\n")
    try:
        cluster = _init_and_start(folder, bin_dir)
    except BaseException:
        remove_cluster(folder)
        raise
    if owner is None:
        (folder / "owner").write_text(f"{_postmaster_pid(folder)}\n")
    return cluster


def _init_and_start(folder: Path, bin_dir: Path) -> Cluster:
    (folder / "socket").mkdir(mode=0o700)
    if os.geteuid() == 0:
        # The server user must reach its folder: the checkout's parents are world-traversable, the cache may not be.
        for parent in (folder.parent, folder.parent.parent):
            parent.chmod(parent.stat().st_mode | 0o711)
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(folder / "socket", "postgres", "postgres")
    init = [str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    init += ["--locale=C.UTF-8", "--no-sync"]
    subprocess.run(_as_server_user(init), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
    last_error = ""
    for _ in range(5):  # a free port can be taken between our probe and the server's bind: pick another
        port = _free_port()
        options = " ".join(f"-c {name}={value}" for name, value in SERVER_SETTINGS.items())
        options += f" -p {port} -c unix_socket_directories={folder / 'socket'}"
        start = [str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "server.log")]
        start += ["-o", options, "-w", "-t", str(int(START_SECONDS)), "start"]
        server = _as_server_user(start)
        done = subprocess.run(server, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # noqa: S603
        if done.returncode == 0:
            return Cluster(folder=folder, port=port, bin_dir=bin_dir)
        last_error = done.stderr + _tail(folder / "server.log")
    raise RuntimeError(f"postgres_cluster: the server did not start in {folder}:\n{last_error}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def create_database(cluster: Cluster, name: str) -> str:
    """Create ``name`` with Debian's createdb (no driver needed) and return its URL."""
    command = [str(cluster.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", name]
    subprocess.run(command, check=True)  # noqa: S603 (PostgreSQL's own createdb)
    return cluster.url(name)


@contextlib.contextmanager
def throwaway_cluster(root: Path = CLUSTERS) -> Iterator[Cluster]:
    """A cluster for the length of a ``with`` block, stopped and deleted at its end (an error included)."""
    cluster = start_cluster(root, owner=os.getpid())
    try:
        yield cluster
    finally:
        remove_cluster(cluster.folder)


def _run(command: Sequence[str], *, database: str | None, database_env: str | None) -> int:
    """Run ``command`` against a fresh cluster and return its exit status; the cluster never outlives it."""

    # SIGTERM/SIGHUP would end us without our finally: turn them into an exception so the cluster goes too.
    def _stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    with throwaway_cluster() as cluster:
        env = {
            **os.environ,
            "TEST_POSTGRES_URL": cluster.admin_url,
            "TEST_REQUIRE_POSTGRES": "1",
        }
        if database is not None:
            url = create_database(cluster, database)
            if database_env is not None:
                env[database_env] = url
        print(f"postgres_cluster: {cluster.admin_url} in {cluster.folder}", file=sys.stderr)
        child = subprocess.Popen(command, env=env)  # noqa: S603 (the caller's own command line)
        try:
            return child.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached the child too (same process group); a signal to us alone is passed on.
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=START_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            return 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="action", required=True)
    run = commands.add_parser("run", help="run a command with a cluster up, then delete the cluster")
    run.add_argument("--database", help="also create this database")
    run.add_argument("--database-env", help="environment variable that receives the database's URL")
    run.add_argument("command", nargs=argparse.REMAINDER)
    commands.add_parser("start", help="start a cluster that stays up; prints its admin URL")
    stop = commands.add_parser("stop", help="stop and delete a cluster started with start")
    stop.add_argument("folder", type=Path)
    commands.add_parser("clean", help="stop and delete every stale cluster under .cache/postgres")
    args = parser.parse_args(argv)
    if args.action == "run":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("run needs a command after --")
        return _run(command, database=args.database, database_env=args.database_env)
    if args.action == "start":
        cluster = start_cluster()
        print(f"export TEST_POSTGRES_URL={cluster.admin_url}")
        print(f"# stop with: {sys.argv[0]} stop {cluster.folder}")
        return 0
    if args.action == "stop":
        remove_cluster(args.folder.resolve())
        return 0
    for folder in clean_stale():
        print(f"removed {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
