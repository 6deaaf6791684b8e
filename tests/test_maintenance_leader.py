"""One maintenance leader at a time: among processes on one SQLite file, among nodes on one PostgreSQL database.

Each ``Maintenance`` here opens its own store, as a separate worker process or node would; on SQLite
two descriptors of one lock file exclude each other within one process just as across processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from gateway.clock import FixedClock
from gateway.maintenance import Maintenance, MaintenanceRun
from gateway.settings import Settings
from gateway.storage.leader import hold_leadership
from gateway.storage.store import Store, open_store
from tests.conftest import REPO
from tests.waiting import eventually

T = TypeVar("T")
NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
FOLLOWER = MaintenanceRun(rolled_up=None, purged=None, leading=False)


async def _opened(exits: AsyncExitStack, settings: Settings) -> Store:
    store = await open_store(settings.database).open()
    exits.push_async_callback(store.close)
    return store


async def _nodes(exits: AsyncExitStack, settings: Settings, count: int, **options: float) -> list[Maintenance]:
    """``count`` maintenance tasks, each on a store of its own (stopped before their stores close)."""
    nodes = []
    for _ in range(count):
        node = Maintenance(await _opened(exits, settings), settings, FixedClock(NOW), **options)
        exits.push_async_callback(node.stop)
        nodes.append(node)
    return nodes


def _run(work: Callable[[AsyncExitStack], Awaitable[T]]) -> T:
    async def scenario() -> T:
        async with AsyncExitStack() as exits:
            return await work(exits)

    return asyncio.run(scenario())


async def _until_it_leads(node: Maintenance) -> MaintenanceRun:
    """Poll ``run_once`` (as the loop would, only faster) until the node takes the role; fail at the deadline."""

    async def leading() -> MaintenanceRun | None:
        run = await node.run_once()
        return run if run.leading else None

    found: MaintenanceRun = await eventually(leading, message="the node never took the maintenance role")
    return found


def test_one_of_two_leads_the_other_only_asks_until_the_leader_stops(settings: Settings) -> None:
    async def work(exits: AsyncExitStack) -> list[MaintenanceRun]:
        first, second = await _nodes(exits, settings, 2)
        runs = [await first.run_once(), await second.run_once(), await second.run_once()]
        await first.stop()  # the leader lets go; the follower's next poll takes over
        runs.append(await second.run_once())
        runs.append(await first.run_once())  # the old leader is now the one that asks
        return runs

    leader, asked, asked_again, took_over, old_leader = _run(work)
    assert leader.leading and leader.purged is not None  # the first run of a leader purges
    assert asked == asked_again == FOLLOWER  # no rollup, no purge, no salt deletion
    assert took_over.leading and took_over.purged is not None  # a new leader starts afresh: it purges
    assert old_leader == FOLLOWER


def test_running_loops_elect_one_leader_and_a_follower_takes_over_within_a_poll(settings: Settings) -> None:
    async def work(exits: AsyncExitStack) -> tuple[list[int], list[int], bool]:
        nodes = await _nodes(exits, settings, 3, poll_seconds=0.05)
        for node in nodes:
            await node.start()
        leaders = await eventually(lambda: [i for i, node in enumerate(nodes) if node.leading])
        stopped = nodes[leaders[0]]
        await stopped.stop()
        successors = await eventually(lambda: [i for i, node in enumerate(nodes) if node.leading])
        return leaders, successors, stopped.leading

    leaders, successors, stopped_leads = _run(work)
    assert len(leaders) == 1 and len(successors) == 1  # never two at once
    assert successors != leaders and not stopped_leads


def test_a_killed_leader_process_is_replaced(settings: Settings, tmp_path: Path) -> None:
    holder = tmp_path / "holder.py"
    holder.write_text(
        textwrap.dedent(
            """
            import asyncio, sys
            from gateway.storage.leader import Leadership
            from gateway.storage.location import parse_database
            from gateway.storage.store import open_store

            async def hold() -> None:
                leadership = Leadership(open_store(parse_database(sys.argv[1])), "maintenance")
                print("leading" if await leadership.claim() else "following", flush=True)
                await asyncio.to_thread(sys.stdin.read)  # until killed

            asyncio.run(hold())
            """
        )
    )
    database = settings.database if isinstance(settings.database, Path) else settings.database.url
    child = subprocess.Popen(  # noqa: ASYNC220 - started before the event loop
        [sys.executable, str(holder), str(database)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "leading"

        async def work(exits: AsyncExitStack) -> tuple[MaintenanceRun, MaintenanceRun]:
            (node,) = await _nodes(exits, settings, 1)
            while_alive = await node.run_once()
            os.kill(child.pid, signal.SIGKILL)  # no clean exit: the OS (or the server) must free the lock
            await asyncio.to_thread(child.wait)
            return while_alive, await _until_it_leads(node)

        while_alive, after = _run(work)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
    assert while_alive == FOLLOWER
    assert after.leading and after.purged is not None


def test_hold_leadership_claims_on_entry_and_releases_on_exit(settings: Settings) -> None:
    async def work(exits: AsyncExitStack) -> list[bool]:
        first, second = await _opened(exits, settings), await _opened(exits, settings)
        seen = []
        async with hold_leadership(first, "maintenance") as held:
            seen.append(held.leading)
            async with hold_leadership(second, "maintenance") as other:
                seen += [other.leading, await other.claim()]
            async with hold_leadership(second, "rollups") as another_role:
                seen.append(another_role.leading)  # roles are independent
        async with hold_leadership(second, "maintenance") as after:
            seen.append(after.leading)
        return seen

    assert _run(work) == [True, False, False, True, True]
